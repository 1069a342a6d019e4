//! Running the proxy in production: graceful shutdown on SIGTERM, clients that speak
//! protocol 3.2 (PostgreSQL 18's libpq), and verified TLS to the upstream. Real PG15
//! clusters without the extension, the real proxy binary, real sockets.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{connect, cstrings, Auth, CertDir, Cluster, ClusterOptions, Proxy};
use postgres::{Client, NoTls, SimpleQueryMessage};

fn cluster_with(auth: Auth, conf: &[(&str, &str)]) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        auth,
        conf: conf
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("lock_timeout", "1s")]);
    cluster.create_role("app", &[]);
    cluster
}

fn first_value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Poll `sql` on `client` until it returns `expected` (10 s at most).
fn wait_for_value(client: &mut Client, sql: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = first_value(client, sql);
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} still gives {value:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Graceful shutdown.

/// What the proxy logs once it has closed its listener with sessions still open.
const SHUTTING_DOWN: &str = "shutting down: no new connections";

fn wait_for_log(proxy: &Proxy, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains(line) {
        assert!(
            Instant::now() < deadline,
            "the proxy did not log {line:?}:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new client is refused at the TCP level: nothing listens on the port any more.
fn assert_new_connection_refused(proxy: &Proxy) {
    let Err(err) = Client::connect(&proxy.url("app", "postgres"), NoTls) else {
        panic!("a new client connected through a proxy that is shutting down");
    };
    let io = std::error::Error::source(&err).and_then(|cause| cause.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(ErrorKind::ConnectionRefused),
        "{err:?}"
    );
}

#[test]
fn on_sigterm_open_sessions_finish_and_commit_new_ones_are_refused_and_the_proxy_exits_0() {
    let cluster = cluster_with(Auth::ScramSha256, &[]);
    let mut admin = connect(&cluster.superuser_url());
    admin
        .batch_execute("CREATE TABLE done (who text); GRANT INSERT ON done TO app, migrator")
        .unwrap();
    let mut proxy = Proxy::start(&cluster, &[]);
    // An unguarded session (passthrough) and a guarded one, each in a transaction.
    let mut app = connect(&proxy.url("app", "postgres"));
    app.batch_execute("BEGIN; INSERT INTO done VALUES ('app before')")
        .unwrap();
    let mut migrator = connect(&proxy.url("migrator", "postgres"));
    migrator
        .batch_execute("BEGIN; INSERT INTO done VALUES ('migrator before')")
        .unwrap();
    // The guarded session is inside a statement when the signal arrives.
    let sleeper = std::thread::spawn(move || migrator.batch_execute("SELECT pg_sleep(2)").map(|()| migrator));
    wait_for_value(
        &mut admin,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE usename = 'migrator' AND state = 'active' AND query = 'SELECT pg_sleep(2)'",
        "1",
    );

    proxy.terminate();
    wait_for_log(&proxy, SHUTTING_DOWN);
    assert_new_connection_refused(&proxy);

    let mut migrator = sleeper
        .join()
        .unwrap()
        .expect("the statement running at SIGTERM completes");
    migrator
        .batch_execute("INSERT INTO done VALUES ('migrator after'); COMMIT")
        .unwrap();
    app.batch_execute("INSERT INTO done VALUES ('app after'); COMMIT")
        .unwrap();
    assert_eq!(
        first_value(&mut admin, "SELECT string_agg(who, ', ' ORDER BY who) FROM done"),
        "app after, app before, migrator after, migrator before"
    );
    assert!(proxy.is_alive(), "the proxy exited while sessions were open");

    drop(app);
    drop(migrator);
    let closed = Instant::now();
    let status = proxy.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}\n{}", proxy.log());
    // Well inside the default 30 s shutdown timeout: it left because the sessions ended.
    assert!(closed.elapsed() < Duration::from_secs(5), "{:?}", closed.elapsed());
}

#[test]
fn with_shutdown_timeout_1_sessions_left_open_are_closed_after_a_second_and_the_proxy_exits_0() {
    let cluster = cluster_with(Auth::ScramSha256, &[]);
    let mut admin = connect(&cluster.superuser_url());
    admin
        .batch_execute("CREATE TABLE done (who text); GRANT INSERT ON done TO app, migrator")
        .unwrap();
    let mut proxy = Proxy::start(&cluster, &["--shutdown-timeout", "1"]);
    let mut sessions = Vec::new();
    for role in ["app", "migrator"] {
        let mut client = connect(&proxy.url(role, "postgres"));
        client
            .batch_execute(&format!("BEGIN; INSERT INTO done VALUES ('{role}')"))
            .unwrap();
        sessions.push(client);
    }

    let signalled = Instant::now();
    proxy.terminate();
    wait_for_log(&proxy, SHUTTING_DOWN);
    assert_new_connection_refused(&proxy);
    let status = proxy.wait_for_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status}\n{}", proxy.log());
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM"
    );
    assert!(
        proxy.log().contains("shutdown timeout: closing open sessions"),
        "{}",
        proxy.log()
    );

    for mut client in sessions {
        let err = client.simple_query("SELECT 1").unwrap_err();
        assert!(err.is_closed(), "{err:?}");
    }
    // The server saw both connections go, and rolled back what they had not committed.
    wait_for_value(
        &mut admin,
        "SELECT count(*) FROM pg_stat_activity WHERE usename IN ('app', 'migrator')",
        "0",
    );
    assert_eq!(first_value(&mut admin, "SELECT count(*) FROM done"), "0");
}

#[test]
fn on_sigterm_without_open_sessions_the_proxy_exits_0_at_once() {
    // Nothing listens upstream: shutting down needs no server.
    let mut proxy = Proxy::start_upstream(&format!("127.0.0.1:{}", e2e::free_port()), &[]);
    let signalled = Instant::now();
    proxy.terminate();
    let status = proxy.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}\n{}", proxy.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?}",
        signalled.elapsed()
    );
}

