//! docs/rules/<rule_id>.md, one page per rule, made from the code so they cannot drift:
//! the rule's summary and category (its `Rule`), what it stops and why (its file's module
//! documentation), an example from the corpus with what `safe-migrations check` reports
//! for it (the lock, the message, the safe SQL in the hint), the catalog facts that change
//! its verdict (the `Scope` and `Catalog` questions its file asks, with their
//! documentation), and how to acknowledge it.
//!
//! The test fails when a page on disk differs from what the code makes;
//! `SAFE_MIGRATIONS_WRITE_DOCS=1 cargo test -p safe-migrations --test rule_docs` writes them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use policy::rules::{Category, RULES};
use policy::{Mode, Settings};
use safe_migrations_cli::check::{check_sql, Problem};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The corpus files, the static ones first (every statement there reads without a
/// database), then the live ones.
fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/corpus", "tests/corpus/live"] {
        let mut these: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        these.sort();
        files.extend(these);
    }
    files
}

struct Example {
    file: String,
    line: usize,
    sql: String,
    problem: Problem,
}

/// The first statement of the corpus that `check` reports `rule` for, and the report.
fn example(rule: &str, checked: &[(String, String, Vec<Problem>)]) -> Option<Example> {
    for (file, sql, problems) in checked {
        let Some(problem) = problems.iter().find(|problem| problem.rule == rule && problem.counts) else {
            continue;
        };
        let line = problem.line?;
        let column = problem.column.unwrap_or(1);
        let line_start: usize = sql.split_inclusive('\n').take(line - 1).map(str::len).sum();
        let at = line_start
            + sql[line_start..]
                .chars()
                .take(column - 1)
                .map(char::len_utf8)
                .sum::<usize>();
        let statement = parse::parse_sql(sql)
            .ok()?
            .into_iter()
            .find(|parsed| parsed.offset <= at && at <= parsed.offset + parsed.statement.source.len())?;
        let text = policy::sql::strip_leading_comments(&statement.statement.source)
            .trim()
            .trim_end_matches(';')
            .to_string();
        return Some(Example {
            file: file.clone(),
            line,
            sql: text,
            problem: problem.clone(),
        });
    }
    None
}

/// The `///` lines just above `fn <name>` in `source`, joined.
fn doc_of(source: &str, name: &str) -> Option<String> {
    let at = source.find(&format!("fn {name}("))?;
    let before: Vec<&str> = source[..at].lines().collect();
    let mut doc: Vec<&str> = before
        .iter()
        .rev()
        .skip(1)
        .take_while(|line| line.trim_start().starts_with("///"))
        .map(|line| line.trim_start().trim_start_matches("///").trim())
        .collect();
    doc.reverse();
    (!doc.is_empty()).then(|| doc.join(" "))
}

/// What its file's module documentation says (`//!` lines), as one paragraph each.
fn module_doc(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines().take_while(|line| line.starts_with("//!")) {
        let text = line.trim_start_matches("//!").trim();
        if text.is_empty() {
            out.push_str("\n\n");
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(text);
        }
    }
    out.trim().to_string()
}

/// Why no corpus statement shows the rule: it is decided while the migration runs.
fn runtime_only(rule: &str) -> Option<&'static str> {
    match rule {
        "unbatched_backfill" => Some(
            "It is decided from the planner's estimate of the rows the statement changes, which only the \
             extension (from the plan it is about to run) and the proxy (from `EXPLAIN` on the session) \
             have: `safe-migrations check` cannot report it.",
        ),
        "lock_timeout" => Some(
            "It is reported when a guarded statement gives up waiting for its lock under the capped \
             `lock_timeout` (after the configured retries): by the extension and the proxy while the \
             migration runs, never by `safe-migrations check`.",
        ),
        "lock_held_too_long" => Some(
            "It is reported when a guarded transaction has held a lock that blocks reads or writes for \
             longer than `safe_migrations.max_lock_hold`: by the extension and the proxy while the \
             migration runs, never by `safe-migrations check`.",
        ),
        _ => None,
    }
}

