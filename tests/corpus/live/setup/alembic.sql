-- Tables alembic.sql alters without creating them.
CREATE TABLE agent (id serial PRIMARY KEY);
CREATE TABLE legacy_payment (id serial PRIMARY KEY);
