-- ActiveRecord 7.x statements as the PostgreSQL adapter sends them (log output), one
-- migration per BEGIN/COMMIT; `disable_ddl_transaction!` migrations run without one.

-- 20240101000000_create_posts.rb
-- expect: ok
BEGIN;
-- expect: ok
CREATE TABLE "posts" ("id" bigserial primary key, "title" character varying, "body" text, "published" boolean DEFAULT FALSE NOT NULL, "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL);
-- expect: ok
CREATE INDEX "index_posts_on_title" ON "posts" ("title");
-- expect: ok
CREATE TABLE "comments" ("id" bigserial primary key, "post_id" bigint NOT NULL, "body" text, "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL, CONSTRAINT "fk_rails_2fd19c0db7"
FOREIGN KEY ("post_id")
  REFERENCES "posts" ("id")
);
-- expect: ok
CREATE INDEX "index_comments_on_post_id" ON "comments" ("post_id");
-- expect: ok
INSERT INTO "schema_migrations" ("version") VALUES ('20240101000000') RETURNING "version";
-- expect: ok
COMMIT;

-- 20240102000000_add_user_to_posts.rb: add_reference :posts, :user, foreign_key: true
-- expect: ok
BEGIN;
-- expect: ok
ALTER TABLE "posts" ADD "user_id" bigint;
-- expect: create_index_non_concurrently
CREATE INDEX "index_posts_on_user_id" ON "posts" ("user_id");
-- expect: add_foreign_key_validated
ALTER TABLE "posts" ADD CONSTRAINT "fk_rails_5b5ddfd518"
FOREIGN KEY ("user_id")
  REFERENCES "users" ("id")
;
-- expect: ok
INSERT INTO "schema_migrations" ("version") VALUES ('20240102000000') RETURNING "version";
-- expect: ok
COMMIT;

-- 20240103000000_tweak_posts.rb
-- expect: ok
BEGIN;
-- expect: ok
ALTER TABLE "posts" ALTER COLUMN "title" TYPE text;
-- expect: change_column_type
ALTER TABLE "posts" ALTER COLUMN "title" TYPE character varying(100);
-- expect: ok
ALTER TABLE "posts" ALTER COLUMN "title" TYPE character varying(255);
-- expect: ok
ALTER TABLE "posts" ALTER COLUMN "updated_at" TYPE timestamp(6);
-- expect: ok
ALTER TABLE "posts" ALTER COLUMN "body" SET DEFAULT '';
-- expect: set_not_null
ALTER TABLE "posts" ALTER COLUMN "body" SET NOT NULL;
-- expect: add_column_rewrites_table
ALTER TABLE "posts" ADD "position" serial;
-- expect: add_column_required
ALTER TABLE "posts" ADD "slug" character varying NOT NULL;
-- expect: ok
ALTER TABLE "posts" ADD "views" integer DEFAULT 0 NOT NULL;
-- expect: create_index_non_concurrently
CREATE UNIQUE INDEX "index_users_on_email" ON "users" ("email");
-- expect: create_index_non_concurrently
CREATE INDEX "index_users_on_lower_email" ON "users" (lower(email)) WHERE deleted_at IS NULL;
-- expect: rename_column
ALTER TABLE "users" RENAME COLUMN "name" TO "full_name";
-- expect: ok
ALTER TABLE "comments" RENAME TO "replies";
-- expect: ok
ALTER INDEX "index_comments_on_post_id" RENAME TO "index_replies_on_post_id";
-- expect: drop_column
ALTER TABLE "users" DROP COLUMN "legacy_token";
-- expect: drop_index_non_concurrently
DROP INDEX "index_users_on_legacy_token";
-- expect: drop_table
DROP TABLE "old_sessions";
-- expect: ok
INSERT INTO "schema_migrations" ("version") VALUES ('20240103000000') RETURNING "version";
-- (a rename is judged when its transaction commits: no view for the old name)
-- expect: rename_table
COMMIT;

-- 20240104000000_add_index_concurrently.rb: disable_ddl_transaction!
-- expect: ok
CREATE INDEX CONCURRENTLY "index_posts_on_user_id_and_created_at" ON "posts" ("user_id", "created_at");
-- expect: ok
DROP INDEX CONCURRENTLY "index_posts_on_title";
-- expect: ok
ALTER TABLE "posts" ADD CONSTRAINT "fk_rails_1b1c2d3e4f"
FOREIGN KEY ("category_id")
  REFERENCES "categories" ("id")
 NOT VALID;
-- expect: ok
ALTER TABLE "posts" VALIDATE CONSTRAINT "fk_rails_1b1c2d3e4f";
-- expect: ok
ALTER TABLE "posts" ADD CONSTRAINT "posts_body_null" CHECK ("body" IS NOT NULL) NOT VALID;
-- expect: ok
ALTER TABLE "posts" VALIDATE CONSTRAINT "posts_body_null";
-- expect: ok
ALTER TABLE "posts" ALTER COLUMN "body" SET NOT NULL;
-- expect: ok
ALTER TABLE "posts" DROP CONSTRAINT "posts_body_null";
-- expect: ok
INSERT INTO "schema_migrations" ("version") VALUES ('20240104000000') RETURNING "version";