fn page(rule: &policy::rules::Rule, checked: &[(String, String, Vec<Problem>)]) -> String {
    let source = std::fs::read_to_string(root().join(format!("policy/src/rules/{}.rs", rule.id)))
        .unwrap_or_else(|err| panic!("policy/src/rules/{}.rs: {err}", rule.id));
    let scope_source = std::fs::read_to_string(root().join("policy/src/rules/mod.rs")).unwrap();
    let catalog_source = std::fs::read_to_string(root().join("policy/src/catalog.rs")).unwrap();
    let category = match rule.category {
        Category::Lock => "lock: the lock it takes blocks traffic",
        Category::Compatibility => "compatibility: running application code breaks",
        Category::Destructive => "destructive: data is lost",
        Category::Timeout => "timeout: a lock wait or hold that blocks traffic",
        Category::Policy => "policy: the guard's own settings",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- Made by cli/tests/rule_docs.rs from the code: edit the rule, not this page. -->"
    );
    let _ = writeln!(out, "# `{}`\n", rule.id);
    let mut summary = rule.summary.chars();
    let first = summary.next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    let _ = writeln!(out, "{first}{}.\n", summary.as_str());
    let _ = writeln!(out, "Category: {category}.\n");
    let _ = writeln!(out, "## What it stops and why\n\n{}\n", module_doc(&source));

    let _ = writeln!(out, "## Example\n");
    match example(rule.id, checked) {
        Some(example) => {
            let problem = &example.problem;
            let _ = writeln!(
                out,
                "From `{}`, line {}:\n\n```sql\n{};\n```\n",
                example.file, example.line, example.sql
            );
            let _ = writeln!(
                out,
                "`safe-migrations check` (and the extension and the proxy, as the error they raise):\n"
            );
            let _ = writeln!(out, "- SQLSTATE: `{}`", problem.sqlstate.unwrap_or("-"));
            if let Some(lock) = &problem.lock {
                let _ = writeln!(out, "- lock: {lock}");
            }
            let _ = writeln!(out, "- message: {}", problem.message);
            if !problem.detail.is_empty() {
                let _ = writeln!(out, "- detail: {}", problem.detail.replace('\n', " "));
            }
            if !problem.hint.is_empty() {
                let _ = writeln!(out, "\nThe hint, with the safe form:\n\n```\n{}\n```", problem.hint);
            }
            out.push('\n');
        }
        None => {
            let why = runtime_only(rule.id).unwrap_or_else(|| {
                panic!(
                    "no corpus statement shows {}: add one to tests/corpus (or say why in runtime_only)",
                    rule.id
                )
            });
            let _ = writeln!(out, "{why}\n");
        }
    }

    let _ = writeln!(out, "## When the catalog changes the verdict\n");
    let mut facts = Vec::new();
    for method in [
        "scan_rules_apply",
        "lock_rules_apply",
        "is_new_table",
        "is_small_table",
        "is_empty_table",
    ] {
        if source.contains(&format!("scope.{method}(")) {
            if let Some(doc) = doc_of(&scope_source, method) {
                facts.push(format!("- `{method}`: {doc}"));
            }
        }
    }
    let mut asked: Vec<&str> = source
        .match_indices("scope.catalog.")
        .filter_map(|(at, prefix)| {
            let rest = &source[at + prefix.len()..];
            rest.find('(').map(|end| &rest[..end])
        })
        .collect();
    asked.sort_unstable();
    asked.dedup();
    for method in asked {
        let doc = doc_of(&catalog_source, method).unwrap_or_default();
        facts.push(format!("- `{method}`: {doc}"));
    }
    if facts.is_empty() {
        let _ = writeln!(out, "None: the statement alone decides it.\n");
    } else {
        let _ = writeln!(
            out,
            "What the rule asks of the database (the extension answers from the backend's catalogs, \
             the proxy with queries on the session; `safe-migrations check` knows only what the file \
             showed earlier, such as a table it created, and takes the rest as unknown):\n"
        );
        out.push_str(&facts.join("\n"));
        out.push_str("\n\n");
    }

    let _ = writeln!(out, "## Acknowledging it\n");
    if rule.category == Category::Policy {
        let _ = writeln!(
            out,
            "It cannot be acknowledged: a guarded role never changes its own policy. A superuser \
             changes the settings (`ALTER ROLE ... SET safe_migrations....`)."
        );
    } else {
        let _ = writeln!(
            out,
            "After review, a comment before the statement lets it through, with the reason logged (the \
             reason is required):\n\n```sql\n-- safe_migrations:allow {id} -- <why this is safe here>\n```\n\n\
             Or, for every statement of a role, a superuser sets \
             `ALTER ROLE migrator SET safe_migrations.allow = '{id}'` (`--allow {id}` for \
             `safe-migrations check`).",
            id = rule.id
        );
    }
    out
}

fn index(pages: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<!-- Made by cli/tests/rule_docs.rs from the code: edit the rules, not this page. -->\n\
         # Rules\n\nEvery rule the extension, the proxy and `safe-migrations check` apply.\n\n\
         | rule | what it stops |\n|---|---|\n",
    );
    for (id, summary) in pages {
        let _ = writeln!(out, "| [`{id}`]({id}.md) | {summary} |");
    }
    out
}

#[test]
fn every_rule_has_a_page_made_from_its_code() {
    let settings = Settings {
        mode: Mode::Enforce,
        acknowledgements: true,
        ..Settings::default()
    };
    let checked: Vec<(String, String, Vec<Problem>)> = corpus_files()
        .into_iter()
        .map(|path| {
            let sql = std::fs::read_to_string(&path).unwrap();
            let name = path.strip_prefix(root()).unwrap().display().to_string();
            let problems = check_sql(&name, &sql, &settings, None);
            (name, sql, problems)
        })
        .collect();
    let dir = root().join("docs/rules");
    let mut expected: Vec<(PathBuf, String)> = RULES
        .iter()
        .map(|rule| (dir.join(format!("{}.md", rule.id)), page(rule, &checked)))
        .collect();
    let summaries: Vec<(&str, &str)> = RULES.iter().map(|rule| (rule.id, rule.summary)).collect();
    expected.push((dir.join("README.md"), index(&summaries)));

    if std::env::var_os("SAFE_MIGRATIONS_WRITE_DOCS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (path, text) in &expected {
            std::fs::write(path, text).unwrap();
        }
    }
    let stale: Vec<String> = expected
        .iter()
        .filter(|(path, text)| std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "pages that differ from the code (SAFE_MIGRATIONS_WRITE_DOCS=1 cargo test -p safe-migrations --test rule_docs writes them):\n{}",
        stale.join("\n")
    );
    // No page for a rule that is gone.
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in pages {
        assert!(
            page == "README.md" || RULES.iter().any(|rule| format!("{}.md", rule.id) == page),
            "docs/rules/{page} names no rule"
        );
    }
}
