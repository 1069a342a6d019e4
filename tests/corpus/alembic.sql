-- `alembic upgrade head --sql` (offline mode, SQLAlchemy 2.x, PostgreSQL dialect).

-- expect: ok
BEGIN;

-- expect: ok
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 1a2b3c4d5e6f

-- expect: ok
CREATE TABLE customer (
    id SERIAL NOT NULL,
    name VARCHAR(50) NOT NULL,
    email VARCHAR(120),
    balance NUMERIC(10, 2) DEFAULT '0' NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (email)
);

-- expect: ok
CREATE INDEX ix_customer_name ON customer (name);

-- expect: ok
CREATE TABLE invoice (
    id SERIAL NOT NULL,
    customer_id INTEGER NOT NULL,
    total NUMERIC(12, 2),
    PRIMARY KEY (id),
    FOREIGN KEY(customer_id) REFERENCES customer (id) ON DELETE CASCADE
);

-- expect: ok
INSERT INTO alembic_version (version_num) VALUES ('1a2b3c4d5e6f') RETURNING alembic_version.version_num;

-- expect: ok
COMMIT;

-- expect: ok
BEGIN;

-- Running upgrade 1a2b3c4d5e6f -> 2b3c4d5e6f70

-- expect: ok
ALTER TABLE customer ADD COLUMN phone VARCHAR(30);

-- expect: ok
ALTER TABLE customer ALTER COLUMN balance TYPE NUMERIC(14, 2);

-- expect: change_column_type
ALTER TABLE customer ALTER COLUMN balance TYPE NUMERIC(14, 4);

-- expect: ok
ALTER TABLE customer ALTER COLUMN email TYPE VARCHAR;

-- timestamp -> timestamptz is free only when the session TimeZone is UTC, which the
-- file does not say: a warning, not an error.
-- expect: ok
ALTER TABLE customer ALTER COLUMN created_at TYPE TIMESTAMP WITH TIME ZONE;

-- expect: change_column_type
ALTER TABLE customer ALTER COLUMN created_at TYPE DATE;

-- expect: create_index_non_concurrently
CREATE INDEX ix_customer_email ON customer (email);

-- expect: add_unique_constraint
ALTER TABLE customer ADD CONSTRAINT uq_customer_phone UNIQUE (phone);

-- expect: add_foreign_key_validated
ALTER TABLE invoice ADD CONSTRAINT fk_invoice_agent_id_agent FOREIGN KEY(agent_id) REFERENCES agent (id);

-- expect: add_check_constraint_validated
ALTER TABLE invoice ADD CONSTRAINT ck_invoice_total_positive CHECK (total >= 0);

-- expect: set_not_null
ALTER TABLE invoice ALTER COLUMN total SET NOT NULL;

-- expect: json_column
ALTER TABLE invoice ADD COLUMN extra JSON;

-- expect: ok
ALTER TABLE invoice ADD COLUMN attributes JSONB;

-- expect: add_column_required
ALTER TABLE invoice ADD COLUMN currency VARCHAR(3) NOT NULL;

-- expect: drop_column
ALTER TABLE customer DROP COLUMN phone;

-- expect: rename_column
ALTER TABLE customer RENAME name TO full_name;

-- expect: drop_index_non_concurrently
DROP INDEX ix_customer_name;

-- expect: ok
UPDATE alembic_version SET version_num='2b3c4d5e6f70' WHERE alembic_version.version_num = '1a2b3c4d5e6f';

-- expect: ok
COMMIT;

-- Running upgrade 2b3c4d5e6f70 -> 3c4d5e6f7081 (op.get_context().autocommit_block())

-- expect: ok
CREATE INDEX CONCURRENTLY ix_invoice_customer_id ON invoice (customer_id);

-- expect: ok
DROP INDEX CONCURRENTLY IF EXISTS ix_customer_email;

-- expect: ok
BEGIN;

-- expect: concurrently_in_transaction
CREATE UNIQUE INDEX CONCURRENTLY uq_invoice_number ON invoice (number);

-- expect: drop_table
DROP TABLE legacy_payment;

-- expect: ok
ALTER TABLE invoice RENAME TO bill;

-- expect: ok
UPDATE alembic_version SET version_num='3c4d5e6f7081' WHERE alembic_version.version_num = '2b3c4d5e6f70';

-- (a rename is judged when its transaction commits: no view for the old name)
-- expect: rename_table
COMMIT;
