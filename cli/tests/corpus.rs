//! The policy corpus (`tests/corpus/*.sql`): every statement, parsed with libpg_query and
//! decided by `safe-migrations check`'s `FileCheck` (with the file catalog, a `DO` block
//! statement by statement), must be refused for exactly the rules its `-- expect:` line
//! names. See tests/corpus/README.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use parse::parse_sql;
use policy::{Mode, Settings, Severity};
use safe_migrations_cli::check::FileCheck;

/// The spec asks for at least this many statements.
const MIN_STATEMENTS: usize = 200;

struct Outcome {
    location: String,
    statement: String,
    expected: Option<BTreeSet<String>>,
    actual: BTreeSet<String>,
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
}

/// The rule ids of the statement's `-- expect:` line (`ok` = none), if it has one.
fn expectation(source: &str) -> Option<BTreeSet<String>> {
    policy::sql::comments(source).into_iter().find_map(|comment| {
        let list = comment.trim().strip_prefix("expect:")?;
        Some(
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != "ok")
                .map(str::to_owned)
                .collect(),
        )
    })
}

fn check_file(path: &Path) -> Vec<Outcome> {
    let sql = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let statements = parse_sql(&sql).unwrap_or_else(|err| panic!("{name}: {err:?}"));
    let settings = Settings {
        mode: Mode::Enforce,
        acknowledgements: true,
        ..Settings::default()
    };
    let mut check = FileCheck::new(&name, &sql, &settings, None);
    let mut outcomes = Vec::new();
    for parsed in &statements {
        let statement = &parsed.statement;
        let problems = check.statement(parsed);
        let keyword =
            parsed.offset + statement.source.len() - policy::sql::strip_leading_comments(&statement.source).len();
        outcomes.push(Outcome {
            location: format!("{name}:{}", sql[..keyword].matches('\n').count() + 1),
            statement: policy::sql::one_line(&statement.source),
            expected: expectation(&statement.source),
            actual: problems
                .into_iter()
                .filter(|problem| problem.counts && problem.severity == Severity::Error)
                .map(|problem| problem.rule)
                .collect(),
        });
    }
    // What the file's end commits counts for its last statement.
    if let Some(last) = outcomes.last_mut() {
        last.actual.extend(
            check
                .finish()
                .into_iter()
                .filter(|problem| problem.counts && problem.severity == Severity::Error)
                .map(|problem| problem.rule),
        );
    }
    outcomes
}

fn rules(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "ok".to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(width - 3).collect::<String>())
    }
}

#[test]
fn corpus_statements_get_exactly_their_expected_rules() {
    let outcomes: Vec<Outcome> = corpus_files().iter().flat_map(|file| check_file(file)).collect();
    assert!(
        outcomes.len() >= MIN_STATEMENTS,
        "the corpus has {} statements, fewer than {MIN_STATEMENTS}",
        outcomes.len()
    );
    let mismatches: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.expected.as_ref() != Some(&outcome.actual))
        .collect();
    if mismatches.is_empty() {
        return;
    }
    let mut table = format!(
        "{} of {} corpus statements do not match their expectation:\n\n{:<26} {:<44} {:<44} statement\n",
        mismatches.len(),
        outcomes.len(),
        "location",
        "expected",
        "actual"
    );
    for outcome in &mismatches {
        let expected = outcome
            .expected
            .as_ref()
            .map_or("(no -- expect: line)".to_string(), rules);
        table.push_str(&format!(
            "{:<26} {:<44} {:<44} {}\n",
            outcome.location,
            expected,
            rules(&outcome.actual),
            shorten(&outcome.statement, 90)
        ));
    }
    panic!("{table}");
}

#[test]
fn corpus_covers_every_rule_that_reports() {
    let expected: BTreeSet<String> = corpus_files()
        .iter()
        .flat_map(|file| check_file(file))
        .filter_map(|outcome| outcome.expected)
        .flatten()
        .collect();
    // lock_timeout sets the statement's timeout (and refuses only in the proxy's routine
    // checks); lock_table only warns, which the live corpus (warnings included) expects;
    // unbatched_backfill needs the planner's estimate, which a file does not give (the
    // live corpus and tests/tests/unbatched.rs); lock_held_too_long is decided by time
    // where the transaction runs (tests/tests/lock_hold.rs).
    let not_from_files = ["lock_timeout", "lock_table", "unbatched_backfill", "lock_held_too_long"];
    let missing: Vec<&str> = policy::RULES
        .iter()
        .map(|rule| rule.id)
        .filter(|id| !not_from_files.contains(id) && !expected.contains(*id))
        .collect();
    assert!(missing.is_empty(), "no corpus statement expects {missing:?}");
}
