-- Examples from the PostgreSQL documentation (ALTER TABLE, CREATE INDEX, REINDEX, LOCK,
-- VACUUM, CLUSTER, partitioning), against tables this file did not create.

-- expect: ok
ALTER TABLE distributors ADD COLUMN address varchar(30);

-- expect: add_column_required
ALTER TABLE distributors ADD COLUMN code char(5) NOT NULL;

-- expect: ok
ALTER TABLE measurements
  ADD COLUMN mtime timestamp with time zone DEFAULT now();

-- expect: add_column_volatile_default
ALTER TABLE measurements ADD COLUMN recorded_at timestamptz DEFAULT clock_timestamp();

-- expect: ok
ALTER TABLE transactions
  ADD COLUMN status varchar(30) DEFAULT 'old',
  ALTER COLUMN status SET DEFAULT 'current';

-- expect: drop_column
ALTER TABLE distributors DROP COLUMN address RESTRICT;

-- expect: change_column_type
ALTER TABLE distributors
    ALTER COLUMN address TYPE varchar(80),
    ALTER COLUMN name TYPE varchar(100) USING substr(name, 1, 100);

-- expect: change_column_type
ALTER TABLE foo
    ALTER COLUMN foo_timestamp SET DATA TYPE timestamp with time zone
    USING
        timestamp with time zone 'epoch' + foo_timestamp * interval '1 second';

-- expect: rename_column
ALTER TABLE distributors RENAME COLUMN address TO city;

-- expect: ok
ALTER TABLE distributors RENAME TO suppliers;

-- expect: ok
ALTER TABLE distributors RENAME CONSTRAINT zipchk TO zip_check;

-- expect: set_not_null
ALTER TABLE distributors ALTER COLUMN street SET NOT NULL;

-- expect: ok
ALTER TABLE distributors ALTER COLUMN street DROP NOT NULL;

-- expect: add_check_constraint_validated
ALTER TABLE distributors ADD CONSTRAINT zipchk CHECK (char_length(zipcode) = 5);

-- expect: add_check_constraint_validated
ALTER TABLE ONLY distributors ADD CONSTRAINT zipchk CHECK (char_length(zipcode) = 5) NO INHERIT;

-- expect: ok
ALTER TABLE distributors DROP CONSTRAINT zipchk;

-- expect: ok
ALTER TABLE ONLY distributors DROP CONSTRAINT zipchk;

-- expect: add_foreign_key_validated
ALTER TABLE distributors ADD CONSTRAINT distfk FOREIGN KEY (address) REFERENCES addresses (address);

-- expect: ok
ALTER TABLE distributors ADD CONSTRAINT distfk FOREIGN KEY (address) REFERENCES addresses (address) NOT VALID;

-- Read as one migration (this file has no COMMIT), the validation runs in the
-- transaction that added the key NOT VALID, under the ADD's lock.
-- expect: add_foreign_key_validated
ALTER TABLE distributors VALIDATE CONSTRAINT distfk;

-- expect: add_unique_constraint
ALTER TABLE distributors ADD CONSTRAINT dist_id_zipcode_key UNIQUE (dist_id, zipcode);

-- expect: add_unique_constraint
ALTER TABLE distributors ADD PRIMARY KEY (dist_id);

-- expect: ok
ALTER TABLE distributors DROP CONSTRAINT distributors_pkey,
    ADD CONSTRAINT distributors_pkey PRIMARY KEY USING INDEX dist_id_temp_idx;

-- expect: add_exclusion_constraint
ALTER TABLE reservations ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);

-- expect: rewrite_table
ALTER TABLE distributors SET TABLESPACE fasttablespace;

-- expect: ok
ALTER TABLE myschema.distributors SET SCHEMA yourschema;

-- expect: rename_table
ALTER SCHEMA legacy RENAME TO archive;

-- expect: ok
ALTER TABLE distributors SET (fillfactor = 70);

-- expect: ok
ALTER TABLE distributors ALTER COLUMN zipcode SET STATISTICS 500;

