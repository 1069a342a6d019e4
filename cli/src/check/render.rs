//! Problems written out: plain text, JSON, GitHub Actions annotations, SARIF 2.1.0
//! (GitHub code scanning) or a GitLab Code Quality report.

mod gitlab;
mod sarif;

use policy::report::rule_page;
use policy::Severity;

use super::{Format, Problem};

pub(super) fn render(problems: &[Problem], format: Format) -> String {
    match format {
        Format::Text => render_text(problems),
        Format::Json => render_json(problems),
        Format::Github => render_github(problems),
        Format::Sarif => sarif::render(problems),
        Format::Gitlab => gitlab::render(problems),
    }
}

/// A file as code review tools name it: relative to the working directory (the
/// repository's root, where CI runs the check) when it is below it, without `./`.
fn repository_path(file: &str) -> String {
    let path = std::path::Path::new(file);
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    let text = relative.to_string_lossy().into_owned();
    match text.strip_prefix("./") {
        Some(rest) => rest.trim_start_matches('/').to_string(),
        None => text,
    }
}

/// The message with its detail and hint, each on lines of its own.
fn full_message(problem: &Problem) -> String {
    let mut message = problem.message.clone();
    for text in [&problem.detail, &problem.hint] {
        if !text.is_empty() {
            message.push('\n');
            message.push_str(text);
        }
    }
    message
}

fn location(problem: &Problem) -> String {
    match (problem.line, problem.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", problem.file),
        _ => problem.file.clone(),
    }
}

fn render_text(problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        let level = match (problem.counts, problem.severity) {
            (false, _) => "note",
            (true, severity) => severity.name(),
        };
        out.push_str(&format!(
            "{}: {level}[{}]: {}\n",
            location(problem),
            problem.rule,
            problem.message
        ));
        for (label, text) in [("detail", &problem.detail), ("hint", &problem.hint)] {
            if !text.is_empty() {
                out.push_str(&format!("  {label}: {}\n", text.replace('\n', "\n  ")));
            }
        }
        if let Some(page) = rule_page(&problem.rule) {
            out.push_str(&format!("  docs: {page}\n"));
        }
    }
    let count = |severity: Severity| problems.iter().filter(|p| p.counts && p.severity == severity).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if errors + warnings > 0 {
        out.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    }
    out
}

fn render_json(problems: &[Problem]) -> String {
    let objects: Vec<serde_json::Value> = problems
        .iter()
        .map(|problem| {
            serde_json::json!({
                "file": problem.file,
                "line": problem.line,
                "column": problem.column,
                "severity": if problem.counts { problem.severity.name() } else { "note" },
                "sqlstate": problem.sqlstate,
                "rule": problem.rule,
                "message": problem.message,
                "detail": problem.detail,
                "hint": problem.hint,
                "lock": problem.lock,
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&objects).unwrap_or_else(|_| "[]".to_string());
    out.push('\n');
    out
}

/// GitHub Actions workflow commands: one annotation per problem.
fn render_github(problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        let command = match (problem.counts, problem.severity) {
            (false, _) => "notice",
            (true, Severity::Error) => "error",
            (true, Severity::Warning) => "warning",
        };
        let mut properties = vec![format!("file={}", escape_property(&problem.file))];
        if let (Some(line), Some(column)) = (problem.line, problem.column) {
            properties.push(format!("line={line}"));
            properties.push(format!("col={column}"));
        }
        properties.push(format!("title={}", escape_property(&problem.rule)));
        let message = full_message(problem);
        out.push_str(&format!(
            "::{command} {}::{}\n",
            properties.join(","),
            escape_data(&message)
        ));
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escapes_properties_and_data() {
        assert_eq!(escape_property("a,b:c%"), "a%2Cb%3Ac%25");
        assert_eq!(escape_data("one\ntwo"), "one%0Atwo");
    }
}
