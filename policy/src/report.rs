//! How a decision reaches the client, identically from the extension and the proxy:
//! a NOTICE per acknowledged finding, a WARNING per finding that does not stop the
//! statement, then at most one ERROR. A finding's HINT ends with the rule's page in the
//! rule reference (`docs/rules/<rule>.md`), as `safe-migrations check` names it.

use crate::finding::Severity;
use crate::rules::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Notice,
    Warning,
    Error,
}

impl Level {
    /// The severity word Postgres sends (ErrorResponse/NoticeResponse field 'S' and 'V').
    pub fn name(self) -> &'static str {
        match self {
            Level::Notice => "NOTICE",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub level: Level,
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// SQLSTATE of notices and warnings that are not about one rule (successful_completion / warning).
const SQLSTATE_NOTICE: &str = "00000";

/// The rule and reason of an acknowledgement's NOTICE (as `reports` words it).
pub fn acknowledgement(report: &Report) -> Option<(&str, &str)> {
    if report.level != Level::Notice || report.sqlstate != SQLSTATE_NOTICE {
        return None;
    }
    report
        .message
        .strip_prefix("safe_migrations: ")?
        .split_once(" acknowledged: ")
}

/// The page of `rule` in the rule reference, for the rules of the catalogue.
pub fn rule_page(rule: &str) -> Option<String> {
    crate::rules::RULES
        .iter()
        .any(|known| known.id == rule)
        .then(|| format!("docs/rules/{rule}.md"))
}

/// A finding's hint, then the line that names its rule's page.
fn hint_with_reference(finding: &crate::finding::Finding) -> String {
    with_rule_reference(finding.rule, &finding.hint)
}

/// `hint` of a report of `rule`, then the line that names the rule's page.
pub fn with_rule_reference(rule: &str, hint: &str) -> String {
    match rule_page(rule) {
        Some(page) if hint.is_empty() => format!("Rule reference: {page}"),
        Some(page) => format!("{hint}\nRule reference: {page}"),
        None => hint.to_string(),
    }
}

/// The messages for `decision`, in the order they are sent; an ERROR, if any, is last.
pub fn reports(decision: &Decision) -> Vec<Report> {
    let mut out: Vec<Report> = decision
        .acknowledged
        .iter()
        .map(|ack| Report {
            level: Level::Notice,
            sqlstate: SQLSTATE_NOTICE,
            message: format!("safe_migrations: {} acknowledged: {}", ack.rule, ack.reason),
            detail: None,
            hint: None,
        })
        .collect();
    let rejection = decision.rejection();
    for finding in decision.warnings() {
        out.push(Report {
            level: Level::Warning,
            sqlstate: finding.sqlstate,
            message: finding.text(),
            detail: Some(finding.detail.clone()),
            hint: Some(hint_with_reference(finding)),
        });
    }
    if let Some(finding) = rejection {
        debug_assert_eq!(finding.severity, Severity::Error);
        out.push(Report {
            level: Level::Error,
            sqlstate: finding.sqlstate,
            message: finding.text(),
            detail: Some(finding.detail.clone()),
            hint: Some(hint_with_reference(finding)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, SQLSTATE_LOCK};

    #[test]
    fn a_rules_hint_ends_with_its_page_in_the_rule_reference() {
        let finding =
            |rule: &'static str, hint: &str| Finding::new(rule, SQLSTATE_LOCK, None, "m", "d", hint.to_string());
        assert_eq!(
            hint_with_reference(&finding("create_index_non_concurrently", "Build it concurrently.")),
            "Build it concurrently.\nRule reference: docs/rules/create_index_non_concurrently.md"
        );
        assert_eq!(
            hint_with_reference(&finding("lock_timeout", "")),
            "Rule reference: docs/rules/lock_timeout.md"
        );
        // Not a rule of the catalogue: no page.
        assert_eq!(hint_with_reference(&finding("unparsable", "h")), "h");
    }
}
