//! The proxy in front of a real PG15 cluster without the extension (the managed-Postgres
//! case): passthrough for unguarded roles, the guard for guarded ones, and robustness.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{connect, cstrings, Cluster, ClusterOptions, Proxy};
use postgres::{Client, NoTls, SimpleQueryMessage};

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    // The cap alone, without retries (tests/tests/lock_retry.rs has those).
    cluster.create_role(
        "migrator",
        &[("mode", "enforce"), ("lock_timeout", "1s"), ("lock_retries", "0")],
    );
    cluster.create_role("app", &[]);
    cluster
}

fn sqlstate(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|db| db.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {err}"))
}

fn first_value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Ordinary work through the proxy, for a role of each kind.
fn ordinary_work(client: &mut Client, table: &str) {
    client
        .batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY, name text)"))
        .unwrap();
    client
        .execute(&format!("INSERT INTO {table} VALUES ($1, $2)"), &[&1i32, &"one"])
        .unwrap();
    let statement = client
        .prepare(&format!("SELECT name FROM {table} WHERE id = $1"))
        .unwrap();
    let rows = client.query(&statement, &[&1i32]).unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "one");
    let mut tx = client.transaction().unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (2, 'two')"), &[])
        .unwrap();
    tx.rollback().unwrap();
    let mut writer = client.copy_in(&format!("COPY {table} FROM STDIN")).unwrap();
    writer.write_all(b"3\tthree\n4\tfour\n").unwrap();
    writer.finish().unwrap();
    let mut out = String::new();
    client
        .copy_out(&format!("COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT"))
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "1\tone\n3\tthree\n4\tfour\n");
    assert_eq!(first_value(client, &format!("SELECT count(*) FROM {table}")), "3");
    // One shape, different constants (a guarded session decides the shape once).
    for (id, name) in [(1, "one"), (3, "three"), (4, "four")] {
        assert_eq!(
            first_value(client, &format!("SELECT name FROM {table} WHERE id = {id}")),
            name
        );
    }
}

#[test]
fn unguarded_and_guarded_roles_do_ordinary_work_with_psql_and_rust_postgres() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    ordinary_work(&mut connect(&proxy.url("app", "postgres")), "app_t");
    ordinary_work(&mut connect(&proxy.url("migrator", "postgres")), "migrator_t");
    let out = cluster.execute(
        &proxy.url("migrator", "postgres"),
        "BEGIN; CREATE TABLE p (id int); CREATE INDEX ON p (id); COMMIT; SELECT count(*) FROM p",
    );
    assert_eq!(out.trim(), "0");
    let out = cluster.execute(&proxy.url("app", "postgres"), "SELECT current_user");
    assert_eq!(out.trim(), "app");
}

#[test]
fn a_refused_statement_carries_the_rule_fields_and_nothing_of_the_query_runs() {
    let cluster = cluster();
    // A row: an empty table is indexed at once, and the index passes.
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (0)",
    );
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    let err = client
        .batch_execute("INSERT INTO t VALUES (1); CREATE INDEX ON t (id)")
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "SM001");
    assert_eq!(db.severity(), "ERROR");
    assert!(
        db.message().starts_with("create_index_non_concurrently: "),
        "{}",
        db.message()
    );
    assert!(db.detail().unwrap().contains("SHARE on t"), "{:?}", db.detail());
    assert!(db.hint().unwrap().contains("CONCURRENTLY"), "{:?}", db.hint());
    assert!(
        db.hint()
            .unwrap()
            .ends_with("\nRule reference: docs/rules/create_index_non_concurrently.md"),
        "{:?}",
        db.hint()
    );
    assert_eq!(first_value(&mut client, "SELECT count(*) FROM t"), "1");
    // The extended protocol refuses at Parse.
    let err = client.execute("CREATE INDEX ON t (id)", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "SM001");
    client.execute("CREATE INDEX CONCURRENTLY ON t (id)", &[]).unwrap();
    assert_eq!(first_value(&mut client, "SELECT 42"), "42");
}

