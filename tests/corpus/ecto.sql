-- Ecto (ecto_sql 3.x, Postgrex) migrations as sent to the server. Ecto takes this lock
-- on its own bookkeeping table before every migration; it must pass.

-- expect: ok
LOCK TABLE "schema_migrations" IN SHARE UPDATE EXCLUSIVE MODE;

-- expect: ok
SELECT s0."version"::bigint FROM "schema_migrations" AS s0;

-- expect: ok
BEGIN;
-- expect: ok
LOCK TABLE "schema_migrations" IN SHARE UPDATE EXCLUSIVE MODE;
-- expect: ok
CREATE TABLE "accounts" ("id" bigserial, "email" varchar(255) NOT NULL, "settings" jsonb DEFAULT '{}'::jsonb, "inserted_at" timestamp(0) NOT NULL, "updated_at" timestamp(0) NOT NULL, PRIMARY KEY ("id"));
-- expect: ok
CREATE UNIQUE INDEX "accounts_email_index" ON "accounts" ("email");
-- expect: ok
CREATE TABLE "memberships" ("id" bigserial, "account_id" bigint CONSTRAINT "memberships_account_id_fkey" REFERENCES "accounts"("id") ON DELETE CASCADE, "role" varchar(255) DEFAULT 'member' NOT NULL, PRIMARY KEY ("id"));
-- expect: ok
CREATE INDEX "memberships_account_id_index" ON "memberships" ("account_id");
-- expect: ok
INSERT INTO "schema_migrations" ("version", "inserted_at") VALUES (20240201000000, now());
-- expect: ok
COMMIT;

-- expect: ok
BEGIN;
-- expect: ok
LOCK TABLE "schema_migrations" IN SHARE UPDATE EXCLUSIVE MODE;
-- expect: add_foreign_key_validated
ALTER TABLE "organizations" ADD COLUMN "owner_id" bigint CONSTRAINT "organizations_owner_id_fkey" REFERENCES "accounts"("id") ON DELETE SET NULL;
-- expect: create_index_non_concurrently
CREATE INDEX "organizations_owner_id_index" ON "organizations" ("owner_id");
-- expect: ok
ALTER TABLE "organizations" ADD COLUMN "archived_at" timestamp(0);
-- expect: ok
ALTER TABLE "organizations" ADD COLUMN "plan" varchar(255) DEFAULT 'free' NOT NULL;
-- expect: add_column_volatile_default
ALTER TABLE "organizations" ADD COLUMN "public_id" uuid DEFAULT gen_random_uuid() NOT NULL;
-- expect: add_column_rewrites_table
ALTER TABLE "organizations" ADD COLUMN "seq" bigserial;
-- expect: ok
ALTER TABLE "accounts" ALTER COLUMN "email" TYPE varchar(320);
-- citext's extension declares varchar to citext binary-coercible: only a catalog can say
-- (a warning here; the live corpus decides it on a server).
-- expect: ok
ALTER TABLE "accounts" ALTER COLUMN "email" TYPE citext;
-- expect: rename_column
ALTER TABLE "organizations" RENAME "name" TO "display_name";
-- expect: drop_column
ALTER TABLE "organizations" DROP COLUMN "legacy_id";
-- expect: json_column
ALTER TABLE "organizations" ALTER COLUMN "features" TYPE json USING "features"::json;
-- expect: ok
INSERT INTO "schema_migrations" ("version", "inserted_at") VALUES (20240202000000, now());
-- expect: ok
COMMIT;

-- @disable_ddl_transaction true, @disable_migration_lock true
-- expect: ok
CREATE INDEX CONCURRENTLY IF NOT EXISTS "organizations_plan_index" ON "organizations" ("plan");
-- expect: ok
DROP INDEX CONCURRENTLY IF EXISTS "organizations_legacy_index";
-- expect: ok
ALTER TABLE "organizations" ADD CONSTRAINT "organizations_owner_fk" FOREIGN KEY ("owner_id") REFERENCES "accounts"("id") NOT VALID;
-- expect: ok
ALTER TABLE "organizations" VALIDATE CONSTRAINT "organizations_owner_fk";
-- expect: ok
LOCK TABLE "organizations" IN EXCLUSIVE MODE;
-- expect: truncate
TRUNCATE TABLE "audit_events";
