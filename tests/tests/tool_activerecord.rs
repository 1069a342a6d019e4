//! ActiveRecord standalone (Debian's ruby-activerecord and ruby-pg, no Rails app) against
//! a guarded role, through the extension and through the proxy: `add_index` in the DDL
//! transaction is stopped with the rule's message and leaves nothing behind, and
//! `add_index ..., algorithm: :concurrently` with `disable_ddl_transaction!` applies.
//! The project is tests/tools/activerecord; tests/tools/install-all.sh installs the tool.

use std::path::Path;
use std::process::Command;

use e2e::tools::{installed, project_dir, report, Guarded};
use e2e::Cluster;

const TOOL: &str = "activerecord";
/// A file of the pinned ruby-activerecord package.
const MARKER: &str = "/usr/share/rubygems-integration/all/gems/activerecord-6.1.7.10/lib/active_record.rb";

/// Columns and indexes of `accounts`, and the versions in ActiveRecord's bookkeeping
/// table, one per line, read as superuser.
const SCHEMA: &str = "SELECT line FROM (
    SELECT 1 AS part, ordinal_position AS position, 'column ' || column_name || ' ' || data_type
        || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END AS line
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts'
    UNION ALL
    SELECT 2, 0, 'index ' || pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_index WHERE indrelid = 'public.accounts'::regclass
    UNION ALL
    SELECT 3, 0, 'applied ' || version FROM public.schema_migrations
) schema ORDER BY part, position, line";

/// `ruby migrate.rb <dirs>` against `url`: did it succeed, and everything it printed.
fn migrate(url: &str, dirs: &[&str]) -> (bool, String) {
    let project = project_dir(TOOL);
    let output = Command::new("ruby")
        .arg(project.join("migrate.rb"))
        .args(dirs.iter().map(|dir| project.join(dir)))
        .env("DATABASE_URL", url)
        .output()
        .expect("run ruby");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A deploy creates the table, a later one brings the unsafe migration: it is stopped
/// and leaves nothing, then the safe one applies.
fn unsafe_stopped_then_safe_applies(cluster: &Cluster, url: &str, route: &str) {
    let (ok, output) = migrate(url, &["base"]);
    assert!(ok, "{route}: the table was not created:\n{output}");
    let (ok, output) = migrate(url, &["base", "unsafe"]);
    assert!(!ok, "{route}: the plain add_index was applied:\n{output}");
    for expected in [
        "create_index_non_concurrently: CREATE INDEX index_accounts_on_email on accounts without CONCURRENTLY \
         blocks writes while the index builds",
        "DETAIL:  Lock: SHARE on accounts, blocks writes.",
        "HINT:  Build the index without blocking writes, outside a transaction block:\n    \
         CREATE INDEX CONCURRENTLY \"index_accounts_on_email\" ON \"accounts\" (\"email\");",
    ] {
        assert!(output.contains(expected), "{route}: {expected:?} not in:\n{output}");
    }
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name character varying not null\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001\n",
        "{route}: the refused migration left a change behind"
    );

    let (ok, output) = migrate(url, &["base", "safe"]);
    assert!(ok, "{route}: the concurrent index was not applied:\n{output}");
    assert!(output.contains("IndexAccountsOnEmail: migrated"), "{route}:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name character varying not null\n\
         column email character varying\n\
         index CREATE INDEX index_accounts_on_email ON public.accounts USING btree (email)\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001\n\
         applied 20240101000003\n\
         applied 20240101000004\n",
        "{route}"
    );
}

