//! The proxy's operator view: `--metrics-listen` serves OpenMetrics text that a real
//! parser reads (prometheus_client's OpenMetrics parser, tests/tools/openmetrics) with
//! sessions by guard, statements judged, refusals by rule, lock retries and failures and
//! acknowledgements by rule and upstream connection errors counted as they happen;
//! `--log-format json` logs a refusal, and an acknowledgement, as one JSON object with
//! role, database, rule and statement (an acknowledgement once per statement judged,
//! not per execution).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use e2e::tools::{installed, report, tools_dir};
use e2e::{connect, free_port, Cluster, ClusterOptions, Proxy};

const TOOL: &str = "openmetrics";

fn python() -> std::path::PathBuf {
    tools_dir().join("venv/bin/python")
}

/// The raw HTTP answer to `request` on `port`.
fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The samples of the exposition on `port`, as prometheus_client's OpenMetrics parser
/// reads them: `name{labels} value` lines, sorted. The parser fails on anything that is
/// not valid OpenMetrics.
fn samples(port: u16) -> Vec<String> {
    let answer = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for sample in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(sample.labels.items()))\n\
        \x20       print(f'{sample.name}{{{labels}}} {int(sample.value)}')\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not OpenMetrics: {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn value(samples: &[String], name: &str) -> u64 {
    samples
        .iter()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {samples:#?}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_what_the_proxy_does_and_json_logs_name_the_refusal() {
    if !installed(TOOL, &python()) {
        return;
    }
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    cluster.create_role(
        "migrator",
        &[
            ("mode", "enforce"),
            ("lock_timeout", "100ms"),
            ("lock_retries", "1"),
            ("lock_retry_delay", "100ms"),
        ],
    );
    cluster.create_role("app", &[]);
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (c int); INSERT INTO t VALUES (1)",
    );
    let metrics_port = free_port();
    let proxy = Proxy::start(
        &cluster,
        &[
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--log-format",
            "json",
        ],
    );
    let before = samples(metrics_port);
    assert_eq!(value(&before, "safe_migrations_sessions_total{guarded=true}"), 0);
    assert_eq!(value(&before, "safe_migrations_statements_judged_total{}"), 0);

    // A guarded session: a refusal and two statements that run.
    let mut migrator = connect(&proxy.url("migrator", "postgres"));
    migrator.batch_execute("SELECT 1").unwrap();
    let err = migrator.batch_execute("CREATE INDEX t_c ON t (c)").unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "SM001");
    migrator
        .batch_execute("CREATE INDEX CONCURRENTLY t_c ON t (c)")
        .unwrap();
    // Acknowledged findings: by a Query, and by a statement prepared once (a named
    // Parse) and executed twice.
    migrator
        .batch_execute(
            "-- safe_migrations:allow create_index_non_concurrently -- t holds one row\nCREATE INDEX t_c_ack ON t (c)",
        )
        .unwrap();
    let prepared = migrator
        .prepare("-- safe_migrations:allow create_index_non_concurrently -- t holds one row\nCREATE INDEX IF NOT EXISTS t_c_ack2 ON t (c)")
        .unwrap();
    for _ in 0..2 {
        migrator.execute(&prepared, &[]).unwrap();
    }
    // Two unguarded ones.
    for _ in 0..2 {
        connect(&proxy.url("app", "postgres"))
            .batch_execute("SELECT 1")
            .unwrap();
    }
    // A lock wait that gives up, is tried once more and fails.
    let (locked, is_locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let superuser_url = cluster.superuser_url();
    let blocker = std::thread::spawn(move || {
        let mut blocker = connect(&superuser_url);
        blocker
            .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
            .unwrap();
        locked.send(()).unwrap();
        let _ = released.recv_timeout(Duration::from_secs(20));
        blocker.batch_execute("ROLLBACK").unwrap();
    });
    is_locked.recv().unwrap();
    let err = migrator.batch_execute("ALTER TABLE t ADD COLUMN d int").unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "55P03", "{err}");
    release.send(()).unwrap();
    blocker.join().unwrap();

    // The unguarded clients have gone; their sessions end when the proxy reads their
    // Terminate, a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = samples(metrics_port);
        if value(&now, "safe_migrations_sessions_open{}") == 1 || std::time::Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, expected) in [
        ("safe_migrations_sessions_total{guarded=true}", 1),
        ("safe_migrations_sessions_total{guarded=false}", 2),
        ("safe_migrations_sessions_open{}", 1),
        ("safe_migrations_refusals_total{rule=create_index_non_concurrently}", 1),
        (
            "safe_migrations_acknowledgements_total{rule=create_index_non_concurrently}",
            2,
        ),
        ("safe_migrations_lock_retries_total{}", 1),
        ("safe_migrations_lock_timeout_failures_total{}", 1),
        ("safe_migrations_upstream_connect_errors_total{}", 0),
    ] {
        assert_eq!(value(&after, name), expected, "{name} in {after:#?}");
    }
    // SELECT 1, the refused CREATE INDEX, the CONCURRENTLY one, the ALTER TABLE.
    assert!(
        value(&after, "safe_migrations_statements_judged_total{}") >= 4,
        "{after:#?}"
    );
    // Anything but GET /metrics: 404.
    assert!(http(metrics_port, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));

    // The refusal as one JSON object per line, with role, database, rule and statement.
    let lines: Vec<serde_json::Value> = proxy
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
        .collect();
    let refusal = lines
        .iter()
        .find(|line| line["message"] == "statement refused")
        .unwrap_or_else(|| panic!("no refusal in {lines:#?}"));
    assert_eq!(refusal["level"], "WARN", "{refusal}");
    assert_eq!(refusal["role"], "migrator", "{refusal}");
    assert_eq!(refusal["database"], "postgres", "{refusal}");
    assert_eq!(refusal["rule"], "create_index_non_concurrently", "{refusal}");
    assert_eq!(refusal["statement"], "CREATE INDEX t_c ON t (c)", "{refusal}");
    // Each acknowledgement once: the prepared statement's at its Parse, not at each Execute.
    let acknowledgements: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["message"] == "finding acknowledged")
        .collect();
    let statements: Vec<&str> = acknowledgements
        .iter()
        .map(|line| line["statement"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        statements,
        [
            "CREATE INDEX t_c_ack ON t (c)",
            "CREATE INDEX IF NOT EXISTS t_c_ack2 ON t (c)"
        ],
        "{lines:#?}"
    );
    for line in acknowledgements {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["role"], "migrator", "{line}");
        assert_eq!(line["database"], "postgres", "{line}");
        assert_eq!(line["rule"], "create_index_non_concurrently", "{line}");
        assert_eq!(line["reason"], "t holds one row", "{line}");
    }

    // Connections to a server that is not there are counted.
    let dead_port = free_port();
    let metrics_port = free_port();
    let dead = Proxy::start_upstream(
        &format!("127.0.0.1:{dead_port}"),
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    assert!(postgres::Client::connect(&dead.url("app", "postgres"), postgres::NoTls).is_err());
    assert_eq!(
        value(
            &samples(metrics_port),
            "safe_migrations_upstream_connect_errors_total{}"
        ),
        1
    );
    report(&format!("tool {TOOL}: pass"));
}
