//! The harness itself: clusters start, run in parallel, and leave nothing behind,
//! even when the test process is killed mid-way.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Cluster, ClusterOptions};

fn plain() -> ClusterOptions {
    ClusterOptions {
        extension: false,
        ..ClusterOptions::default()
    }
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = Cluster::start_with(plain());
    let b = Cluster::start_with(plain());
    assert_ne!(a.port(), b.port());
    assert_eq!(a.execute(&a.superuser_url(), "SELECT 1").trim(), "1");
    let out = b.execute(&b.superuser_url(), "SELECT current_setting('port')");
    assert!(out.contains(&b.port().to_string()), "{out}");
}

#[test]
fn dropping_a_cluster_stops_it_and_removes_its_dir() {
    let cluster = Cluster::start_with(plain());
    let dir = cluster.dir().to_path_buf();
    assert!(cluster.is_running());
    drop(cluster);
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// Run by `killed_test_leaves_no_postmaster_and_no_dir` in a child process: start a
/// cluster, report its dir, and SIGKILL itself so no destructor runs.
#[test]
#[ignore = "helper run in a child process by killed_test_leaves_no_postmaster_and_no_dir"]
fn child_that_kills_itself() {
    let Ok(report) = std::env::var("SM_HARNESS_REPORT") else {
        return;
    };
    let cluster = Cluster::start_with(plain());
    std::fs::write(&report, cluster.dir().display().to_string()).unwrap();
    // SAFETY: kill(2) on our own pid with SIGKILL; nothing after it runs.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL returned");
}

#[test]
fn killed_test_leaves_no_postmaster_and_no_dir() {
    let report = std::env::temp_dir().join(format!("sm-harness-report-{}", std::process::id()));
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["child_that_kills_itself", "--exact", "--ignored", "--nocapture"])
        .env("SM_HARNESS_REPORT", &report)
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have died by SIGKILL");
    let dir = PathBuf::from(std::fs::read_to_string(&report).expect("child reported its cluster dir"));
    let _ = std::fs::remove_file(&report);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let postmasters = Command::new("pgrep")
            .args(["-f", &dir.display().to_string()])
            .output()
            .unwrap();
        let running = !postmasters.stdout.is_empty();
        if !running && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30s after the kill: postmaster running = {running}, dir {} exists = {}",
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
