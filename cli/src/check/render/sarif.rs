//! SARIF 2.1.0 (OASIS): one run of the `safe-migrations` driver, its rules the ones that
//! reported, one result per problem. Acknowledged findings are `note` results with an
//! in-source suppression, not dropped (how a reader shows a suppressed result is its own).

use policy::Severity;

use super::{full_message, Problem};

pub(super) fn render(problems: &[Problem]) -> String {
    let mut rules: Vec<&str> = problems.iter().map(|problem| problem.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let rule_objects: Vec<serde_json::Value> = rules
        .iter()
        .map(|rule| {
            let mut object = serde_json::json!({
                "id": rule,
                "name": rule,
                "shortDescription": { "text": short_description(rule, problems) },
            });
            if let Some(page) = super::rule_page(rule) {
                object["help"] = serde_json::json!({
                    "text": format!("What it stops, the safe form and how to acknowledge it: {page} in the safe_migrations repository."),
                });
            }
            object
        })
        .collect();
    let results: Vec<serde_json::Value> = problems
        .iter()
        .map(|problem| result(problem, rules.binary_search(&problem.rule.as_str()).unwrap_or(0)))
        .collect();
    let log = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "safe-migrations",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_objects,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).unwrap_or_default();
    out.push('\n');
    out
}

/// The rule's summary from the catalogue, or else the first message it reported (the
/// rules outside it: lock_timeout, syntax_error, unreadable, ...).
fn short_description(rule: &str, problems: &[Problem]) -> String {
    if let Some(known) = policy::rules::RULES.iter().find(|known| known.id == rule) {
        return known.summary.to_string();
    }
    problems
        .iter()
        .find(|problem| problem.rule == rule)
        .map(|problem| problem.message.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn result(problem: &Problem, rule_index: usize) -> serde_json::Value {
    let level = match (problem.counts, problem.severity) {
        (false, _) => "note",
        (true, Severity::Error) => "error",
        (true, Severity::Warning) => "warning",
    };
    let mut location = serde_json::json!({
        "physicalLocation": { "artifactLocation": { "uri": uri(&super::repository_path(&problem.file)) } }
    });
    if let (Some(line), Some(column)) = (problem.line, problem.column) {
        location["physicalLocation"]["region"] = serde_json::json!({ "startLine": line, "startColumn": column });
    }
    let mut properties = serde_json::Map::new();
    if let Some(sqlstate) = problem.sqlstate {
        properties.insert("sqlstate".into(), sqlstate.into());
    }
    if let Some(lock) = &problem.lock {
        properties.insert("lock".into(), lock.clone().into());
    }
    let mut result = serde_json::json!({
        "ruleId": problem.rule,
        "ruleIndex": rule_index,
        "level": level,
        "message": { "text": full_message(problem) },
        "locations": [location],
        "properties": properties,
    });
    if !problem.counts {
        result["suppressions"] = serde_json::json!([{ "kind": "inSource" }]);
    }
    result
}

/// A path as a URI: a relative reference, or a `file://` URI for an absolute path, each
/// byte outside the unreserved set and `/` percent-encoded (standard input is `stdin`).
fn uri(path: &str) -> String {
    if path == "<stdin>" {
        return "stdin".to_string();
    }
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_relative_uri_references() {
        assert_eq!(uri("db/migrate/001 add index.sql"), "db/migrate/001%20add%20index.sql");
        assert_eq!(uri("ü.sql"), "%C3%BC.sql");
        assert_eq!(uri("<stdin>"), "stdin");
        assert_eq!(uri("/srv/m.sql"), "file:///srv/m.sql");
    }
}
