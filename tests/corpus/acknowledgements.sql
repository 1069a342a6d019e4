-- Reviewed exceptions: `-- safe_migrations:allow <rule>[, <rule>] -- <reason>` in the
-- comments in front of a statement lets those rules through. Without a reason it does
-- not count.

-- safe_migrations:allow drop_column -- unused since v2.3, code deployed 2024-02-01
-- expect: ok
ALTER TABLE "users" DROP COLUMN "legacy_token";

-- expect: drop_column
-- safe_migrations:allow drop_column
ALTER TABLE "users" DROP COLUMN "fax";

-- safe_migrations:allow drop_table -- replaced by audit_events in 2023
-- expect: ok
DROP TABLE "audit_log";

-- The acknowledgement names a different rule.
-- safe_migrations:allow drop_column -- wrong rule
-- expect: drop_table
DROP TABLE "audit_log_2022";

-- safe_migrations:allow rename_column, drop_column -- app reads both names since v3
-- expect: ok
ALTER TABLE "users" RENAME COLUMN "login" TO "username";

-- Only the acknowledged rule passes; the other finding of the statement stays.
-- safe_migrations:allow json_column -- third-party payload kept byte for byte
-- expect: add_column_required
ALTER TABLE "webhooks" ADD COLUMN "raw" json NOT NULL;

-- /* */ comments count too.
/* safe_migrations:allow truncate -- staging table, refilled nightly */
-- expect: ok
TRUNCATE "import_staging";

-- An acknowledgement inside a string is not a comment.
-- expect: ok
INSERT INTO notes (body) VALUES ('-- safe_migrations:allow truncate -- not a comment');

-- expect: truncate
TRUNCATE "import_staging_2";

-- safe_migrations:allow create_index_non_concurrently -- table has 40 rows, lookup table
-- expect: ok
CREATE INDEX "countries_name_idx" ON "countries" ("name");

-- A guarded role cannot change its own policy, and an acknowledgement (which the role
-- writes itself) does not let it.
-- safe_migrations:allow policy_change -- the deploy needs the guard off
-- expect: policy_change
SET safe_migrations.mode = 'off';

-- A setting only mentioned in a string changes nothing.
-- expect: ok
INSERT INTO notes (body) VALUES ('SET safe_migrations.mode = off; ALTER ROLE migrator RESET ALL');
