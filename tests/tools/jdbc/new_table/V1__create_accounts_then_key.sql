-- A new table and its key and index in one transactional file: the table is created in
-- the same transaction, so neither the key nor the index blocks anyone.
CREATE TABLE accounts (id bigint NOT NULL, name text NOT NULL);
ALTER TABLE accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);
CREATE INDEX accounts_name_idx ON accounts (name);
