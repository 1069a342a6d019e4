-- Tables do_blocks.sql changes without creating them, analyzed and above the parity
-- roles' min_table_rows, so that the lock rules apply on the live servers as in the CLI.
CREATE TABLE owners (id bigint PRIMARY KEY);
CREATE TABLE accounts (id bigint PRIMARY KEY, email text, owner_id bigint, created_at timestamptz);
INSERT INTO accounts (id, email) SELECT i, 'e' || i FROM generate_series(1, 1000) AS i;
CREATE INDEX accounts_owner_id_idx ON accounts (owner_id);
ANALYZE accounts;
