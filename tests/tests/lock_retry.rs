//! Rule lock_timeout's retries end to end: a guarded statement whose lock wait reaches
//! the cap leaves the queue at once and is tried again after a pause, so the traffic
//! behind it is never stalled longer than the cap, and the migration completes once the
//! transaction in its way leaves a gap; when every attempt gives up, the error names the
//! sessions in the way; a transaction that already holds a lock blocking traffic is not
//! retried (every pause would keep that lock); a cancel during a pause ends the retries.
//! Through the extension and through the proxy, by simple Query and by the extended
//! protocol (Parse/Bind/Execute/Sync), outside and inside a transaction block.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{connect, Cluster, ClusterOptions, Proxy, SUPERUSER};
use postgres::{Client, NoTls};

/// The guarded role's cap, and the margin allowed past it for a reader's stall.
const CAP: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(400);

fn cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        ..ClusterOptions::default()
    });
    cluster.create_role(
        "migrator",
        &[
            ("mode", "enforce"),
            ("lock_timeout", "500ms"),
            ("lock_retries", "3"),
            ("lock_retry_delay", "200ms"),
            ("max_lock_hold", "0"),
        ],
    );
    // Sees every session's state and statement (pg_read_all_stats); migrator does not.
    cluster.create_role(
        "observer",
        &[
            ("mode", "enforce"),
            ("lock_timeout", "500ms"),
            ("lock_retries", "3"),
            ("lock_retry_delay", "200ms"),
            ("max_lock_hold", "0"),
        ],
    );
    // Pauses long enough for a cancel to land in one.
    cluster.create_role(
        "patient",
        &[
            ("mode", "enforce"),
            ("lock_timeout", "500ms"),
            ("lock_retries", "3"),
            ("lock_retry_delay", "10s"),
            ("max_lock_hold", "0"),
        ],
    );
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO migrator; \
         CREATE TABLE u (id int); ALTER TABLE u OWNER TO migrator; \
         CREATE ROLE app LOGIN PASSWORD 'app'; GRANT SELECT ON t TO app; \
         GRANT migrator TO patient; GRANT migrator TO observer; GRANT pg_read_all_stats TO observer;",
    );
    cluster
}

/// Another session holds ACCESS SHARE on t (an open transaction that read it) for `hold`:
/// reads go on beside it, an ALTER TABLE waits for it. Its backend's pid.
fn hold_t(url: &str, hold: Duration) -> (i32, thread::JoinHandle<()>) {
    let url = url.to_string();
    let (started, pid) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut blocker = connect(&url);
        blocker
            .batch_execute("SET application_name = 'nightly-report'; BEGIN")
            .unwrap();
        let own: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        blocker.query_one("SELECT count(*) FROM t", &[]).unwrap();
        started.send(own).unwrap();
        thread::sleep(hold);
        blocker.batch_execute("COMMIT").unwrap();
    });
    (pid.recv().unwrap(), handle)
}

/// Reads t every 20 ms until stopped: the longest any read waited.
fn reader(url: &str) -> (Arc<AtomicBool>, thread::JoinHandle<Duration>) {
    let url = url.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let mut app = connect(&url);
        let mut worst = Duration::ZERO;
        while !stopped.load(Ordering::Relaxed) {
            let start = Instant::now();
            app.query_one("SELECT count(*) FROM t", &[]).unwrap();
            worst = worst.max(start.elapsed());
            thread::sleep(Duration::from_millis(20));
        }
        worst
    });
    (stop, handle)
}

fn added(client: &mut Client, column: &str) -> bool {
    client
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = $1",
            &[&column],
        )
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

/// The error of a statement that gave up after every attempt, checked: its DETAIL names
/// the session in the way (a superuser's, holding ACCESS SHARE on t idle in its
/// transaction) with the fields the guarded role may see of it.
fn assert_gave_up(error: &postgres::Error, blocker_pid: i32, path: &str) {
    assert_gave_up_seeing(error, blocker_pid, Sees::Limited, path)
}

/// What a role may see of another role's session in pg_stat_activity.
#[derive(PartialEq)]
enum Sees {
    /// Without pg_read_all_stats: its pid, role and application; its statement is
    /// `<insufficient privilege>`, its state and times are not shown.
    Limited,
    /// With pg_read_all_stats: its state, how long its transaction and statement ran, and
    /// the statement.
    All,
}

