//! The extension in a real PostgreSQL 15 cluster: guarded roles are stopped with the
//! rule's error, unguarded roles are untouched, other errors keep every field, the
//! lock_timeout cap holds whatever the session did, and the policy cannot be weakened
//! from the guarded role's side.

use std::thread;
use std::time::{Duration, Instant};

use e2e::{Cluster, ClusterOptions};
use postgres::{Client, NoTls};

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// A cluster with the extension, a guarded `migrator` owning table `t`, and an
/// unguarded `app` role.
fn guarded_cluster() -> Cluster {
    let cluster = Cluster::start();
    cluster.create_role(
        "migrator",
        &[("mode", "enforce"), ("lock_timeout", "1s"), ("lock_retries", "0")],
    );
    cluster.create_role("app", &[]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE TABLE t (id int PRIMARY KEY, c int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g; \
         ALTER TABLE t OWNER TO migrator; GRANT ALL ON t TO app;",
    );
    cluster
}

#[test]
fn create_index_on_existing_table_is_refused_with_rule_lock_and_safe_sql() {
    let cluster = guarded_cluster();
    let mut migrator = connect(&cluster.url("migrator", "postgres"));
    let err = migrator.batch_execute("CREATE INDEX i ON t (c)").unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "SM001");
    assert_eq!(
        db.message(),
        "create_index_non_concurrently: CREATE INDEX i on t without CONCURRENTLY blocks writes while the index builds"
    );
    assert!(
        db.detail().unwrap().contains("SHARE on t, blocks writes"),
        "{:?}",
        db.detail()
    );
    assert!(
        db.hint().unwrap().contains("CREATE INDEX CONCURRENTLY i ON t (c);"),
        "{:?}",
        db.hint()
    );
    // The hint's last line names the rule's page in the rule reference.
    assert!(
        db.hint()
            .unwrap()
            .ends_with("\nRule reference: docs/rules/create_index_non_concurrently.md"),
        "{:?}",
        db.hint()
    );
    // The safe form runs, and the refused one left nothing behind.
    migrator.batch_execute("CREATE INDEX CONCURRENTLY i ON t (c)").unwrap();
    let indexes: i64 = migrator
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 't' AND indexname = 'i'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(indexes, 1);
}

#[test]
fn warn_mode_reports_and_runs() {
    let cluster = guarded_cluster();
    cluster.execute(
        &cluster.superuser_url(),
        "ALTER ROLE migrator SET safe_migrations.mode = 'warn'",
    );
    let output = cluster.psql(&cluster.url("migrator", "postgres"), "CREATE INDEX i ON t (c)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WARNING:  create_index_non_concurrently: CREATE INDEX i on t without CONCURRENTLY"),
        "{stderr}"
    );
}

#[test]
fn unguarded_roles_are_untouched() {
    let cluster = guarded_cluster();
    cluster.execute(&cluster.superuser_url(), "CREATE INDEX i ON t (c)");
    let output = cluster.psql(&cluster.url("postgres", "postgres"), "DROP INDEX i");
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every field of an error raised beneath the hook, as a client sees it.
fn unique_violation_fields(cluster: &Cluster, user: &str) -> Vec<Option<String>> {
    cluster.execute(
        &cluster.superuser_url(),
        "DROP TABLE IF EXISTS u; CREATE TABLE u (k int CONSTRAINT u_k_key UNIQUE); GRANT ALL ON u TO PUBLIC;",
    );
    let mut client = connect(&cluster.url(user, "postgres"));
    let err = client
        .batch_execute("DO $$ BEGIN INSERT INTO u VALUES (1); INSERT INTO u VALUES (1); END $$")
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    vec![
        Some(db.severity().to_string()),
        Some(db.code().code().to_string()),
        Some(db.message().to_string()),
        db.detail().map(str::to_owned),
        db.hint().map(str::to_owned),
        db.where_().map(str::to_owned),
        db.schema().map(str::to_owned),
        db.table().map(str::to_owned),
        db.column().map(str::to_owned),
        db.constraint().map(str::to_owned),
        db.routine().map(str::to_owned),
    ]
}

#[test]
fn errors_beneath_the_hook_keep_every_field() {
    let plain = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    plain.create_role("migrator", &[]);
    let guarded = guarded_cluster();
    let expected = unique_violation_fields(&plain, "migrator");
    assert_eq!(
        expected[5].as_deref().map(|c| c.contains("PL/pgSQL")),
        Some(true),
        "{expected:?}"
    );
    assert_eq!(expected[9].as_deref(), Some("u_k_key"));
    assert_eq!(unique_violation_fields(&guarded, "migrator"), expected);
    assert_eq!(unique_violation_fields(&guarded, "app"), expected);
}

/// Holds ACCESS SHARE on `t` in an open transaction until dropped.
struct Blocker {
    client: Client,
}

impl Blocker {
    fn hold(cluster: &Cluster) -> Blocker {
        let mut client = connect(&cluster.superuser_url());
        client
            .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE;")
            .unwrap();
        Blocker { client }
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }
}

fn add_column_fails_fast(cluster: &Cluster, weaken: &str) {
    let _blocker = Blocker::hold(cluster);
    let mut migrator = connect(&cluster.url("migrator", "postgres"));
    migrator.batch_execute(weaken).unwrap();
    let started = Instant::now();
    let err = migrator.batch_execute("ALTER TABLE t ADD COLUMN x int").unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code().map(|c| c.code()), Some("55P03"), "after {weaken:?}: {err}");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "after {weaken:?}, waited {waited:?} with a 1s cap"
    );
}

