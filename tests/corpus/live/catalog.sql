-- Catalog-dependent cases with real answers: the setup below runs first (as the
-- database's owner), then every statement after `CREATE TABLE schema_migrations (version text PRIMARY KEY);
CREATE TABLE ledger (id int PRIMARY KEY, amount int, settled boolean);
INSERT INTO ledger SELECT i, i, false FROM generate_series(1, 1000) AS i;
ANALYZE ledger;
-- end setup` runs as the guarded
-- role, in order. `-- expect:` names every rule that reports on the statement on a live
-- server (warnings included). Both guarded roles have safe_migrations.min_table_rows = 100
-- and safe_migrations.max_rows_per_statement = 2000.
CREATE SCHEMA other;
CREATE TABLE accounts (
    id int PRIMARY KEY,
    name varchar(50),
    code varchar(50),
    balance numeric(10, 2),
    created_at timestamp,
    updated_at timestamp,
    visits int,
    email text,
    nickname text,
    notes text
);
INSERT INTO accounts (id, name, code, balance, created_at, updated_at, visits, email, nickname)
    SELECT i, 'n' || i, 'c' || i, i, '2024-01-01', '2024-01-01', i, 'e' || i, 'k' || i
    FROM generate_series(1, 1000) AS i;
ALTER TABLE accounts ADD CONSTRAINT accounts_email_not_null CHECK (email IS NOT NULL);
ALTER TABLE accounts ADD CONSTRAINT accounts_nickname_not_null CHECK (nickname IS NOT NULL) NOT VALID;
CREATE TABLE lookup (id int PRIMARY KEY, label text);
INSERT INTO lookup SELECT i, 'l' || i FROM generate_series(1, 10) AS i;
CREATE TABLE big (id int PRIMARY KEY, account_id int, payload text);
INSERT INTO big SELECT i, i, 'p' FROM generate_series(1, 1000) AS i;
CREATE TABLE other.big (id int);
CREATE TABLE events (id int, happened_on date NOT NULL, kind text) PARTITION BY RANGE (happened_on);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO events SELECT i, DATE '2023-01-01' + (i % 700), 'k' FROM generate_series(1, 1000) AS i;
CREATE MATERIALIZED VIEW account_totals AS SELECT id, balance FROM accounts;
CREATE UNIQUE INDEX account_totals_id ON account_totals (id);
CREATE INDEX big_account_id ON big (account_id);
CREATE FUNCTION fixed_code() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'x' $$;
CREATE FUNCTION today_code() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'y' $$;
CREATE FUNCTION random_code() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT md5(random()::text) $$;
CREATE FUNCTION other.random_code() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'z' $$;
CREATE FUNCTION pick(a int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a $$;
CREATE FUNCTION pick(a text) RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 $$;
CREATE FUNCTION build_payload_index() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE INDEX big_payload_fn ON big (payload);
END
$$;
CREATE PROCEDURE require_payload() LANGUAGE sql AS $$ ALTER TABLE big ALTER COLUMN payload SET NOT NULL $$;
CREATE FUNCTION count_big() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM big);
END
$$;
CREATE FUNCTION via_other() RETURNS void LANGUAGE sql AS $$ SELECT build_payload_index() $$;
ANALYZE;
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE DOMAIN positive_too AS positive;
CREATE DOMAIN required_int AS int NOT NULL DEFAULT 1;
CREATE DOMAIN plain_int AS int;
CREATE TABLE keyless AS SELECT i AS code FROM generate_series(1, 1000) AS i;
CREATE UNIQUE INDEX keyless_code ON keyless (code);
CREATE TABLE keyless_do AS SELECT i AS code FROM generate_series(1, 1000) AS i;
CREATE UNIQUE INDEX keyless_do_code ON keyless_do (code);
CREATE TABLE keyless_nn (code int NOT NULL);
INSERT INTO keyless_nn SELECT i FROM generate_series(1, 1000) AS i;
CREATE UNIQUE INDEX keyless_nn_code ON keyless_nn (code);
CREATE TABLE keyless_proven AS SELECT i AS code FROM generate_series(1, 1000) AS i;
ALTER TABLE keyless_proven ADD CONSTRAINT keyless_proven_code_nn CHECK (code IS NOT NULL);
CREATE UNIQUE INDEX keyless_proven_code ON keyless_proven (code);
ANALYZE keyless, keyless_do, keyless_nn, keyless_proven;
CREATE EXTENSION citext;
CREATE DOMAIN email AS text CHECK (VALUE ~ '@');
CREATE DOMAIN plain_text AS text;
CREATE DOMAIN meta AS json;
CREATE DOMAIN meta_too AS meta;
CREATE DOMAIN meta_doc AS jsonb;
CREATE DOMAIN short_text AS varchar(20);
CREATE TABLE people (
    id int,
    handle varchar(50) COLLATE "C",
    nick varchar(50),
    bio text CONSTRAINT people_bio_short CHECK (length(bio) < 1000),
    login text,
    m1 text,
    m2 text,
    m3 text,
    m4 text,
    m5 text,
    "Mixed" text
);
INSERT INTO people SELECT i, 'h' || i, 'n' || i, 'b', 'l' || i, 'a@b', 'a@b', 'a@b', 'a@b', 'a@b', 'x'
    FROM generate_series(1, 1000) AS i;
CREATE INDEX people_handle ON people (handle);
CREATE INDEX people_nick ON people (nick);
CREATE INDEX people_lower_nick ON people (lower(nick));
CREATE INDEX people_login ON people (login);
CREATE DOMAIN "Label" AS text CHECK (VALUE <> '');
ANALYZE people;
CREATE TABLE watched (id int);
CREATE FUNCTION index_on_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'CREATE INDEX IF NOT EXISTS big_payload_trg ON big (payload)';
    RETURN NULL;
END
$$;
CREATE TRIGGER watched_index AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION index_on_write();
CREATE TABLE audit_trail (id int);
CREATE TABLE audited (id int);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_trail VALUES (NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER audited_row AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TABLE cascade_parent (id int PRIMARY KEY);
CREATE TABLE cascade_child (id int, parent_id int REFERENCES cascade_parent ON DELETE CASCADE);
INSERT INTO cascade_parent VALUES (1);
INSERT INTO cascade_child VALUES (1, 1);
CREATE FUNCTION index_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'CREATE INDEX IF NOT EXISTS big_account_trg ON big (account_id, id)';
    RETURN OLD;
END
$$;
CREATE TRIGGER cascade_child_index AFTER DELETE ON cascade_child FOR EACH ROW EXECUTE FUNCTION index_on_delete();
CREATE INDEX big_id_refresh ON big (id);
CREATE INDEX big_id_copy ON big (id);
CREATE FUNCTION drop_refresh_index() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DROP INDEX IF EXISTS big_id_refresh';
    RETURN 1;
END
$$;
CREATE FUNCTION drop_copy_index() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DROP INDEX IF EXISTS big_id_copy';
    RETURN 1;
END
$$;
CREATE MATERIALIZED VIEW index_dropper AS SELECT drop_refresh_index() AS x WITH NO DATA;
CREATE VIEW copy_dropper AS SELECT drop_copy_index() AS x;
CREATE DOMAIN name50 AS varchar(50);
ALTER TABLE people ADD COLUMN short_handle name50, ADD COLUMN pat varchar(50), ADD COLUMN sorted varchar(50);
CREATE INDEX people_pat ON people (pat varchar_pattern_ops);
CREATE INDEX people_sorted ON people (sorted);
ALTER TABLE people ADD COLUMN remark text;
CREATE TABLE measurements (id int, label varchar(20)) PARTITION BY RANGE (id);
CREATE TABLE measurements_1 PARTITION OF measurements FOR VALUES FROM (0) TO (1000);
ALTER TABLE measurements_1 ADD CONSTRAINT measurements_1_label CHECK (label <> '');
INSERT INTO measurements SELECT i, 'm' FROM generate_series(1, 500) AS i;
ANALYZE people, measurements;
CREATE TABLE delete_watched (id int);
CREATE TRIGGER delete_watched_index AFTER DELETE ON delete_watched FOR EACH ROW EXECUTE FUNCTION index_on_delete();
CREATE TABLE moving (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE moving_low PARTITION OF moving FOR VALUES FROM (0) TO (10);
CREATE TABLE moving_high PARTITION OF moving FOR VALUES FROM (10) TO (20);
INSERT INTO moving VALUES (1, 1);
CREATE TRIGGER moving_high_index AFTER INSERT ON moving_high FOR EACH ROW EXECUTE FUNCTION index_on_write();
CREATE TABLE view_base (id int);
CREATE TRIGGER view_base_index AFTER INSERT ON view_base FOR EACH ROW EXECUTE FUNCTION index_on_write();
CREATE VIEW view_over_base AS SELECT id FROM view_base;
CREATE TABLE history (id int PRIMARY KEY, kind text);
INSERT INTO history SELECT i, 'a' FROM generate_series(1, 5000) AS i;
ANALYZE history;
CREATE TABLE rename_me (id int PRIMARY KEY, title text);
CREATE TABLE rename_me_too (id int PRIMARY KEY, title text);
ALTER TABLE people ADD COLUMN grouped text;
CREATE INDEX people_grouped ON people (grouped);
-- end setup

-- Column types come from the server: widening varchar and numeric precision is catalog-only.
-- expect: ok
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(100);

-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN code TYPE varchar(20);

-- expect: ok
ALTER TABLE accounts ALTER COLUMN code TYPE text;

-- expect: ok
ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(12, 2);

-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(12, 4);

-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN visits TYPE bigint;

-- USING the column itself, or cast to the new type, is no different from no USING.
-- expect: ok
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(200) USING name;

-- expect: ok
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(300) USING name::varchar(300);

-- expect: ok
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(400) USING accounts.name::varchar(400);

-- A cast to another type first is a different expression.
-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(500) USING name::text;

-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN name TYPE varchar(600) USING lower(name);

-- timestamp -> timestamptz is catalog-only when the session's TimeZone is UTC.
-- expect: ok
SET TIME ZONE 'UTC';

-- expect: ok
ALTER TABLE accounts ALTER COLUMN created_at TYPE timestamptz;

-- expect: ok
SET TIME ZONE 'Europe/Berlin';

-- expect: change_column_type
ALTER TABLE accounts ALTER COLUMN updated_at TYPE timestamptz;

-- expect: ok
RESET TIME ZONE;

-- Writes fire trigger functions, whose SQL is checked as a called function's is: those of
-- the table written, and of the tables its foreign keys' ON DELETE actions write.
-- expect: create_index_non_concurrently
INSERT INTO watched VALUES (1);

-- expect: ok
INSERT INTO audited VALUES (1);

-- expect: create_index_non_concurrently
DELETE FROM cascade_parent WHERE id = 1;

-- Only the triggers of the events a statement fires are read: a DELETE trigger does not
-- fire on INSERT.
-- expect: ok
INSERT INTO delete_watched VALUES (1);

-- An UPDATE that moves a row to another partition inserts it there.
-- expect: create_index_non_concurrently
UPDATE moving SET k = 15 WHERE k = 1;

-- A view written through writes its base table.
-- expect: create_index_non_concurrently
INSERT INTO view_over_base VALUES (1);

-- REFRESH recomputes the view's query and CREATE TABLE AS runs its own: the functions
-- their views call run too.
-- expect: drop_index_non_concurrently, refresh_materialized_view_non_concurrently
REFRESH MATERIALIZED VIEW index_dropper;

-- expect: drop_index_non_concurrently
CREATE TABLE copied AS SELECT * FROM copy_dropper;

-- Type changes are decided as PostgreSQL decides them: pg_cast (binary-coercible casts,
-- extensions' too), domains resolved to their base types, then what the change redoes
-- for the column's CHECK constraints and indexes (measured: relfilenode, a CHECK that
-- raises a NOTICE per row).
-- expect: ok
ALTER TABLE people ALTER COLUMN m1 TYPE citext USING m1::citext;

-- expect: ok
ALTER TABLE people ALTER COLUMN m3 TYPE plain_text;

-- A domain with constraints checks every row.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN m2 TYPE email;

-- expect: change_column_type
DO $$ BEGIN ALTER TABLE people ALTER COLUMN m5 TYPE public.email; END $$;

-- expect: change_column_type
ALTER TABLE people ALTER COLUMN "Mixed" TYPE "Label";

-- A domain's own length applies to values whose length is not known.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN m4 TYPE short_text;

-- Catalog-only, but the index's operator class (citext_ops) or collation changes.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN login TYPE citext;

-- expect: change_column_type
ALTER TABLE people ALTER COLUMN handle TYPE text;

-- An expression index is always built again; a plain one on varchar keeps text_ops.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN nick TYPE varchar(100);

-- The column's CHECK constraints are checked against every row again, even for the same type.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN bio TYPE varchar;

-- expect: change_column_type
ALTER TABLE people ALTER COLUMN bio TYPE text;

-- A domain's value converts with no length known: its base type's length coercion runs.
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN short_handle TYPE varchar(100);

-- An operator class written out in the index definition is kept; a new collation is not.
-- expect: ok
ALTER TABLE people ALTER COLUMN pat TYPE text;

-- expect: change_column_type
ALTER TABLE people ALTER COLUMN sorted TYPE varchar(100) COLLATE "C";

-- The change recurses to the partitions, and their CHECK constraints are checked again.
-- expect: change_column_type
ALTER TABLE measurements ALTER COLUMN label TYPE varchar(40);

-- A validated CHECK (col IS NOT NULL) makes SET NOT NULL a catalog change; NOT VALID does not.
-- expect: ok
ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;

-- expect: set_not_null
ALTER TABLE accounts ALTER COLUMN nickname SET NOT NULL;

-- expect: set_not_null
ALTER TABLE accounts ALTER COLUMN notes SET NOT NULL;

-- The volatility of user-defined functions, overloads and schemas.
-- expect: ok
ALTER TABLE accounts ADD COLUMN c1 text DEFAULT fixed_code();

-- expect: ok
ALTER TABLE accounts ADD COLUMN c2 text DEFAULT today_code();

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c3 text DEFAULT random_code();

-- expect: ok
ALTER TABLE accounts ADD COLUMN c4 text DEFAULT other.random_code();

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c5 int DEFAULT pick(1);

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c6 text DEFAULT (SELECT 'x');

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c7 text DEFAULT upper(random_code()) || '-' || fixed_code();

-- expect: ok
ALTER TABLE accounts ADD COLUMN c8 int DEFAULT CASE WHEN 1 > 0 THEN 1 ELSE 2 END;

-- expect: ok
ALTER TABLE accounts ADD COLUMN c9 text DEFAULT session_user;

-- expect: ok
ALTER TABLE accounts ADD COLUMN c10 timestamptz DEFAULT CURRENT_TIMESTAMP(3);

-- expect: ok
ALTER TABLE accounts ADD COLUMN c11 int[] DEFAULT ARRAY[1, 2]::int[];

-- expect: ok
ALTER TABLE accounts ADD COLUMN c12 xml DEFAULT xmlelement(name a, 'x');

-- expect: ok
ALTER TABLE accounts ADD COLUMN c13 text DEFAULT 'a' COLLATE "C";

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c14 text CONSTRAINT c14_default DEFAULT (random_code()) NOT NULL;

-- expect: ok
ALTER TABLE accounts ADD COLUMN c15 numeric(10, 2) NOT NULL DEFAULT -1.5;

-- expect: add_column_volatile_default
ALTER TABLE accounts ADD COLUMN c16 int DEFAULT pick(random_code());

-- Small analyzed tables (below min_table_rows) skip the lock rules; big ones do not.
-- expect: ok
CREATE INDEX lookup_label ON lookup (label);

-- expect: create_index_non_concurrently
CREATE INDEX big_payload ON big (payload);

-- expect: ok
ALTER TABLE lookup ADD CONSTRAINT lookup_label_unique UNIQUE (label);

-- expect: add_foreign_key_validated
ALTER TABLE big ADD CONSTRAINT big_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id)
    MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

-- expect: add_foreign_key_validated
ALTER TABLE big ADD COLUMN lookup_id int REFERENCES lookup (id) ON DELETE CASCADE;

-- expect: add_unique_constraint
ALTER TABLE big ADD COLUMN serial_no int UNIQUE;

-- expect: add_check_constraint_validated
ALTER TABLE big ADD COLUMN qty int CHECK (qty > 0);

-- expect: add_unique_constraint, add_check_constraint_validated
ALTER TABLE big ADD COLUMN code2 text CONSTRAINT big_code2_key UNIQUE CONSTRAINT big_code2_check CHECK (code2 <> '');

-- Tables (and indexes) created in the same transaction are invisible to other sessions.
-- expect: ok
BEGIN;

-- expect: ok
CREATE TABLE fresh (id int PRIMARY KEY, account_id int, amount numeric(10, 2));

-- expect: ok
CREATE INDEX fresh_account ON fresh (account_id);

-- expect: ok
ALTER TABLE fresh ADD CONSTRAINT fresh_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id);

-- expect: ok
ALTER TABLE fresh ALTER COLUMN amount TYPE numeric(8, 2);

-- expect: ok
ALTER TABLE fresh ADD COLUMN code text NOT NULL;

-- expect: ok
DROP INDEX fresh_account;

-- expect: ok
CREATE INDEX fresh_account_2 ON fresh (account_id);

-- expect: ok
REINDEX INDEX fresh_account_2;

-- expect: ok
ALTER TABLE fresh RENAME TO fresh_renamed;

-- expect: ok
CREATE INDEX fresh_renamed_amount ON fresh_renamed (amount);

-- expect: ok
ALTER TABLE fresh_renamed RENAME COLUMN code TO code_renamed;

-- A table of the same name in another schema is not the one created here.
-- expect: ok
CREATE TABLE other.accounts (id int);

-- expect: create_index_non_concurrently
CREATE INDEX accounts_visits ON accounts (visits);

-- expect: ok
CREATE TABLE other.accounts_copy (id int);

-- other.big is empty and analyzed (0 estimated rows): below min_table_rows.
-- expect: ok
CREATE INDEX other_big_id ON other.big (id);

-- expect: ok
CREATE INDEX other_accounts_copy_id ON other.accounts_copy (id);

-- expect: ok
CREATE TABLE big_archive AS SELECT * FROM big;

-- expect: ok
CREATE INDEX big_archive_id ON big_archive (id);

-- A table created here stays new when moved to another schema.
-- expect: ok
CREATE TABLE moved (id int);

-- expect: ok
ALTER TABLE moved SET SCHEMA other;

-- expect: ok
CREATE INDEX other_moved_id ON other.moved (id);

-- IF NOT EXISTS leaves an existing table as it is: it is not new.
-- expect: ok
CREATE TABLE IF NOT EXISTS big (id int);

-- expect: create_index_non_concurrently
CREATE INDEX big_payload ON big (payload);

-- An index created earlier (before this transaction) is not new.
-- expect: drop_index_non_concurrently
DROP INDEX big_account_id;

-- expect: ok
COMMIT;

-- After COMMIT nothing is new any more (and a table with no row is exempt for its size:
-- it gets one first).
-- expect: ok
INSERT INTO fresh_renamed (id, account_id, code_renamed) VALUES (1, 1, 'c');

-- expect: create_index_non_concurrently
CREATE INDEX fresh_renamed_account ON fresh_renamed (account_id);

-- Partitioned tables and materialized views.
-- expect: create_index_non_concurrently
CREATE INDEX events_kind ON events (kind);

-- expect: ok
CREATE INDEX events_id ON ONLY events (id);

-- ONLY exempts nothing on a table that is not partitioned: the index is built.
-- expect: create_index_non_concurrently
CREATE INDEX big_payload ON ONLY big (payload);

-- expect: create_index_non_concurrently
DO $$ BEGIN CREATE INDEX big_payload ON ONLY big (payload); END $$;

-- expect: ok
CREATE INDEX CONCURRENTLY events_2023_id ON events_2023 (id);

-- expect: ok
ALTER INDEX events_id ATTACH PARTITION events_2023_id;

-- expect: detach_partition_non_concurrently
ALTER TABLE events DETACH PARTITION events_2024;

-- expect: ok
ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- expect: refresh_materialized_view_non_concurrently
REFRESH MATERIALIZED VIEW account_totals;

-- expect: ok
REFRESH MATERIALIZED VIEW CONCURRENTLY account_totals;

-- expect: create_index_non_concurrently
CREATE INDEX account_totals_balance ON account_totals (balance);

-- ALTER TABLE subcommands the model has no name for keep Postgres' own lock.
-- expect: ok
ALTER TABLE big ALTER COLUMN payload SET STATISTICS 200;

-- expect: ok
ALTER TABLE big CLUSTER ON big_pkey;

-- expect: ok
ALTER TABLE big REPLICA IDENTITY FULL;

-- expect: ok
ALTER TABLE big ALTER COLUMN payload SET STORAGE EXTERNAL;

-- expect: ok
ALTER TABLE big SET (autovacuum_enabled = false);

-- expect: ok
ANALYZE big;

-- expect: ok
COMMENT ON COLUMN big.payload IS 'free text';

-- expect: truncate
TRUNCATE big_archive;

-- expect: lock_table
LOCK TABLE big IN SHARE MODE;

-- expect: ok
LOCK TABLE lookup IN ACCESS EXCLUSIVE MODE;

-- expect: rewrite_table
VACUUM FULL big;

-- expect: rewrite_table
CLUSTER big USING big_pkey;

-- SET ACCESS METHOD rewrites the table; the message names the method.
-- expect: rewrite_table
ALTER TABLE big SET ACCESS METHOD heap;

-- A comment inside a CHECK does not end its text (the hint proposes the whole condition).
-- expect: add_check_constraint_validated
ALTER TABLE big ADD CONSTRAINT big_ids_positive CHECK (id > 0 -- ids start at 1
    AND account_id > 0);

-- A `;` in a comment does not make a statement several.
-- expect: ok
CREATE INDEX CONCURRENTLY big_payload_cc ON big (payload) /* down: DROP INDEX big_payload_cc; */;

-- expect: ok
CREATE INDEX CONCURRENTLY big_payload_3 ON big (payload);

-- expect: drop_index_non_concurrently
DROP INDEX big_payload_3;

-- expect: reindex_non_concurrently
REINDEX TABLE big;

-- Acknowledged with a reason, and without one.
-- safe_migrations:allow rename_table -- nothing reads lookup by name any more
-- expect: ok
ALTER TABLE lookup RENAME TO lookups;

-- safe_migrations:allow drop_column
-- expect: drop_column
ALTER TABLE accounts DROP COLUMN c1;

-- expect: rename_column
ALTER TABLE accounts RENAME COLUMN c2 TO c2_renamed;

-- expect: drop_table
DROP TABLE big_archive;

-- What a called function runs is decided where it runs: the extension in its hook, the
-- proxy from the function's definition (and those it calls), read from the server.
-- expect: create_index_non_concurrently
SELECT build_payload_index();

-- expect: create_index_non_concurrently
SELECT via_other();

-- expect: set_not_null
CALL require_payload();

-- expect: ok
SELECT count_big();

-- A new column of a domain with constraints is checked on every row: a rewrite.
-- expect: add_column_rewrites_table
ALTER TABLE big ADD COLUMN qty positive;

-- expect: add_column_rewrites_table
ALTER TABLE big ADD COLUMN qty positive_too;

-- expect: add_column_rewrites_table
ALTER TABLE big ADD COLUMN qty required_int;

-- expect: add_column_rewrites_table
DO $$ BEGIN ALTER TABLE big ADD COLUMN qty public.positive; END $$;

-- expect: ok
ALTER TABLE big ADD COLUMN qty_plain plain_int;

-- expect: ok
ALTER TABLE big ADD COLUMN qty_list positive[];

-- PRIMARY KEY USING INDEX sets NOT NULL on its columns: a scan unless already NOT NULL
-- or proven by a validated CHECK (measured: pg_stat_user_tables.seq_scan).
-- expect: set_not_null
ALTER TABLE keyless ADD CONSTRAINT keyless_pkey PRIMARY KEY USING INDEX keyless_code;

-- expect: set_not_null
DO $$ BEGIN ALTER TABLE keyless_do ADD CONSTRAINT keyless_do_pkey PRIMARY KEY USING INDEX keyless_do_code; END $$;

-- expect: ok
ALTER TABLE keyless_nn ADD CONSTRAINT keyless_nn_pkey PRIMARY KEY USING INDEX keyless_nn_code;

-- expect: ok
ALTER TABLE keyless_proven ADD CONSTRAINT keyless_proven_pkey PRIMARY KEY USING INDEX keyless_proven_code;

-- Backfills under the lock of a schema change in the same transaction
-- (backfill_in_ddl_transaction): every query the lock blocks waits for the whole backfill.
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE ledger ADD COLUMN note text;

-- expect: backfill_in_ddl_transaction
UPDATE ledger SET note = 'x';

-- expect: backfill_in_ddl_transaction
DELETE FROM ledger WHERE id > 990;

-- expect: backfill_in_ddl_transaction
INSERT INTO ledger (id, amount) SELECT id + 5000, amount FROM ledger WHERE id < 5;

-- expect: backfill_in_ddl_transaction
WITH settled AS (UPDATE ledger SET settled = true WHERE id < 10 RETURNING id) SELECT count(*) FROM settled;

-- expect: backfill_in_ddl_transaction
DO $$ BEGIN UPDATE ledger SET settled = true WHERE id < 20; END $$;

-- Through SQL and PL/pgSQL functions and a SQL procedure, under the same lock.
-- expect: ok
CREATE FUNCTION fill_ledger() RETURNS void LANGUAGE sql AS $$ UPDATE ledger SET settled = true WHERE id < 30 $$;

-- expect: backfill_in_ddl_transaction
SELECT fill_ledger();

-- expect: ok
CREATE FUNCTION trim_ledger() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM ledger WHERE id > 20000; END $$;

-- expect: backfill_in_ddl_transaction
SELECT trim_ledger();

-- expect: ok
CREATE PROCEDURE unsettle_ledger() LANGUAGE sql AS $$ UPDATE ledger SET settled = false WHERE id < 3 $$;

-- expect: backfill_in_ddl_transaction
CALL unsettle_ledger();

-- Acknowledged, with a reason.
-- safe_migrations:allow backfill_in_ddl_transaction -- ledger is small and the application is stopped
-- expect: ok
UPDATE ledger SET settled = true WHERE id = 1;

-- Rows the statement carries, and the migration tool's own bookkeeping, are no backfill.
-- expect: ok
INSERT INTO ledger (id, amount) VALUES (20001, 1);

-- expect: ok
INSERT INTO schema_migrations (version) VALUES ('20260101');

-- expect: ok
UPDATE schema_migrations SET version = '20260102';

-- expect: ok
DO $$ BEGIN INSERT INTO ledger (id, amount) VALUES (20002, 1); INSERT INTO schema_migrations (version) VALUES ('20260103'); END $$;

-- expect: ok
WITH recorded AS (INSERT INTO schema_migrations (version) VALUES ('20260104') RETURNING version) SELECT count(*) FROM recorded;

-- expect: ok
COMMIT;

-- After COMMIT the lock is gone.
-- expect: ok
UPDATE ledger SET settled = false WHERE id < 5;

-- A procedure that commits the schema change before the backfill passes; one that
-- backfills under the lock does not.
-- expect: ok
CREATE PROCEDURE add_then_fill() LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE ledger ADD COLUMN checked boolean;
    COMMIT;
    UPDATE ledger SET checked = true WHERE id < 100;
END
$$;

-- expect: ok
CALL add_then_fill();

-- expect: ok
CREATE PROCEDURE add_and_fill() LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE ledger ADD COLUMN audited boolean;
    UPDATE ledger SET audited = true;
END
$$;

-- expect: backfill_in_ddl_transaction
CALL add_and_fill();

-- VALIDATE CONSTRAINT in the transaction that added the constraint NOT VALID scans under
-- the ADD's lock after all; in a transaction of its own it blocks neither reads nor writes.
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE ledger ADD CONSTRAINT ledger_amount_positive CHECK (amount > 0) NOT VALID;

-- expect: add_check_constraint_validated
ALTER TABLE ledger VALIDATE CONSTRAINT ledger_amount_positive;

-- expect: ok
ALTER TABLE ledger ADD CONSTRAINT ledger_id_big FOREIGN KEY (id) REFERENCES big (id) NOT VALID;

-- expect: add_foreign_key_validated
ALTER TABLE ledger VALIDATE CONSTRAINT ledger_id_big;

-- expect: add_check_constraint_validated
DO $$ BEGIN ALTER TABLE ledger VALIDATE CONSTRAINT ledger_amount_positive; END $$;

-- expect: ok
CREATE FUNCTION validate_ledger() RETURNS void LANGUAGE plpgsql AS $$ BEGIN ALTER TABLE ledger VALIDATE CONSTRAINT ledger_id_big; END $$;

-- expect: add_foreign_key_validated
SELECT validate_ledger();

-- expect: ok
COMMIT;

-- expect: ok
ALTER TABLE ledger VALIDATE CONSTRAINT ledger_amount_positive;

-- An UPDATE, DELETE or MERGE the planner expects to change more rows than
-- max_rows_per_statement (2000 here) is an unbatched backfill, at every nesting level;
-- batches pass, and so does a procedure that commits each batch.
-- expect: unbatched_backfill
UPDATE history SET kind = 'b';

-- expect: ok
UPDATE history SET kind = 'b' WHERE id <= 1000;

-- expect: ok
DELETE FROM history WHERE kind = 'never';

-- expect: unbatched_backfill
DELETE FROM history WHERE id > 0;

-- expect: unbatched_backfill
MERGE INTO history h USING (SELECT id FROM history) s ON h.id = s.id WHEN MATCHED THEN UPDATE SET kind = 'm';

-- expect: unbatched_backfill
WITH relabelled AS (UPDATE history SET kind = 'w' RETURNING id) SELECT count(*) FROM relabelled;

-- expect: ok
BEGIN;

-- expect: unbatched_backfill
WITH relabelled AS (UPDATE history SET kind = 'w' RETURNING id) SELECT count(*) FROM relabelled;

-- expect: ok
ROLLBACK;

-- A MERGE that only inserts the source rows the target lacks changes none of its rows.
-- expect: ok
MERGE INTO history h USING (SELECT id FROM history) s ON h.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'n');

-- expect: unbatched_backfill
DO $$ BEGIN UPDATE history SET kind = 'd'; END $$;

-- A routine's variables and parameters in what a write sets: the rows it changes do not
-- depend on them.
-- expect: unbatched_backfill
DO $$ DECLARE label text := 'v'; BEGIN UPDATE history SET kind = label; END $$;

-- expect: ok
DO $$ DECLARE label text := 'v'; BEGIN UPDATE history SET kind = label WHERE id <= 100; END $$;

-- expect: ok
CREATE FUNCTION relabel_history_as(label text) RETURNS void LANGUAGE sql AS $$ UPDATE history SET kind = label $$;

-- expect: unbatched_backfill
SELECT relabel_history_as('z');

-- expect: ok
CREATE FUNCTION relabel_history_except(skipped int) RETURNS void LANGUAGE sql AS $$ UPDATE history SET kind = 'y' WHERE id <> $1 $$;

-- expect: unbatched_backfill
SELECT relabel_history_except(0);

-- expect: ok
CREATE FUNCTION relabel_history() RETURNS void LANGUAGE sql AS $$ UPDATE history SET kind = 'f' $$;

-- expect: unbatched_backfill
SELECT relabel_history();

-- expect: ok
CREATE PROCEDURE relabel_history_in_batches() LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        UPDATE history SET kind = 'p' WHERE ctid IN (SELECT ctid FROM history WHERE kind <> 'p' LIMIT 1000);
        EXIT WHEN NOT FOUND;
        COMMIT;
    END LOOP;
END
$$;

-- expect: ok
CALL relabel_history_in_batches();

-- expect: ok
UPDATE history SET kind = 'q' WHERE id IN (SELECT id FROM history ORDER BY id LIMIT 1000);

-- A procedure and a PL/pgSQL function that change every row in one statement; a SQL
-- function and a CTE that change a batch.
-- expect: ok
CREATE PROCEDURE relabel_all_history() LANGUAGE plpgsql AS $$ BEGIN UPDATE history SET kind = 'pp'; END $$;

-- expect: unbatched_backfill
CALL relabel_all_history();

-- expect: ok
CREATE FUNCTION relabel_history_plpgsql() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE history SET kind = 'pf'; END $$;

-- expect: unbatched_backfill
SELECT relabel_history_plpgsql();

-- expect: ok
CREATE FUNCTION relabel_history_batch() RETURNS void LANGUAGE sql AS $$ UPDATE history SET kind = 's' WHERE id <= 100 $$;

-- expect: ok
SELECT relabel_history_batch();

-- expect: ok
WITH batch AS (UPDATE history SET kind = 'c' WHERE id <= 100 RETURNING id) SELECT count(*) FROM batch;

-- Acknowledged, with a reason.
-- safe_migrations:allow unbatched_backfill -- history is archived: nothing writes it
-- expect: ok
UPDATE history SET kind = 'a';

-- EXECUTE runs its prepared statement's query: judged as that query, planned for the
-- EXECUTE's arguments (prepared in an earlier string, or earlier in the same one).
-- expect: ok
PREPARE relabel_below(int) AS UPDATE history SET kind = 'r' WHERE id < $1;

-- expect: ok
EXECUTE relabel_below(500);

-- expect: unbatched_backfill
EXECUTE relabel_below(4000);

-- expect: unbatched_backfill
EXPLAIN ANALYZE EXECUTE relabel_below(4000);

-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE ledger ADD COLUMN noted boolean;

-- expect: backfill_in_ddl_transaction
EXECUTE relabel_below(500);

-- expect: ok
ROLLBACK;

-- expect: ok
PREPARE purge_history AS DELETE FROM history;

-- expect: unbatched_backfill
EXECUTE purge_history;

-- expect: ok
DEALLOCATE ALL;

-- VALIDATE CONSTRAINT of a constraint an earlier transaction added NOT VALID, while this
-- one holds a lock that blocks traffic (here LOCK TABLE): the scan runs under that lock.
-- expect: ok
BEGIN;

-- expect: lock_table
LOCK TABLE accounts IN SHARE MODE;

-- expect: add_check_constraint_validated
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_nickname_not_null;

-- expect: ok
ROLLBACK;

-- An explicit lock taken with NOWAIT, then catalog-only DDL (issue #20): only the LOCK
-- TABLE's warning; the ALTER waits for nothing and scans nothing.
-- expect: ok
BEGIN;

-- expect: lock_table
LOCK TABLE big IN ACCESS EXCLUSIVE MODE NOWAIT;

-- expect: ok
ALTER TABLE big ALTER COLUMN payload SET DEFAULT 'x';

-- expect: ok
ROLLBACK;

-- A domain over json is json (issue #20), through a domain over it too; over jsonb it is
-- not.
-- expect: json_column
CREATE TABLE documents (id int, body meta);

-- expect: json_column
ALTER TABLE big ADD COLUMN extra meta_too;

-- expect: ok
ALTER TABLE big ADD COLUMN extra_doc meta_doc;

-- A collation change of a column no index uses rebuilds nothing (issue #20): catalog-only.
-- Its neighbour with an index (people.sorted above) builds the index again.
-- expect: ok
ALTER TABLE people ALTER COLUMN remark TYPE text COLLATE "C";

-- A table that holds no row (issue #20): created in an earlier transaction and never
-- written to, its size is zero blocks, so what scans or builds it takes no time. (Its
-- reltuples is -1, no estimate: min_table_rows does not exempt it.)
-- expect: ok
CREATE TABLE empty_later (id int, code text);

-- expect: ok
CREATE INDEX empty_later_id ON empty_later (id);

-- expect: ok
ALTER TABLE empty_later ADD CONSTRAINT empty_later_id_positive CHECK (id > 0);

-- expect: ok
ALTER TABLE empty_later ALTER COLUMN code SET NOT NULL;

-- The explicit lock is another matter: held until the transaction ends.
-- expect: ok
BEGIN;

-- expect: lock_table
LOCK TABLE empty_later IN ACCESS EXCLUSIVE MODE;

-- expect: ok
ROLLBACK;

-- Once it holds a row it is a table like any other.
-- expect: ok
INSERT INTO empty_later VALUES (1, 'a');

-- expect: create_index_non_concurrently
CREATE INDEX empty_later_code ON empty_later (code);

-- A materialized view created WITH NO DATA holds no row: its unique index builds at once;
-- REFRESH still runs the whole query under its lock.
-- expect: ok
CREATE MATERIALIZED VIEW empty_totals AS SELECT id, balance FROM accounts WITH NO DATA;

-- expect: ok
CREATE UNIQUE INDEX empty_totals_id ON empty_totals (id);

-- expect: refresh_materialized_view_non_concurrently
REFRESH MATERIALIZED VIEW empty_totals;

-- A rename with a view for the old name over all of the new one, in one transaction:
-- running code keeps reading and writing the old name (a simple view is updatable).
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE rename_me RENAME TO renamed;

-- expect: ok
CREATE VIEW rename_me AS SELECT * FROM renamed;

-- expect: ok
COMMIT;

-- A view of some of its columns does not stand in for the table: refused when the
-- transaction commits, which rolls it back.
-- expect: ok
BEGIN;

-- expect: ok
ALTER TABLE rename_me_too RENAME TO renamed_too;

-- expect: ok
CREATE VIEW rename_me_too AS SELECT id FROM renamed_too;

-- expect: rename_table
COMMIT;

-- Outside a transaction block a rename commits as it ends, with no view yet.
-- expect: rename_table
ALTER TABLE rename_me_too RENAME TO renamed_too;

-- A lock taken under a short lock_timeout, then catalog-only DDL (issue #20): as with
-- NOWAIT, only the LOCK TABLE's warning.
-- expect: ok
BEGIN;

-- expect: ok
SET LOCAL lock_timeout = '100ms';

-- expect: lock_table
LOCK TABLE big IN ACCESS EXCLUSIVE MODE;

-- expect: ok
ALTER TABLE big ALTER COLUMN payload SET DEFAULT 'y';

-- expect: ok
ROLLBACK;

-- The lock taken with NOWAIT does not make a scan cheap: a validated CHECK scans the
-- table under it.
-- expect: ok
BEGIN;

-- expect: lock_table
LOCK TABLE big IN ACCESS EXCLUSIVE MODE NOWAIT;

-- expect: add_check_constraint_validated
ALTER TABLE big ADD CONSTRAINT big_payload_present CHECK (payload IS NOT NULL);

-- expect: ok
ROLLBACK;

-- A domain with NOT NULL checks every row, as one with a CHECK does (PostgreSQL rewrites).
-- expect: change_column_type
ALTER TABLE big ALTER COLUMN account_id TYPE required_int;

-- A collation change alone, of an indexed column: no rewrite, but the index is built
-- again under ACCESS EXCLUSIVE (issue #20).
-- expect: change_column_type
ALTER TABLE people ALTER COLUMN grouped TYPE text COLLATE "C";

-- A column changed to a domain over json is a json column too.
-- expect: json_column, change_column_type
ALTER TABLE big ALTER COLUMN payload TYPE meta USING to_json(payload);

-- A column rename stays refused, a view keeping the old name or not: code reads the table
-- by its columns' names (docs/rules/rename_column.md).
-- expect: ok
BEGIN;

-- expect: rename_column
ALTER TABLE lookup RENAME COLUMN label TO caption;

-- expect: ok
CREATE VIEW lookup_compat AS SELECT id, caption AS label FROM lookup;

-- expect: ok
ROLLBACK;
