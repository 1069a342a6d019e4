//! What `check` reports: a finding, an acknowledged finding, or input it could not check.

use policy::{Finding, Severity};

use parse::ParseError;

use super::file::Lines;

/// One thing to report: a finding, an acknowledged finding, or input that could not be checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    /// 1-based; None when the file could not be read at all.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    /// The SQLSTATE the extension or the proxy raises for a finding (None for notes and for
    /// input that could not be checked).
    pub sqlstate: Option<&'static str>,
    pub rule: String,
    pub message: String,
    pub detail: String,
    pub hint: String,
    pub lock: Option<String>,
    /// Syntax error or unreadable input: the file was not (fully) checked.
    pub unchecked: bool,
    /// False for acknowledged findings, reported as notes.
    pub counts: bool,
}

impl Problem {
    pub(super) fn unreadable(file: &str, message: String) -> Problem {
        Problem {
            file: file.to_string(),
            line: None,
            column: None,
            severity: Severity::Error,
            sqlstate: None,
            rule: "unreadable".to_string(),
            message,
            detail: String::new(),
            hint: String::new(),
            lock: None,
            unchecked: true,
            counts: true,
        }
    }

    pub(super) fn syntax_error(file: &str, sql: &str, err: &ParseError) -> Problem {
        let (line, column) = Lines::new(sql).position(err.position.unwrap_or(0));
        Problem {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            severity: Severity::Error,
            sqlstate: None,
            rule: "syntax_error".to_string(),
            message: err.message.clone(),
            detail: "The rest of this file was not checked.".to_string(),
            hint: String::new(),
            lock: None,
            unchecked: true,
            counts: true,
        }
    }

    pub(super) fn finding(file: &str, (line, column): (usize, usize), finding: &Finding) -> Problem {
        Problem {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            severity: finding.severity,
            sqlstate: Some(finding.sqlstate),
            rule: finding.rule.to_string(),
            message: finding.message.clone(),
            detail: finding.detail.clone(),
            hint: finding.hint.clone(),
            lock: finding.lock.as_ref().map(|lock| lock.describe()),
            unchecked: false,
            counts: true,
        }
    }
}