#[test]
fn lock_timeout_cap_holds_after_set_to_zero() {
    let cluster = guarded_cluster();
    add_column_fails_fast(&cluster, "SET lock_timeout = 0");
}

#[test]
fn lock_timeout_cap_holds_after_set_config() {
    let cluster = guarded_cluster();
    add_column_fails_fast(&cluster, "SELECT set_config('lock_timeout', '0', false)");
}

#[test]
fn lock_timeout_cap_holds_inside_a_transaction_after_set_local() {
    let cluster = guarded_cluster();
    add_column_fails_fast(&cluster, "BEGIN; SET LOCAL lock_timeout = '1h'");
}

#[test]
fn unguarded_role_waits_for_its_lock_as_before() {
    let cluster = guarded_cluster();
    let blocker = Blocker::hold(&cluster);
    let url = cluster.url("postgres", "postgres");
    let started = Instant::now();
    let waiter = thread::spawn(move || {
        let mut client = connect(&url);
        client.batch_execute("ALTER TABLE t ADD COLUMN y int").unwrap();
        started.elapsed()
    });
    thread::sleep(Duration::from_millis(2500));
    assert!(!waiter.is_finished(), "the unguarded ALTER should still be waiting");
    drop(blocker);
    let waited = waiter.join().unwrap();
    assert!(waited >= Duration::from_millis(2500), "{waited:?}");
}

#[test]
fn guarded_role_cannot_turn_the_guard_off_at_startup() {
    let cluster = guarded_cluster();
    let url = format!(
        "{}?options=-c%20safe_migrations.mode%3Doff",
        cluster.url("migrator", "postgres")
    );
    let err = Client::connect(&url, NoTls)
        .err()
        .expect("startup option must be refused");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
}

#[test]
fn guarded_role_cannot_weaken_its_policy_with_set_or_alter() {
    let cluster = guarded_cluster();
    cluster.execute(&cluster.superuser_url(), "CREATE DATABASE mdb OWNER migrator");
    let mut migrator = connect(&cluster.url("migrator", "postgres"));
    for attempt in [
        "SET safe_migrations.mode = 'off'",
        "SET LOCAL safe_migrations.mode = 'off'",
        "SELECT set_config('safe_migrations.mode', 'off', false)",
        "SET safe_migrations.lock_timeout = 0",
        "SET safe_migrations.allow = 'create_index_non_concurrently'",
        "ALTER ROLE migrator SET safe_migrations.mode = 'off'",
        "ALTER DATABASE mdb SET safe_migrations.mode = 'off'",
    ] {
        let err = migrator.batch_execute(attempt).unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{attempt}: {err}");
    }
    migrator.batch_execute("RESET ALL").unwrap();
    migrator.batch_execute("DISCARD ALL").unwrap();
    let mode: String = migrator.query_one("SHOW safe_migrations.mode", &[]).unwrap().get(0);
    assert_eq!(mode, "enforce");
    let err = migrator.batch_execute("CREATE INDEX i ON t (c)").unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("SM001"));
}

#[test]
fn bad_setting_values_are_refused_with_the_accepted_values() {
    let cluster = guarded_cluster();
    let output = cluster.psql(
        &cluster.superuser_url(),
        "ALTER ROLE app SET safe_migrations.mode = 'strict'",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("safe_migrations.mode"), "{stderr}");
    assert!(
        stderr.contains("off") && stderr.contains("warn") && stderr.contains("enforce"),
        "{stderr}"
    );
    let output = cluster.psql(
        &cluster.superuser_url(),
        "ALTER ROLE app SET safe_migrations.allow = 'no_such_rule'",
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no_such_rule"));
}
