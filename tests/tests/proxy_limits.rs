//! A guarded session's memory stays bounded whatever the peers send: large CopyData,
//! Bind and DataRow messages pass through the proxy in pieces, and a statement longer
//! than `--max-statement-bytes` is refused (54000) without ending the session. Real PG15
//! cluster without the extension, the real proxy binary, rust-postgres.

use std::io::{Read, Write};

use e2e::{connect, Cluster, ClusterOptions, Proxy};
use postgres::SimpleQueryMessage;

/// 48 MiB: far above the 1 MiB the proxy reads whole, far below what a test machine has.
const BIG: usize = 48 << 20;

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce"), ("lock_timeout", "1s")]);
    cluster
}

fn sqlstate(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|db| db.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {err}"))
}

/// The proxy process's peak resident memory (VmHWM), in bytes.
fn peak_rss(proxy: &Proxy) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"));
    kib * 1024
}

#[test]
fn large_rows_pass_through_a_guarded_session_in_pieces() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &[]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    client.batch_execute("CREATE TABLE big (id int, v text)").unwrap();
    let before = peak_rss(&proxy);

    // COPY FROM STDIN: rust-postgres sends the row as one CopyData message.
    let row = format!("1\t{}\n", "a".repeat(BIG));
    let mut writer = client.copy_in("COPY big FROM STDIN").unwrap();
    writer.write_all(row.as_bytes()).unwrap();
    assert_eq!(writer.finish().unwrap(), 1);
    // A Bind carrying the value as a parameter.
    let value = "b".repeat(BIG);
    assert_eq!(client.execute("INSERT INTO big VALUES (2, $1)", &[&value]).unwrap(), 1);
    drop(value);

    // DataRow, extended protocol and simple protocol.
    let rows = client.query("SELECT id, v FROM big ORDER BY id", &[]).unwrap();
    assert_eq!(rows.len(), 2);
    for (row, letter) in rows.iter().zip(['a', 'b']) {
        let v: &str = row.get(1);
        assert_eq!(v.len(), BIG);
        assert!(v.bytes().all(|byte| byte == letter as u8));
    }
    drop(rows);
    let lengths: Vec<usize> = client
        .simple_query("SELECT v FROM big ORDER BY id")
        .unwrap()
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::len),
            _ => None,
        })
        .collect();
    assert_eq!(lengths, vec![BIG, BIG]);
    // COPY TO STDOUT: one CopyData per row.
    let mut out = Vec::new();
    client
        .copy_out("COPY (SELECT v FROM big WHERE id = 1) TO STDOUT")
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), BIG + 1);

    // The guard still works on the same session, and the message order held.
    let err = client.batch_execute("CREATE INDEX ON big (id)").unwrap_err();
    assert_eq!(sqlstate(&err), "SM001");
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM big", &[])
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    let grown = peak_rss(&proxy).saturating_sub(before);
    assert!(
        grown < BIG / 2,
        "the proxy's peak memory grew by {grown} bytes while {BIG}-byte messages passed through"
    );
}

#[test]
fn a_statement_longer_than_the_limit_is_refused_and_the_session_goes_on() {
    let cluster = cluster();
    let proxy = Proxy::start(&cluster, &["--max-statement-bytes", "2000000"]);
    let mut client = connect(&proxy.url("migrator", "postgres"));
    let long = format!("SELECT length('{}')", "x".repeat(3_000_000));

    let err = client.simple_query(&long).unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.message()
            .contains("is larger than the proxy reads to check it (2000000 bytes)"),
        "{}",
        db.message()
    );
    assert_eq!(
        db.hint(),
        Some("Split it into smaller statements, or start the proxy with a larger --max-statement-bytes.")
    );
    // Extended protocol: the Parse is refused, the rest of the batch discarded.
    let err = client.prepare(&long).unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err}");
    assert_eq!(client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0), 1);

    // Inside a transaction the refusal aborts it, as any error does.
    client.batch_execute("BEGIN").unwrap();
    assert_eq!(sqlstate(&client.simple_query(&long).unwrap_err()), "54000");
    assert_eq!(sqlstate(&client.simple_query("SELECT 1").unwrap_err()), "25P02");
    client.batch_execute("ROLLBACK").unwrap();

    // Below the limit the same kind of statement runs.
    let fits = format!("SELECT length('{}')", "x".repeat(1_500_000));
    let length = client.query_one(fits.as_str(), &[]).unwrap().get::<_, i32>(0);
    assert_eq!(length, 1_500_000);
}

#[test]
fn a_bad_limit_is_refused_at_start() {
    let output = std::process::Command::new(e2e::safe_migrations_bin())
        .args(["proxy", "--upstream", "127.0.0.1:1", "--max-statement-bytes", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--max-statement-bytes 10: expected between 1024 and"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
