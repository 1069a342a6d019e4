//! `safe-migrations run -- <command>`: the command reaches the database through the proxy
//! (its DATABASE_URL, PGHOST and PGPORT rewritten), a guarded role's unsafe DDL is
//! refused and the safe form runs, the command's exit status and the signals sent to
//! `run` pass through, the proxy is gone when the command ends, and a missing or unusable
//! URL is refused with the reason. Against a cluster without the extension: the proxy
//! that `run` starts is the only guard. (The real migration tools under `run`:
//! tool_sqlx.rs and tool_node.rs.)

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::{pg_bin, safe_migrations_bin, Cluster, ClusterOptions};

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce")]);
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE t (c int); INSERT INTO t VALUES (1)",
    );
    cluster
}

/// `safe-migrations run -- sh -c SCRIPT` with DATABASE_URL = `url` and psql on PATH.
fn run_sh(url: Option<&str>, script: &str) -> Output {
    run_sh_with(url, script, &[])
}

/// [`run_sh`] with `env` in run's own environment.
fn run_sh_with(url: Option<&str>, script: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(safe_migrations_bin());
    command.envs(env.iter().copied());
    command
        .args(["run", "--", "sh", "-c", script])
        .env(
            "PATH",
            format!("{}:{}", pg_bin(), std::env::var("PATH").unwrap_or_default()),
        )
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .stdin(Stdio::null());
    match url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    command.output().expect("run safe-migrations run")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn index_count(cluster: &Cluster) -> String {
    cluster.execute(
        &cluster.superuser_url(),
        "SELECT count(*) FROM pg_indexes WHERE tablename = 't'",
    )
}

#[test]
fn the_command_reaches_the_database_through_the_proxy_and_is_guarded() {
    let cluster = cluster();
    let url = cluster.url("migrator", "postgres");
    // Through DATABASE_URL: refused with the rule's message, psql's own exit status.
    let output = run_sh(
        Some(&url),
        "psql \"$DATABASE_URL\" -X -q -v ON_ERROR_STOP=1 -c 'CREATE INDEX t_c ON t (c)'",
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("create_index_non_concurrently: CREATE INDEX t_c on t without CONCURRENTLY"),
        "{}",
        text(&output)
    );
    assert_eq!(index_count(&cluster), "0\n");
    // Through PGHOST/PGPORT (the user and password from the environment): the safe form runs.
    let output = run_sh(
        Some(&url),
        "PGUSER=migrator PGPASSWORD=migrator PGDATABASE=postgres \
         psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE INDEX CONCURRENTLY t_c ON t (c)'",
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(index_count(&cluster), "1\n");
    // A service file entry in run's environment would send psql straight to the server
    // (its host and port beat PGHOST and PGPORT): not passed on, so the proxy decides.
    let service_file = cluster.dir().join("pg_service.conf");
    std::fs::write(
        &service_file,
        format!(
            "[direct]\nhost=127.0.0.1\nhostaddr=127.0.0.1\nport={}\n",
            cluster.port()
        ),
    )
    .unwrap();
    let output = run_sh_with(
        Some(&url),
        "PGUSER=migrator PGPASSWORD=migrator PGDATABASE=postgres \
         psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE INDEX t_c2 ON t (c)'",
        &[
            ("PGSERVICEFILE", service_file.to_str().unwrap()),
            ("PGSERVICE", "direct"),
            ("PGHOSTADDR", "127.0.0.1"),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("create_index_non_concurrently"),
        "{}",
        text(&output)
    );
    assert_eq!(index_count(&cluster), "1\n");
    // The URL the command sees: the proxy's loopback port, the rest kept.
    let output = run_sh(Some(&url), "echo \"$DATABASE_URL $PGHOST $PGPORT\"");
    let seen = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let port: u16 = seen.rsplit(' ').next().unwrap().parse().unwrap();
    assert_ne!(port, cluster.port());
    assert_eq!(
        seen,
        format!("postgres://migrator:migrator@127.0.0.1:{port}/postgres?sslmode=disable 127.0.0.1 {port}")
    );
    // A command that never connects through the proxy is named, its status kept.
    assert!(
        text(&output).contains("the command never connected through the proxy"),
        "{}",
        text(&output)
    );
    assert!(output.status.success());
    // A command whose arguments hold the URL itself would connect around the proxy.
    let output = Command::new(safe_migrations_bin())
        .args(["run", "--", "psql", &url, "-c", "CREATE INDEX t_c3 ON t (c)"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("hold DATABASE_URL's URL itself"),
        "{}",
        text(&output)
    );
    assert_eq!(index_count(&cluster), "1\n");
}

#[test]
fn the_commands_exit_status_is_runs() {
    let cluster = cluster();
    let url = cluster.url("migrator", "postgres");
    assert_eq!(run_sh(Some(&url), "exit 0").status.code(), Some(0));
    assert_eq!(run_sh(Some(&url), "exit 7").status.code(), Some(7));
    // Killed by a signal: 128 + its number, as a shell reports it.
    assert_eq!(run_sh(Some(&url), "kill -KILL $$").status.code(), Some(137));
    // A command that does not exist: 127, and why.
    let output = Command::new(safe_migrations_bin())
        .args(["run", "--", "/nonexistent/migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127), "{}", text(&output));
    assert!(
        text(&output).contains("cannot run /nonexistent/migrate"),
        "{}",
        text(&output)
    );
}

#[test]
fn signals_sent_to_run_reach_the_command() {
    let cluster = cluster();
    for (signal, signo) in [("TERM", libc::SIGTERM), ("INT", libc::SIGINT), ("HUP", libc::SIGHUP)] {
        let mut command = Command::new(safe_migrations_bin());
        command
            .args([
                "run",
                "--",
                "sh",
                "-c",
                &format!("trap 'echo got {signal}; exit 42' {signal}; echo ready; while :; do sleep 0.05; done"),
            ])
            .env("DATABASE_URL", cluster.url("migrator", "postgres"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // A session of its own, without a controlling terminal, wherever the tests run:
        // `run` sends on a SIGINT a terminal did not already send to the command.
        // SAFETY: setsid(2) only changes the calling (child) process's session and is
        // async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) only sends a signal; the pid is our child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signo) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("SIG{signal}: run still runs after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, format!("got {signal}\n"), "SIG{signal}");
        assert_eq!(status.code(), Some(42), "SIG{signal}");
    }
}

#[test]
fn without_a_usable_database_url_run_says_why_and_runs_nothing() {
    for (url, reason) in [
        (None, "no database to guard: set DATABASE_URL"),
        (
            Some("host=db port=5432"),
            "DATABASE_URL: not a postgres:// or postgresql:// URL",
        ),
        (Some("postgres:///app"), "DATABASE_URL: names no TCP host"),
        (Some("postgres://a,b/app"), "DATABASE_URL: names several hosts"),
    ] {
        let output = run_sh(url, "echo ran");
        assert_eq!(output.status.code(), Some(2), "{url:?}: {}", text(&output));
        assert!(text(&output).contains(reason), "{url:?}: {}", text(&output));
        assert!(!text(&output).contains("ran"), "{url:?}: {}", text(&output));
    }
}
