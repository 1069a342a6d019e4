-- Tables rails.sql alters without creating them.
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
CREATE TABLE users (id bigserial PRIMARY KEY, email varchar, name varchar, legacy_token varchar, deleted_at timestamp(6));
CREATE INDEX index_users_on_legacy_token ON users (legacy_token);
CREATE TABLE categories (id bigserial PRIMARY KEY);
CREATE TABLE old_sessions (id bigserial PRIMARY KEY);
