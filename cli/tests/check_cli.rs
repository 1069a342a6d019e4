//! `safe-migrations check` as CI runs it: the built binary on files, directories and
//! standard input; exit codes, positions and output formats.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_safe-migrations");

/// A fresh directory for one test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("safe-migrations-check-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(BINARY)
        .arg("check")
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

const UNSAFE: &str =
    "-- add an index\nSELECT 1;\n\n  CREATE INDEX \"index_users_on_email\" ON \"users\" (\"email\");\n";

#[test]
fn clean_file_exits_0() {
    let dir = TempDir::new("clean");
    let file = dir.file(
        "0001.sql",
        "CREATE INDEX CONCURRENTLY i ON users (email);\nALTER TABLE users ADD COLUMN note text;\n",
    );
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "");
}

#[test]
fn warnings_only_exit_0() {
    let dir = TempDir::new("warnings");
    let file = dir.file("0001.sql", "ALTER TABLE users ALTER COLUMN name TYPE varchar(80);\n");
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("warning[change_column_type]"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn error_finding_exits_1_with_line_and_column_of_the_first_keyword() {
    let dir = TempDir::new("finding");
    let file = dir.file("0002.sql", UNSAFE);
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let expected = format!(
        "{}:4:3: error[create_index_non_concurrently]: CREATE INDEX index_users_on_email on users without CONCURRENTLY",
        file.display()
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("  hint: "), "{text}");
    assert!(
        text.contains("CREATE INDEX CONCURRENTLY \"index_users_on_email\""),
        "{text}"
    );
}

#[test]
fn warn_mode_and_allow_do_not_fail() {
    let dir = TempDir::new("modes");
    let file = dir.file("0002.sql", UNSAFE);
    let warn = check(&["--mode", "warn"], &[&file]);
    assert_eq!(warn.status.code(), Some(0));
    assert!(stdout(&warn).contains("warning[create_index_non_concurrently]"));
    let allowed = check(&["--allow", "create_index_non_concurrently,drop_column"], &[&file]);
    assert_eq!(allowed.status.code(), Some(0));
    assert_eq!(stdout(&allowed), "");
    let unknown = check(&["--allow", "create_index"], &[&file]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown rule \"create_index\""));
}

#[test]
fn acknowledged_finding_is_a_note_and_does_not_fail() {
    let dir = TempDir::new("ack");
    let file = dir.file(
        "0003.sql",
        "-- safe_migrations:allow drop_column -- unused since v2\nALTER TABLE users DROP COLUMN fax;\n",
    );
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains(":2:1: note[drop_column]: acknowledged: unused since v2"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn syntax_error_exits_2_with_its_position() {
    let dir = TempDir::new("syntax");
    let file = dir.file("0004.sql", "SELECT 1;\nCREATE TABLEE t (id int);\n");
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout(&output).starts_with(&format!(
            "{}:2:8: error[syntax_error]: syntax error at or near \"TABLEE\"",
            file.display()
        )),
        "{}",
        stdout(&output)
    );
}

#[test]
fn missing_file_exits_2() {
    let output = check(&[], &[Path::new("/nonexistent/0001.sql")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("/nonexistent/0001.sql: error[unreadable]: cannot read"));
}

#[test]
fn json_is_one_array_of_findings() {
    let dir = TempDir::new("json");
    let file = dir.file("0002.sql", UNSAFE);
    let output = check(&["--format", "json"], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let findings = findings.as_array().unwrap();
    assert_eq!(findings.len(), 1);
    let finding = &findings[0];
    assert_eq!(finding["file"], file.display().to_string());
    assert_eq!(finding["line"], 4);
    assert_eq!(finding["column"], 3);
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["rule"], "create_index_non_concurrently");
    assert_eq!(finding["lock"], "SHARE on users, blocks writes");
    assert!(finding["hint"].as_str().unwrap().contains("CONCURRENTLY"));
    let clean = dir.file("clean.sql", "SELECT 1;");
    assert_eq!(stdout(&check(&["--format", "json"], &[&clean])).trim(), "[]");
}

#[test]
fn github_format_is_workflow_commands() {
    let dir = TempDir::new("github");
    let file = dir.file("0002.sql", UNSAFE);
    let output = check(&["--format", "github"], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let expected = format!(
        "::error file={},line=4,col=3,title=create_index_non_concurrently::CREATE INDEX",
        file.display()
    );
    assert!(text.starts_with(&expected), "{text}");
    assert_eq!(text.lines().count(), 1, "newlines must be escaped: {text}");
    assert!(text.contains("%0A"));
}

#[test]
fn directory_is_checked_recursively_in_sorted_order_and_a_syntax_error_stops_one_file() {
    let dir = TempDir::new("dir");
    dir.file("b_second.sql", "DROP TABLE b;\n");
    dir.file("a_first.sql", "SELECT 1;\nSELEC 2;\nDROP TABLE never_checked;\n");
    dir.file("c/nested.sql", "TRUNCATE c;\n");
    dir.file("notes.txt", "DROP TABLE not_sql;\n");
    let output = check(&["--format", "json"], &[&dir.0]);
    assert_eq!(output.status.code(), Some(2));
    let problems: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let seen: Vec<(String, String)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let file = p["file"].as_str().unwrap();
            let name = Path::new(file).strip_prefix(&dir.0).unwrap().display().to_string();
            (name, p["rule"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("a_first.sql".to_string(), "syntax_error".to_string()),
            ("b_second.sql".to_string(), "drop_table".to_string()),
            ("c/nested.sql".to_string(), "truncate".to_string()),
        ]
    );
}

#[test]
fn file_catalog_spans_statements_of_one_file() {
    let dir = TempDir::new("catalog");
    let file = dir.file(
        "0001.sql",
        "BEGIN;\nCREATE TABLE t (id bigint, name varchar(50));\nCREATE INDEX t_name ON t (name);\nCOMMIT;\n\
         ALTER TABLE t ALTER COLUMN name TYPE varchar(100);\nCREATE INDEX t_id ON t (id);\n",
    );
    let output = check(&["--format", "json"], &[&file]);
    let problems: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let rules: Vec<(u64, &str, &str)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["rule"].as_str().unwrap(),
                p["severity"].as_str().unwrap(),
            )
        })
        .collect();
    // The file tells the column's type, so the widening is known not to rewrite; the
    // files do not tell what an ALTER COLUMN TYPE redoes for the column's indexes and
    // CHECK constraints, which only a live catalog knows: a warning that says so.
    assert_eq!(
        rules,
        vec![
            (5, "change_column_type", "warning"),
            (6, "create_index_non_concurrently", "error")
        ]
    );
    let message = problems[0]["message"].as_str().unwrap();
    assert!(
        message.contains("could not tell whether ALTER COLUMN name TYPE varchar(100) re-checks or rebuilds anything"),
        "{message}"
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let mut child = Command::new(BINARY)
        .args(["check", "--format", "github", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"TRUNCATE logs;\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("::error file=<stdin>,line=1,col=1,title=truncate::"));
}

#[test]
fn begin_marks_the_transaction_block() {
    let dir = TempDir::new("transaction");
    let file = dir.file(
        "0001.sql",
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON users (email);\nCOMMIT;\n",
    );
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(":2:1: error[concurrently_in_transaction]"),
        "{}",
        stdout(&output)
    );
}

/// A migration whose unsafe statements sit inside a DO block, in nested blocks and
/// branches and in an EXECUTE of a constant.
const DO_BLOCK: &str = concat!(
    "-- V2__backfill.sql\n",
    "DO $$\n",
    "BEGIN\n",
    "    CREATE INDEX users_email ON users (email);\n",
    "    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'orders_user_fk') THEN\n",
    "        BEGIN\n",
    "            ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
    "        END;\n",
    "    END IF;\n",
    "    EXECUTE 'DROP INDEX users_legacy';\n",
    "END\n",
    "$$;\n",
);

#[test]
fn do_block_statements_are_reported_where_they_are_in_the_block() {
    let dir = TempDir::new("do-block");
    let file = dir.file("0002.sql", DO_BLOCK);
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let located: Vec<String> = stdout(&output)
        .lines()
        .filter(|line| !line.starts_with(' '))
        .map(|line| {
            line.strip_prefix(&format!("{}:", file.display()))
                .unwrap_or(line)
                .to_string()
        })
        .collect();
    assert_eq!(
        located,
        [
            "4:5: error[create_index_non_concurrently]: CREATE INDEX users_email on users without CONCURRENTLY \
             blocks writes while the index builds",
            "7:13: error[add_foreign_key_validated]: ADD CONSTRAINT orders_user_fk FOREIGN KEY on orders without \
             NOT VALID blocks writes while every row is checked",
            "10:14: error[drop_index_non_concurrently]: DROP INDEX users_legacy without CONCURRENTLY blocks reads \
             and writes of its table",
            "3 error(s), 0 warning(s)",
        ]
    );
}

#[test]
fn do_block_findings_carry_their_position_and_sqlstate_in_json_and_github() {
    let dir = TempDir::new("do-block-formats");
    let file = dir.file("0002.sql", DO_BLOCK);
    let output = check(&["--format", "json"], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let problems: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let located: Vec<(u64, u64, &str, &str)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["column"].as_u64().unwrap(),
                p["rule"].as_str().unwrap(),
                p["sqlstate"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            (4, 5, "create_index_non_concurrently", "SM001"),
            (7, 13, "add_foreign_key_validated", "SM001"),
            (10, 14, "drop_index_non_concurrently", "SM001"),
        ]
    );
    let github = stdout(&check(&["--format", "github"], &[&file]));
    let properties: Vec<&str> = github
        .lines()
        .map(|line| line.split("::").nth(1).unwrap().split(",title=").next().unwrap())
        .collect();
    let name = file.display();
    assert_eq!(
        properties,
        [
            format!("error file={name},line=4,col=5"),
            format!("error file={name},line=7,col=13"),
            format!("error file={name},line=10,col=14"),
        ]
    );
}

#[test]
fn do_block_executing_a_computed_string_is_sm004_unless_allowed() {
    let dir = TempDir::new("do-block-dynamic");
    let file = dir.file(
        "0003.sql",
        "DO $$\nBEGIN\n    EXECUTE format('CREATE INDEX %I ON users (email)', 'users_email');\nEND\n$$;\n",
    );
    let output = check(&["--format", "json"], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    let problems: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(3), Some(13))
    );
    assert_eq!(problem["rule"], "unparsable");
    assert_eq!(problem["sqlstate"], "SM004");
    assert_eq!(problem["severity"], "error");
    assert_eq!(
        problem["detail"],
        "EXECUTE format('CREATE INDEX %I ON users (email)', 'users_email')"
    );
    let warn = check(&["--mode", "warn"], &[&file]);
    assert_eq!(warn.status.code(), Some(0));
    assert!(
        stdout(&warn).contains(":3:13: warning[unparsable]"),
        "{}",
        stdout(&warn)
    );
    let allowed = check(&["--unparsable", "allow"], &[&file]);
    assert_eq!(allowed.status.code(), Some(0));
    assert_eq!(stdout(&allowed), "");
    // Allowing what cannot be read does not let the block's own SQL through.
    let mixed = dir.file(
        "0004.sql",
        "DO $$ BEGIN EXECUTE format('SELECT %s', 1); CREATE INDEX i ON users (email); END $$;\n",
    );
    let output = check(&["--unparsable", "allow"], &[&mixed]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(":1:45: error[create_index_non_concurrently]"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn do_block_in_another_language_is_sm004_unless_allowed() {
    let dir = TempDir::new("do-block-language");
    let file = dir.file("0003.sql", "SELECT 1;\nDO LANGUAGE plperl $$ 1; $$;\n");
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(":2:1: error[unparsable]: this DO block is in language plperl"),
        "{}",
        stdout(&output)
    );
    assert_eq!(check(&["--unparsable", "allow"], &[&file]).status.code(), Some(0));
}

#[test]
fn harmless_do_block_is_clean() {
    let dir = TempDir::new("do-block-clean");
    let file = dir.file(
        "0005.sql",
        "DO $$\nDECLARE\n    n bigint;\nBEGIN\n    SELECT count(*) INTO n FROM users;\n    \
         PERFORM set_config('application_name', 'migrate ' || n, true);\n    \
         IF n > 0 THEN\n        UPDATE users SET name = '' WHERE name IS NULL;\n    END IF;\nEND\n$$;\n",
    );
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "");
}

#[test]
fn tables_a_do_block_creates_are_new_in_the_block_and_after_it() {
    let dir = TempDir::new("do-block-created");
    let file = dir.file(
        "0006.sql",
        "DO $$\nBEGIN\n    CREATE TABLE audit_log (id bigint PRIMARY KEY, at timestamptz);\n    \
         CREATE INDEX audit_log_at ON audit_log (at);\nEND\n$$;\nCREATE INDEX audit_log_id_at ON audit_log (id, at);\n\
         ALTER TABLE audit_log ADD COLUMN note text NOT NULL;\n",
    );
    let output = check(&[], &[&file]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "");
}
