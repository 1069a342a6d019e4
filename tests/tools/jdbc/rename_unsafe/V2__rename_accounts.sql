-- A rename alone: running code that still uses accounts breaks at COMMIT.
ALTER TABLE accounts RENAME TO members;