#[test]
fn inside_begin_a_refusal_aborts_the_transaction_and_rollback_works() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE t (id int)");
    let proxy = Proxy::start(&cluster, &[]);
    // Simple protocol.
    let mut client = connect(&proxy.url("migrator", "postgres"));
    client.batch_execute("BEGIN; INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(
        sqlstate(&client.batch_execute("CREATE INDEX ON t (id)").unwrap_err()),
        "SM001"
    );
    assert_eq!(sqlstate(&client.batch_execute("SELECT 1").unwrap_err()), "25P02");
    // Calls too: the proxy does not ask a failed transaction about functions.
    assert_eq!(
        sqlstate(&client.batch_execute("SELECT count(*) FROM t").unwrap_err()),
        "25P02"
    );
    client.batch_execute("ROLLBACK").unwrap();
    assert_eq!(first_value(&mut client, "SELECT count(*) FROM t"), "0");
    // Extended protocol.
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(
        sqlstate(&tx.execute("CREATE INDEX ON t (id)", &[]).unwrap_err()),
        "SM001"
    );
    assert_eq!(sqlstate(&tx.execute("SELECT 1", &[]).unwrap_err()), "25P02");
    assert_eq!(
        sqlstate(&tx.execute("SELECT count(*) FROM t", &[]).unwrap_err()),
        "25P02"
    );
    tx.rollback().unwrap();
    assert_eq!(first_value(&mut client, "SELECT count(*) FROM t"), "0");
    // psql, the way migration scripts run.
    let output = cluster.psql(
        &proxy.url("migrator", "postgres"),
        "BEGIN; INSERT INTO t VALUES (1); CREATE INDEX ON t (id); COMMIT;",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("create_index_non_concurrently"), "{stderr}");
    assert_eq!(first_value(&mut client, "SELECT count(*) FROM t"), "0");
}

/// Hold ACCESS SHARE on `table` for `seconds` from another session (straight to the server).
fn hold_lock(cluster: &Cluster, table: &str, seconds: u32) -> (std::thread::JoinHandle<()>, Client) {
    let mut locker = connect(&cluster.superuser_url());
    locker
        .batch_execute(&format!("BEGIN; LOCK TABLE {table} IN ACCESS SHARE MODE"))
        .unwrap();
    let url = cluster.superuser_url();
    let observer = connect(&url);
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(seconds.into()));
        locker.batch_execute("COMMIT").unwrap();
    });
    (handle, observer)
}

#[test]
fn guarded_ddl_runs_with_the_lock_timeout_cap_whatever_the_client_set() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE m (id int)");
    let proxy = Proxy::start(&cluster, &[]);
    let (locker, _observer) = hold_lock(&cluster, "m", 25);
    let url = proxy.url("migrator", "postgres");
    let routes: &[(&str, &[&str])] = &[
        (
            "SET then ALTER",
            &["SET lock_timeout = 0", "ALTER TABLE m ADD COLUMN c int"],
        ),
        ("same string", &["SET lock_timeout = 0; ALTER TABLE m ADD COLUMN c int"]),
        (
            "set_config",
            &[
                "SELECT set_config('lock_timeout', '0', false)",
                "ALTER TABLE m ADD COLUMN c int",
            ],
        ),
        ("RESET ALL", &["RESET ALL", "ALTER TABLE m ADD COLUMN c int"]),
        ("DISCARD ALL", &["DISCARD ALL", "ALTER TABLE m ADD COLUMN c int"]),
        (
            "SET LOCAL",
            &["BEGIN", "SET LOCAL lock_timeout = 0", "ALTER TABLE m ADD COLUMN c int"],
        ),
    ];
    for (route, statements) in routes {
        let mut client = connect(&url);
        let started = Instant::now();
        let mut result = Ok(());
        for sql in *statements {
            result = client.batch_execute(sql);
        }
        let err = result.expect_err(route);
        assert_eq!(sqlstate(&err), "55P03", "{route}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{route}: {:?}",
            started.elapsed()
        );
    }
    // Extended protocol, and startup options.
    let mut client = connect(&url);
    client.execute("SET lock_timeout = 0", &[]).unwrap();
    let err = client.execute("ALTER TABLE m ADD COLUMN c int", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    let with_options = format!("{url}?options=-c%20lock_timeout%3D0");
    let mut client = connect(&with_options);
    assert_eq!(first_value(&mut client, "SHOW lock_timeout"), "0");
    let err = client.batch_execute("ALTER TABLE m ADD COLUMN c int").unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    // The client's own setting is back afterwards, and a lower one is kept.
    assert_eq!(first_value(&mut client, "SHOW lock_timeout"), "0");
    client.batch_execute("SET lock_timeout = '200ms'").unwrap();
    let started = Instant::now();
    assert_eq!(
        sqlstate(&client.batch_execute("ALTER TABLE m ADD COLUMN c int").unwrap_err()),
        "55P03"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // An unguarded role waits for the lock.
    let mut app = connect(
        &cluster
            .url("postgres", "postgres")
            .replace(&cluster.port().to_string(), &proxy.port().to_string()),
    );
    let started = Instant::now();
    app.batch_execute("SET lock_timeout = 0; ALTER TABLE m ADD COLUMN waited int")
        .unwrap();
    assert!(started.elapsed() > Duration::from_secs(5), "{:?}", started.elapsed());
    locker.join().unwrap();
}

#[test]
fn a_guarded_role_cannot_weaken_its_policy() {
    let cluster = cluster();
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (0)",
    );
    let proxy = Proxy::start(&cluster, &[]);
    let url = proxy.url("migrator", "postgres");
    let mut client = connect(&url);
    // The same shape with harmless constants first: the session remembers shapes that
    // pass, and must not let the policy change through as one of them.
    client
        .batch_execute("SELECT set_config('work_mem', '8MB', false)")
        .unwrap();
    client
        .batch_execute("SELECT set_config('statement_timeout', '0', false)")
        .unwrap();
    for sql in [
        "SET safe_migrations.mode = 'off'",
        "SET SESSION safe_migrations.allow = 'create_index_non_concurrently'",
        "RESET safe_migrations.mode",
        "SELECT set_config('safe_migrations.mode', 'off', false)",
        "ALTER ROLE migrator SET safe_migrations.mode = 'off'",
        "ALTER ROLE migrator RESET ALL",
        "ALTER ROLE migrator IN DATABASE postgres RESET ALL",
    ] {
        let err = client.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}");
    }
    assert_eq!(
        sqlstate(&client.batch_execute("CREATE INDEX ON t (id)").unwrap_err()),
        "SM001"
    );
    let Err(err) = Client::connect(&format!("{url}?options=-c%20safe_migrations.mode%3Doff"), NoTls) else {
        panic!("startup options naming safe_migrations were accepted");
    };
    assert_eq!(sqlstate(&err), "42501", "{err}");
}

