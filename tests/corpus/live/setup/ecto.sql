-- Tables ecto.sql alters without creating them.
CREATE TABLE schema_migrations (version bigint PRIMARY KEY, inserted_at timestamp(0));
CREATE TABLE organizations (id bigserial PRIMARY KEY, name varchar(255), legacy_id integer, features text);
CREATE INDEX organizations_legacy_index ON organizations (legacy_id);
CREATE TABLE audit_events (id bigserial PRIMARY KEY);
