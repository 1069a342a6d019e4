//! A JDBC client (Debian's pgjdbc, extended protocol) replaying Flyway-style migration
//! files against a guarded role, through the extension and through the proxy: the
//! statements of a transactional file go out as one batch before a single Sync, so a
//! plain `CREATE INDEX` among them is stopped with the rule's message and the whole file
//! leaves nothing behind; the safe files apply. The program and the migrations are under
//! tests/tools/jdbc, compiled here with javac; tests/tools/install-all.sh installs the
//! driver.

use std::path::Path;
use std::process::Command;

use e2e::tools::{installed, project_dir, report, Guarded};
use e2e::Cluster;

const TOOL: &str = "jdbc";
const DRIVER: &str = "/usr/share/java/postgresql.jar";

/// Columns (with comments) and indexes of `accounts`, Flyway's history rows and the
/// history table's own index, one per line, read as superuser.
const SCHEMA: &str = "SELECT line FROM (
    SELECT 1 AS part, ordinal_position AS position, 'column ' || column_name || ' ' || data_type
        || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END
        || coalesce(' -- ' || col_description('public.accounts'::regclass, ordinal_position), '') AS line
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts'
    UNION ALL
    SELECT 2, 0, 'index ' || pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_index WHERE indrelid = 'public.accounts'::regclass
    UNION ALL
    SELECT 3, installed_rank, 'applied ' || version || ' ' || script || CASE WHEN success THEN '' ELSE ' FAILED' END
    FROM public.flyway_schema_history
    UNION ALL
    SELECT 4, 0, 'history index ' || indexname FROM pg_indexes WHERE tablename = 'flyway_schema_history'
) schema ORDER BY part, position, line";