#[test]
fn the_config_file_wins_and_syntax_errors_are_the_servers() {
    let cluster = cluster();
    cluster.create_role("other", &[]);
    cluster.execute(
        &cluster.url("other", "postgres"),
        "CREATE TABLE o (id int); INSERT INTO o VALUES (0)",
    );
    let dir = cluster.dir().join("proxy-config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("safe-migrations.toml");
    std::fs::write(
        &path,
        "[defaults]\nmode = \"enforce\"\n[roles.migrator]\nmode = \"off\"\n",
    )
    .unwrap();
    let proxy = Proxy::start(&cluster, &["--config", path.to_str().unwrap()]);
    let mut other = connect(&proxy.url("other", "postgres"));
    assert_eq!(
        sqlstate(&other.batch_execute("CREATE INDEX ON o (id)").unwrap_err()),
        "SM001"
    );
    // What neither the proxy nor the server can parse runs nowhere: the server's own
    // syntax error reaches the client (what only the proxy cannot read is refused, see
    // proxy_transparency).
    let err = other.batch_execute("SELEC 1").unwrap_err();
    assert_eq!(sqlstate(&err), "42601");
    assert_eq!(
        err.as_db_error().unwrap().position(),
        Some(&postgres::error::ErrorPosition::Original(1)),
        "{err}"
    );
    let mut migrator = connect(&proxy.url("migrator", "postgres"));
    migrator
        .batch_execute("CREATE TABLE x (id int); CREATE INDEX ON x (id)")
        .unwrap();
    assert_eq!(sqlstate(&migrator.batch_execute("SELEC 1").unwrap_err()), "42601");

    std::fs::write(&path, "[defaults]\nmode = \"strict\"\n").unwrap();
    let output = std::process::Command::new(e2e::safe_migrations_bin())
        .args(["proxy", "--upstream", "127.0.0.1:1", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[defaults] mode") && stderr.contains("off, warn, enforce"),
        "{stderr}"
    );
}

#[test]
fn cancel_reaches_the_server_through_the_proxy() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    for role in ["app", "migrator"] {
        let mut client = connect(&proxy.url(role, "postgres"));
        let token = client.cancel_token();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            token.cancel_query(NoTls).unwrap();
        });
        let started = Instant::now();
        let err = client.batch_execute("SELECT pg_sleep(30)").unwrap_err();
        assert_eq!(sqlstate(&err), "57014", "{role}");
        assert!(started.elapsed() < Duration::from_secs(10));
        canceller.join().unwrap();
        assert_eq!(first_value(&mut client, "SELECT 1"), "1");
    }
}

