//! How a decision reaches the client, identically from the extension and the proxy:
//! a NOTICE per acknowledged finding, a WARNING per finding that does not stop the
//! statement, then at most one ERROR.

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
            hint: Some(finding.hint.clone()),
        });
    }
    if let Some(finding) = rejection {
        debug_assert_eq!(finding.severity, Severity::Error);
        out.push(Report {
            level: Level::Error,
            sqlstate: finding.sqlstate,
            message: finding.text(),
            detail: Some(finding.detail.clone()),
            hint: Some(finding.hint.clone()),
        });
    }
    out
}
