//! Rule tests written as SQL, as squawk's are: the libpg_query adapter (crate `parse`, a
//! dev-dependency) reads each case, and every statement is decided in order with what the
//! case showed before it, as `safe-migrations check` decides a file (the case's own
//! transaction, the tables it created; nothing else is known). Mode enforce.
//!
//! A rule's own unit tests (in its file) pin its wording and its catalog questions; these
//! pin what it decides on the SQL people write.

use parse::parse_sql;
use policy::file_catalog::FileCatalog;
use policy::model::TransactionKind;
use policy::transaction::Placement;
use policy::{decide, decide_commit, Mode, Settings, Severity, Stmt};

/// The rules that find something in `sql`, in statement order, errors and warnings alike.
fn rules(sql: &str) -> Vec<&'static str> {
    findings(sql).into_iter().map(|(rule, _)| rule).collect()
}

/// The rules that refuse something in `sql`.
fn errors(sql: &str) -> Vec<&'static str> {
    findings(sql)
        .into_iter()
        .filter(|(_, severity)| *severity == Severity::Error)
        .map(|(rule, _)| rule)
        .collect()
}

fn findings(sql: &str) -> Vec<(&'static str, Severity)> {
    let settings = Settings {
        mode: Mode::Enforce,
        ..Settings::default()
    };
    let mut catalog = FileCatalog::default();
    let mut found = Vec::new();
    let commit = |catalog: &mut FileCatalog, found: &mut Vec<(&'static str, Severity)>| {
        let decision = decide_commit(catalog.transaction(), &settings, &*catalog);
        found.extend(decision.findings.iter().map(|finding| (finding.rule, finding.severity)));
        catalog.forget_renames();
    };
    for parsed in parse_sql(sql).unwrap_or_else(|err| panic!("{sql}: {}", err.message)) {
        let context = catalog.transaction().context(Placement::ALONE);
        let decision = decide(&parsed.statement, &context, &settings, &catalog);
        found.extend(decision.findings.iter().map(|finding| (finding.rule, finding.severity)));
        // A COMMIT commits the renames before it; outside any transaction a statement
        // commits as it ends.
        if matches!(
            parsed.statement.stmt,
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare)
        ) {
            commit(&mut catalog, &mut found);
        }
        catalog.observe(&parsed.statement);
        if !catalog.transaction().running() {
            commit(&mut catalog, &mut found);
        }
    }
    // The case's end commits what it left running.
    commit(&mut catalog, &mut found);
    found
}

/// A table that exists before the migration: created, then committed.
const EXISTING: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text, age int); COMMIT;\n";

fn on_existing(sql: &str) -> Vec<&'static str> {
    rules(&format!("{EXISTING}{sql}"))
}

#[test]
fn create_index() {
    assert_eq!(
        rules("CREATE INDEX users_email ON users (email);"),
        ["create_index_non_concurrently"]
    );
    assert!(rules("CREATE INDEX CONCURRENTLY users_email ON users (email);").is_empty());
    // A table created in the same transaction is invisible to everyone else.
    assert!(rules("CREATE TABLE t (c int); CREATE INDEX t_c ON t (c);").is_empty());
}

#[test]
fn concurrently_in_a_transaction_block() {
    assert_eq!(
        rules("BEGIN; CREATE INDEX CONCURRENTLY users_email ON users (email); COMMIT;"),
        ["concurrently_in_transaction"]
    );
}

#[test]
fn drop_and_reindex() {
    assert_eq!(rules("DROP INDEX users_email;"), ["drop_index_non_concurrently"]);
    assert!(rules("DROP INDEX CONCURRENTLY users_email;").is_empty());
    assert_eq!(rules("REINDEX INDEX users_email;"), ["reindex_non_concurrently"]);
    assert!(rules("REINDEX INDEX CONCURRENTLY users_email;").is_empty());
}

#[test]
fn foreign_keys_and_checks() {
    assert_eq!(
        rules("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);"),
        ["add_foreign_key_validated"]
    );
    assert!(
        rules("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;").is_empty()
    );
    assert_eq!(
        rules("ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);"),
        ["add_check_constraint_validated"]
    );
    assert!(rules("ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID;").is_empty());
}

#[test]
fn unique_and_exclusion_constraints() {
    assert_eq!(
        rules("ALTER TABLE users ADD CONSTRAINT email_unique UNIQUE (email);"),
        ["add_unique_constraint"]
    );
    assert!(rules("ALTER TABLE users ADD CONSTRAINT email_unique UNIQUE USING INDEX users_email;").is_empty());
    assert_eq!(
        rules("ALTER TABLE rooms ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&);"),
        ["add_exclusion_constraint"]
    );
}

#[test]
fn columns() {
    assert_eq!(
        rules("ALTER TABLE users ADD COLUMN active boolean NOT NULL;"),
        ["add_column_required"]
    );
    assert!(rules("ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;").is_empty());
    assert_eq!(
        rules("ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();"),
        ["add_column_volatile_default"]
    );
    assert_eq!(rules("ALTER TABLE users DROP COLUMN email;"), ["drop_column"]);
    assert_eq!(
        rules("ALTER TABLE users RENAME COLUMN email TO mail;"),
        ["rename_column"]
    );
    assert_eq!(rules("ALTER TABLE users ADD COLUMN data json;"), ["json_column"]);
    assert!(rules("ALTER TABLE users ADD COLUMN data jsonb;").is_empty());
}

