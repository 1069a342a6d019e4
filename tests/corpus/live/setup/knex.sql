-- Tables knex.sql alters without creating them.
CREATE TABLE knex_migrations (id serial PRIMARY KEY, batch integer, migration_time timestamptz, name varchar(255));
CREATE TABLE players (id serial PRIMARY KEY, email varchar(255), nickname varchar(255) NOT NULL, age integer);
CREATE TABLE pgmigrations (id serial PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);
