//! The guarded proxy is invisible except where it refuses: psql scripts run directly
//! against a PG15 server and through the proxy (the role in enforce, and in warn) print
//! the same output, errors with all their fields, notices and transaction states
//! included, once the guard's own warnings and acknowledgements are taken out.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use e2e::{Cluster, ClusterOptions, Proxy};
use postgres::{Client, NoTls, SimpleQueryMessage};

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("lock_timeout", "1s")]);
    cluster.create_role("warner", &[("mode", "warn"), ("lock_timeout", "1s")]);
    cluster
}

/// psql's whole output for the script at `script` (echoed, verbose errors, never
/// stopping on one), stdout and stderr in the order psql wrote them.
fn psql_output(url: &str, script: &Path) -> String {
    let out_path = script.with_extension(format!("{}.out", e2e::free_port()));
    let out = File::create(&out_path).unwrap();
    let status = Command::new("psql")
        .env_remove("PGOPTIONS")
        .args([
            "-X",
            "-a",
            "-v",
            "VERBOSITY=verbose",
            "-v",
            "ON_ERROR_STOP=0",
            "-d",
            url,
            "-f",
        ])
        .arg(script)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .status()
        .expect("run psql");
    assert!(status.success(), "psql failed: {status}");
    std::fs::read_to_string(&out_path).unwrap()
}

/// The output without the guard's own messages: its warnings (SQLSTATE SMnnn) and
/// acknowledgements (00000), with their DETAIL, HINT, indented hint lines and the hint's
/// last line naming the rule's page.
fn without_guard_messages(output: &str) -> String {
    let mut kept = Vec::new();
    let mut in_guard_message = false;
    for line in output.lines() {
        if line.contains("WARNING:  SM0") || line.contains("NOTICE:  00000: safe_migrations:") {
            in_guard_message = true;
            continue;
        }
        let continuation = ["DETAIL:  ", "HINT:  ", "    ", "Rule reference: docs/rules/"]
            .iter()
            .any(|prefix| line.starts_with(prefix));
        if in_guard_message && continuation {
            continue;
        }
        in_guard_message = false;
        kept.push(line);
    }
    kept.join("\n")
}

/// Run `script` directly as `role` and through the proxy as the same role, each in a
/// database of its own; the outputs must be equal once the guard's messages are taken
/// out. Returns the proxy's output as the client saw it.
fn assert_transparent(cluster: &Cluster, proxy: &Proxy, role: &str, db: &str, script: &str) -> String {
    let superuser = cluster.superuser_url();
    let path = cluster.dir().join(format!("{db}.sql"));
    std::fs::write(&path, script).unwrap();
    let mut outputs = Vec::new();
    for (way, url) in [("direct", cluster.url(role, "")), ("proxy", proxy.url(role, ""))] {
        // Both databases are named alike so that no output mentions which way it ran.
        let name = format!("{db}_{way}");
        cluster.execute(&superuser, &format!("CREATE DATABASE {name} OWNER {role}"));
        outputs.push(psql_output(&format!("{url}{name}"), &path).replace(&name, db));
    }
    let (direct, through) = (&outputs[0], &outputs[1]);
    assert_eq!(
        direct.lines().collect::<Vec<_>>().join("\n"),
        without_guard_messages(through),
        "direct and through the proxy differ for {role}\n--- direct ---\n{direct}\n--- proxy ---\n{through}"
    );
    outputs.pop().unwrap()
}

/// Errors of the client's own DDL reach it whole, in and out of transactions; DDL in a
/// failed transaction gets its 25P02; the client's lock_timeout is what it set.
const ERRORS_AND_TRANSACTIONS: &str = r#"
CREATE TABLE t (id int PRIMARY KEY, c int);
ALTER TABLE t ADD COLUMN c int;
ALTER TABLE missing ADD COLUMN d int;
ALTER TABLE IF EXISTS missing ADD COLUMN d int;
ALTER TABLE t ADD CONSTRAINT c_positive CHECK (c > 0) NOT VALID;
ALTER TABLE t
  ADD COLUMN e int DEFAULT 'x';
