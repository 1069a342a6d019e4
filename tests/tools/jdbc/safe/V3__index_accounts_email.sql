-- Flyway runs a migration with CREATE INDEX CONCURRENTLY outside a transaction.
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