fn assert_gave_up_seeing(error: &postgres::Error, blocker_pid: i32, sees: Sees, path: &str) {
    let db = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
    assert_eq!(db.code().code(), "55P03", "{path}: {db:?}");
    assert!(
        db.message()
            .starts_with("lock_timeout: gave up waiting for ACCESS EXCLUSIVE on t after 4 attempts over "),
        "{path}: {db:?}"
    );
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains(&format!("pid {blocker_pid} (")) && detail.contains("application nightly-report"),
        "{path}: {detail}"
    );
    assert!(detail.contains("AccessShareLock"), "{path}: {detail}");
    let session = format!("pid {blocker_pid} (role {SUPERUSER}, application nightly-report, ");
    let seen = match sees {
        Sees::Limited => format!("{session}statement \"<insufficient privilege>\"): AccessShareLock"),
        Sees::All => format!("{session}idle in transaction, transaction "),
    };
    assert!(detail.contains(&seen), "{path}: {seen:?} not in {detail}");
    if sees == Sees::All {
        assert!(
            detail.contains("s: \"SELECT count(*) FROM t\"): AccessShareLock"),
            "{path}: {detail}"
        );
    }
    assert!(
        db.hint().unwrap_or_default().contains("safe_migrations.lock_retries"),
        "{path}: {db:?}"
    );
    assert!(
        db.hint()
            .unwrap_or_default()
            .ends_with("\nRule reference: docs/rules/lock_timeout.md"),
        "{path}: {db:?}"
    );
}

/// The error of a statement not retried because its transaction holds a lock: `holds`
/// in its message, and it gave up after one attempt (`took`).
fn assert_not_retried(error: &postgres::Error, holds: &str, took: Duration, path: &str) {
    let db = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
    assert!(db.message().contains(holds), "{path}: {db:?}");
    assert!(
        db.hint()
            .unwrap_or_default()
            .ends_with("\nRule reference: docs/rules/lock_timeout.md"),
        "{path}: {db:?}"
    );
    assert!(took < CAP + MARGIN, "{path}: it was retried ({took:?})");
}

/// The client's transaction block failed (25P02 for the next statement), as by the
/// server alone; rolled back.
fn assert_block_failed(client: &mut Client, path: &str) {
    let aborted = client.batch_execute("SELECT 1").expect_err("the block went on");
    assert_eq!(
        aborted.as_db_error().map(|db| db.code().code()),
        Some("25P02"),
        "{path}: {aborted}"
    );
    client.batch_execute("ROLLBACK").unwrap();
}

