ALTER TABLE accounts ADD COLUMN email text;
COMMENT ON COLUMN accounts.email IS 'login email';