/// A client's cancel that meets one of the proxy's own questions about its statement was
/// meant for that statement: the client gets the cancel's 57014, as from the server
/// alone, not a refusal for want of the answer. Here the question is the read of the
/// definition of the function the statement calls, which waits while another session
/// holds pg_proc locked. Simple and extended protocol, outside a transaction block and
/// inside one (which the cancel fails).
#[test]
fn a_cancel_that_meets_the_proxys_question_cancels_the_statement() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    for (extended, in_block) in [(false, false), (true, false), (false, true), (true, true)] {
        let case = format!("extended {extended}, in a block {in_block}");
        let mut client = connect(&proxy.url("migrator", "postgres"));
        if in_block {
            client.batch_execute("BEGIN").unwrap();
        }
        let mut holder = connect(&cluster.superuser_url());
        holder
            .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        let token = client.cancel_token();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            token.cancel_query(NoTls).unwrap();
        });
        let started = Instant::now();
        let sql = "SELECT upper('called')";
        let err = if extended {
            client.query(sql, &[]).unwrap_err()
        } else {
            client.batch_execute(sql).unwrap_err()
        };
        canceller.join().unwrap();
        assert_eq!(sqlstate(&err), "57014", "{case}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{case}");
        holder.batch_execute("COMMIT").unwrap();
        if in_block {
            let err = client.batch_execute("SELECT 1").unwrap_err();
            assert_eq!(sqlstate(&err), "25P02", "{case}");
            client.batch_execute("ROLLBACK").unwrap();
        }
        assert_eq!(first_value(&mut client, sql), "CALLED", "{case}");
    }
    assert!(!proxy.log().contains("statement refused"), "{}", proxy.log());
}

/// A cancel no client sent through the proxy (here pg_cancel_backend; in the wild the
/// postmaster's late second signal of a cancel already answered) that meets the proxy's
/// own question outside a block: the question is asked again and the client's statement
/// runs. A second one meets the question asked again: then the statement is answered
/// with it.
#[test]
fn a_cancel_no_client_sent_that_meets_the_proxys_question_asks_it_again() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    for cancels in [1, 2] {
        let mut client = connect(&proxy.url("migrator", "postgres"));
        let pid = first_value(&mut client, "SELECT pg_backend_pid()");
        // The admin's own catalog lookups done before pg_proc is locked (its queries
        // would wait for it too).
        let mut admin = connect(&cluster.superuser_url());
        let watch = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock'");
        let cancel = format!("SELECT pg_cancel_backend({pid})");
        first_value(&mut admin, &watch);
        first_value(&mut admin, "SELECT pg_cancel_backend(pg_backend_pid()) AND false");
        let mut holder = connect(&cluster.superuser_url());
        holder
            .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_proc IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        let admin = std::thread::spawn(move || {
            for _ in 0..cancels {
                // Wait until the proxy's question waits for pg_proc, then cancel it.
                let deadline = Instant::now() + Duration::from_secs(10);
                while first_value(&mut admin, &watch) != "1" {
                    assert!(Instant::now() < deadline, "the proxy's question never waited");
                    std::thread::sleep(Duration::from_millis(20));
                }
                first_value(&mut admin, &cancel);
                std::thread::sleep(Duration::from_millis(300));
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        let sql = "SELECT upper('called')";
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            holder.batch_execute("COMMIT").unwrap();
        });
        let result = client.batch_execute(sql);
        admin.join().unwrap();
        release.join().unwrap();
        match cancels {
            1 => assert!(result.is_ok(), "one cancel: {result:?}"),
            _ => assert_eq!(sqlstate(&result.unwrap_err()), "57014"),
        }
        assert_eq!(first_value(&mut client, sql), "CALLED");
    }
}

fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", "postgres")] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Read until the peer closes (or 10s pass); returns what was read.
#[test]
fn malformed_bytes_close_only_that_session() {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        auth: e2e::Auth::Trust,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce")]);
    let mut proxy = Proxy::start(&cluster, &[]);
    let mut healthy = connect(&proxy.url("migrator", "postgres"));
    // A bad startup packet, then a bad message after login, then an oversized one.
    let garbage: [&[u8]; 3] = [&[0, 0, 0, 2], &[b'Q', 0, 0, 0, 1], &[b'Q', 0x7f, 0xff, 0xff, 0xff]];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        if i > 0 {
            stream.write_all(&startup_packet("migrator")).unwrap();
        }
        stream.write_all(bytes).unwrap();
        // The proxy must close the session: a timeout means it hung on the bytes.
        let answer = e2e::read_until_closed(&mut stream, Duration::from_secs(10))
            .unwrap_or_else(|received| panic!("case {i}: not closed within 10 s ({received} bytes received)"));
        if i > 0 {
            let text = String::from_utf8_lossy(&answer);
            assert!(text.contains("08P01"), "{text}");
        }
        assert_eq!(first_value(&mut healthy, "SELECT 7"), "7");
    }
    assert!(proxy.is_alive());
}

