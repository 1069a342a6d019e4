-- A column and its index in one migration (sqlx runs it in one transaction): the plain
-- CREATE INDEX takes SHARE on accounts for the whole build.
ALTER TABLE accounts ADD COLUMN email text;
CREATE INDEX accounts_email_idx ON accounts (email);