SELECT name, setting, source FROM pg_settings WHERE name = 'lock_timeout';
ALTER TABLE t ADD COLUMNN x int;
ALTER TABLE t ADD CONSTRAINT c_enforced CHECK (c > 0) NOT ENFORCED;
ALTER TABLE t ALTER COLUMN c SET EXPRESSION AS (id * 2);
ALTER TABLE t ADD CONSTRAINT c_not_null NOT NULL c;
ALTER TABLE t ADD CONSTRAINT c_unique UNIQUE (c, id WITHOUT OVERLAPS);
BEGIN;
ALTER TABLE t ADD CONSTRAINT c_enforced CHECK (c > 0) NOT ENFORCED;
ROLLBACK;
BEGIN;
ALTER TABLE t ADD CONSTRAINT c_not_null NOT NULL c;
ROLLBACK;
BEGIN;
ALTER TABLE t
  ADD COLUMNN x int;
ROLLBACK;
BEGIN;
SELECT 1/0;
ALTER TABLE t ADD COLUMN d int;
CREATE INDEX t_c ON t (c);
ALTER TABLE t ADD COLUMNN d int;
ROLLBACK;
BEGIN;
ALTER TABLE t ADD COLUMN d int;
ALTER TABLE t ADD COLUMN d int;
ALTER TABLE t ADD COLUMN f int;
ROLLBACK;
BEGIN;
SAVEPOINT s;
ALTER TABLE t ADD COLUMN d int;
ALTER TABLE t ADD COLUMN d int;
ROLLBACK TO SAVEPOINT s;
ALTER TABLE t ADD COLUMN g int;
SHOW lock_timeout;
COMMIT;
SHOW lock_timeout;
SET lock_timeout = '200ms';
ALTER TABLE t ADD COLUMN h int;
SHOW lock_timeout;
SET lock_timeout = '7s';
ALTER TABLE t ADD COLUMN i int;
SHOW lock_timeout;
BEGIN;
SET LOCAL lock_timeout = '100ms';
ALTER TABLE t ADD COLUMN j int;
SHOW lock_timeout;
ALTER TABLE t ADD COLUMN k int;
COMMIT;
SHOW lock_timeout;
RESET lock_timeout;
BEGIN ISOLATION LEVEL REPEATABLE READ;
ALTER TABLE t ADD COLUMN l int;
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;
ROLLBACK;
SELECT name, setting, source FROM pg_settings WHERE name = 'lock_timeout';
SELECT count(*) AS open_portals FROM pg_cursors;
SELECT count(*) AS proxy_settings FROM pg_settings WHERE name LIKE 'safe_migrations%';
SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
"#;

#[test]
fn errors_notices_and_transaction_states_of_ddl_are_the_servers_own() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    assert_transparent(&cluster, &proxy, "migrator", "errors", ERRORS_AND_TRANSACTIONS);
}

/// Statements that refuse transaction blocks run through the proxy as they do
/// directly (acknowledged where a rule would refuse them); COPY FREEZE after guarded
/// DDL in the same transaction finds no hidden portal; no portal is left open.
const OUTSIDE_TRANSACTION_BLOCKS: &str = r#"
CREATE TABLE p (id int, c int) PARTITION BY RANGE (id);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
CREATE INDEX CONCURRENTLY p1_c ON p1 (c);
CREATE INDEX p_c ON ONLY p (c);
REINDEX /* safe_migrations:allow reindex_non_concurrently -- test */ TABLE p;
REINDEX TABLE CONCURRENTLY p1;
CLUSTER /* safe_migrations:allow rewrite_table -- test */ p1 USING p1_c;
VACUUM p1;
VACUUM /* safe_migrations:allow rewrite_table -- test */ FULL p1;
DROP INDEX CONCURRENTLY p1_c;
CREATE TYPE mood AS ENUM ('sad');
ALTER TYPE mood ADD VALUE 'happy';
BEGIN;
CREATE TABLE f (a int, b int);
ALTER TABLE f ADD COLUMN c int;
CREATE INDEX ON f (a);
SELECT count(*) AS open_portals FROM pg_cursors;
COPY f (a, b) FROM STDIN (FREEZE);
1	2
\.
COMMIT;
BEGIN;
TRUNCATE /* safe_migrations:allow truncate -- test */ f;
COPY f (a, b) FROM STDIN (FREEZE);
3	4
\.
COMMIT;
SELECT a, b FROM f;
CREATE INDEX CONCURRENTLY f_b ON f (b);
SELECT count(*) AS open_portals FROM pg_cursors;
"#;