/// A data migration: `update_all` after `add_column` in one migration is stopped (it
/// would rewrite every row under the ADD COLUMN's lock) and leaves nothing; the column in
/// one migration and the batched backfill in another, outside a DDL transaction, apply
/// and fill every row. ActiveRecord's own bookkeeping passes in both.
fn data_migration_stopped_then_split_applies(cluster: &Cluster, url: &str, route: &str) {
    let (ok, output) = migrate(url, &["base"]);
    assert!(ok, "{route}: the table was not created:\n{output}");
    // 30 more accounts than the base migration's one.
    cluster.execute(
        &cluster.superuser_url(),
        "INSERT INTO accounts (name) SELECT 'account ' || g FROM generate_series(1, 30) g",
    );
    let (ok, output) = migrate(url, &["base", "unsafe_backfill"]);
    assert!(!ok, "{route}: update_all in the DDL transaction was applied:\n{output}");
    for expected in [
        "backfill_in_ddl_transaction: UPDATE of accounts runs while this transaction holds ACCESS EXCLUSIVE on \
         accounts, taken by `ALTER TABLE \"accounts\" ADD \"status\" character varying`",
        "DETAIL:  Lock: ACCESS EXCLUSIVE on accounts, blocks reads and writes.",
        "HINT:  Commit the schema change first",
    ] {
        assert!(output.contains(expected), "{route}: {expected:?} not in:\n{output}");
    }
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name character varying not null\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001\n",
        "{route}: the refused migration left a change behind"
    );

    let (ok, output) = migrate(url, &["base", "safe_backfill"]);
    assert!(ok, "{route}: the split data migration was not applied:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name character varying not null\n\
         column status character varying\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 20240101000001\n\
         applied 20240101000005\n\
         applied 20240101000006\n",
        "{route}"
    );
    assert_eq!(
        cluster.execute(
            &cluster.superuser_url(),
            "SELECT count(*) FROM accounts WHERE status = 'active'"
        ),
        "31\n",
        "{route}"
    );
}

#[test]
fn a_data_migration_in_the_ddl_transaction_is_stopped_and_applies_split() {
    if !installed(TOOL, Path::new(MARKER)) {
        return;
    }
    for guarded in [Guarded::extension(), Guarded::proxy()] {
        data_migration_stopped_then_split_applies(&guarded.cluster, &guarded.migrator_url(), guarded.name());
    }
    report(&format!("tool {TOOL} data migration: pass"));
}

/// A rename is judged when its transaction commits: without a view for the old name the
/// migration fails at its COMMIT and leaves nothing (the old name still works); with
/// one (expand/contract) it applies, and code using the old name reads and writes
/// through the view.
fn rename_judged_at_commit(cluster: &Cluster, url: &str, route: &str) {
    let (ok, output) = migrate(url, &["base"]);
    assert!(ok, "{route}: the table was not created:\n{output}");
    let (ok, output) = migrate(url, &["base", "rename_unsafe"]);
    assert!(!ok, "{route}: the rename without a view was applied:\n{output}");
    for expected in [
        "rename_table: ALTER TABLE accounts RENAME TO members breaks application code that still uses accounts",
        "CREATE VIEW accounts AS SELECT * FROM members;",
    ] {
        assert!(output.contains(expected), "{route}: {expected:?} not in:\n{output}");
    }
    let tables = "SELECT string_agg(relname || ' ' || relkind::text, ', ' ORDER BY relname) FROM pg_class \
                  WHERE relname IN ('accounts', 'members')";
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), tables),
        "accounts r\n",
        "{route}: the refused migration left a change behind"
    );

    let (ok, output) = migrate(url, &["base", "rename_safe"]);
    assert!(ok, "{route}: the rename with a view was stopped:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), tables),
        "accounts v, members r\n",
        "{route}"
    );
    // Old code, through the view: a write and a read.
    assert_eq!(
        cluster.execute(
            &cluster.superuser_url(),
            "INSERT INTO accounts (id, name) VALUES (1000, 'through the view'); \
             SELECT name FROM members WHERE id = 1000"
        ),
        "through the view\n",
        "{route}"
    );
}

#[test]
fn a_rename_needs_a_view_for_the_old_name_by_its_commit() {
    if !installed(TOOL, Path::new(MARKER)) {
        return;
    }
    for guarded in [Guarded::extension(), Guarded::proxy()] {
        rename_judged_at_commit(&guarded.cluster, &guarded.migrator_url(), guarded.name());
    }
    report(&format!("tool {TOOL} rename: pass"));
}

#[test]
fn add_index_is_stopped_and_the_concurrent_index_applies() {
    if !installed(TOOL, Path::new(MARKER)) {
        return;
    }
    for guarded in [Guarded::extension(), Guarded::proxy()] {
        unsafe_stopped_then_safe_applies(&guarded.cluster, &guarded.migrator_url(), guarded.name());
    }

    // The run that creates the table brings the unsafe migration too: on that one
    // session the proxy must not take the table for one created in the migration's own
    // transaction.
    let guarded = Guarded::proxy();
    let (ok, output) = migrate(&guarded.migrator_url(), &["base", "unsafe"]);
    assert!(!ok, "proxy, one run: the plain add_index was applied:\n{output}");
    assert!(
        output.contains("create_index_non_concurrently: "),
        "proxy, one run:\n{output}"
    );

    report(&format!("tool {TOOL}: pass"));
}