#[test]
fn an_upstream_that_is_down_gets_a_clear_error() {
    let port = e2e::free_port();
    let proxy = Proxy::start_upstream(&format!("127.0.0.1:{port}"), &[]);
    let Err(err) = Client::connect(&proxy.url("migrator", "postgres"), NoTls) else {
        panic!("connected through a proxy whose upstream is down");
    };
    let db = err.as_db_error().expect("an ErrorResponse from the proxy");
    assert_eq!(db.code().code(), "08006");
    assert!(
        db.message().contains("cannot connect to the upstream server"),
        "{}",
        db.message()
    );
}

#[test]
fn fifty_concurrent_sessions_finish_a_mixed_workload() {
    let cluster = cluster();
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE w (id int, who text)",
    );
    cluster.execute(&cluster.superuser_url(), "GRANT ALL ON w TO app");
    let proxy = Proxy::start(&cluster, &[]);
    let started = Instant::now();
    let workers: Vec<_> = (0..50)
        .map(|i| {
            let url = proxy.url(if i % 2 == 0 { "app" } else { "migrator" }, "postgres");
            std::thread::spawn(move || {
                let mut client = connect(&url);
                for round in 0..20 {
                    client
                        .execute("INSERT INTO w VALUES ($1, $2)", &[&(i * 100 + round), &format!("w{i}")])
                        .unwrap();
                    client.batch_execute("BEGIN; SELECT count(*) FROM w; COMMIT").unwrap();
                    let rows = client
                        .query("SELECT id FROM w WHERE who = $1", &[&format!("w{i}")])
                        .unwrap();
                    assert_eq!(rows.len() as i32, round + 1);
                }
                if i % 2 == 1 {
                    let err = client.batch_execute("CREATE INDEX ON w (id)").unwrap_err();
                    assert_eq!(sqlstate(&err), "SM001");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    let mut client = connect(&proxy.url("app", "postgres"));
    assert_eq!(first_value(&mut client, "SELECT count(*) FROM w"), "1000");
}

/// Typed messages for a raw client: type byte and body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn parse(sql: &str) -> Vec<u8> {
    let mut body = cstrings(&["", sql]);
    body.extend_from_slice(&[0, 0]);
    message(b'P', &body)
}

fn bind_execute() -> Vec<u8> {
    let mut out = message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(message(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// Read messages until the `count`-th ReadyForQuery; returns (type, body) pairs.
fn read_until_ready(stream: &mut TcpStream, count: usize) -> Vec<(u8, Vec<u8>)> {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    let mut seen = 0;
    while seen < count {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).expect("a message before the timeout");
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).unwrap();
        if head[0] == b'Z' {
            seen += 1;
        }
        out.push((head[0], body));
    }
    out
}

fn tags(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(tag, _)| *tag as char).collect()
}

#[test]
fn a_pipeline_with_a_refused_parse_rolls_back_its_batch_and_the_next_batch_runs() {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        auth: e2e::Auth::Trust,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("lock_timeout", "1s")]);
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE t (id int)");
    let proxy = Proxy::start(&cluster, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    stream.write_all(&startup_packet("migrator")).unwrap();
    read_until_ready(&mut stream, 1);
    // Batch 1: INSERT runs, CREATE INDEX is refused, the rest is discarded; batch 2 runs.
    let mut pipeline = parse("INSERT INTO t VALUES (1)");
    pipeline.extend(bind_execute());
    pipeline.extend(parse("CREATE INDEX ON t (id)"));
    pipeline.extend(bind_execute());
    pipeline.extend(message(b'S', &[]));
    pipeline.extend(parse("ALTER TABLE t ADD COLUMN c int"));
    pipeline.extend(bind_execute());
    pipeline.extend(parse("SELECT count(*) FROM t"));
    pipeline.extend(bind_execute());
    pipeline.extend(message(b'S', &[]));
    stream.write_all(&pipeline).unwrap();
    let answer = read_until_ready(&mut stream, 2);
    assert_eq!(tags(&answer), "12CEZ12C12DCZ");
    let error = String::from_utf8_lossy(&answer[3].1).into_owned();
    assert!(
        error.contains("SM001") && error.contains("create_index_non_concurrently"),
        "{error}"
    );
    assert_eq!(answer[4].1, b"I");
    assert_eq!(
        answer[10].1[6..],
        *b"0",
        "the INSERT of the refused batch was rolled back"
    );
    // Describe, Flush and Close pass through.
    let mut batch = parse("SELECT 1 AS one");
    batch.extend(message(b'D', b"S\0"));
    batch.extend(message(b'H', &[]));
    stream.write_all(&batch).unwrap();
    let mut close = message(b'C', b"S\0");
    close.extend(message(b'S', &[]));
    stream.write_all(&close).unwrap();
    assert_eq!(tags(&read_until_ready(&mut stream, 1)), "1tT3Z");
    stream.write_all(&message(b'X', &[])).unwrap();
}

#[test]
fn statements_that_cannot_run_in_a_transaction_block_still_get_the_cap() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE v (id int)");
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    client.batch_execute("SET lock_timeout = 0").unwrap();
    client.batch_execute("VACUUM FULL v").unwrap_or_else(|err| {
        // VACUUM FULL is itself a rewrite_table finding; the cap matters only when allowed.
        assert_eq!(sqlstate(&err), "SM001", "{err}");
    });
    let (locker, _observer) = hold_lock(&cluster, "v", 6);
    let allowed = Proxy::start(&cluster, &[]);
    cluster.execute(
        &cluster.superuser_url(),
        "ALTER ROLE migrator SET safe_migrations.allow = 'rewrite_table'",
    );
    let mut client = connect(&allowed.url("migrator", "postgres"));
    client.batch_execute("SET lock_timeout = 0").unwrap();
    let started = Instant::now();
    assert_eq!(sqlstate(&client.batch_execute("VACUUM FULL v").unwrap_err()), "55P03");
    assert_eq!(sqlstate(&client.execute("VACUUM FULL v", &[]).unwrap_err()), "55P03");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(first_value(&mut client, "SHOW lock_timeout"), "0");
    locker.join().unwrap();
    client.batch_execute("VACUUM FULL v").unwrap();
}

#[test]
fn md5_auth_passes_through() {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        auth: e2e::Auth::Md5,
        ..ClusterOptions::default()
    });
    cluster.execute(
        &cluster.superuser_url(),
        "SET password_encryption = 'md5'; CREATE ROLE old LOGIN PASSWORD 'old'",
    );
    let proxy = Proxy::start(&cluster, &[]);
    assert_eq!(
        first_value(&mut connect(&proxy.url("old", "postgres")), "SELECT current_user"),
        "old"
    );
    assert!(Client::connect(&proxy.url("old", "postgres").replace("old:old", "old:wrong"), NoTls).is_err());
}

