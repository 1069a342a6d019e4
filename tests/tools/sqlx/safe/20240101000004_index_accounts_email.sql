-- no-transaction
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