#[test]
fn statements_that_refuse_transaction_blocks_run_as_they_do_directly() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    let through = assert_transparent(&cluster, &proxy, "migrator", "blocks", OUTSIDE_TRANSACTION_BLOCKS);
    // The acknowledgements were seen, so the guard judged these statements.
    assert!(
        through.contains("safe_migrations: reindex_non_concurrently acknowledged"),
        "{through}"
    );
}

/// In warn mode nothing is refused: what the proxy cannot read (a syntax error, dynamic
/// SQL in a DO block) goes to the server, whose own error, position and all, reaches
/// the client after the guard's warning.
const WARN_MODE: &str = r#"
CREATE TABLE w (id int, c int);
INSERT INTO w VALUES (1, 1);
ALTER TABLE w ADD COLUMNN c int;
SELECT 1 +;
DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN d int', 'w'); END $$;
DO $$ BEGIN EXECUTE 'SELECT 1/0'; END $$;
CREATE INDEX w_c ON w (c);
SET client_min_messages = error;
CREATE INDEX w_c2 ON w (c);
RESET client_min_messages;
BEGIN;
SELECT 1/0;
CREATE INDEX w_c3 ON w (c);
ROLLBACK;
SELECT attname FROM pg_attribute WHERE attrelid = 'w'::regclass AND attnum > 0 ORDER BY attnum;
"#;

#[test]
fn warn_mode_refuses_nothing_and_the_servers_errors_reach_the_client() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    let through = assert_transparent(&cluster, &proxy, "warner", "warn", WARN_MODE);
    assert!(through.contains("WARNING:  SM004: "), "{through}");
    // One warning: none below client_min_messages, none in a failed transaction (where
    // nothing runs), as the server would send the extension's.
    assert_eq!(
        through
            .matches("WARNING:  SM001: create_index_non_concurrently")
            .count(),
        1,
        "{through}"
    );
}

/// The first column of the first row `sql` returns.
fn value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap()
}

fn index_count(client: &mut Client) -> String {
    value(client, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'")
}

/// Syntax of a newer major that a rule would refuse gets the server's syntax error, not
/// a refusal: nothing of it would run. Through the extended protocol too. (Against a
/// PostgreSQL 18 server, whose syntax it is, the rule refuses it.)
#[test]
fn syntax_the_server_does_not_know_gets_the_servers_error_not_a_refusal() {
    let cluster = cluster();
    // A row: on an empty table SET NOT NULL scans nothing and passes.
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (c int); INSERT INTO t VALUES (1)",
    );
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = Client::connect(&proxy.url("migrator", "postgres"), NoTls).unwrap();
    // PostgreSQL 18 syntax (the proxy's grammar is 18's).
    let newer = "ALTER TABLE t ADD CONSTRAINT c_not_null NOT NULL c";
    if e2e::pg_major() >= 18 {
        // A server that reads it would run it: the rule decides, as for SET NOT NULL.
        let err = client.execute(newer, &[]).unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(db.code().code(), "SM001", "{db:?}");
        assert!(db.message().starts_with("set_not_null: "), "{db:?}");
        return;
    }
    let err = client.execute(newer, &[]).unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(db.code().code(), "42601", "{db:?}");
    assert!(db.position().is_some(), "{db:?}");
    // The same with a rule's refusal where the server reads it: still refused.
    let err = client
        .execute("ALTER TABLE t ALTER COLUMN c SET NOT NULL", &[])
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("SM001"), "{err}");
    let mut tx = client.transaction().unwrap();
    let err = tx.execute(newer, &[]).unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("42601"), "{err}");
    let err = tx.execute("SELECT 1", &[]).unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("25P02"), "{err}");
    tx.rollback().unwrap();
    assert_eq!(
        value(
            &mut client,
            "SELECT count(*) || ' ' || bool_or(attnotnull) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c'"
        ),
        "1 false"
    );
}