#[test]
fn tls_to_the_client_with_scram_and_the_channel_binding_rule() {
    let cluster = cluster();
    let dir = cluster.dir().join("proxy-tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let proxy = Proxy::start(
        &cluster,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let base = format!("{}?sslmode=require", proxy.url("migrator", "postgres"));
    let out = cluster.execute(&base, "SELECT 'over tls'");
    assert_eq!(out.trim(), "over tls");
    let output = cluster.psql(&format!("{base}&channel_binding=require"), "SELECT 1");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("channel binding"), "{stderr}");
    let out = cluster.execute(&format!("{base}&channel_binding=disable"), "SELECT 'no binding'");
    assert_eq!(out.trim(), "no binding");
}

#[test]
fn a_do_block_is_checked_statement_by_statement() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE t (c int)");
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    for sql in [
        "DO $$ BEGIN CREATE INDEX i ON t (c); END $$",
        "DO $$ BEGIN EXECUTE 'CREATE INDEX i ON t (c)'; END $$",
    ] {
        let err = client.batch_execute(sql).unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
        assert_eq!(db.code().code(), "SM001", "{sql}");
        assert!(
            db.message().starts_with("create_index_non_concurrently: "),
            "{sql}: {}",
            db.message()
        );
    }
    let err = client
        .batch_execute("DO $$ BEGIN EXECUTE format('CREATE INDEX %I ON t (c)', 'i'); END $$")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "SM004");
    assert!(err.as_db_error().unwrap().message().contains("dynamic SQL"), "{err}");
    assert_eq!(
        first_value(&mut client, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'"),
        "0"
    );
    client.batch_execute("DO $$ BEGIN PERFORM 1; END $$").unwrap();
    client
        .batch_execute("DO $$ BEGIN CREATE TABLE n (id int); CREATE INDEX ON n (id); END $$")
        .unwrap();
    assert_eq!(
        first_value(&mut client, "SELECT count(*) FROM pg_indexes WHERE tablename = 'n'"),
        "1"
    );
}

