//! A backfill in the transaction of a schema change (rule backfill_in_ddl_transaction),
//! through both live paths: the extension, and the proxy in front of a server without it.
//! The parity corpus (tests/corpus/live/catalog.sql) covers explicit transactions, DO
//! blocks, CTEs, procedures and the tools' bookkeeping; these are the cases one corpus
//! statement cannot show: several statements in one string (an implicit transaction),
//! and the lock forgotten once its transaction ends, by COMMIT or by an error.

use e2e::{connect, Cluster, ClusterOptions, Proxy};

/// A cluster (with or without the extension) where the guarded `migrator` owns `t`, a
/// table of 100 rows.
fn cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("lock_timeout", "1s")]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE t (id int PRIMARY KEY, c int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g; \
         ALTER TABLE t OWNER TO migrator;",
    );
    cluster
}

fn rule_of(result: Result<(), postgres::Error>) -> Option<String> {
    let err = result.err()?;
    let db = err.as_db_error().unwrap_or_else(|| panic!("not a server error: {err}"));
    Some(format!("{} {}", db.code().code(), db.message()))
}

fn scenario(url: &str, path: &str) {
    let mut migrator = connect(url);
    // One string: an implicit transaction holds the ALTER's lock during the UPDATE.
    let refused = rule_of(migrator.batch_execute("ALTER TABLE t ADD COLUMN v boolean; UPDATE t SET v = true"))
        .unwrap_or_else(|| panic!("{path}: the backfill in one string ran"));
    assert!(
        refused.starts_with(
            "SM001 backfill_in_ddl_transaction: UPDATE of t runs while this transaction holds ACCESS EXCLUSIVE on \
             t, taken by `ALTER TABLE t ADD COLUMN v boolean`"
        ),
        "{path}: {refused}"
    );
    // The error ended that transaction: its lock is gone, and so is the column.
    assert_eq!(
        rule_of(migrator.batch_execute("UPDATE t SET c = c + 1 WHERE id < 50")),
        None,
        "{path}"
    );
    // Committed first, the same two steps pass.
    migrator.batch_execute("ALTER TABLE t ADD COLUMN v boolean").unwrap();
    assert_eq!(rule_of(migrator.batch_execute("UPDATE t SET v = true")), None, "{path}");
    // A statement that passed before, with no lock held, is decided again under one.
    migrator.batch_execute("UPDATE t SET c = 1 WHERE id = 1").unwrap();
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN x int").unwrap();
    let refused = rule_of(migrator.batch_execute("UPDATE t SET c = 1 WHERE id = 1")).unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: UPDATE of t"),
        "{path}: {refused}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // The extended protocol (Parse, Bind, Execute), as client libraries send parameters.
    let mut transaction = migrator.transaction().unwrap();
    transaction.execute("ALTER TABLE t ADD COLUMN y int", &[]).unwrap();
    let refused = transaction
        .execute("UPDATE t SET c = $1 WHERE id < $2", &[&1i32, &50i32])
        .map(|_| ())
        .err()
        .map(|err| {
            err.as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_else(|| err.to_string())
        })
        .unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: UPDATE of t"),
        "{path}: {refused}"
    );
    transaction.rollback().unwrap();
    // A statement prepared before the DDL and executed after it: decided again under the
    // lock taken since (named prepared statements, as drivers cache them).
    let mut transaction = migrator.transaction().unwrap();
    let update = transaction.prepare("UPDATE t SET c = c + 1").unwrap();
    transaction.batch_execute("ALTER TABLE t ADD COLUMN z int").unwrap();
    let refused = transaction
        .execute(&update, &[])
        .map(|_| ())
        .err()
        .and_then(|err| err.as_db_error().map(|db| db.message().to_string()))
        .unwrap_or_default();
    assert!(
        refused
            .starts_with("backfill_in_ddl_transaction: UPDATE of t runs while this transaction holds ACCESS EXCLUSIVE"),
        "{path}: {refused}"
    );
    transaction.rollback().unwrap();
    // The same statement, prepared in a transaction that held no lock, runs in one that
    // holds none.
    let update = migrator.prepare("UPDATE t SET c = c + 1 WHERE id = 1").unwrap();
    migrator.execute(&update, &[]).unwrap();
    let mut transaction = migrator.transaction().unwrap();
    transaction.batch_execute("ALTER TABLE t ADD COLUMN z int").unwrap();
    let refused = transaction.execute(&update, &[]).map(|_| ()).err().map(|err| {
        err.as_db_error()
            .map_or_else(|| err.to_string(), |db| db.message().to_string())
    });
    assert!(
        refused
            .as_deref()
            .is_some_and(|err| err.contains("backfill_in_ddl_transaction")),
        "{path}: a statement prepared in an earlier transaction ran under the lock: {refused:?}"
    );
    transaction.rollback().unwrap();
    // In an explicit block, until COMMIT.
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN w int").unwrap();
    let refused = rule_of(migrator.batch_execute("DELETE FROM t WHERE id > 90")).unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: DELETE of t"),
        "{path}: {refused}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        rule_of(migrator.batch_execute("DELETE FROM t WHERE id > 90")),
        None,
        "{path}"
    );
    // EXECUTE of a statement PREPAREd in SQL (before the lock, or in the same string)
    // runs its query under the lock.
    migrator
        .batch_execute("PREPARE mark(int) AS UPDATE t SET c = $1 WHERE id = 1")
        .unwrap();
    // The EXECUTE itself prepared by the protocol before the lock, executed under it.
    let execute = migrator.prepare("EXECUTE mark(5)").unwrap();
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN u int").unwrap();
    let refused = rule_of(migrator.batch_execute("EXECUTE mark(5)")).unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: UPDATE of t"),
        "{path}: {refused}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN u int").unwrap();
    let refused = rule_of(migrator.execute(&execute, &[]).map(|_| ())).unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: UPDATE of t"),
        "{path}: {refused}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    let refused =
        rule_of(migrator.batch_execute(
            "ALTER TABLE t ADD COLUMN u int; PREPARE purge AS DELETE FROM t WHERE id = 2; EXECUTE purge",
        ))
        .unwrap_or_default();
    assert!(
        refused.contains("backfill_in_ddl_transaction: DELETE of t"),
        "{path}: {refused}"
    );
    assert_eq!(rule_of(migrator.batch_execute("EXECUTE mark(5)")), None, "{path}");
    if path == "extension" {
        // safe_migrations.check(sql) sees the transaction its text opens.
        let mut rules = |sql: &str| -> Vec<String> {
            migrator
                .query("SELECT rule FROM safe_migrations.check($1)", &[&sql])
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        };
        assert_eq!(
            rules("ALTER TABLE t ADD COLUMN v2 boolean; UPDATE t SET v2 = true"),
            ["backfill_in_ddl_transaction"]
        );
        assert_eq!(
            rules(
                "BEGIN; ALTER TABLE t ADD CONSTRAINT c_positive CHECK (c > 0) NOT VALID; \
                   ALTER TABLE t VALIDATE CONSTRAINT c_positive; COMMIT"
            ),
            ["add_check_constraint_validated"]
        );
        assert_eq!(rules("ALTER TABLE t ADD COLUMN v2 boolean"), Vec::<String>::new());
    }
}

#[test]
fn the_extension_refuses_a_backfill_under_the_lock_until_the_transaction_ends() {
    let cluster = cluster(true);
    scenario(&cluster.url("migrator", "postgres"), "extension");
}

#[test]
fn the_proxy_refuses_a_backfill_under_the_lock_until_the_transaction_ends() {
    let cluster = cluster(false);
    let proxy = Proxy::start(&cluster, &[]);
    scenario(&proxy.url("migrator", "postgres"), "proxy");
}