// Protocol 3.2.

/// What PostgreSQL 18's libpq sends with max_protocol_version=3.2.
const PROTOCOL_3_2: i32 = 196_610;
const PROTOCOL_3_0: i32 = 196_608;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

fn startup_3_2(user: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3_2.to_be_bytes().to_vec();
    body.extend_from_slice(&cstrings(&["user", user, "database", "postgres", ""]));
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn query(sql: &str) -> Vec<u8> {
    let body = cstrings(&[sql]);
    let mut out = vec![b'Q'];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Read messages up to and including the next ReadyForQuery; (type, body) pairs.
fn read_until_ready(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).expect("a message before the timeout");
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).unwrap();
        out.push((head[0], body));
        if head[0] == b'Z' {
            return out;
        }
    }
}

fn tags(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(tag, _)| *tag as char).collect()
}

/// The SQLSTATE field of an ErrorResponse body.
fn error_code(body: &[u8]) -> String {
    body.split(|byte| *byte == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
        .unwrap_or_default()
}

/// A client asking for protocol 3.2 (PostgreSQL 18's libpq) gets what the server says:
/// before 18, NegotiateProtocolVersion and a 3.0 session; from 18 on, a 3.2 session whose
/// BackendKeyData carries a longer secret key. The guard and cancels work either way.
#[test]
fn a_protocol_3_2_client_speaks_the_servers_version_and_cancels_with_its_key() {
    let cluster = cluster_with(Auth::Trust, &[]);
    let mut admin = connect(&cluster.superuser_url());
    let proxy = Proxy::start(&cluster, &[]);
    let speaks_3_2 = e2e::pg_major() >= 18;
    for role in ["app", "migrator"] {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream.write_all(&startup_3_2(role)).unwrap();
        let mut hello = read_until_ready(&mut stream);
        if !speaks_3_2 {
            // NegotiateProtocolVersion: the newest version the server speaks, 3.0 (sent
            // as major << 16 | minor, as libpq reads it), and no unrecognized options.
            let mut negotiate = PROTOCOL_3_0.to_be_bytes().to_vec();
            negotiate.extend_from_slice(&0i32.to_be_bytes());
            assert_eq!(hello.remove(0), (b'v', negotiate), "{role}");
        }
        assert_eq!(hello[0], (b'R', vec![0, 0, 0, 0]), "{role}: AuthenticationOk");
        let hello_tags = tags(&hello);
        assert!(
            hello_tags.starts_with("RS")
                && hello_tags.ends_with("KZ")
                && hello_tags[1..hello_tags.len() - 2].bytes().all(|tag| tag == b'S'),
            "{role}: {hello_tags}"
        );
        // BackendKeyData: the pid and a key, 4 bytes at 3.0, 32 as PostgreSQL 18 sends at 3.2.
        let key_data = &hello[hello.len() - 2].1;
        assert_eq!(key_data.len(), if speaks_3_2 { 4 + 32 } else { 8 }, "{role}");
        assert_eq!(hello[hello.len() - 1].1, b"I", "{role}");

        stream.write_all(&query("SELECT 1")).unwrap();
        let answer = read_until_ready(&mut stream);
        assert_eq!(tags(&answer), "TDCZ", "{role}");
        assert_eq!(answer[1].1, [0, 1, 0, 0, 0, 1, b'1'], "{role}: DataRow 1");

        if role == "migrator" {
            // The guard runs on a 3.2 session (on a table with a row: an empty one is
            // indexed at once).
            let table = "t32";
            stream
                .write_all(&query(&format!(
                    "CREATE TABLE {table} (id int); INSERT INTO {table} VALUES (1)"
                )))
                .unwrap();
            assert_eq!(tags(&read_until_ready(&mut stream)), "CCZ");
            stream
                .write_all(&query(&format!("CREATE INDEX ON {table} (id)")))
                .unwrap();
            let refused = read_until_ready(&mut stream);
            assert_eq!(tags(&refused), "EZ");
            assert_eq!(error_code(&refused[0].1), "SM001");
            assert_eq!(refused[1].1, b"I");
        }

        // A CancelRequest with the key from BackendKeyData, on a connection of its own.
        stream.write_all(&query("SELECT pg_sleep(30)")).unwrap();
        let pid = i32::from_be_bytes(key_data[..4].try_into().unwrap());
        wait_for_value(
            &mut admin,
            &format!("SELECT state FROM pg_stat_activity WHERE pid = {pid} AND query = 'SELECT pg_sleep(30)'"),
            "active",
        );
        let started = Instant::now();
        let mut cancel = ((8 + key_data.len()) as i32).to_be_bytes().to_vec();
        cancel.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        cancel.extend_from_slice(key_data);
        let mut canceller = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        canceller.write_all(&cancel).unwrap();
        let cancelled = read_until_ready(&mut stream);
        // RowDescription went out before the sleep started.
        assert_eq!(tags(&cancelled), "TEZ", "{role}");
        assert_eq!(error_code(&cancelled[1].1), "57014", "{role}");
        assert!(started.elapsed() < Duration::from_secs(10), "{role}");
        stream.write_all(&query("SELECT 1")).unwrap();
        assert_eq!(tags(&read_until_ready(&mut stream)), "TDCZ", "{role}");
    }
}

// TLS to the upstream.

fn cluster_with_tls(certs: &CertDir) -> Cluster {
    let conf = certs.ssl_conf();
    let conf: Vec<(&str, &str)> = conf
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    cluster_with(Auth::ScramSha256, &conf)
}

fn verify_full(cluster: &Cluster, host: &str, ca: &Path) -> Proxy {
    Proxy::start_upstream(
        &format!("{host}:{}", cluster.port()),
        &["--upstream-tls", "verify-full", "--upstream-ca", ca.to_str().unwrap()],
    )
}

const SESSION_USES_TLS: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// The proxy's ErrorResponse to a client it could not connect upstream.
fn connect_error(proxy: &Proxy, role: &str) -> (String, String) {
    let Err(err) = Client::connect(&proxy.url(role, "postgres"), NoTls) else {
        panic!("{role} connected through the proxy");
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not an ErrorResponse from the proxy: {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

#[test]
fn verify_full_with_the_ca_file_reaches_the_server_over_tls_by_dns_name_and_by_ip_address() {
    let certs = CertDir::new("verified");
    certs.ca("ca");
    certs.server_certificate("ca", "DNS:localhost,IP:127.0.0.1");
    let cluster = cluster_with_tls(&certs);
    for host in ["localhost", "127.0.0.1"] {
        let proxy = verify_full(&cluster, host, &certs.path("ca.pem"));
        for role in ["app", "migrator"] {
            let mut client = connect(&proxy.url(role, "postgres"));
            assert_eq!(first_value(&mut client, SESSION_USES_TLS), "t", "{host} {role}");
            assert_eq!(first_value(&mut client, "SELECT current_user"), role, "{host} {role}");
        }
    }
}

#[test]
fn verify_full_refuses_another_cas_certificate_or_one_for_another_name_and_keeps_serving() {
    let certs = CertDir::new("refused");
    certs.ca("ca");
    certs.ca("other-ca");
    certs.server_certificate("ca", "DNS:localhost");
    let cluster = cluster_with_tls(&certs);
    let port = cluster.port();

    let mut good = verify_full(&cluster, "localhost", &certs.path("ca.pem"));
    let mut other_ca = verify_full(&cluster, "localhost", &certs.path("other-ca.pem"));
    let mut by_address = verify_full(&cluster, "127.0.0.1", &certs.path("ca.pem"));
    let refusals = [
        (
            &mut other_ca,
            format!("TLS to the upstream server localhost:{port} failed: invalid peer certificate: UnknownIssuer"),
        ),
        (
            &mut by_address,
            format!(
                "TLS to the upstream server 127.0.0.1:{port} failed: invalid peer certificate: certificate not valid \
                 for name \"127.0.0.1\"; certificate is only valid for DnsName(\"localhost\")"
            ),
        ),
    ];
    for (proxy, reason) in refusals {
        // A refusal ends that session only: the next client gets the same answer.
        for role in ["app", "migrator"] {
            let (code, message) = connect_error(proxy, role);
            assert_eq!(code, "08006", "{message}");
            assert_eq!(message, format!("safe_migrations proxy: {reason}"));
        }
        assert!(proxy.is_alive(), "{}", proxy.log());
    }
    let mut client = connect(&good.url("migrator", "postgres"));
    assert_eq!(first_value(&mut client, SESSION_USES_TLS), "t");
    assert!(good.is_alive());
}

#[test]
fn requiring_tls_of_a_server_without_it_says_the_server_does_not_support_tls() {
    let certs = CertDir::new("no-tls");
    certs.ca("ca");
    let cluster = cluster_with(Auth::ScramSha256, &[("ssl", "off")]);
    let upstream = format!("127.0.0.1:{}", cluster.port());
    let ca = certs.path_str("ca.pem");
    for mode in [
        &["--upstream-tls", "require"][..],
        &["--upstream-tls", "verify-full", "--upstream-ca", &ca],
    ] {
        let mut proxy = Proxy::start_upstream(&upstream, mode);
        let (code, message) = connect_error(&proxy, "app");
        assert_eq!(code, "08006", "{message}");
        assert_eq!(
            message,
            format!(
                "safe_migrations proxy: the upstream server {upstream} does not support TLS \
                 (--upstream-tls requires it)"
            ),
            "{mode:?}"
        );
        assert!(proxy.is_alive(), "{mode:?}");
    }
    // prefer falls back to plain TCP.
    let proxy = Proxy::start_upstream(&upstream, &["--upstream-tls", "prefer"]);
    assert_eq!(
        first_value(&mut connect(&proxy.url("app", "postgres")), SESSION_USES_TLS),
        "f"
    );
}

/// How long after `start` the proxy closed `stream`; panics if it is still open after `limit`.
fn closed_after(stream: &mut TcpStream, start: Instant, limit: Duration) -> Duration {
    if let Err(received) = e2e::read_until_closed(stream, limit.saturating_sub(start.elapsed())) {
        panic!("still open after {limit:?} ({received} bytes received)");
    }
    start.elapsed()
}

#[test]
fn a_client_without_a_startup_packet_is_closed_after_the_login_timeout() {
    let cluster = cluster_with(Auth::ScramSha256, &[]);
    let mut proxy = Proxy::start(&cluster, &["--login-timeout", "1"]);
    let mut logged_in = connect(&proxy.url("migrator", "postgres"));
    let start = Instant::now();
    // Silent; half a startup packet; an SSLRequest answered 'N' and then nothing.
    let mut silent = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    partial.write_all(&[0, 0, 0, 40, 0, 3]).unwrap();
    let mut after_ssl = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    after_ssl.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
    let mut answer = [0u8; 1];
    after_ssl.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");
    for stream in [&mut silent, &mut partial, &mut after_ssl] {
        let after = closed_after(stream, start, Duration::from_secs(10));
        assert!(
            after >= Duration::from_millis(900),
            "closed after {after:?}, before the timeout"
        );
    }
    // A session that logged in is not bound by it, idle or not.
    assert!(start.elapsed() > Duration::from_secs(1));
    assert_eq!(first_value(&mut logged_in, "SELECT 7"), "7");
    assert_eq!(
        first_value(&mut connect(&proxy.url("app", "postgres")), "SELECT 8"),
        "8"
    );
    assert!(proxy.is_alive());
    assert!(proxy.log().contains("no startup packet in time"), "{}", proxy.log());
}

#[test]
fn a_login_timeout_outside_1_to_600_seconds_is_refused_at_start() {
    for value in ["0", "601"] {
        let output = Command::new(e2e::safe_migrations_bin())
            .args(["proxy", "--upstream", "127.0.0.1:1", "--login-timeout", value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("--login-timeout {value}: expected 1 to 600 seconds")),
            "{stderr}"
        );
    }
}

/// SIGHUP loads the configuration file again for sessions that start afterwards (open
/// ones keep theirs); a file that does not load is refused with the reason logged, the
/// last good configuration stays, and the proxy goes on.
#[test]
fn sighup_reloads_the_config_for_new_sessions_and_keeps_the_old_one_when_the_file_is_bad() {
    let cluster = cluster_with(Auth::ScramSha256, &[]);
    cluster.execute(
        &cluster.url("app", "postgres"),
        "CREATE TABLE a (id int); INSERT INTO a VALUES (1)",
    );
    let path = cluster.dir().join("reload.toml");
    std::fs::write(&path, "[roles.app]\nmode = \"off\"\n").unwrap();
    let mut proxy = Proxy::start(&cluster, &["--config", path.to_str().unwrap()]);
    let mut before = connect(&proxy.url("app", "postgres"));
    before.batch_execute("CREATE INDEX a1 ON a (id)").unwrap();

    // app guarded from now on.
    std::fs::write(&path, "[roles.app]\nmode = \"enforce\"\n").unwrap();
    proxy.hang_up();
    wait_for_log(&proxy, "configuration reloaded");
    let mut after = connect(&proxy.url("app", "postgres"));
    let err = after.batch_execute("CREATE INDEX a2 ON a (id)").unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("SM001"), "{err}");
    // The session opened before keeps the policy it started with.
    before.batch_execute("CREATE INDEX a3 ON a (id)").unwrap();

    // A bad file: refused with the reason; the last good configuration stays.
    std::fs::write(&path, "[roles.app]\nmode = \"strict\"\n").unwrap();
    proxy.hang_up();
    wait_for_log(&proxy, "configuration not reloaded");
    assert!(proxy.log().contains("off, warn, enforce"), "{}", proxy.log());
    let mut later = connect(&proxy.url("app", "postgres"));
    let err = later.batch_execute("CREATE INDEX a4 ON a (id)").unwrap_err();
    assert_eq!(err.as_db_error().map(|db| db.code().code()), Some("SM001"), "{err}");
    assert!(proxy.is_alive());
}
