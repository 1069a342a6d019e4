//! Shared plumbing of the migration-tool tests (tests/tests/tool_*.rs): where
//! tests/tools/install-all.sh put the tools, the pass/skip line each test prints, the
//! two places a guarded role runs (extension, or proxy in front of a server without
//! it), and a schema snapshot to compare before and after a migration.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Cluster, ClusterOptions, Proxy};

/// Where install-all.sh put the tools: `$TOOLS_DIR`, else `tools/` in the target dir
/// this test binary was built into (`<target>/debug/deps/<binary>`).
pub fn tools_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").join("tools")
}

/// The project files of a tool: tests/tools/<tool>.
pub fn project_dir(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join(tool)
}

/// One line on the test process's own stdout, shown even when the test harness
/// captures `println!` output.
pub fn report(line: &str) {
    writeln!(std::io::stdout(), "{line}").expect("write to stdout");
}

/// Is `tool` installed (`marker` exists and install-all.sh left no `<tool>.skip`)?
/// If not, a tool listed in tests/tools/expected (the tools this machine kind runs)
/// fails the test; any other prints `tool <name>: skip (<reason>)` and returns false:
/// never a silent skip.
pub fn installed(tool: &str, marker: &Path) -> bool {
    let skip_file = tools_dir().join(format!("{tool}.skip"));
    let reason = match fs::read_to_string(&skip_file) {
        Ok(reason) => reason.trim().to_string(),
        Err(_) if !marker.exists() => format!("{} not found: run tests/tools/install-all.sh", marker.display()),
        Err(_) => return true,
    };
    assert!(
        !expected_tools().iter().any(|expected| expected == tool),
        "tool {tool} is expected to run on this machine (tests/tools/expected) but is not installed: {reason}"
    );
    report(&format!("tool {tool}: skip ({reason})"));
    false
}

/// The tools listed in tests/tools/expected.
fn expected_tools() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join("expected");
    fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Every column, index and constraint of `tables`, one per line, sorted: what a
/// migration changed, including an index left invalid or a constraint left NOT VALID.
pub fn schema(cluster: &Cluster, tables: &[&str]) -> String {
    let tables = tables.join(",");
    cluster.execute(
        &cluster.superuser_url(),
        &format!(
            "SELECT x FROM (
               SELECT format('column %s.%s %s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attnotnull THEN ' not null' ELSE '' END)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               WHERE c.relname = ANY('{{{tables}}}') AND a.attnum > 0 AND NOT a.attisdropped
             UNION ALL
               SELECT format('index %s%s', pg_get_indexdef(i.indexrelid), CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = ANY('{{{tables}}}')
             UNION ALL
               SELECT format('constraint %s %s%s', con.conname, pg_get_constraintdef(con.oid),
                             CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END)
               FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE c.relname = ANY('{{{tables}}}')
             ) s(x) ORDER BY x"
        ),
    )
}

/// Where the guard runs for the role `migrator` (mode enforce): the extension in the
/// cluster itself, the proxy in front of a cluster without the extension, or the proxy
/// that `safe-migrations run -- <tool>` starts for the tool.
pub struct Guarded {
    pub cluster: Cluster,
    pub proxy: Option<Proxy>,
    /// The tool runs under `safe-migrations run --`, which reads DATABASE_URL.
    pub run: bool,
}

impl Guarded {
    pub fn extension() -> Guarded {
        let cluster = Cluster::start();
        cluster.create_role("migrator", &[("mode", "enforce")]);
        Guarded {
            cluster,
            proxy: None,
            run: false,
        }
    }

    /// A cluster without the extension; the tool runs under `safe-migrations run --`
    /// with DATABASE_URL naming the cluster (see [`Guarded::command`]).
    pub fn run() -> Guarded {
        let cluster = Cluster::start_with(ClusterOptions {
            extension: false,
            ..ClusterOptions::default()
        });
        cluster.create_role("migrator", &[("mode", "enforce")]);
        Guarded {
            cluster,
            proxy: None,
            run: true,
        }
    }

    /// `program` as this route runs it: under `safe-migrations run --` for [`Guarded::run`]
    /// (the tool must then take its database from DATABASE_URL).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        if self.run {
            let mut command = std::process::Command::new(crate::safe_migrations_bin());
            command.args(["run", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    pub fn proxy() -> Guarded {
        let cluster = Cluster::start_with(ClusterOptions {
            extension: false,
            ..ClusterOptions::default()
        });
        cluster.create_role("migrator", &[("mode", "enforce")]);
        let proxy = Proxy::start(&cluster, &[]);
        Guarded {
            cluster,
            proxy: Some(proxy),
            run: false,
        }
    }

    /// Where the migration tool connects as `migrator`.
    pub fn migrator_url(&self) -> String {
        self.url("migrator")
    }

    /// Where `user` connects: through the proxy when there is one.
    pub fn url(&self, user: &str) -> String {
        match &self.proxy {
            Some(proxy) => proxy.url(user, "postgres"),
            None => self.cluster.url(user, "postgres"),
        }
    }

    pub fn name(&self) -> &'static str {
        match (&self.proxy, self.run) {
            (Some(_), _) => "proxy",
            (None, true) => "run",
            (None, false) => "extension",
        }
    }
}