/// With standard_conforming_strings off, a backslash ends a literal elsewhere for the
/// server than for a standard-strings reading: a statement hidden that way is refused,
/// never run unguarded; with it on, the same text is one harmless literal.
#[test]
fn a_statement_hidden_in_a_literal_by_nonstandard_strings_is_refused() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE t (c int)");
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = Client::connect(&proxy.url("migrator", "postgres"), NoTls).unwrap();
    // Standard strings: one literal, `a\'; CREATE INDEX i ON t (c); -- `. Backslash
    // escapes: a literal, a CREATE INDEX, a comment.
    let hidden = r"SELECT 'a\''; CREATE INDEX i ON t (c); -- '";
    client.simple_query(hidden).unwrap();
    assert_eq!(index_count(&mut client), "0");
    client.simple_query("SET standard_conforming_strings = off").unwrap();
    let err = client.simple_query(hidden).unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(db.code().code(), "SM004", "{db:?}");
    assert!(db.message().contains("standard_conforming_strings"), "{}", db.message());
    assert_eq!(index_count(&mut client), "0");
    // The extended protocol reads the same way.
    let err = client.execute(r"SELECT 'a\'', 'b'", &[]).unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("SM004"), "{err}");
    // Literals that read the same either way pass; escapes in E'' too.
    client.simple_query(r"SELECT E'a\'b', 'plain'").unwrap();
    // Nothing of it is remembered as clean across the setting.
    client.simple_query("SET standard_conforming_strings = on").unwrap();
    client.simple_query(hidden).unwrap();
    client.simple_query("SET standard_conforming_strings = off").unwrap();
    assert!(client.simple_query(hidden).is_err());
    assert_eq!(index_count(&mut client), "0");
}

/// Valid PostgreSQL 15 that the guard has nothing against runs as it does directly:
/// VARIADIC calls in PL/pgSQL, event trigger functions, DROP FUNCTION of several.
const VALID_CODE: &str = r#"
CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT 1';
DROP FUNCTION f(int), g();
CREATE FUNCTION v(VARIADIC a int[]) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN array_length(a, 1); END $$;
DO $$ DECLARE n int; BEGIN n := v(VARIADIC ARRAY[1, 2]); PERFORM v(VARIADIC ARRAY[1]); RAISE NOTICE 'n = %', n; END $$;
SELECT v(VARIADIC ARRAY[1, 2, 3]), v(1, 2);
CREATE FUNCTION w() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN v(VARIADIC ARRAY[4, 5]); END $$;
SELECT w();
CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'event: %', tg_tag; END $$;
DROP FUNCTION et();
CREATE TABLE n (id int);
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := NEW.id + 1; RETURN NEW; END $$;
CREATE TRIGGER n_trg BEFORE INSERT ON n FOR EACH ROW EXECUTE FUNCTION trg();
INSERT INTO n VALUES (1) RETURNING id;
"#;

#[test]
fn valid_code_the_guard_has_nothing_against_runs_as_directly() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    assert_transparent(&cluster, &proxy, "migrator", "valid", VALID_CODE);
}

/// Through the extended protocol (rust-postgres prepares, then binds and executes in a
/// batch of its own), statements that refuse transaction blocks run as they do directly,
/// capped, and the client's lock_timeout and its source are as before.
#[test]
fn extended_protocol_statements_that_refuse_transaction_blocks_run() {
    let cluster = cluster();
    let setup = "CREATE TABLE p (id int, c int) PARTITION BY RANGE (id); \
                 CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10); \
                 CREATE TABLE s (c int); CREATE INDEX p1_c ON p1 (c)";
    cluster.execute(&cluster.url("migrator", "postgres"), setup);
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = Client::connect(&proxy.url("migrator", "postgres"), NoTls).unwrap();
    for sql in [
        "CREATE INDEX CONCURRENTLY s_c ON s (c)",
        "REINDEX TABLE CONCURRENTLY s",
        "REINDEX /* safe_migrations:allow reindex_non_concurrently -- test */ TABLE p",
        "CLUSTER /* safe_migrations:allow rewrite_table -- test */ p1 USING p1_c",
        "VACUUM /* safe_migrations:allow rewrite_table -- test */ FULL p1",
        "VACUUM s",
        "DROP INDEX CONCURRENTLY s_c",
    ] {
        client.execute(sql, &[]).unwrap_or_else(|err| panic!("{sql}: {err:?}"));
    }
    assert_eq!(
        value(
            &mut client,
            "SELECT setting || ' ' || source FROM pg_settings WHERE name = 'lock_timeout'"
        ),
        "0 default"
    );
    client.batch_execute("SET lock_timeout = '250ms'").unwrap();
    client.execute("CREATE INDEX CONCURRENTLY s_c ON s (c)", &[]).unwrap();
    assert_eq!(
        value(
            &mut client,
            "SELECT setting || ' ' || source FROM pg_settings WHERE name = 'lock_timeout'"
        ),
        "250 session"
    );
}
