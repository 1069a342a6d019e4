-- Tables acknowledgements.sql alters without creating them.
CREATE TABLE users (id bigint PRIMARY KEY, legacy_token text, fax text, login text);
CREATE TABLE audit_log (id bigint);
CREATE TABLE audit_log_2022 (id bigint);
CREATE TABLE webhooks (id bigint);
CREATE TABLE import_staging (id bigint);
CREATE TABLE import_staging_2 (id bigint);
CREATE TABLE notes (body text);
CREATE TABLE countries (id bigint, name text);
