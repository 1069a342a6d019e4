-- DO blocks as hand-written migrations use them (Flyway and golang-migrate scripts, a
-- Rails `execute`): the statements a block runs are decided one by one, nested and inside
-- the block's transaction, as the extension decides them when the block runs. A DO
-- statement's expectation names the rules of the statements inside it. Every branch here
-- runs on the live server: the extension sees only the statements a block executes.

-- expect: create_index_non_concurrently
DO $$
BEGIN
    CREATE INDEX accounts_email_idx ON accounts (email);
END
$$;

-- expect: add_foreign_key_validated
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'accounts_owner_fk') THEN
        BEGIN
            ALTER TABLE accounts ADD CONSTRAINT accounts_owner_fk FOREIGN KEY (owner_id) REFERENCES owners (id);
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END;
    END IF;
END
$$;

-- EXECUTE of a constant runs exactly that SQL.
-- expect: drop_index_non_concurrently
DO $$
BEGIN
    EXECUTE 'DROP INDEX accounts_owner_id_idx';
END
$$;

-- expect: concurrently_in_transaction
DO $$
BEGIN
    CREATE INDEX CONCURRENTLY accounts_created_at_idx ON accounts (created_at);
END
$$;

-- expect: json_column, rename_column
DO $$
BEGIN
    ALTER TABLE accounts ADD COLUMN preferences json;
    ALTER TABLE accounts RENAME COLUMN email TO email_address;
END
$$;

-- Read as one migration, the file still holds the locks the blocks above took.
-- expect: backfill_in_ddl_transaction
DO $$
DECLARE
    updated bigint;
BEGIN
    UPDATE accounts SET created_at = now() WHERE created_at IS NULL;
    GET DIAGNOSTICS updated = ROW_COUNT;
    PERFORM set_config('application_name', 'backfill ' || updated, true);
END
$$;

-- expect: ok
BEGIN;

-- A table the block creates is new for the block's later statements and after it.
-- expect: ok
DO $$
BEGIN
    CREATE TABLE audit_log (id bigint PRIMARY KEY, account_id bigint, at timestamptz);
    CREATE INDEX audit_log_at_idx ON audit_log (at);
END
$$;

-- expect: ok
CREATE INDEX audit_log_account_id_idx ON audit_log (account_id);

-- expect: ok
COMMIT;
