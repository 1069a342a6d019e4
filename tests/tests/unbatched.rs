//! An UPDATE, DELETE or MERGE the planner expects to change more rows than
//! safe_migrations.max_rows_per_statement (rule unbatched_backfill), through both live
//! paths: the extension reads the estimate from the plan it is about to run; the proxy
//! asks the server with EXPLAIN on the client's session, which must leave no trace: a
//! statement that fails gets the server's own error, and the client's transaction block
//! goes on as if the proxy had asked nothing. The parity corpus covers the nesting levels
//! (CTEs, DO blocks, functions, a procedure committing each batch); these are the
//! protocol paths and the transaction around the question.

use std::sync::{Arc, Mutex};

use e2e::{connect, Cluster, ClusterOptions, Proxy};
use postgres::NoTls;

/// A cluster where the guarded `migrator` (max_rows_per_statement 500) owns `t`, an
/// analyzed table of 2,000 rows.
fn cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        conf: vec![("autovacuum".to_string(), "off".to_string())],
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("max_rows_per_statement", "500")]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE t (id int PRIMARY KEY, c int); INSERT INTO t SELECT g, g FROM generate_series(1, 2000) g; \
         ANALYZE t; ALTER TABLE t OWNER TO migrator;",
    );
    cluster.create_role("watcher", &[("mode", "warn"), ("max_rows_per_statement", "500")]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE w (id int PRIMARY KEY, c int); INSERT INTO w SELECT g, g FROM generate_series(1, 2000) g; \
         ANALYZE w; ALTER TABLE w OWNER TO watcher; CREATE TABLE w2 (id int); ALTER TABLE w2 OWNER TO watcher;",
    );
    cluster
}

/// A statement prepared before a lock and executed under it is warned about once per
/// finding, as the extension warns when it runs: the proxy's warnings at Parse are not
/// repeated when it judges the statement again at Execute.
fn warned_once(url: &str, path: &str) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    let mut config: postgres::Config = url.parse().unwrap();
    config.notice_callback(move |notice| {
        if notice.code().code() == "SM001" {
            let rule = notice.message().split(':').next().unwrap_or_default().to_string();
            sink.lock().unwrap().push(rule);
        }
    });
    let mut watcher = config.connect(NoTls).unwrap();
    let warned = || {
        let mut rules = std::mem::take(&mut *notices.lock().unwrap());
        rules.sort();
        rules
    };
    // Prepared before the lock: the proxy warns of its size at Parse, of the lock at Execute.
    let statement = watcher.prepare("UPDATE w SET c = $1").unwrap();
    watcher.batch_execute("BEGIN; ALTER TABLE w ADD COLUMN v int").unwrap();
    watcher.execute(&statement, &[&1i32]).unwrap();
    watcher.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        warned(),
        ["backfill_in_ddl_transaction", "unbatched_backfill"],
        "{path}"
    );
    // Prepared under one lock, executed under another too: the backfill once.
    watcher.batch_execute("BEGIN; ALTER TABLE w ADD COLUMN v int").unwrap();
    let statement = watcher.prepare("UPDATE w SET c = $1 WHERE id = $2").unwrap();
    watcher.batch_execute("ALTER TABLE w2 ADD COLUMN v int").unwrap();
    watcher.execute(&statement, &[&1i32, &1i32]).unwrap();
    watcher.batch_execute("ROLLBACK").unwrap();
    assert_eq!(warned(), ["backfill_in_ddl_transaction"], "{path}");
}

/// SQLSTATE, message and position of the error, if any.
fn error_of<T>(result: Result<T, postgres::Error>) -> Option<String> {
    let err = result.err()?;
    let db = err.as_db_error().unwrap_or_else(|| panic!("not a server error: {err}"));
    Some(format!("{} {} {:?}", db.code().code(), db.message(), db.position()))
}

