//! Rule lock_held_too_long end to end, through both live paths: a guarded transaction that
//! holds a lock blocking reads and writes of an existing table past
//! safe_migrations.max_lock_hold is ended (its running statement cancelled, or its idle
//! session terminated) within the budget and a margin, with a message naming the rule,
//! the table, the lock and the time, and other sessions' queries on the table resume.

use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{connect, Cluster, ClusterOptions, Proxy};
use postgres::NoTls;

/// The budget the tests give the guarded role, and the margin they allow past it.
const BUDGET: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(1500);

fn cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("max_lock_hold", "1s")]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10); \
         ALTER TABLE t OWNER TO migrator; CREATE ROLE app LOGIN PASSWORD 'app'; GRANT SELECT ON t TO app; \
         CREATE TABLE u (id int); ALTER TABLE u OWNER TO migrator;",
    );
    cluster.create_role("watcher", &[("mode", "warn"), ("max_lock_hold", "1s")]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE w (id int); ALTER TABLE w OWNER TO watcher;",
    );
    cluster
}

/// Warn mode: the transaction goes on; the first statement it sends once the budget has
/// run out gets the report as a warning, once.
fn warned(url: &str, path: &str) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    let mut config: postgres::Config = url.parse().unwrap();
    config.notice_callback(move |notice| {
        sink.lock()
            .unwrap()
            .push(format!("{} {}", notice.code().code(), notice.message()))
    });
    let mut watcher = config.connect(NoTls).unwrap();
    watcher.batch_execute("BEGIN; ALTER TABLE w ADD COLUMN v int").unwrap();
    watcher.batch_execute("SELECT 1").unwrap();
    assert_eq!(
        *notices.lock().unwrap(),
        Vec::<String>::new(),
        "{path}: within the budget"
    );
    thread::sleep(BUDGET + Duration::from_millis(300));
    watcher.batch_execute("SELECT 1").unwrap();
    watcher.batch_execute("COMMIT").unwrap();
    assert_eq!(
        *notices.lock().unwrap(),
        [
            "SM001 lock_held_too_long: this transaction held ACCESS EXCLUSIVE on w for 1s \
          (safe_migrations.max_lock_hold), since `ALTER TABLE w ADD COLUMN v int`: in enforce mode it would be ended"
        ],
        "{path}"
    );
    // The next transaction's budget is its own; COMMIT is the latest a warning comes.
    notices.lock().unwrap().clear();
    watcher.batch_execute("BEGIN; ALTER TABLE w ADD COLUMN x int").unwrap();
    thread::sleep(BUDGET + Duration::from_millis(300));
    watcher.batch_execute("COMMIT").unwrap();
    assert_eq!(
        notices.lock().unwrap().len(),
        1,
        "{path}: {:?}",
        notices.lock().unwrap()
    );
}

/// `SELECT count(*) FROM t` from another session, started now: how long it waited.
fn reader(url: String) -> mpsc::Receiver<Duration> {
    let (done, waited) = mpsc::channel();
    thread::spawn(move || {
        let mut app = connect(&url);
        let start = Instant::now();
        let count: i64 = app.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(count, 10);
        let _ = done.send(start.elapsed());
    });
    waited
}

fn expect_ended(error: postgres::Error, code: &str, ending: &str, path: &str) {
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{path}: not the server's report: {error}"));
    assert_eq!(db.code().code(), code, "{path}: {db:?}");
    assert_eq!(
        db.message(),
        format!(
            "lock_held_too_long: this transaction held ACCESS EXCLUSIVE on t for 1s (safe_migrations.max_lock_hold), \
             since `ALTER TABLE t ADD COLUMN v int`: {ending}"
        ),
        "{path}"
    );
}

