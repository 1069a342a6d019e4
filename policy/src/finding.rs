//! What a rule reports: the rule, how bad, the lock, and what to do instead.

use crate::model::{LockLevel, QualifiedName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Reported; never blocks (an "I cannot tell" answer, or any finding in warn mode).
    Warning,
    /// Blocks the statement in enforce mode.
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The lock a statement would take, on which relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub level: LockLevel,
    pub relation: QualifiedName,
}

impl Lock {
    /// e.g. `SHARE on orders, blocks writes`.
    pub fn describe(&self) -> String {
        format!(
            "{} on {}, {}",
            self.level,
            self.relation,
            self.level.blocks_description()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// Five-character SQLSTATE of the error raised for this finding.
    pub sqlstate: &'static str,
    pub lock: Option<Lock>,
    /// One line; starts with the rule id.
    pub message: String,
    /// Why: the lock, what it blocks, for how long.
    pub detail: String,
    /// The safe alternative, as SQL built from the statement's own names.
    pub hint: String,
}

/// SQLSTATE for a statement refused for the locks it takes ("SM" class: safe_migrations).
pub const SQLSTATE_LOCK: &str = "SM001";
/// SQLSTATE for a statement refused because it breaks running application code.
pub const SQLSTATE_COMPATIBILITY: &str = "SM002";
/// SQLSTATE for a destructive statement without an acknowledgement.
pub const SQLSTATE_DESTRUCTIVE: &str = "SM003";
/// SQLSTATE for a statement the proxy could not parse (fail closed).
pub const SQLSTATE_UNPARSABLE: &str = "SM004";
/// SQLSTATE for CONCURRENTLY in a transaction block: Postgres' own active_sql_transaction.
pub const SQLSTATE_ACTIVE_SQL_TRANSACTION: &str = "25001";

impl Finding {
    /// An error-level finding with the rule id prefixed to the message.
    pub fn new(
        rule: &'static str,
        sqlstate: &'static str,
        lock: Option<Lock>,
        message: impl AsRef<str>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity: Severity::Error,
            sqlstate,
            lock,
            message: message.as_ref().to_string(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    /// The message as the server raises it: `<rule>: <message>`.
    pub fn text(&self) -> String {
        format!("{}: {}", self.rule, self.message)
    }

    pub fn warning(mut self) -> Finding {
        self.severity = Severity::Warning;
        self
    }
}
