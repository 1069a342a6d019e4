//! Django's `manage.py migrate` (psycopg 3) against a guarded role, once with the
//! extension loaded and once through the proxy in front of a server without it: the
//! migrations `makemigrations` writes for an index, a foreign key and a check on a table
//! with rows are stopped with the rule's message in Django's output and leave nothing
//! behind; the same changes written the safe way apply and leave exactly that schema.
//! A data migration (RunPython's UPDATE) in the migration that adds the column is stopped
//! too; split into a migration of its own (not atomic, in batches), it applies, and
//! Django's own bookkeeping (django_migrations) passes in every migration's transaction.
//!
//! The project is tests/tools/django; tests/tools/django/install.sh installs Django into
//! the Python venv (tests/tools/install-all.sh runs it).

use std::path::Path;

use e2e::tools::{installed, project_dir, report, schema, tools_dir, Guarded};
use e2e::Cluster;

const TOOL: &str = "django";

/// `manage.py migrate shop [target]` as the guarded role with the migrations package
/// `package`; returns whether it succeeded and everything it printed.
fn migrate(python: &Path, guarded: &Guarded, package: &str, target: Option<&str>) -> (bool, String) {
    let output = guarded
        .command(python)
        .current_dir(project_dir(TOOL))
        .args(["manage.py", "migrate", "shop"])
        .args(target)
        .arg("--no-input")
        .env("DATABASE_URL", guarded.migrator_url())
        .env("SHOP_MIGRATIONS", package)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGOPTIONS")
        .output()
        .expect("run manage.py migrate");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

fn applied_migrations(cluster: &Cluster) -> String {
    cluster.execute(
        &cluster.superuser_url(),
        "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY id",
    )
}

const TABLES: &[&str] = &["shop_customer", "shop_order"];

/// Each unsafe package, and the rule's message Django must show for it.
const UNSAFE: &[(&str, &str)] = &[
    (
        "shop.migrations_unsafe_index",
        "create_index_non_concurrently: CREATE INDEX shop_order_total_idx on shop_order without CONCURRENTLY \
         blocks writes while the index builds",
    ),
    (
        "shop.migrations_unsafe_fk",
        "add_foreign_key_validated: ADD COLUMN customer_id REFERENCES shop_customer on shop_order without NOT VALID \
         blocks writes while every row is checked",
    ),
    (
        "shop.migrations_unsafe_backfill",
        "backfill_in_ddl_transaction: UPDATE of shop_order runs while this transaction holds ACCESS EXCLUSIVE \
         on shop_order, taken by `ALTER TABLE \"shop_order\" ADD COLUMN \"status\" varchar(20) NULL`",
    ),
    (
        "shop.migrations_unsafe_check",
        "add_check_constraint_validated: ADD CONSTRAINT shop_order_total_nonnegative CHECK on shop_order without \
         NOT VALID blocks reads and writes while every row is checked",
    ),
];

const SCHEMA_AFTER_INITIAL: &str = "\
column shop_customer.id bigint not null
column shop_customer.name text not null
column shop_order.id bigint not null
column shop_order.total integer not null
constraint shop_customer_pkey PRIMARY KEY (id)
constraint shop_order_pkey PRIMARY KEY (id)
index CREATE UNIQUE INDEX shop_customer_pkey ON public.shop_customer USING btree (id)
index CREATE UNIQUE INDEX shop_order_pkey ON public.shop_order USING btree (id)
";

const SCHEMA_AFTER_SAFE: &str = "\
column shop_customer.id bigint not null
column shop_customer.name text not null
column shop_order.customer_id bigint
column shop_order.id bigint not null
column shop_order.status character varying(20)
column shop_order.total integer not null
constraint shop_customer_pkey PRIMARY KEY (id)
constraint shop_order_customer_id_fk FOREIGN KEY (customer_id) REFERENCES shop_customer(id) DEFERRABLE INITIALLY DEFERRED
constraint shop_order_pkey PRIMARY KEY (id)
constraint shop_order_total_nonnegative CHECK ((total >= 0))
index CREATE INDEX shop_order_total_idx ON public.shop_order USING btree (total)
index CREATE UNIQUE INDEX shop_customer_pkey ON public.shop_customer USING btree (id)
index CREATE UNIQUE INDEX shop_order_pkey ON public.shop_order USING btree (id)
";

/// The initial migration as the guarded role, then rows in both tables (as superuser).
fn initial_migration_and_rows(python: &Path, guarded: &Guarded) {
    let (ok, printed) = migrate(python, guarded, "shop.migrations", Some("0001_initial"));
    assert!(ok, "{}: the initial migration failed:\n{printed}", guarded.name());
    guarded.cluster.execute(
        &guarded.cluster.superuser_url(),
        "INSERT INTO shop_customer (name) SELECT 'customer ' || g FROM generate_series(1, 3) g; \
         INSERT INTO shop_order (total) SELECT g FROM generate_series(1, 50) g;",
    );
}

fn unsafe_migrations_are_stopped_and_safe_ones_apply(python: &Path, guarded: &Guarded) {
    let cluster = &guarded.cluster;
    let route = guarded.name();
    initial_migration_and_rows(python, guarded);
    assert_eq!(schema(cluster, TABLES), SCHEMA_AFTER_INITIAL, "{route}");

    for (package, message) in UNSAFE {
        let (ok, printed) = migrate(python, guarded, package, None);
        assert!(!ok, "{route}: {package} was not stopped:\n{printed}");
        assert!(
            printed.contains(message),
            "{route}: {package}: no {message:?} in:\n{printed}"
        );
        assert!(
            printed.contains("\nDETAIL:  Lock: "),
            "{route}: {package}: no DETAIL in:\n{printed}"
        );
        assert!(
            printed.contains("\nHINT:  "),
            "{route}: {package}: no HINT in:\n{printed}"
        );
        assert_eq!(applied_migrations(cluster), "0001_initial\n", "{route}: {package}");
        assert_eq!(
            schema(cluster, TABLES),
            SCHEMA_AFTER_INITIAL,
            "{route}: {package} left a change"
        );
    }

    let (ok, printed) = migrate(python, guarded, "shop.migrations", None);
    assert!(ok, "{route}: the safe migrations were stopped:\n{printed}");
    assert_eq!(
        applied_migrations(cluster),
        "0001_initial\n0002_order_total_index\n0003_order_customer\n0004_validate_order_customer\n\
         0005_order_total_check\n0006_validate_order_total_check\n0007_order_status\n0008_fill_order_status\n",
        "{route}"
    );
    assert_eq!(schema(cluster, TABLES), SCHEMA_AFTER_SAFE, "{route}");
    assert_eq!(
        cluster.execute(
            &cluster.superuser_url(),
            "SELECT count(*) FROM shop_order WHERE status = 'new'"
        ),
        "50\n",
        "{route}: the data migration after the schema change's commit filled every row"
    );
}

#[test]
fn django_migrate_is_stopped_when_unsafe_and_applies_when_safe_with_extension_proxy_and_run() {
    let venv = tools_dir().join("venv");
    // install.sh writes this copy of requirements.txt once pip has installed it.
    if !installed(TOOL, &venv.join(".django-requirements.txt")) {
        return;
    }
    let python = venv.join("bin/python");
    unsafe_migrations_are_stopped_and_safe_ones_apply(&python, &Guarded::extension());
    unsafe_migrations_are_stopped_and_safe_ones_apply(&python, &Guarded::proxy());
    unsafe_migrations_are_stopped_and_safe_ones_apply(&python, &Guarded::run());
    report(&format!("tool {TOOL}: pass"));
}

/// Django declares every foreign key DEFERRABLE INITIALLY DEFERRED; the safe SQL in the
/// hint must keep that, or following it changes when the constraint is checked. The
/// proxy's hint keeps it.
#[test]
fn extension_hint_for_djangos_foreign_key_keeps_it_deferrable() {
    let venv = tools_dir().join("venv");
    if !installed(TOOL, &venv.join(".django-requirements.txt")) {
        return;
    }
    let python = venv.join("bin/python");
    let guarded = Guarded::extension();
    initial_migration_and_rows(&python, &guarded);
    let (ok, printed) = migrate(&python, &guarded, "shop.migrations_unsafe_fk", None);
    assert!(!ok, "the unsafe foreign key was not stopped:\n{printed}");
    assert!(
        printed.contains("REFERENCES shop_customer (id) DEFERRABLE INITIALLY DEFERRED NOT VALID;"),
        "{printed}"
    );
}
