//! Alembic (SQLAlchemy, psycopg 3) `alembic upgrade` against a guarded role, once with
//! the extension loaded and once through the proxy in front of a server without it:
//! `op.create_index(...)` on a table with rows is stopped with the rule's message in
//! Alembic's output, and so is `postgresql_concurrently=True` left inside the migration's
//! transaction; both leave nothing behind. The same index built with
//! `postgresql_concurrently=True` inside `autocommit_block()` applies. A data migration
//! (`op.execute("UPDATE ...")`) in the revision that adds the column is stopped too (the
//! UPDATE would run under the ADD COLUMN's lock; Alembic's own `alembic_version` update
//! in that transaction is bookkeeping); split into a revision of its own whose UPDATE
//! runs in `autocommit_block()`, it applies and fills every row.
//!
//! The project is tests/tools/alembic (`alembic -n safe|unsafe|unsafe_in_transaction`);
//! tests/tools/alembic/install.sh installs Alembic into the Python venv
//! (tests/tools/install-all.sh runs it).

use std::path::Path;

use e2e::tools::{installed, report, schema, tools_dir, Guarded};
use e2e::Cluster;

const TOOL: &str = "alembic";

/// `alembic -n <config> upgrade <target>` as the guarded role; returns whether it
/// succeeded and everything it printed.
fn upgrade(alembic: &Path, guarded: &Guarded, config: &str, target: &str) -> (bool, String) {
    let output = guarded
        .command(alembic)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/alembic"))
        .args(["-n", config, "upgrade", target])
        .env("DATABASE_URL", guarded.migrator_url())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGOPTIONS")
        .output()
        .expect("run alembic upgrade");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

fn alembic_version(cluster: &Cluster) -> String {
    cluster.execute(&cluster.superuser_url(), "SELECT version_num FROM alembic_version")
}

/// Each unsafe configuration, and the rule's message Alembic must show for it.
const UNSAFE: &[(&str, &str)] = &[
    (
        "unsafe",
        "create_index_non_concurrently: CREATE INDEX orders_total_idx on orders without CONCURRENTLY \
         blocks writes while the index builds",
    ),
    ("unsafe_in_transaction", "concurrently_in_transaction: "),
    (
        "unsafe_backfill",
        "backfill_in_ddl_transaction: UPDATE of orders runs while this transaction holds ACCESS EXCLUSIVE on \
         orders, taken by `ALTER TABLE orders ADD COLUMN status TEXT`",
    ),
];

const SCHEMA_AFTER_BASE: &str = "\
column orders.id bigint not null
column orders.total integer not null
constraint orders_pkey PRIMARY KEY (id)
index CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)
";

const SCHEMA_AFTER_SAFE: &str = "\
column orders.id bigint not null
column orders.status text
column orders.total integer not null
constraint orders_pkey PRIMARY KEY (id)
index CREATE INDEX orders_total_idx ON public.orders USING btree (total)
index CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)
";

fn unsafe_upgrades_are_stopped_and_the_safe_one_applies(alembic: &Path, guarded: &Guarded) {
    let cluster = &guarded.cluster;
    let route = guarded.name();
    let (ok, printed) = upgrade(alembic, guarded, "safe", "0001");
    assert!(ok, "{route}: the base revision failed:\n{printed}");
    cluster.execute(
        &cluster.superuser_url(),
        "INSERT INTO orders (total) SELECT g FROM generate_series(1, 50) g",
    );
    assert_eq!(schema(cluster, &["orders"]), SCHEMA_AFTER_BASE, "{route}");

    for (config, message) in UNSAFE {
        let (ok, printed) = upgrade(alembic, guarded, config, "head");
        assert!(!ok, "{route}: {config} was not stopped:\n{printed}");
        assert!(
            printed.contains(message),
            "{route}: {config}: no {message:?} in:\n{printed}"
        );
        assert!(
            printed.contains("\nHINT:  "),
            "{route}: {config}: no HINT in:\n{printed}"
        );
        assert_eq!(alembic_version(cluster), "0001\n", "{route}: {config}");
        assert_eq!(
            schema(cluster, &["orders"]),
            SCHEMA_AFTER_BASE,
            "{route}: {config} left a change"
        );
    }

    let (ok, printed) = upgrade(alembic, guarded, "safe", "head");
    assert!(ok, "{route}: the safe upgrade was stopped:\n{printed}");
    assert_eq!(alembic_version(cluster), "0004\n", "{route}");
    assert_eq!(schema(cluster, &["orders"]), SCHEMA_AFTER_SAFE, "{route}");
    assert_eq!(
        cluster.execute(
            &cluster.superuser_url(),
            "SELECT count(*) FROM orders WHERE status = 'new'"
        ),
        "50\n",
        "{route}: the data migration after the schema change's commit filled every row"
    );
}

#[test]
fn alembic_upgrade_is_stopped_when_unsafe_and_applies_when_safe_with_extension_proxy_and_run() {
    let venv = tools_dir().join("venv");
    // install.sh writes this copy of requirements.txt once pip has installed it.
    if !installed(TOOL, &venv.join(".alembic-requirements.txt")) {
        return;
    }
    let alembic = venv.join("bin/alembic");
    unsafe_upgrades_are_stopped_and_the_safe_one_applies(&alembic, &Guarded::extension());
    unsafe_upgrades_are_stopped_and_the_safe_one_applies(&alembic, &Guarded::proxy());
    unsafe_upgrades_are_stopped_and_the_safe_one_applies(&alembic, &Guarded::run());
    report(&format!("tool {TOOL}: pass"));
}
