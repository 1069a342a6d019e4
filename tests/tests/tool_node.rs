//! node-pg-migrate (with `pg`) `node-pg-migrate up` against a guarded role, once with
//! the extension loaded and once through the proxy in front of a server without it: a
//! plain `pgm.createIndex(...)` on a table with rows is stopped with the rule's message in
//! node-pg-migrate's output and leaves nothing behind; the same index with
//! `concurrently: true` in a migration that calls `pgm.noTransaction()` applies.
//!
//! The project is tests/tools/node (migrations/ safe, migrations-unsafe/);
//! tests/tools/node/install.sh installs it with npm (tests/tools/install-all.sh runs it).

use e2e::tools::{installed, project_dir, report, schema, Guarded};
use e2e::Cluster;

const TOOL: &str = "node";

/// `node-pg-migrate up [count] -m <dir>` as the guarded role; returns whether it
/// succeeded and everything it printed.
fn up(guarded: &Guarded, migrations_dir: &str, count: Option<&str>) -> (bool, String) {
    let output = guarded
        .command(project_dir(TOOL).join("node_modules/.bin/node-pg-migrate"))
        .current_dir(project_dir(TOOL))
        .arg("up")
        .args(count)
        .args(["-m", migrations_dir])
        .env("DATABASE_URL", guarded.migrator_url())
        .env_remove("PGOPTIONS")
        .output()
        .expect("run node-pg-migrate up");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

fn applied_migrations(cluster: &Cluster) -> String {
    cluster.execute(&cluster.superuser_url(), "SELECT name FROM pgmigrations ORDER BY id")
}

const UNSAFE_MESSAGE: &str = "create_index_non_concurrently: CREATE INDEX orders_total_idx on orders without \
     CONCURRENTLY blocks writes while the index builds";

const SCHEMA_AFTER_FIRST: &str = "\
column orders.id integer not null
column orders.total integer not null
constraint orders_pkey PRIMARY KEY (id)
index CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)
";

const SCHEMA_AFTER_SAFE: &str = "\
column orders.id integer not null
column orders.total integer not null
constraint orders_pkey PRIMARY KEY (id)
index CREATE INDEX orders_total_idx ON public.orders USING btree (total)
index CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)
";

fn the_unsafe_migration_is_stopped_and_the_safe_one_applies(guarded: &Guarded) {
    let cluster = &guarded.cluster;
    let route = guarded.name();
    let (ok, printed) = up(guarded, "migrations", Some("1"));
    assert!(ok, "{route}: the first migration failed:\n{printed}");
    cluster.execute(
        &cluster.superuser_url(),
        "INSERT INTO orders (total) SELECT g FROM generate_series(1, 50) g",
    );
    assert_eq!(schema(cluster, &["orders"]), SCHEMA_AFTER_FIRST, "{route}");

    let (ok, printed) = up(guarded, "migrations-unsafe", None);
    assert!(!ok, "{route}: the unsafe migration was not stopped:\n{printed}");
    assert!(
        printed.contains(UNSAFE_MESSAGE),
        "{route}: no {UNSAFE_MESSAGE:?} in:\n{printed}"
    );
    assert!(
        printed.contains("CREATE INDEX CONCURRENTLY"),
        "{route}: no hint in:\n{printed}"
    );
    assert_eq!(applied_migrations(cluster), "0001_create_orders\n", "{route}");
    assert_eq!(
        schema(cluster, &["orders"]),
        SCHEMA_AFTER_FIRST,
        "{route}: left a change"
    );

    let (ok, printed) = up(guarded, "migrations", None);
    assert!(ok, "{route}: the safe migration was stopped:\n{printed}");
    assert_eq!(
        applied_migrations(cluster),
        "0001_create_orders\n0002_orders_total_index\n",
        "{route}"
    );
    assert_eq!(schema(cluster, &["orders"]), SCHEMA_AFTER_SAFE, "{route}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), "SELECT count(*) FROM orders"),
        "50\n",
        "{route}"
    );
}

#[test]
fn node_pg_migrate_is_stopped_when_unsafe_and_applies_when_safe_with_extension_proxy_and_run() {
    if !installed(TOOL, &project_dir(TOOL).join("node_modules/.bin/node-pg-migrate")) {
        return;
    }
    the_unsafe_migration_is_stopped_and_the_safe_one_applies(&Guarded::extension());
    the_unsafe_migration_is_stopped_and_the_safe_one_applies(&Guarded::proxy());
    the_unsafe_migration_is_stopped_and_the_safe_one_applies(&Guarded::run());
    report(&format!("tool {TOOL}: pass"));
}
