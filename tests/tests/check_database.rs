//! `safe-migrations check --database-url`: the catalog answered by a real database, the
//! files judged in order as one run, nothing of them executed; connecting as libpq does
//! (password from the URL, PGPASSWORD or the password file; TLS by sslmode, verify-full
//! against a CA file). Verdicts equal to the extension's on the whole corpus are checked
//! by the parity test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::{CertDir, Cluster, ClusterOptions};

fn cluster(conf: &[(String, String)]) -> Cluster {
    let mut conf = conf.to_vec();
    conf.push(("log_statement".into(), "all".into()));
    conf.push(("log_line_prefix".into(), "%m [%p] app=%a: ".into()));
    conf.push(("log_connections".into(), "on".into()));
    let cluster = Cluster::start_with(ClusterOptions {
        extension: false,
        conf,
        ..ClusterOptions::default()
    });
    cluster.create_role(
        "migrator",
        &[
            ("mode", "enforce"),
            ("min_table_rows", "100"),
            ("max_rows_per_statement", "500"),
        ],
    );
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE DOMAIN plain_text AS text; CREATE DOMAIN email AS text CHECK (VALUE ~ '@'); \
         CREATE TABLE people (id int, m text, n text); \
         INSERT INTO people SELECT i, 'a@b', 'a@b' FROM generate_series(1, 1000) AS i; \
         CREATE TABLE small (id int); INSERT INTO small SELECT generate_series(1, 10); \
         ANALYZE people, small; ALTER TABLE people OWNER TO migrator; ALTER TABLE small OWNER TO migrator",
    );
    cluster
}

/// A directory of migration files, removed on drop.
struct Files(PathBuf);

