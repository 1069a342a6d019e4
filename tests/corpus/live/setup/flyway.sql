-- Objects flyway.sql uses without creating them.
CREATE SCHEMA archive;
CREATE TABLE billing_seed (id int);
