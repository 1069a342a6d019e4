//! A guarded session's application traffic repeats the same statements (a pool's
//! SELECT, an ORM's INSERT). A statement the policy let through unchanged, without
//! asking the server anything, gets the same verdict next time under the same facts, so
//! the session remembers it and skips libpg_query and the decision.
//!
//! The facts such a verdict can depend on: the statement text, whether a transaction
//! block is open, the tables created in it (only an empty list is remembered), the
//! session's TimeZone; the role's settings and the server version are fixed per session.

use std::collections::HashMap;

use super::guard::Verdict;

/// Statements remembered per session: memory stays bounded whatever a client sends.
const CAPACITY: usize = 256;
/// Longer texts are decided every time (migrations rather than application queries).
const MAX_SQL_LEN: usize = 4096;

#[derive(Debug, Default)]
pub struct CleanVerdicts {
    /// Statement text -> the (transaction block open, TimeZone) it passed unchanged under.
    passed: HashMap<String, Vec<(bool, Option<String>)>>,
}

impl CleanVerdicts {
    /// Did `sql` pass unchanged under these facts before?
    pub fn passed(&self, sql: &str, in_transaction_block: bool, timezone: &Option<String>) -> bool {
        self.passed.get(sql).is_some_and(|facts| {
            facts
                .iter()
                .any(|(block, zone)| *block == in_transaction_block && zone == timezone)
        })
    }

    /// `sql` passed unchanged under these facts, with no catalog question asked.
    pub fn remember(&mut self, sql: &str, in_transaction_block: bool, timezone: Option<String>) {
        if sql.len() > MAX_SQL_LEN {
            return;
        }
        if self.passed.len() >= CAPACITY && !self.passed.contains_key(sql) {
            self.passed.clear();
        }
        let facts = self.passed.entry(sql.to_string()).or_default();
        if !facts
            .iter()
            .any(|(block, zone)| *block == in_transaction_block && *zone == timezone)
        {
            facts.push((in_transaction_block, timezone));
        }
    }
}

/// The message goes to the server as the client sent it, and nothing else happens.
pub fn passes_unchanged(verdict: &Verdict) -> bool {
    verdict.reports.is_empty()
        && verdict.refusal.is_none()
        && verdict.caps.iter().all(Option::is_none)
        && verdict.created.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

    #[test]
    fn a_statement_passes_again_only_under_the_same_facts() {
        let mut verdicts = CleanVerdicts::default();
        let utc = Some("UTC".to_string());
        assert!(!verdicts.passed(SELECT, false, &utc));
        verdicts.remember(SELECT, false, utc.clone());
        assert!(verdicts.passed(SELECT, false, &utc));
        assert!(!verdicts.passed(SELECT, true, &utc));
        assert!(!verdicts.passed(SELECT, false, &Some("Europe/Paris".to_string())));
        assert!(!verdicts.passed("SELECT 1", false, &utc));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut verdicts = CleanVerdicts::default();
        for n in 0..CAPACITY * 3 {
            verdicts.remember(&format!("SELECT {n}"), false, None);
        }
        assert!(verdicts.passed.len() <= CAPACITY);
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_LEN));
        verdicts.remember(&long, false, None);
        assert!(!verdicts.passed(&long, false, &None));
    }
}
