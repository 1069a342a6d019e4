//! sqlx-cli (`sqlx migrate run`, from crates.io) against a guarded role, through the
//! extension and through the proxy: a migration with a plain `CREATE INDEX` is stopped
//! with the rule's message and leaves nothing behind, and a `-- no-transaction` migration
//! with `CREATE INDEX CONCURRENTLY` applies. The migrations are under tests/tools/sqlx;
//! tests/tools/install-all.sh installs the tool.

use std::path::{Path, PathBuf};

use e2e::tools::{installed, project_dir, report, tools_dir, Guarded};
use e2e::Cluster;

const TOOL: &str = "sqlx";

/// Columns and indexes of `accounts`, and the rows of sqlx's bookkeeping table, one per
/// line, read as superuser.
const SCHEMA: &str = "SELECT line FROM (
    SELECT 1 AS part, ordinal_position AS position, 'column ' || column_name || ' ' || data_type
        || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END AS line
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts'
    UNION ALL
    SELECT 2, 0, 'index ' || pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_index WHERE indrelid = 'public.accounts'::regclass
    UNION ALL
    SELECT 3, 0, 'applied ' || version || ' ' || description || CASE WHEN success THEN '' ELSE ' FAILED' END
    FROM public._sqlx_migrations
) schema ORDER BY part, position, line";

/// Where tests/tools/sqlx/install.sh put the binary.
fn sqlx_bin() -> PathBuf {
    tools_dir().join("cargo/bin/sqlx")
}

/// A migration source made of the project's `dirs`, as a user's migrations/ folder
/// would hold them after editing.
fn source(cluster: &Cluster, name: &str, dirs: &[&str]) -> PathBuf {
    let project = project_dir(TOOL);
    let source = cluster.dir().join(name);
    std::fs::create_dir_all(&source).expect("create migration source");
    for dir in dirs {
        for entry in std::fs::read_dir(project.join(dir)).expect("read migrations") {
            let path = entry.expect("dir entry").path();
            std::fs::copy(&path, source.join(path.file_name().unwrap())).expect("copy migration");
        }
    }
    source
}

/// `sqlx migrate run` from `source` as the guarded role (DATABASE_URL): did it succeed,
/// and everything it printed.
fn migrate_run(guarded: &Guarded, source: &Path) -> (bool, String) {
    let output = guarded
        .command(sqlx_bin())
        .args(["migrate", "run", "--source"])
        .arg(source)
        .env("DATABASE_URL", guarded.migrator_url())
        .output()
        .expect("run sqlx");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A deploy creates the table, a later one brings the unsafe migration: it is stopped
/// and leaves nothing, then the safe one applies.
fn unsafe_stopped_then_safe_applies(guarded: &Guarded) {
    let (cluster, route) = (&guarded.cluster, guarded.name());
    let (ok, output) = migrate_run(guarded, &source(cluster, "sqlx-base", &["base"]));
    assert!(ok, "{route}: the table was not created:\n{output}");
    let (ok, output) = migrate_run(guarded, &source(cluster, "sqlx-unsafe", &["base", "unsafe"]));
    assert!(!ok, "{route}: the plain CREATE INDEX was applied:\n{output}");
    let expected = "create_index_non_concurrently: CREATE INDEX accounts_email_idx on accounts without \
                    CONCURRENTLY blocks writes while the index builds";
    assert!(output.contains(expected), "{route}: {expected:?} not in:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name text not null\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001 create accounts\n",
        "{route}: the refused migration left a change behind"
    );

    let (ok, output) = migrate_run(guarded, &source(cluster, "sqlx-safe", &["base", "safe"]));
    assert!(ok, "{route}: the concurrent index was not applied:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name text not null\n\
         column email text\n\
         index CREATE INDEX accounts_email_idx ON public.accounts USING btree (email)\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001 create accounts\n\
         applied 20240101000003 add email\n\
         applied 20240101000004 index accounts email\n",
        "{route}"
    );
}

#[test]
fn create_index_is_stopped_and_the_no_transaction_concurrent_index_applies() {
    if !installed(TOOL, &sqlx_bin()) {
        return;
    }
    for guarded in [Guarded::extension(), Guarded::proxy(), Guarded::run()] {
        unsafe_stopped_then_safe_applies(&guarded);
    }

    // The run that creates the table brings the unsafe migration too: on that one
    // session the proxy must not take the table for one created in the migration's own
    // transaction.
    let guarded = Guarded::proxy();
    let source = source(&guarded.cluster, "sqlx-one-run", &["base", "unsafe"]);
    let (ok, output) = migrate_run(&guarded, &source);
    assert!(!ok, "proxy, one run: the plain CREATE INDEX was applied:\n{output}");
    assert!(
        output.contains("create_index_non_concurrently: "),
        "proxy, one run:\n{output}"
    );

    report(&format!("tool {TOOL}: pass"));
}