-- expect: ok
ALTER TABLE measurements
    ATTACH PARTITION measurement_y2016m07 FOR VALUES FROM ('2016-07-01') TO ('2016-08-01');

-- expect: detach_partition_non_concurrently
ALTER TABLE measurement DETACH PARTITION measurement_y2015m12;

-- expect: ok
ALTER TABLE measurement DETACH PARTITION measurement_y2015m12 CONCURRENTLY;

-- expect: ok
ALTER TABLE measurement DETACH PARTITION measurement_y2015m12 FINALIZE;

-- expect: create_index_non_concurrently
CREATE UNIQUE INDEX title_idx ON films (title);

-- expect: create_index_non_concurrently
CREATE INDEX ON films ((lower(title)));

-- expect: create_index_non_concurrently
CREATE INDEX title_idx_german ON films (title COLLATE "de_DE");

-- expect: create_index_non_concurrently
CREATE INDEX gist_idx ON public.geo USING gist (location) WITH (fillfactor = 70);

-- expect: ok
CREATE INDEX CONCURRENTLY sales_quantity_index ON sales_table (quantity);

-- expect: ok
CREATE INDEX measurement_usls_idx ON ONLY measurement (unitsales);

-- The file's transaction built title_idx: no other session sees it yet.
-- expect: ok
DROP INDEX title_idx;

-- expect: ok
DROP INDEX CONCURRENTLY IF EXISTS title_idx;

-- expect: reindex_non_concurrently
REINDEX INDEX my_index;

-- expect: reindex_non_concurrently
REINDEX TABLE my_table;

-- expect: ok
REINDEX TABLE CONCURRENTLY my_broken_table;

-- expect: ok
REINDEX (CONCURRENTLY, VERBOSE) INDEX my_index;

-- expect: ok
LOCK TABLE films IN SHARE MODE;

-- expect: ok
LOCK TABLE films IN SHARE ROW EXCLUSIVE MODE;

-- expect: ok
LOCK TABLE films;

-- expect: ok
LOCK TABLE films IN ROW EXCLUSIVE MODE;

-- expect: ok
LOCK TABLE films IN ACCESS SHARE MODE;

-- expect: truncate
TRUNCATE bigtable, fattable RESTART IDENTITY;

-- expect: truncate
TRUNCATE othertable CASCADE;

-- expect: rewrite_table
VACUUM FULL films;

-- expect: rewrite_table
VACUUM (FULL, ANALYZE) films;

-- expect: ok
VACUUM (VERBOSE, ANALYZE) onek;

-- expect: ok
ANALYZE VERBOSE users (id, email);

-- expect: rewrite_table
CLUSTER employees USING employees_ind;

-- expect: refresh_materialized_view_non_concurrently
REFRESH MATERIALIZED VIEW order_summary;

-- expect: ok
REFRESH MATERIALIZED VIEW CONCURRENTLY order_summary;

-- expect: drop_table
DROP TABLE films, distributors;

-- expect: ok
CREATE MATERIALIZED VIEW sales_summary AS
  SELECT seller_no, invoice_date, sum(invoice_amt)::numeric(13,2) AS sales_amt
    FROM invoice
    WHERE invoice_date < CURRENT_DATE
    GROUP BY seller_no, invoice_date;

-- expect: ok
CREATE VIEW comedies AS
    SELECT *
    FROM films
    WHERE kind = 'Comedy';

-- expect: ok
COMMENT ON TABLE mytable IS 'This is my table.';

-- expect: ok
GRANT SELECT ON films TO PUBLIC;

-- expect: ok
CREATE EXTENSION IF NOT EXISTS hstore;

-- expect: ok
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');

-- expect: ok
ALTER TYPE colors ADD VALUE 'orange' AFTER 'red';

-- expect: ok
CREATE SEQUENCE serial START 101;

-- expect: ok
SET lock_timeout = '3s';

-- The file is one migration: its end commits the rename and the move above, with no
-- view for the old names (a rename is judged when its transaction commits).
-- expect: rename_table
COMMIT;