#[test]
fn the_functions_a_statement_calls_are_checked_like_do_blocks() {
    let cluster = cluster();
    cluster.execute(&cluster.url("migrator", "postgres"), "CREATE TABLE t (c int)");
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    // Defining them is harmless; calling them runs their SQL.
    client
        .batch_execute(
            "CREATE FUNCTION make_index() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE INDEX i ON t (c); END $$;
             CREATE PROCEDURE make_index_later() LANGUAGE sql AS $$ SELECT make_index() $$;
             CREATE FUNCTION computed() RETURNS void LANGUAGE plpgsql
                 AS $$ BEGIN EXECUTE format('CREATE INDEX %I ON t (c)', 'j'); END $$;
             CREATE FUNCTION harmless() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM t $$;",
        )
        .unwrap();
    for sql in ["SELECT make_index()", "CALL make_index_later()"] {
        let err = client.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "SM001", "{sql}: {err}");
        // Extended protocol: the Parse is refused.
        let err = client.execute(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "SM001", "{sql}: {err}");
    }
    let err = client.batch_execute("SELECT computed()").unwrap_err();
    assert_eq!(sqlstate(&err), "SM004");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("function public.computed (called by this statement) runs dynamic SQL"),
        "{err}"
    );
    assert_eq!(
        first_value(&mut client, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'"),
        "0"
    );
    assert_eq!(first_value(&mut client, "SELECT harmless()"), "0");
    // A function that sets its own lock_timeout would run its ALTER TABLE past the cap.
    client
        .batch_execute(
            "CREATE FUNCTION uncapped() RETURNS void LANGUAGE plpgsql SET lock_timeout = 0 \
             AS $$ BEGIN ALTER TABLE t ADD COLUMN d int; END $$",
        )
        .unwrap();
    let err = client.batch_execute("SELECT uncapped()").unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "SM001", "{err}");
    assert!(
        db.message().starts_with("lock_timeout: function public.uncapped"),
        "{}",
        db.message()
    );
}

fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstrings(&[sql]))
}

fn parse_named(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstrings(&[name, sql]);
    body.extend_from_slice(&[0, 0]);
    message(b'P', &body)
}

