//! Unguarded sessions over plain TCP are copied on the sockets themselves, with or
//! without `--busy-poll-us`: everything a session does arrives whole and in order, with
//! more sessions than may poll at once, data flowing both ways at the same time, cancel,
//! and the end of a session on either side; an idle proxy does not poll. Real PG15
//! cluster without the extension, the real proxy binary, rust-postgres.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use e2e::{connect, Cluster, ClusterOptions, Proxy};
use postgres::fallible_iterator::FallibleIterator;
use postgres::NoTls;

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// One session's worth of work: queries both protocols, a transaction, COPY both ways
/// with several MiB, NOTIFY delivered to the same session.
fn workload(url: &str, n: usize) {
    let mut client = connect(url);
    let table = format!("t{n}");
    client
        .batch_execute(&format!("CREATE TABLE {table} (id int, v text)"))
        .unwrap();
    let mut transaction = client.transaction().unwrap();
    for i in 0..200 {
        transaction
            .execute(
                &format!("INSERT INTO {table} VALUES ($1, $2)"),
                &[&i, &format!("row {i}")],
            )
            .unwrap();
    }
    transaction.commit().unwrap();
    let big = "x".repeat(4 << 20);
    let mut writer = client.copy_in(&format!("COPY {table} FROM STDIN")).unwrap();
    for i in 0..4 {
        writer.write_all(format!("{}\t{big}\n", 1000 + i).as_bytes()).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 4);
    let mut out = Vec::new();
    client
        .copy_out(&format!("COPY (SELECT v FROM {table} WHERE id >= 1000) TO STDOUT"))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 4 * (big.len() + 1));
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table} WHERE id < 200"), &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 200);
    let sum: i64 = client
        .simple_query(&format!("SELECT sum(id) FROM {table} WHERE id < 200"))
        .unwrap()
        .into_iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap();
    assert_eq!(sum, 199 * 200 / 2);
    client.batch_execute("LISTEN ping; NOTIFY ping, 'hello'").unwrap();
    let notes: Vec<_> = client.notifications().iter().collect().unwrap();
    assert_eq!(notes.first().map(|note| note.payload()), Some("hello"));
}

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    cluster.create_role("app", &[]);
    cluster
}

#[test]
fn unguarded_sessions_pass_whole_with_and_without_busy_polling() {
    let cluster = cluster();
    for args in [&[][..], &["--busy-poll-us", "500", "--threads", "2"][..]] {
        let proxy = Proxy::start(&cluster, args);
        let url = proxy.url("app", "postgres");
        // More sessions than may poll at once (half the cores), all at the same time.
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..6)
                .map(|n| {
                    let url = url.clone();
                    scope.spawn(move || workload(&url, n))
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
        let mut admin = connect(&cluster.url(e2e::SUPERUSER, "postgres"));
        admin.batch_execute("DROP TABLE t0, t1, t2, t3, t4, t5").unwrap();

        // Cancel reaches the server.
        let mut client = connect(&url);
        let token = client.cancel_token();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            token.cancel_query(NoTls).unwrap();
        });
        let err = client.batch_execute("SELECT pg_sleep(30)").unwrap_err();
        assert_eq!(err.code().map(|code| code.code()), Some("57014"), "{args:?}: {err}");
        canceller.join().unwrap();

        // The server ends a session: the client sees it, and the proxy lets go.
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
        assert!(client.simple_query("SELECT 1").is_err(), "{args:?}");
        drop(client);

        // The client ends sessions: no server session stays behind.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: i64 = admin
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'", &[])
                .unwrap()
                .get(0);
            if left == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{args:?}: {left} server sessions left");
            std::thread::sleep(Duration::from_millis(50));
        }

        // An open, idle session costs no CPU: polling stops after the window.
        let _idle = connect(&url);
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(proxy.pid());
        std::thread::sleep(Duration::from_secs(2));
        let spent = cpu_ticks(proxy.pid()) - before;
        assert!(spent <= 10, "{args:?}: the idle proxy used {spent}0 ms of CPU in 2 s");
    }
}

#[test]
fn a_busy_poll_window_over_10_ms_is_refused_at_start() {
    let output = std::process::Command::new(e2e::safe_migrations_bin())
        .args(["proxy", "--upstream", "127.0.0.1:1", "--busy-poll-us", "20000"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--busy-poll-us 20000: expected at most 10000"),
        "{stderr}"
    );
}