/// Compile FlywayReplay.java into `classes`.
fn compile(classes: &Path) {
    let output = Command::new("javac")
        .arg("-d")
        .arg(classes)
        .arg(project_dir(TOOL).join("FlywayReplay.java"))
        .output()
        .expect("run javac");
    assert!(
        output.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Apply `files` (relative to the project) as `migrator` on 127.0.0.1:`port`: did it
/// succeed, and everything it printed.
fn migrate(classes: &Path, port: u16, files: &[&str]) -> (bool, String) {
    let output = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{DRIVER}", classes.display()))
        .arg("FlywayReplay")
        .arg(format!("jdbc:postgresql://127.0.0.1:{port}/postgres"))
        .args(["migrator", "migrator"])
        .args(files.iter().map(|file| project_dir(TOOL).join(file)))
        .output()
        .expect("run java");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A deploy creates the table, a later one brings the unsafe file: it is stopped and
/// leaves nothing, then the safe ones apply.
fn unsafe_stopped_then_safe_applies(cluster: &Cluster, classes: &Path, port: u16, route: &str) {
    let (ok, output) = migrate(classes, port, &["base/V1__create_accounts.sql"]);
    assert!(ok, "{route}: the table was not created:\n{output}");
    let (ok, output) = migrate(
        classes,
        port,
        &["base/V1__create_accounts.sql", "unsafe/V2__add_email.sql"],
    );
    assert!(!ok, "{route}: the plain CREATE INDEX was applied:\n{output}");
    for expected in [
        "Migration V2__add_email.sql failed",
        "create_index_non_concurrently: CREATE INDEX accounts_email_idx on accounts without CONCURRENTLY \
         blocks writes while the index builds",
        "[SQL State: SM001]",
    ] {
        assert!(output.contains(expected), "{route}: {expected:?} not in:\n{output}");
    }
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name text not null\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 1 V1__create_accounts.sql\n\
         history index flyway_schema_history_pk\n\
         history index flyway_schema_history_s_idx\n",
        "{route}: the refused migration left a change behind"
    );

    let (ok, output) = migrate(
        classes,
        port,
        &[
            "base/V1__create_accounts.sql",
            "safe/V2__add_email.sql",
            "safe/V3__index_accounts_email.sql",
        ],
    );
    assert!(ok, "{route}: the safe migrations were not applied:\n{output}");
    assert!(output.contains("now at version v3"), "{route}:\n{output}");
    assert_eq!(
        cluster.execute(&cluster.superuser_url(), SCHEMA),
        "column id bigint not null\n\
         column name text not null\n\
         column email text -- login email\n\
         index CREATE INDEX accounts_email_idx ON public.accounts USING btree (email)\n\
         index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
         applied 1 V1__create_accounts.sql\n\
         applied 2 V2__add_email.sql\n\
         applied 3 V3__index_accounts_email.sql\n\
         history index flyway_schema_history_pk\n\
         history index flyway_schema_history_s_idx\n",
        "{route}"
    );
}

/// Is the driver installed, and a JDK to compile the replay with?
fn jdbc_installed() -> bool {
    installed(TOOL, Path::new(DRIVER)) && installed(TOOL, Path::new("/usr/bin/javac"))
}

/// The port `migrator` connects to: the proxy's when there is one.
fn port(guarded: &Guarded) -> u16 {
    guarded
        .proxy
        .as_ref()
        .map_or(guarded.cluster.port(), |proxy| proxy.port())
}

#[test]
fn a_batched_file_with_create_index_is_stopped_and_the_safe_files_apply() {
    if !jdbc_installed() {
        return;
    }
    for guarded in [Guarded::extension(), Guarded::proxy()] {
        let classes = guarded.cluster.dir().join("jdbc-classes");
        compile(&classes);
        unsafe_stopped_then_safe_applies(&guarded.cluster, &classes, port(&guarded), guarded.name());
    }
    report(&format!("tool {TOOL}: pass"));
}

/// A file that renames a table is judged when its transaction commits (pgjdbc sends BEGIN
/// in the file's batch and COMMIT as a prepared statement): without a view for the old
/// name the COMMIT fails and nothing stays; with one the file applies.
#[test]
fn a_renaming_file_applies_only_with_a_view_for_the_old_name() {
    if !jdbc_installed() {
        return;
    }
    let relations = "SELECT string_agg(relname || ' ' || relkind::text, ', ' ORDER BY relname) FROM pg_class \
                     WHERE relname IN ('accounts', 'members')";
    for guarded in [Guarded::extension(), Guarded::proxy()] {
        let route = guarded.name();
        let classes = guarded.cluster.dir().join("jdbc-classes");
        compile(&classes);
        let port = port(&guarded);
        let (ok, output) = migrate(&classes, port, &["base/V1__create_accounts.sql"]);
        assert!(ok, "{route}: the table was not created:\n{output}");
        let (ok, output) = migrate(
            &classes,
            port,
            &["base/V1__create_accounts.sql", "rename_unsafe/V2__rename_accounts.sql"],
        );
        assert!(!ok, "{route}: the rename without a view was applied:\n{output}");
        assert!(
            output.contains("rename_table: ALTER TABLE accounts RENAME TO members breaks application code"),
            "{route}:\n{output}"
        );
        let superuser = guarded.cluster.superuser_url();
        assert_eq!(
            guarded.cluster.execute(&superuser, relations),
            "accounts r\n",
            "{route}"
        );
        let (ok, output) = migrate(
            &classes,
            port,
            &["base/V1__create_accounts.sql", "rename_safe/V2__rename_accounts.sql"],
        );
        assert!(ok, "{route}: the rename with a view was stopped:\n{output}");
        assert_eq!(
            guarded.cluster.execute(&superuser, relations),
            "accounts v, members r\n",
            "{route}"
        );
    }
    report(&format!("tool {TOOL} rename: pass"));
}

/// A transactional file that creates a table and then its key and index, sent as one
/// batch before a single Sync: the table is new in that transaction, so the file applies.
#[test]
fn through_the_proxy_a_batched_file_keys_and_indexes_its_new_table() {
    if !jdbc_installed() {
        return;
    }
    let guarded = Guarded::proxy();
    let classes = guarded.cluster.dir().join("jdbc-classes");
    compile(&classes);
    let (ok, output) = migrate(
        &classes,
        port(&guarded),
        &["new_table/V1__create_accounts_then_key.sql"],
    );
    assert!(ok, "the file was refused:\n{output}");
}
