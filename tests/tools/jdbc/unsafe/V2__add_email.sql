-- A column and its index in one transactional migration: the plain CREATE INDEX takes
-- SHARE on accounts for the whole build.
ALTER TABLE accounts ADD COLUMN email text;
COMMENT ON COLUMN accounts.email IS 'login email';
CREATE INDEX accounts_email_idx ON accounts (email);