fn scenario(url: &str, path: &str) {
    let mut migrator = connect(url);
    let unbatched = |error: Option<String>| {
        error.is_some_and(|error| {
            error.starts_with("SM001 unbatched_backfill: UPDATE of t changes about ")
                && error.contains("rows in one statement")
        })
    };
    // Simple protocol, and the extended protocol (a statement without parameters).
    assert!(
        unbatched(error_of(migrator.batch_execute("UPDATE t SET c = 0"))),
        "{path}"
    );
    assert!(
        unbatched(error_of(migrator.execute("UPDATE t SET c = 0", &[]))),
        "{path}"
    );
    // With parameters, as drivers and ORMs send them: the plan does not depend on their
    // values (PostgreSQL 15 has no EXPLAIN GENERIC_PLAN; the proxy plans it generically).
    assert!(
        unbatched(error_of(
            migrator.execute("UPDATE t SET c = $1 WHERE id > $2", &[&0i32, &0i32])
        )),
        "{path}"
    );
    assert_eq!(
        error_of(migrator.execute("UPDATE t SET c = $1 WHERE id = $2", &[&0i32, &1i32])),
        None,
        "{path}"
    );
    // In a block too, and the proxy's generic planning leaves the setting as it was.
    migrator.batch_execute("BEGIN").unwrap();
    assert_eq!(
        error_of(migrator.execute("UPDATE t SET c = $1 WHERE id = $2", &[&0i32, &1i32])),
        None,
        "{path}"
    );
    let mode: String = migrator.query_one("SHOW plan_cache_mode", &[]).unwrap().get(0);
    assert_eq!(mode, "auto", "{path}");
    assert!(
        unbatched(error_of(
            migrator.execute("UPDATE t SET c = $1 WHERE id > $2", &[&0i32, &0i32])
        )),
        "{path}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    let mode: String = migrator.query_one("SHOW plan_cache_mode", &[]).unwrap().get(0);
    assert_eq!(mode, "auto", "{path}");
    // Batches pass, each in its own transaction (with margin: the estimate grows with the
    // dead rows each batch leaves, autovacuum being off).
    for batch in 0..8 {
        let (low, high) = (batch * 250, batch * 250 + 250);
        let sql = format!("UPDATE t SET c = 0 WHERE id > {low} AND id <= {high}");
        assert_eq!(error_of(migrator.batch_execute(&sql)), None, "{path}: {sql}");
    }
    // Inside a transaction block: a batch passes and the block goes on; an unbatched
    // statement is refused; a statement that fails gets the server's own error,
    // position and all, and the block is as the server alone leaves it.
    migrator.batch_execute("BEGIN").unwrap();
    assert_eq!(
        error_of(migrator.batch_execute("UPDATE t SET c = 1 WHERE id <= 100")),
        None,
        "{path}"
    );
    assert!(
        unbatched(error_of(migrator.batch_execute("UPDATE t SET c = 2"))),
        "{path}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // A write in a WITH, in a block too; a MERGE that only inserts changes no row.
    migrator.batch_execute("BEGIN").unwrap();
    assert!(
        unbatched(error_of(migrator.batch_execute(
            "WITH changed AS (UPDATE t SET c = 2 RETURNING id) SELECT count(*) FROM changed"
        ))),
        "{path}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        error_of(migrator.batch_execute(
            "MERGE INTO t USING (SELECT g FROM generate_series(1, 3000) g) s ON t.id = s.g \
             WHEN NOT MATCHED THEN INSERT VALUES (s.g, 0)"
        )),
        None,
        "{path}"
    );
    migrator.batch_execute("DELETE FROM t WHERE id > 2000").unwrap();
    migrator.batch_execute("BEGIN").unwrap();
    assert_eq!(
        error_of(migrator.batch_execute("UPDATE t SET missing = 1")),
        Some("42703 column \"missing\" of relation \"t\" does not exist Some(Original(14))".to_string()),
        "{path}"
    );
    assert_eq!(
        error_of(migrator.batch_execute("SELECT 1")).map(|e| e[..5].to_string()),
        Some("25P02".to_string()),
        "{path}: the failed statement aborted the block, as on the server alone"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    migrator.batch_execute("BEGIN").unwrap();
    assert_eq!(
        error_of(migrator.batch_execute("UPDATE t SET c = 3 WHERE id = 1")),
        None,
        "{path}"
    );
    let c: i32 = migrator.query_one("SELECT c FROM t WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(c, 3, "{path}: the block's own update is visible in it");
    migrator.batch_execute("COMMIT").unwrap();
    // EXPLAIN ANALYZE runs the client's statement; plain EXPLAIN runs nothing.
    assert!(
        unbatched(error_of(migrator.batch_execute("EXPLAIN ANALYZE UPDATE t SET c = 5"))),
        "{path}"
    );
    assert_eq!(
        error_of(migrator.batch_execute("EXPLAIN UPDATE t SET c = 5")),
        None,
        "{path}"
    );
    // Not first in its string: the query EXPLAIN ANALYZE runs is read where it stands.
    assert!(
        unbatched(error_of(
            migrator.batch_execute("SELECT 1; EXPLAIN ANALYZE UPDATE t SET c = 6")
        )),
        "{path}"
    );
    // EXECUTE of a statement PREPAREd in SQL runs its query, planned for the EXECUTE's
    // arguments: prepared in an earlier message, in the same one, or by the protocol's
    // Parse; in and out of a block; and through EXPLAIN ANALYZE.
    migrator
        .batch_execute("PREPARE everything AS UPDATE t SET c = 4")
        .unwrap();
    assert!(
        unbatched(error_of(migrator.batch_execute("EXECUTE everything"))),
        "{path}"
    );
    migrator
        .batch_execute("PREPARE below(int) AS UPDATE t SET c = 4 WHERE id < $1")
        .unwrap();
    assert_eq!(error_of(migrator.batch_execute("EXECUTE below(100)")), None, "{path}");
    assert!(
        unbatched(error_of(migrator.batch_execute("EXECUTE below(1900)"))),
        "{path}"
    );
    // Arguments are planned for their values, computed ones too; one that calls a
    // volatile function (which could do something) the proxy's question does not
    // evaluate: it plans generically then (a third of the table for `<`: 667 rows).
    assert_eq!(
        error_of(migrator.batch_execute("EXECUTE below(length(repeat('x', 10)))")),
        None,
        "{path}"
    );
    assert!(
        unbatched(error_of(
            migrator.batch_execute("EXECUTE below(1900 + (random() * 0)::int)")
        )),
        "{path}"
    );
    assert!(
        unbatched(error_of(migrator.batch_execute("EXPLAIN ANALYZE EXECUTE below(1900)"))),
        "{path}"
    );
    migrator.batch_execute("BEGIN").unwrap();
    assert_eq!(error_of(migrator.batch_execute("EXECUTE below(100)")), None, "{path}");
    assert!(
        unbatched(error_of(migrator.batch_execute("EXECUTE below(1900)"))),
        "{path}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // Prepared earlier in the same string: read from the PREPARE's text.
    let deleted =
        error_of(migrator.batch_execute("PREPARE above(int) AS DELETE FROM t WHERE id > $1; EXECUTE above(0)"));
    assert!(
        deleted
            .as_deref()
            .is_some_and(|error| error.starts_with("SM001 unbatched_backfill: DELETE of t changes about ")),
        "{path}: {deleted:?}"
    );
    // Prepared by the protocol's Parse (the driver's own name; its generic plan expects
    // few rows), executed in SQL with arguments that change them all.
    let sql = "UPDATE t SET c = $1 WHERE id BETWEEN $2 AND $3";
    let _statement = migrator.prepare(sql).unwrap();
    let name: String = migrator
        .query_one(
            "SELECT name FROM pg_prepared_statements WHERE NOT from_sql AND statement = $1",
            &[&sql],
        )
        .unwrap()
        .get(0);
    assert!(
        unbatched(error_of(
            migrator.batch_execute(&format!("EXECUTE \"{name}\"(7, 1, 2000)"))
        )),
        "{path}"
    );
    let rows: i64 = migrator
        .query_one("SELECT count(*) FROM t WHERE c IN (4, 7)", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 99, "{path}: only the batch ran");
    let rows: i64 = migrator.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(rows, 2000, "{path}: nothing was deleted");
    // The proxy's questions left no prepared statement of theirs. (`above` exists only
    // with the extension: the server ran the PREPARE before the EXECUTE was refused,
    // and PREPARE outlives its transaction; the proxy refuses the string before any of
    // it runs.)
    let prepared: Vec<String> = migrator
        .query(
            "SELECT name FROM pg_prepared_statements WHERE (from_sql OR name LIKE '%safe_migrations%') \
             AND name <> 'above' ORDER BY name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(prepared, ["below", "everything"], "{path}");
}

#[test]
fn the_extension_refuses_an_unbatched_backfill_from_the_plan() {
    let cluster = cluster(true);
    scenario(&cluster.url("migrator", "postgres"), "extension");
    warned_once(&cluster.url("watcher", "postgres"), "extension");
}

#[test]
fn the_proxy_refuses_an_unbatched_backfill_by_explain_and_leaves_no_trace() {
    let cluster = cluster(false);
    let proxy = Proxy::start(&cluster, &[]);
    scenario(&proxy.url("migrator", "postgres"), "proxy");
    warned_once(&proxy.url("watcher", "postgres"), "proxy");
}

/// A client that cancels its statement while it waits for a lock gets the cancel, and
/// its statement does not run: through the proxy the wait may be the proxy's EXPLAIN
/// of it, which the cancel then ends in the statement's place.
fn cancel_while_waiting(cluster: &Cluster, url: &str, path: &str) {
    let mut holder = connect(&cluster.superuser_url());
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    // The lock goes after 3 s whatever happens: a statement the cancel missed then runs
    // (and the assertion below says so) instead of waiting forever.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        holder.batch_execute("COMMIT").unwrap();
    });
    let mut migrator = connect(url);
    let token = migrator.cancel_token();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        token.cancel_query(NoTls).unwrap();
    });
    let error = error_of(migrator.batch_execute("UPDATE t SET c = -1 WHERE id = 1"));
    canceller.join().unwrap();
    assert_eq!(
        error.as_deref().map(|error| &error[..5]),
        Some("57014"),
        "{path}: {error:?}"
    );
    releaser.join().unwrap();
    let c: i32 = migrator.query_one("SELECT c FROM t WHERE id = 1", &[]).unwrap().get(0);
    assert_ne!(c, -1, "{path}: the cancelled statement ran");
}

#[test]
fn a_cancel_during_the_wait_for_a_lock_cancels_the_statement() {
    let cluster = cluster(true);
    cancel_while_waiting(&cluster, &cluster.url("migrator", "postgres"), "extension");
    let plain = self::cluster(false);
    let proxy = Proxy::start(&plain, &[]);
    cancel_while_waiting(&plain, &proxy.url("migrator", "postgres"), "proxy");
}