#[test]
fn column_types_known_from_the_file() {
    assert_eq!(
        on_existing("ALTER TABLE users ALTER COLUMN age TYPE bigint;"),
        ["change_column_type"]
    );
    // varchar to text is a binary relabel, no rewrite: what the file does not show (the
    // column's indexes and CHECKs) is a warning, not a refusal.
    let relabel = "CREATE TABLE notes (body varchar(100)); COMMIT;\nALTER TABLE notes ALTER COLUMN body TYPE text;";
    assert_eq!(rules(relabel), ["change_column_type"]);
    assert!(errors(relabel).is_empty());
    assert_eq!(
        errors("CREATE TABLE notes (body text); COMMIT;\nALTER TABLE notes ALTER COLUMN body TYPE varchar(200);"),
        ["change_column_type"]
    );
}

#[test]
fn not_null() {
    assert_eq!(
        on_existing("ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
        ["set_not_null"]
    );
    // A validated CHECK (email IS NOT NULL) lets SET NOT NULL skip the scan.
    assert!(on_existing(
        "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID; COMMIT;\n\
         ALTER TABLE users VALIDATE CONSTRAINT email_nn; COMMIT;\n\
         ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
    )
    .is_empty());
}

#[test]
fn tables() {
    assert_eq!(rules("DROP TABLE users;"), ["drop_table"]);
    assert_eq!(rules("ALTER TABLE users RENAME TO accounts;"), ["rename_table"]);
    // Renamed (or moved) with a view for the old name over all of the new one, before
    // the transaction commits: old code keeps reading and writing.
    assert!(rules("ALTER TABLE users RENAME TO accounts; CREATE VIEW users AS SELECT * FROM accounts;").is_empty());
    assert!(rules(
        "ALTER TABLE public.users SET SCHEMA archive; CREATE VIEW public.users AS SELECT * FROM archive.users;"
    )
    .is_empty());
    assert!(rules(
        "BEGIN; ALTER TABLE users RENAME TO accounts; CREATE OR REPLACE VIEW users AS SELECT * FROM accounts; COMMIT;"
    )
    .is_empty());
    // Too late (another transaction), or not a stand-in for the table.
    for sql in [
        "BEGIN; ALTER TABLE users RENAME TO accounts; COMMIT; CREATE VIEW users AS SELECT * FROM accounts;",
        "ALTER TABLE users RENAME TO accounts; CREATE VIEW users AS SELECT id FROM accounts;",
        "ALTER TABLE users RENAME TO accounts; CREATE TEMP VIEW users AS SELECT * FROM accounts;",
        "BEGIN; ALTER TABLE users RENAME TO accounts; SAVEPOINT s; \
         CREATE VIEW users AS SELECT * FROM accounts; ROLLBACK TO SAVEPOINT s; COMMIT;",
    ] {
        assert_eq!(rules(sql), ["rename_table"], "{sql}");
    }
    // The rename's acknowledgement counts when its transaction commits.
    assert!(errors(
        "-- safe_migrations:allow rename_table -- nothing uses the old name\n\
         ALTER TABLE users RENAME TO accounts;"
    )
    .is_empty());
    assert_eq!(rules("TRUNCATE users;"), ["truncate"]);
    assert_eq!(rules("LOCK TABLE users IN ACCESS EXCLUSIVE MODE;"), ["lock_table"]);
    assert!(rules("LOCK TABLE users IN ACCESS SHARE MODE;").is_empty());
    assert_eq!(rules("VACUUM FULL users;"), ["rewrite_table"]);
    assert_eq!(
        rules("REFRESH MATERIALIZED VIEW totals;"),
        ["refresh_materialized_view_non_concurrently"]
    );
    assert!(rules("REFRESH MATERIALIZED VIEW CONCURRENTLY totals;").is_empty());
    assert_eq!(
        rules("ALTER TABLE events DETACH PARTITION events_2020;"),
        ["detach_partition_non_concurrently"]
    );
    assert!(rules("ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;").is_empty());
}

#[test]
fn policy_changes() {
    assert_eq!(rules("SET safe_migrations.mode = off;"), ["policy_change"]);
    assert!(rules("SET lock_timeout = '2s';").is_empty());
}

#[test]
fn acknowledged_statements_pass() {
    assert!(rules(
        "-- safe_migrations:allow drop_table -- emptied and unused since March\n\
         DROP TABLE users;"
    )
    .is_empty());
}

#[test]
fn transaction_scope() {
    // Without COMMIT a file is one transaction (as Flyway, sqlx and Rails run it): a backfill
    // after its schema change runs under the change's lock.
    assert_eq!(
        rules("ALTER TABLE users ADD COLUMN verified boolean;\nUPDATE users SET verified = false;"),
        ["backfill_in_ddl_transaction"]
    );
    assert_eq!(
        rules("BEGIN;\nALTER TABLE users ADD COLUMN verified boolean;\nDELETE FROM users WHERE age < 0;\nCOMMIT;"),
        ["backfill_in_ddl_transaction"]
    );
    // Committed first, it is no backfill under the lock; nor is a statement outside the
    // blocks of a file that shows its own transaction control.
    assert!(rules(
        "BEGIN;\nALTER TABLE users ADD COLUMN verified boolean;\nCOMMIT;\nUPDATE users SET verified = false;"
    )
    .is_empty());
    assert!(rules(
        "BEGIN;\nCOMMIT;\nALTER TABLE users ADD COLUMN verified boolean;\nUPDATE users SET verified = false;"
    )
    .is_empty());
    // VALIDATE in the transaction that added the constraint NOT VALID.
    assert_eq!(
        rules(
            "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID;\n\
             ALTER TABLE users VALIDATE CONSTRAINT age_positive;"
        ),
        ["add_check_constraint_validated"]
    );
    assert!(rules(
        "BEGIN;\nALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID;\nCOMMIT;\n\
         ALTER TABLE users VALIDATE CONSTRAINT age_positive;"
    )
    .is_empty());
}
