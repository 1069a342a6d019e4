-- Hand-written Flyway scripts (V1__..., V2__...), concatenated with their COMMITs:
-- Flyway runs each versioned script in its own transaction.

-- V1__create_schema.sql
-- expect: ok
CREATE SCHEMA IF NOT EXISTS billing;

-- expect: json_column
CREATE TABLE billing.plans (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        varchar(32) NOT NULL UNIQUE,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    features    json,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- expect: ok
CREATE INDEX plans_created_at_idx ON billing.plans (created_at);

-- expect: ok
CREATE TABLE billing.subscriptions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id    bigint NOT NULL REFERENCES billing.plans (id),
    account_id bigint NOT NULL,
    starts_on  date NOT NULL,
    ends_on    date
) PARTITION BY RANGE (starts_on);

-- expect: ok
CREATE TABLE billing.subscriptions_2024 PARTITION OF billing.subscriptions
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- expect: ok
CREATE OR REPLACE FUNCTION billing.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- expect: ok
COMMENT ON TABLE billing.plans IS 'Price plans; one row per plan code.';

-- expect: ok
COMMIT;

-- V2__tune_billing.sql
-- expect: ok
SET lock_timeout = '2s';

-- expect: ok
SET statement_timeout TO '15min';

-- expect: ok
ALTER TABLE billing.plans ALTER COLUMN code TYPE varchar(64);

-- expect: change_column_type
ALTER TABLE billing.plans ALTER COLUMN price_cents TYPE bigint;

-- json -> jsonb parses and rewrites every row.
-- expect: change_column_type
ALTER TABLE billing.plans ALTER COLUMN features TYPE jsonb USING features::jsonb;

-- expect: create_index_non_concurrently
CREATE INDEX subscriptions_account_idx ON billing.subscriptions (account_id);

-- expect: ok
CREATE INDEX subscriptions_plan_idx ON ONLY billing.subscriptions (plan_id);

-- expect: ok
CREATE TRIGGER plans_touch BEFORE UPDATE ON billing.plans
    FOR EACH ROW EXECUTE FUNCTION billing.touch_updated_at();

-- expect: ok
ALTER TABLE billing.subscriptions ATTACH PARTITION billing.subscriptions_2025
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');

-- expect: detach_partition_non_concurrently
ALTER TABLE billing.subscriptions DETACH PARTITION billing.subscriptions_2023;

-- expect: rename_table
ALTER TABLE billing.subscriptions_2024 SET SCHEMA archive;

-- expect: ok
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA billing TO app_rw;

-- expect: ok
ALTER DEFAULT PRIVILEGES IN SCHEMA billing GRANT SELECT ON TABLES TO app_ro;

-- expect: ok
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN
        CREATE ROLE reporting NOLOGIN;
    END IF;
END
$$;

-- expect: ok
INSERT INTO billing.plans (code, price_cents) VALUES ('free', 0), ('pro', 1900)
    ON CONFLICT (code) DO NOTHING;

-- expect: ok
RESET lock_timeout;

-- expect: ok
COMMIT;

-- V3__cleanup.sql
-- expect: truncate
TRUNCATE TABLE billing.invoice_staging;

-- expect: drop_table
DROP TABLE IF EXISTS billing.old_plans;

-- expect: rename_table
ALTER SCHEMA billing RENAME TO payments;

-- expect: ok
COMMIT;

-- V4__posts.sql
-- expect: ok
CREATE TABLE posts (id bigint PRIMARY KEY, title text, body text);

-- expect: ok
COMMIT;

-- V5__rename_posts.sql: the expand/contract rename (issue #20). A view for the old name
-- over all of the new table, created in the rename's transaction, keeps running code
-- reading and writing the old name (a simple view is updatable).
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE posts RENAME TO articles;

-- expect: ok
CREATE VIEW posts AS SELECT * FROM articles;

-- expect: ok
COMMIT;

-- V6__rename_articles.sql: a view of some of the columns does not stand in for the table.
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE articles RENAME TO entries;

-- expect: ok
CREATE VIEW articles AS SELECT id, title FROM entries;

-- expect: rename_table
COMMIT;

-- V7__entries_default.sql: a lock taken with NOWAIT, then catalog-only DDL: only the LOCK
-- TABLE's warning (issue #20). A validated CHECK after it still scans under that lock.
-- expect: ok
BEGIN;

-- expect: ok
LOCK TABLE entries IN ACCESS EXCLUSIVE MODE NOWAIT;

-- expect: ok
ALTER TABLE entries ALTER COLUMN title SET DEFAULT '';

-- expect: add_check_constraint_validated
ALTER TABLE entries ADD CONSTRAINT entries_title_present CHECK (title IS NOT NULL);

-- expect: ok
COMMIT;

-- V8__entries_content.sql: a column rename stays refused, view or not: code reads the
-- table by its columns' names (docs/rules/rename_column.md).
-- expect: ok
BEGIN;

-- expect: rename_column
ALTER TABLE entries RENAME COLUMN body TO content;

-- expect: ok
CREATE VIEW entries_compat AS SELECT id, title, content AS body FROM entries;

-- expect: ok
COMMIT;