fn scenario(url: &str, observer_url: &str, app_url: &str, superuser_url: &str, path: &str) {
    let mut migrator = connect(url);

    // Blocked for about three attempts: retried, and it succeeds; the client sees one
    // success, and no read waited longer than the cap.
    let (stop, worst) = reader(app_url);
    let (_, blocker) = hold_t(superuser_url, Duration::from_millis(1_300));
    let start = Instant::now();
    migrator
        .batch_execute("ALTER TABLE t ADD COLUMN v int")
        .unwrap_or_else(|err| panic!("{path}: not retried until the blocker was gone: {err}"));
    let took = start.elapsed();
    blocker.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let worst = worst.join().unwrap();
    assert!(
        took >= Duration::from_millis(1_000),
        "{path}: it did not wait for the blocker ({took:?})"
    );
    assert!(worst < CAP + MARGIN, "{path}: a read waited {worst:?}");

    // Blocked for longer than every attempt: the error names the rule, the lock, the
    // attempts, and the session in the way; the reads still never waited past the cap.
    // The same by the extended protocol, and inside a transaction block (by statements
    // sent one at a time, then in one string).
    let (_, blocker) = hold_t(superuser_url, Duration::from_millis(1_300));
    let start = Instant::now();
    migrator
        .execute("ALTER TABLE t ADD COLUMN e int", &[])
        .unwrap_or_else(|err| panic!("{path}: extended: not retried until the blocker was gone: {err}"));
    assert!(start.elapsed() >= Duration::from_millis(1_000), "{path}: extended");
    blocker.join().unwrap();
    assert!(added(&mut migrator, "e"), "{path}: extended");
    for extended in [false, true] {
        let (_, blocker) = hold_t(superuser_url, Duration::from_millis(1_300));
        let fresh = if extended { "fresh_e" } else { "fresh_q" };
        migrator
            .batch_execute(&format!("BEGIN; CREATE TABLE {fresh} (id int)"))
            .unwrap();
        let start = Instant::now();
        let ran = if extended {
            migrator.execute("ALTER TABLE t ADD COLUMN be int", &[]).map(|_| ())
        } else {
            migrator.batch_execute("ALTER TABLE t ADD COLUMN bq int")
        };
        ran.unwrap_or_else(|err| panic!("{path}: in a block (extended: {extended}): not retried: {err}"));
        assert!(start.elapsed() >= Duration::from_millis(1_000), "{path}: in a block");
        // The block goes on, with what it did before the retries.
        migrator
            .batch_execute(&format!("INSERT INTO {fresh} VALUES (1); COMMIT"))
            .unwrap();
        blocker.join().unwrap();
    }
    assert!(added(&mut migrator, "be") && added(&mut migrator, "bq"), "{path}");

    // In a string of several statements: one that opens a block, one that is its own
    // implicit transaction (the extension retries the statement in place, the proxy the
    // string, whose statements before it a rollback undid).
    let (_, blocker) = hold_t(superuser_url, Duration::from_millis(1_300));
    migrator
        .batch_execute("BEGIN; CREATE TABLE fresh_b (id int); ALTER TABLE t ADD COLUMN z int")
        .unwrap_or_else(|err| panic!("{path}: not retried in the string's block: {err}"));
    migrator.batch_execute("SELECT 1; COMMIT").unwrap();
    blocker.join().unwrap();
    let (_, blocker) = hold_t(superuser_url, Duration::from_millis(1_300));
    migrator
        .batch_execute("CREATE TABLE fresh_m (id int); ALTER TABLE t ADD COLUMN m int; CREATE INDEX ON fresh_m (id)")
        .unwrap_or_else(|err| panic!("{path}: not retried in the string: {err}"));
    blocker.join().unwrap();
    assert!(added(&mut migrator, "z") && added(&mut migrator, "m"), "{path}");
    // A string that ends the client's block and opens another runs as the server runs it
    // (the proxy puts no savepoint around it), and the new block goes on.
    migrator.batch_execute("BEGIN").unwrap();
    migrator
        .batch_execute("ALTER TABLE t ADD COLUMN k int; COMMIT; BEGIN")
        .unwrap();
    migrator.batch_execute("SELECT 1; COMMIT").unwrap();
    assert!(added(&mut migrator, "k"), "{path}");
    // The statements before the one retried ran once in the end.
    let indexes: i64 = migrator
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'fresh_m'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(indexes, 1, "{path}");

    // Blocked for longer than every attempt: the error names the rule, the lock, the
    // attempts, and the session in the way; the reads still never waited past the cap.
    let (stop, worst) = reader(app_url);
    let (blocker_pid, blocker) = hold_t(superuser_url, Duration::from_secs(20));
    let error = migrator
        .batch_execute("ALTER TABLE t ADD COLUMN w int")
        .expect_err("the ALTER ran while the blocker held its lock");
    stop.store(true, Ordering::Relaxed);
    let worst = worst.join().unwrap();
    assert_gave_up(&error, blocker_pid, path);
    assert!(worst < CAP + MARGIN, "{path}: a read waited {worst:?}");
    // A role with pg_read_all_stats sees what the blocker is doing, and since when.
    let error = connect(observer_url)
        .batch_execute("ALTER TABLE t ADD COLUMN w int")
        .expect_err("the ALTER ran while the blocker held its lock");
    assert_gave_up_seeing(&error, blocker_pid, Sees::All, &format!("{path}: observer"));
    // By the extended protocol, in a block: the block is failed, as by the server alone.
    migrator.batch_execute("BEGIN").unwrap();
    let error = migrator
        .execute("ALTER TABLE t ADD COLUMN w int", &[])
        .expect_err("the ALTER ran while the blocker held its lock");
    assert_gave_up(&error, blocker_pid, &format!("{path}: extended in a block"));
    assert_block_failed(&mut migrator, path);

    // A transaction that holds a lock blocking traffic is not retried: it fails after
    // one attempt, naming the lock it holds.
    migrator.batch_execute("BEGIN; ALTER TABLE u ADD COLUMN x int").unwrap();
    let start = Instant::now();
    let error = migrator
        .batch_execute("ALTER TABLE t ADD COLUMN w int")
        .expect_err("the ALTER ran while the blocker held its lock");
    assert_not_retried(
        &error,
        "and is not retried: this transaction holds ACCESS EXCLUSIVE on u, taken by `ALTER TABLE u ADD COLUMN x int`",
        start.elapsed(),
        path,
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // A lock on the statement's own table too: a pause would keep t's writers out. The
    // statement prepared before the lock was taken is decided for the lock held when it
    // runs.
    let prepared = migrator.prepare("ALTER TABLE t ADD COLUMN w int").unwrap();
    migrator.batch_execute("BEGIN; LOCK TABLE t IN SHARE MODE").unwrap();
    let start = Instant::now();
    let error = migrator
        .execute(&prepared, &[])
        .expect_err("the ALTER ran while the blocker held its lock");
    assert_not_retried(
        &error,
        "and is not retried: this transaction holds SHARE on t, taken by `LOCK TABLE t IN SHARE MODE`",
        start.elapsed(),
        path,
    );
    migrator.batch_execute("ROLLBACK").unwrap();
    // A string whose earlier statement locked u: the extension retries in place, where
    // the transaction still holds u, so it fails at once; the proxy undoes the string,
    // which releases u, and sends it again whole until the blocker is gone (it is still
    // there: the error names it).
    let start = Instant::now();
    let error = migrator
        .batch_execute("ALTER TABLE u ADD COLUMN s int; ALTER TABLE t ADD COLUMN s int")
        .expect_err("the ALTER ran while the blocker held its lock");
    let took = start.elapsed();
    if path == "proxy" {
        assert_gave_up(&error, blocker_pid, "proxy: a string holding u");
    } else {
        assert_not_retried(&error, "this transaction holds ACCESS EXCLUSIVE on u", took, path);
    }
    blocker.join().unwrap();

    assert!(added(&mut migrator, "v"), "{path}");
}

/// A cancel during the pause between two attempts ends the retries at once, with the
/// server's words for a cancel; in a block, the block is failed as by the cancelled
/// statement.
fn cancel_in_a_pause(url: &str, superuser_url: &str, path: &str) {
    let mut patient = connect(url);
    let (_, blocker) = hold_t(superuser_url, Duration::from_secs(4));
    for in_block in [false, true] {
        if in_block {
            patient.batch_execute("BEGIN").unwrap();
        }
        let token = patient.cancel_token();
        let canceller = thread::spawn(move || {
            // The first attempt gives up at 500 ms; the pause after it lasts 5 to 10 s.
            thread::sleep(Duration::from_millis(1_200));
            token.cancel_query(NoTls).unwrap();
            Instant::now()
        });
        let error = patient
            .batch_execute("ALTER TABLE t ADD COLUMN c int")
            .expect_err("the ALTER ran while the blocker held its lock");
        let answered = Instant::now();
        let cancelled_at = canceller.join().unwrap();
        let db = error.as_db_error().unwrap_or_else(|| panic!("{path}: {error}"));
        assert_eq!(db.code().code(), "57014", "{path}: {db:?}");
        assert_eq!(db.message(), "canceling statement due to user request", "{path}");
        assert!(
            answered.duration_since(cancelled_at) < Duration::from_millis(500),
            "{path}: the cancel waited for the pause to end"
        );
        if in_block {
            assert_block_failed(&mut patient, path);
        }
    }
    blocker.join().unwrap();
    assert!(!added(&mut patient, "c"), "{path}");
}

#[test]
fn the_extension_retries_a_statement_whose_lock_wait_gave_up() {
    let cluster = cluster(true);
    scenario(
        &cluster.url("migrator", "postgres"),
        &cluster.url("observer", "postgres"),
        &cluster.url("app", "postgres"),
        &cluster.superuser_url(),
        "extension",
    );
    cancel_in_a_pause(
        &cluster.url("patient", "postgres"),
        &cluster.superuser_url(),
        "extension",
    );
    // Each retry is in the server log, with the lock and the session in the way.
    assert_retries_logged(&cluster.log(), "LOG:  ", "extension");
}

#[test]
fn the_proxy_retries_a_statement_whose_lock_wait_gave_up() {
    let cluster = cluster(false);
    let proxy = Proxy::start(&cluster, &[]);
    scenario(
        &proxy.url("migrator", "postgres"),
        &proxy.url("observer", "postgres"),
        &cluster.url("app", "postgres"),
        &cluster.superuser_url(),
        "proxy",
    );
    cancel_in_a_pause(&proxy.url("patient", "postgres"), &cluster.superuser_url(), "proxy");
    // Each retry is in the proxy's log, with the lock and the session in the way.
    assert_retries_logged(&proxy.log(), "", "proxy");
}

/// Each retry is logged on one line with the table, the lock, the attempt and the session
/// in the way: attempts 1 to 3 of the statement that gave up after the fourth.
fn assert_retries_logged(log: &str, prefix: &str, path: &str) {
    for attempt in 1..=3 {
        let start =
            format!("{prefix}lock_timeout: attempt {attempt} of 4 to take ACCESS EXCLUSIVE on t gave up; retrying in");
        assert!(
            log.lines().any(|line| line.contains(&start)
                && line.contains("Waiting behind: pid ")
                && line.contains("application nightly-report")),
            "{path}: no line with {start:?} and the blocker in\n{log}"
        );
    }
}
