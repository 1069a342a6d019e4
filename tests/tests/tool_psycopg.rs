//! psycopg 3, a driver from another ecosystem, through the proxy in front of a server
//! without the extension: ordinary queries, transactions, COPY in and out, server-side
//! prepared statements, pipeline mode and cancel for an unguarded and a guarded role, and
//! the guarded role's refusal as a psycopg exception with the rule's SQLSTATE, message,
//! detail and hint. The checks are tests/tools/psycopg/driver_checks.py;
//! tests/tools/psycopg/install.sh installs psycopg into the Python venv
//! (tests/tools/install-all.sh runs it).

use std::path::Path;
use std::process::Command;

use e2e::tools::{installed, report, tools_dir};
use e2e::{Cluster, ClusterOptions, Proxy};

const TOOL: &str = "psycopg";

/// Runs driver_checks.py as `role` (`unguarded` or `guarded`) and returns what it printed;
/// panics with that output and the server's log if a check failed.
fn driver_checks(python: &Path, url: &str, role_kind: &str, cluster: &Cluster) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/psycopg/driver_checks.py");
    let output = Command::new(python)
        .arg(&script)
        .args([url, role_kind])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGOPTIONS")
        .output()
        .expect("run driver_checks.py");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "psycopg checks failed for the {role_kind} role:\n{printed}\n--- server log ---\n{}",
        cluster.log()
    );
    printed
}

#[test]
fn psycopg_works_through_the_proxy_for_unguarded_and_guarded_roles() {
    let venv = tools_dir().join("venv");
    // install.sh writes this copy of requirements.txt once pip has installed it.
    if !installed(TOOL, &venv.join(".psycopg-requirements.txt")) {
        return;
    }
    let python = venv.join("bin/python");
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        // Which backend logged what, for a failure's server log.
        conf: vec![("log_line_prefix".into(), "%m [%p] ".into())],
        ..ClusterOptions::default()
    });
    cluster.create_role("app", &[]);
    cluster.create_role("migrator", &[("mode", "enforce")]);
    let proxy = Proxy::start(&cluster, &[]);
    for (role, role_kind) in [("app", "unguarded"), ("migrator", "guarded")] {
        let printed = driver_checks(&python, &proxy.url(role, "postgres"), role_kind, &cluster);
        assert!(
            printed.ends_with(&format!("{role_kind}: all checks passed\n")),
            "{printed}\n--- server log ---\n{}",
            cluster.log()
        );
    }
    report(&format!("tool {TOOL}: pass"));
}