fn scenario(url: &str, app_url: &str, superuser_url: &str, path: &str) {
    // A running statement under the lock is cancelled; the reader queued behind the lock
    // resumes.
    let mut migrator = connect(url);
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN v int").unwrap();
    let start = Instant::now();
    let waited = reader(app_url.to_string());
    let error = migrator
        .batch_execute("SELECT pg_sleep(30)")
        .expect_err("the sleep under the lock ran to its end");
    let elapsed = start.elapsed();
    expect_ended(error, "57014", "its running statement is cancelled", path);
    assert!(elapsed < BUDGET + MARGIN, "{path}: cancelled after {elapsed:?}");
    let waited = waited.recv_timeout(MARGIN).expect("the reader did not resume");
    assert!(waited < BUDGET + MARGIN, "{path}: the reader waited {waited:?}");
    migrator.batch_execute("ROLLBACK").unwrap();
    // The column went with the transaction.
    let columns: i64 = migrator
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'v' AND NOT attisdropped",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(columns, 0, "{path}");

    // A session idle in its transaction under the lock is terminated.
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN v int").unwrap();
    let start = Instant::now();
    let waited = reader(app_url.to_string());
    let waited = waited.recv_timeout(BUDGET + MARGIN).expect("the reader did not resume");
    assert!(
        waited < BUDGET + MARGIN,
        "{path}: the reader waited {waited:?} ({:?})",
        start.elapsed()
    );
    let error = migrator
        .batch_execute("SELECT 1")
        .expect_err("the idle transaction outlived the budget");
    assert!(migrator.is_closed(), "{path}: the session is still open");
    expect_ended(error, "57P01", "its session is terminated", path);

    // A lock taken after a savepoint is released by ROLLBACK TO: it no longer counts.
    let mut migrator = connect(url);
    migrator
        .batch_execute("BEGIN; SAVEPOINT s; ALTER TABLE t ADD COLUMN v int; ROLLBACK TO SAVEPOINT s")
        .unwrap();
    migrator
        .batch_execute("SELECT pg_sleep(2.5)")
        .unwrap_or_else(|err| panic!("{path}: ended after its lock was released: {err}"));
    migrator.batch_execute("COMMIT").unwrap();
    // So is one taken in a PL/pgSQL block whose error was caught (a subtransaction
    // rolled back): the extension follows the subtransaction; the proxy, which cannot see
    // inside the block's run, asks the server which locks the session still holds before
    // it counts them. Idle past the budget, and then running past it.
    let caught = "BEGIN; DO $$ BEGIN BEGIN ALTER TABLE t ADD COLUMN v int; RAISE EXCEPTION 'undo'; \
                  EXCEPTION WHEN raise_exception THEN NULL; END; END $$";
    migrator.batch_execute(caught).unwrap();
    migrator
        .batch_execute("SELECT pg_sleep(2.5)")
        .unwrap_or_else(|err| panic!("{path}: ended after its lock was released: {err}"));
    migrator.batch_execute("COMMIT").unwrap();
    migrator.batch_execute(caught).unwrap();
    thread::sleep(BUDGET + MARGIN);
    migrator
        .batch_execute("SELECT 1")
        .unwrap_or_else(|err| panic!("{path}: ended after its lock was released: {err}"));
    migrator.batch_execute("COMMIT").unwrap();
    // A lock the routine's rolled-back subtransaction strengthened stays held as it was
    // before (SHARE here), and counted.
    migrator
        .batch_execute(
            "BEGIN; LOCK TABLE t IN SHARE MODE; DO $$ BEGIN BEGIN ALTER TABLE t ADD COLUMN v int; \
             RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END; END $$",
        )
        .unwrap();
    let error = migrator
        .batch_execute("SELECT pg_sleep(30)")
        .expect_err("the sleep under the lock ran to its end");
    let db = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
    assert_eq!(db.code().code(), "57014", "{path}: {db:?}");
    assert!(
        db.message()
            .starts_with("lock_held_too_long: this transaction held SHARE on t "),
        "{path}: {db:?}"
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // A lock the block kept is still counted.
    migrator
        .batch_execute(
            "BEGIN; DO $$ BEGIN ALTER TABLE t ADD COLUMN v int; BEGIN ALTER TABLE t ADD COLUMN x int; \
             RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END; END $$",
        )
        .unwrap();
    let error = migrator
        .batch_execute("SELECT pg_sleep(30)")
        .expect_err("the sleep under the lock ran to its end");
    let db = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
    assert_eq!(db.code().code(), "57014", "{path}: {db:?}");
    assert!(db.message().starts_with("lock_held_too_long: "), "{path}: {db:?}");
    migrator.batch_execute("ROLLBACK").unwrap();

    // A statement that waits for another session's lock is cancelled at the end of the
    // budget too (the proxy's own question about it, the planner's estimate, is what
    // waits there).
    let (release, released) = mpsc::channel::<()>();
    let (locked, is_locked) = mpsc::channel::<()>();
    let superuser_url = superuser_url.to_string();
    let blocker = thread::spawn(move || {
        let mut blocker = connect(&superuser_url);
        blocker
            .batch_execute("BEGIN; LOCK TABLE u IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        locked.send(()).unwrap();
        let _ = released.recv_timeout(Duration::from_secs(10));
        blocker.batch_execute("ROLLBACK").unwrap();
    });
    is_locked.recv().unwrap();
    let mut migrator = connect(url);
    migrator.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN v int").unwrap();
    let start = Instant::now();
    let error = migrator
        .batch_execute("UPDATE u SET id = 1")
        .expect_err("the update ran under the lock");
    let elapsed = start.elapsed();
    expect_ended(error, "57014", "its running statement is cancelled", path);
    assert!(elapsed < BUDGET + MARGIN, "{path}: cancelled after {elapsed:?}");
    // The cancel failed the block, which released its lock (as on the server alone,
    // where the cancelled statement aborts the transaction), before any ROLLBACK.
    let waited = reader(app_url.to_string())
        .recv_timeout(MARGIN)
        .unwrap_or_else(|_| panic!("{path}: the failed block still holds its lock"));
    assert!(waited < MARGIN, "{path}: the reader waited {waited:?}");
    let _ = release.send(());
    blocker.join().unwrap();
    migrator.batch_execute("ROLLBACK").unwrap();

    // Within the budget, a transaction commits as usual.
    let mut migrator = connect(url);
    migrator
        .batch_execute("BEGIN; ALTER TABLE t ADD COLUMN w int; COMMIT")
        .unwrap();
    thread::sleep(BUDGET + MARGIN);
    migrator.batch_execute("SELECT 1").unwrap();
}

#[test]
fn the_extension_ends_a_transaction_that_holds_the_lock_too_long() {
    let cluster = cluster(true);
    scenario(
        &cluster.url("migrator", "postgres"),
        &cluster.url("app", "postgres"),
        &cluster.superuser_url(),
        "extension",
    );
    warned(&cluster.url("watcher", "postgres"), "extension");
}

#[test]
fn the_proxy_ends_a_transaction_that_holds_the_lock_too_long() {
    let cluster = cluster(false);
    let proxy = Proxy::start(&cluster, &[]);
    scenario(
        &proxy.url("migrator", "postgres"),
        &cluster.url("app", "postgres"),
        &cluster.superuser_url(),
        "proxy",
    );
    warned(&proxy.url("watcher", "postgres"), "proxy");
}