fn bind_execute_named(statement: &str) -> Vec<u8> {
    let mut body = cstrings(&["", statement]);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut out = message(b'B', &body);
    out.extend(message(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// The SQLSTATEs of the ErrorResponses among `messages`.
fn error_codes(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'E')
        .filter_map(|(_, body)| {
            body.split(|byte| *byte == 0)
                .find(|field| field.first() == Some(&b'C'))
                .map(|field| String::from_utf8_lossy(&field[1..]).into_owned())
        })
        .collect()
}

/// Messages a client sends before the answers to earlier ones arrive cannot take a
/// guarded statement past the lock_timeout cap: the proxy decides each with the
/// transaction status and settings the server will run it with.
#[test]
fn pipelined_messages_cannot_take_guarded_ddl_past_the_cap() {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        auth: e2e::Auth::Trust,
        ..ClusterOptions::default()
    });
    cluster.create_role(
        "migrator",
        &[("mode", "enforce"), ("lock_timeout", "1s"), ("lock_retries", "0")],
    );
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (id int); CREATE TABLE f (id int); \
         CREATE FUNCTION touch() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE INDEX ON f (id); RETURN 1; END $$",
    );
    let oid: i32 = cluster
        .execute(&cluster.superuser_url(), "SELECT 'touch'::regproc::oid")
        .trim()
        .parse()
        .unwrap();
    let proxy = Proxy::start(&cluster, &[]);
    // An ALTER TABLE of t waits for this lock: capped, it fails with 55P03 after 1 s.
    let (_locker, _observer) = hold_lock(&cluster, "t", 120);
    let alter = "ALTER TABLE t ADD COLUMN a int";
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    stream.write_all(&startup_packet("migrator")).unwrap();
    read_until_ready(&mut stream, 1);
    let mut exchange = |bytes: Vec<u8>, readies: usize| {
        stream.write_all(&bytes).unwrap();
        read_until_ready(&mut stream, readies)
    };

    // A failed transaction, then ROLLBACK and the DDL in one write.
    exchange([query("BEGIN"), query("SELECT 1/0")].concat(), 2);
    let answer = exchange([query("ROLLBACK"), query(alter)].concat(), 2);
    assert_eq!(error_codes(&answer), ["55P03"], "{}", tags(&answer));

    // A transaction block, then COMMIT and the DDL in one write.
    exchange(query("BEGIN"), 1);
    let answer = exchange([query("COMMIT"), query(alter)].concat(), 2);
    assert_eq!(error_codes(&answer), ["55P03"], "{}", tags(&answer));

    // A Query inside an extended-protocol batch sets lock_timeout = 0 before its Execute
    // (a named statement: a Query drops the unnamed one).
    let answer = exchange(
        [
            parse_named("s0", alter),
            query("SET lock_timeout = 0"),
            bind_execute_named("s0"),
            message(b'S', &[]),
        ]
        .concat(),
        2,
    );
    assert_eq!(error_codes(&answer), ["55P03"], "{}", tags(&answer));
    exchange(query("RESET lock_timeout"), 1);

    // A Parse the server refuses (in a failed transaction) does not replace the capped
    // statement the server still holds under that name.
    exchange([parse_named("s1", alter), message(b'S', &[])].concat(), 1);
    exchange([query("BEGIN"), query("SELECT 1/0")].concat(), 2);
    let answer = exchange([parse_named("s1", "SELECT 1"), message(b'S', &[])].concat(), 1);
    assert_eq!(error_codes(&answer), ["25P02"], "{}", tags(&answer));
    exchange(query("ROLLBACK"), 1);
    let answer = exchange([bind_execute_named("s1"), message(b'S', &[])].concat(), 1);
    assert_eq!(error_codes(&answer), ["55P03"], "{}", tags(&answer));

    // standard_conforming_strings turned off in the same write as a statement whose
    // literal hides a CREATE INDEX under backslash escapes.
    let answer = exchange(
        [
            query("SET standard_conforming_strings = off"),
            query(r"SELECT 'a\''; CREATE INDEX ON f (id); -- '"),
        ]
        .concat(),
        2,
    );
    assert_eq!(error_codes(&answer), ["SM004"], "{}", tags(&answer));
    exchange(query("SET standard_conforming_strings = on"), 1);

    // A FunctionCall (fast-path) of a user-defined function whose body runs DDL.
    let mut body = oid.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let answer = exchange(message(b'F', &body), 1);
    assert_eq!(error_codes(&answer), ["SM004"], "{}", tags(&answer));
    let answer = exchange(query("SELECT count(*) FROM pg_indexes WHERE tablename = 'f'"), 1);
    let row = answer.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    assert_eq!(row.1[6..], *b"0");

    // A batch that opens a transaction block after a capped statement (capped for the
    // whole batch), then a ROLLBACK: lock_timeout is the client's again, source and all.
    let answer = exchange(
        [
            parse_named("s2", "ALTER TABLE f ADD COLUMN b int"),
            bind_execute_named("s2"),
            parse_named("s3", "BEGIN"),
            bind_execute_named("s3"),
            message(b'S', &[]),
        ]
        .concat(),
        1,
    );
    assert_eq!(answer.last().unwrap().1, b"T", "{}", tags(&answer));
    exchange(query("ROLLBACK"), 1);
    let answer = exchange(
        query("SELECT setting || ' ' || source FROM pg_settings WHERE name = 'lock_timeout'"),
        1,
    );
    let row = answer.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    assert_eq!(String::from_utf8_lossy(&row.1[6..]), "0 default");

    // A batch that sets lock_timeout itself after a capped statement keeps the client's
    // value: the cap is taken off only where it is still the cap.
    exchange(
        [
            parse_named("s4", "ALTER TABLE f ADD COLUMN c int"),
            bind_execute_named("s4"),
            parse_named("s5", "SET lock_timeout = '7s'"),
            bind_execute_named("s5"),
            message(b'S', &[]),
        ]
        .concat(),
        1,
    );
    let answer = exchange(
        query("SELECT setting || ' ' || source FROM pg_settings WHERE name = 'lock_timeout'"),
        1,
    );
    let row = answer.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    assert_eq!(String::from_utf8_lossy(&row.1[6..]), "7000 session");
    stream.write_all(&message(b'X', &[])).unwrap();
}
