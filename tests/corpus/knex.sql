-- knex (schema builder, `knex migrate:latest --debug`) and node-pg-migrate output.
-- knex runs each migration in a transaction unless `config.transaction = false`.

-- expect: ok
BEGIN;
-- expect: ok
create table "knex_migrations_lock" ("index" serial primary key, "is_locked" integer);
-- expect: ok
select * from "knex_migrations_lock" for update;
-- expect: ok
create table "teams" ("id" serial primary key, "name" varchar(255) not null, "slug" varchar(255), "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP);
-- expect: ok
alter table "teams" add constraint "teams_slug_unique" unique ("slug");
-- expect: ok
create index "teams_name_index" on "teams" ("name");
-- expect: ok
insert into "knex_migrations" ("batch", "migration_time", "name") values (1, '2024-03-01T10:00:00.000Z', '20240301_create_teams.js');
-- expect: ok
COMMIT;

-- expect: ok
BEGIN;
-- expect: ok
alter table "players" add column "team_id" integer;
-- expect: add_foreign_key_validated
alter table "players" add constraint "players_team_id_foreign" foreign key ("team_id") references "teams" ("id") on delete CASCADE;
-- expect: create_index_non_concurrently
create index "players_team_id_index" on "players" ("team_id");
-- expect: add_unique_constraint
alter table "players" add constraint "players_email_unique" unique ("email");
-- expect: ok
alter table "players" alter column "nickname" drop not null;
-- expect: set_not_null
alter table "players" alter column "nickname" set not null;
-- expect: add_column_volatile_default
alter table "players" add column "ref" uuid not null default uuid_generate_v4();
-- expect: ok
alter table "players" add column "joined_on" date not null default current_date;
-- expect: rename_column
alter table "players" rename "nickname" to "handle";
-- expect: drop_column
alter table "players" drop column "age";
-- expect: ok
alter table "players" rename to "members";
-- (a rename is judged when its transaction commits: no view for the old name)
-- expect: rename_table
COMMIT;

-- node-pg-migrate, a migration with `pgm.noTransaction()`
-- expect: ok
CREATE INDEX CONCURRENTLY "members_team_id_index" ON "members" ("team_id");
-- expect: ok
ALTER TABLE "members" ADD CONSTRAINT "members_team_fk" FOREIGN KEY ("team_id") REFERENCES "teams" ON DELETE CASCADE NOT VALID;
-- expect: ok
ALTER TABLE "members" VALIDATE CONSTRAINT "members_team_fk";
-- expect: ok
CREATE UNIQUE INDEX CONCURRENTLY "members_email_unique_idx" ON "members" ("email");
-- expect: ok
ALTER TABLE "members" ADD CONSTRAINT "members_email_unique" UNIQUE USING INDEX "members_email_unique_idx";
-- expect: reindex_non_concurrently
REINDEX INDEX "members_email_unique_idx";
-- expect: ok
REINDEX INDEX CONCURRENTLY "members_email_unique_idx";
-- expect: ok
INSERT INTO "public"."pgmigrations" (name, run_on) VALUES ('1709287200000_members-indexes', NOW());