impl Files {
    fn new(name: &str, files: &[(&str, &str)]) -> Files {
        let dir = std::env::temp_dir().join(format!("sm-check-db-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, sql) in files {
            std::fs::write(dir.join(file), sql).unwrap();
        }
        Files(dir)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `check` of `dir` with `args`, the environment cleared of libpq's variables but those in `env`.
fn check(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(e2e::safe_migrations_bin());
    command.arg("check").args(args).arg(dir);
    for name in ["DATABASE_URL", "PGPASSWORD", "PGPASSFILE", "PGUSER", "PGDATABASE"] {
        command.env_remove(name);
    }
    command.env("HOME", dir);
    command.envs(env.iter().copied());
    command.output().expect("run safe-migrations check")
}

/// (file name, line, rule) of every error-level problem in `check`'s JSON.
fn errors(output: &Output) -> Vec<(String, u64, String)> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let problems: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut found: Vec<(String, u64, String)> = problems
        .as_array()
        .expect("an array of problems")
        .iter()
        .filter(|problem| problem["severity"] == "error")
        .map(|problem| {
            let file = problem["file"].as_str().unwrap();
            (
                Path::new(file).file_name().unwrap().to_string_lossy().to_string(),
                problem["line"].as_u64().unwrap(),
                problem["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn the_database_answers_the_catalog_and_the_files_run_in_order_without_being_executed() {
    let cluster = cluster(&[]);
    let files = Files::new(
        "order",
        &[
            // A domain without constraints over the same type rewrites nothing; one with a
            // CHECK checks every row (the database knows which is which).
            (
                "001_types.sql",
                "ALTER TABLE people ALTER COLUMN m TYPE plain_text;\nALTER TABLE people ALTER COLUMN n TYPE email;\n",
            ),
            ("002_fresh.sql", "CREATE TABLE fresh (id int);\n"),
            // A table an earlier file created holds no row yet; the database's own is large,
            // and the small one is below min_table_rows (the role's setting, read from the
            // database).
            (
                "003_indexes.sql",
                "CREATE INDEX fresh_id ON fresh (id);\nCREATE INDEX people_id ON people (id);\nCREATE INDEX small_id ON small (id);\n",
            ),
            // A write to a table of the database's: planned, never run.
            ("004_rows.sql", "INSERT INTO fresh VALUES (1);\nUPDATE people SET m = 'changed';\n"),
            ("005_index.sql", "CREATE INDEX fresh_id_again ON fresh (id);\nDROP TABLE people;\n"),
        ],
    );
    let url = cluster.url("migrator", "postgres");
    let refused = |rows: &[(&str, u64, &str)]| -> Vec<(String, u64, String)> {
        rows.iter()
            .map(|(file, line, rule)| (file.to_string(), *line, rule.to_string()))
            .collect()
    };
    // With the database's sizes (a staging copy): small is below min_table_rows, and the
    // planner expects the UPDATE to change all 1,000 rows of people, more than the role's
    // max_rows_per_statement.
    let output = check(
        &files.0,
        &["--format", "json", "--sizes", "database", "--database-url", &url],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        errors(&output),
        refused(&[
            ("001_types.sql", 2, "change_column_type"),
            ("003_indexes.sql", 2, "create_index_non_concurrently"),
            ("004_rows.sql", 2, "unbatched_backfill"),
            ("005_index.sql", 1, "create_index_non_concurrently"),
            ("005_index.sql", 2, "drop_table"),
        ])
    );
    // Without (a schema-only database, the default): no table of the database's is
    // known to be small; the run's own fresh table is still empty until written.
    let unknown_sizes = check(&files.0, &["--format", "json", "--database-url", &url], &[]);
    assert_eq!(
        errors(&unknown_sizes),
        refused(&[
            ("001_types.sql", 2, "change_column_type"),
            ("003_indexes.sql", 2, "create_index_non_concurrently"),
            ("003_indexes.sql", 3, "create_index_non_concurrently"),
            ("005_index.sql", 1, "create_index_non_concurrently"),
            ("005_index.sql", 2, "drop_table"),
        ])
    );
    // DATABASE_URL is read too, and said; --offline judges without it (each file on its
    // own: the earlier file's table is not known, nor the columns' types); a DATABASE_URL
    // that is no PostgreSQL URL is left alone, and said.
    let from_env = check(&files.0, &["--format", "json"], &[("DATABASE_URL", &url)]);
    assert_eq!(errors(&from_env), errors(&unknown_sizes));
    assert!(
        stderr(&from_env).contains("judged against the database in DATABASE_URL"),
        "{}",
        stderr(&from_env)
    );
    let offline = check(&files.0, &["--format", "json", "--offline"], &[("DATABASE_URL", &url)]);
    let not_postgres = check(
        &files.0,
        &["--format", "json"],
        &[("DATABASE_URL", "mysql2://app@db/app")],
    );
    assert!(
        stderr(&not_postgres).contains("not a postgres:// URL"),
        "{}",
        stderr(&not_postgres)
    );
    for without in [&offline, &not_postgres] {
        assert_eq!(
            errors(without),
            refused(&[
                ("003_indexes.sql", 1, "create_index_non_concurrently"),
                ("003_indexes.sql", 2, "create_index_non_concurrently"),
                ("003_indexes.sql", 3, "create_index_non_concurrently"),
                ("005_index.sql", 1, "create_index_non_concurrently"),
                ("005_index.sql", 2, "drop_table"),
            ])
        );
    }

    // Nothing of the files ran: people is still there, fresh never was; the session was
    // read-only and ran only catalog queries.
    let state = cluster.execute(
        &cluster.superuser_url(),
        "SELECT to_regclass('people') IS NOT NULL, to_regclass('fresh') IS NULL, \
         (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'n'), \
         (SELECT count(*) FROM people WHERE m = 'a@b')",
    );
    assert_eq!(state.trim(), "t|t|text|1000", "{state}");
    // Every statement the check's sessions sent reads: catalog queries, EXPLAIN without
    // ANALYZE, the session's settings.
    let log = cluster.log();
    let sent: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("app=safe-migrations check: "))
        .filter_map(|line| line.split_once("statement: ").map(|(_, statement)| statement))
        .collect();
    assert!(
        sent.iter()
            .any(|statement| statement.starts_with("SET default_transaction_read_only = on")),
        "{log}"
    );
    // The UPDATE reached the server only inside an EXPLAIN (its text on the lines after).
    let lines: Vec<&str> = log.lines().collect();
    let explained = lines.iter().enumerate().any(|(at, line)| {
        line.ends_with("statement: EXPLAIN (FORMAT JSON)")
            && lines[at + 1..]
                .iter()
                .take(3)
                .any(|next| next.contains("UPDATE people SET m = 'changed'"))
    });
    assert!(explained, "{log}");
    // Each statement of each string the check sent (a string of several is split at
    // "; ", as the session's settings are sent): reads and the session's settings.
    for statement in sent.iter().flat_map(|sent| sent.split("; ")) {
        assert!(
            [
                "SELECT ",
                "WITH ",
                "EXPLAIN (FORMAT JSON)",
                "SET default_transaction_read_only = on",
                "SET standard_conforming_strings = on",
                "SET lock_timeout = '1s'",
                "SET statement_timeout = '30s'",
            ]
            .iter()
            .any(|allowed| statement.starts_with(allowed)),
            "the check sent {statement:?}"
        );
    }
}

#[test]
fn what_routines_run_is_read_from_the_database_or_from_the_run() {
    let cluster = cluster(&[]);
    cluster.execute(
        &cluster.superuser_url(),
        "CREATE FUNCTION index_people() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE INDEX people_n ON people (n); END $$; \
         ALTER FUNCTION index_people() OWNER TO migrator; \
         CREATE TABLE audited (id int); ALTER TABLE audited OWNER TO migrator; \
         CREATE FUNCTION index_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN CREATE INDEX IF NOT EXISTS people_m ON people (m); RETURN NEW; END $$; \
         CREATE TRIGGER audited_index AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION index_on_insert(); \
         CREATE SCHEMA app; GRANT USAGE, CREATE ON SCHEMA app TO migrator; CREATE TABLE app.logged (id int); \
         ALTER TABLE app.logged OWNER TO migrator; \
         CREATE TRIGGER logged_index AFTER INSERT ON app.logged FOR EACH ROW EXECUTE FUNCTION index_on_insert(); \
         CREATE TABLE watched (id int); ALTER TABLE watched OWNER TO migrator",
    );
    let files = Files::new(
        "routines",
        &[
            // A function of the database's, and a trigger its write fires.
            (
                "001_call.sql",
                "SELECT index_people();\nINSERT INTO audited VALUES (1);\n",
            ),
            // A function an earlier file created, called under a lock that blocks traffic.
            (
                "002_define.sql",
                "CREATE FUNCTION mark_people() RETURNS void LANGUAGE sql AS $$ UPDATE people SET m = 'x' $$;\n",
            ),
            (
                "003_call.sql",
                "ALTER TABLE people ADD COLUMN z int;\nSELECT mark_people();\n",
            ),
            // After a SET search_path the session follows, and under a name the run gave
            // the table: its trigger is read from the database all the same.
            (
                "004_path.sql",
                "SET search_path TO public;\nINSERT INTO audited VALUES (2);\n",
            ),
            (
                "005_renamed.sql",
                "ALTER TABLE audited RENAME TO audited_renamed;\nINSERT INTO audited_renamed VALUES (3);\n",
            ),
            // RESET ALL resets the search_path: only that is run on the session.
            ("006_reset.sql", "RESET ALL;\n"),
            // A search_path to another schema: unqualified names are its tables'.
            ("007_app.sql", "SET search_path TO app, public;\nINSERT INTO logged VALUES (1);\n"),
            // A trigger the run created, on a table it then renamed.
            (
                "008_trigger.sql",
                "CREATE TRIGGER watched_index AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION index_on_insert();\n\
                 ALTER TABLE watched RENAME TO observed;\nINSERT INTO observed VALUES (1);\n",
            ),
        ],
    );
    let url = cluster.url("migrator", "postgres");
    let output = check(&files.0, &["--format", "json", "--database-url", &url], &[]);
    assert_eq!(
        errors(&output),
        [
            (
                "001_call.sql".to_string(),
                1,
                "create_index_non_concurrently".to_string()
            ),
            (
                "001_call.sql".to_string(),
                2,
                "create_index_non_concurrently".to_string()
            ),
            ("003_call.sql".to_string(), 2, "backfill_in_ddl_transaction".to_string()),
            (
                "004_path.sql".to_string(),
                2,
                "create_index_non_concurrently".to_string()
            ),
            (
                "005_renamed.sql".to_string(),
                2,
                "create_index_non_concurrently".to_string()
            ),
            ("005_renamed.sql".to_string(), 2, "rename_table".to_string()),
            (
                "007_app.sql".to_string(),
                2,
                "create_index_non_concurrently".to_string()
            ),
            (
                "008_trigger.sql".to_string(),
                3,
                "create_index_non_concurrently".to_string()
            ),
            ("008_trigger.sql".to_string(), 3, "rename_table".to_string()),
        ],
        "{}",
        stderr(&output)
    );
    // RESET ALL's search_path part was followed, and the session's own settings set again
    // right after it (read-only, standard strings).
    let log = cluster.log();
    assert!(!log.contains("statement: RESET ALL"), "{log}");
    let sent: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("app=safe-migrations check: "))
        .filter_map(|line| line.split_once("statement: ").map(|(_, statement)| statement))
        .collect();
    let reset = sent
        .iter()
        .position(|statement| *statement == "RESET search_path")
        .unwrap_or_else(|| panic!("no RESET search_path in {sent:#?}"));
    assert_eq!(
        sent.get(reset + 1).copied(),
        Some(
            "SET default_transaction_read_only = on; SET standard_conforming_strings = on; \
             SET lock_timeout = '1s'; SET statement_timeout = '30s'"
        ),
        "{sent:#?}"
    );
}

#[test]
fn it_connects_as_libpq_does_password_from_url_pgpassword_or_the_password_file() {
    let cluster = cluster(&[]);
    let files = Files::new("auth", &[("001.sql", "CREATE INDEX people_id ON people (id);\n")]);
    let without_password = format!("postgres://migrator@127.0.0.1:{}/postgres", cluster.port());
    let refused = vec![("001.sql".to_string(), 1, "create_index_non_concurrently".to_string())];

    let output = check(
        &files.0,
        &["--format", "json", "--database-url", &without_password],
        &[("PGPASSWORD", "migrator")],
    );
    assert_eq!(errors(&output), refused, "{}", stderr(&output));

    let passfile = files.0.join("pgpass");
    std::fs::write(
        &passfile,
        "other:5432:*:*:wrong\n127.0.0.1:*:postgres:migrator:migrator\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = check(
        &files.0,
        &["--format", "json", "--database-url", &without_password],
        &[("PGPASSFILE", passfile.to_str().unwrap())],
    );
    assert_eq!(errors(&output), refused, "{}", stderr(&output));
    // ~/.pgpass when PGPASSFILE is not set.
    std::fs::copy(&passfile, files.0.join(".pgpass")).unwrap();
    std::fs::set_permissions(files.0.join(".pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = check(
        &files.0,
        &["--format", "json", "--database-url", &without_password],
        &[],
    );
    assert_eq!(errors(&output), refused, "{}", stderr(&output));

    // A password file others may read is ignored, as libpq ignores it, and said so.
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = check(
        &files.0,
        &["--database-url", &without_password],
        &[("PGPASSFILE", passfile.to_str().unwrap())],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("has group or world access"),
        "{}",
        stderr(&output)
    );

    // A wrong password: exit 2, the server's reason, never the password.
    let wrong = format!("postgres://migrator:s3cr3t-wrong@127.0.0.1:{}/postgres", cluster.port());
    let output = check(&files.0, &["--database-url", &wrong], &[]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(!said.contains("s3cr3t-wrong"), "{said}");
    assert!(
        output.stdout.is_empty(),
        "judged without its database: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn it_connects_over_tls_as_sslmode_says_verifying_the_server_with_verify_full() {
    let certs = CertDir::new("check-db");
    certs.ca("ca");
    certs.server_certificate("ca", "DNS:localhost");
    let cluster = cluster(&certs.ssl_conf());
    let files = Files::new("tls", &[("001.sql", "CREATE INDEX people_id ON people (id);\n")]);
    let refused = vec![("001.sql".to_string(), 1, "create_index_non_concurrently".to_string())];
    let ca = certs.path_str("ca.pem");
    let at = |host: &str, query: &str| {
        format!(
            "postgres://migrator:migrator@{host}:{}/postgres?{query}",
            cluster.port()
        )
    };

    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ] {
        let before = cluster
            .log()
            .matches("application_name=safe-migrations check SSL enabled")
            .count();
        let output = check(
            &files.0,
            &["--format", "json", "--database-url", &at("localhost", &query)],
            &[],
        );
        assert_eq!(errors(&output), refused, "{query}: {}", stderr(&output));
        let after = cluster
            .log()
            .matches("application_name=safe-migrations check SSL enabled")
            .count();
        assert_eq!(after, before + 1, "{query}: no TLS session in the server log");
    }
    // verify-full checks the host name: the certificate names localhost, not 127.0.0.1.
    let output = check(
        &files.0,
        &[
            "--database-url",
            &at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot connect"), "{}", stderr(&output));
    // sslmode=disable: plain TCP.
    let before = cluster
        .log()
        .matches("application_name=safe-migrations check SSL enabled")
        .count();
    let output = check(
        &files.0,
        &[
            "--format",
            "json",
            "--database-url",
            &at("localhost", "sslmode=disable"),
        ],
        &[],
    );
    assert_eq!(errors(&output), refused, "{}", stderr(&output));
    let after = cluster
        .log()
        .matches("application_name=safe-migrations check SSL enabled")
        .count();
    assert_eq!(after, before, "sslmode=disable used TLS");
}
