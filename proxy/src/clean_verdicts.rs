//! A guarded session's application traffic repeats the same statements (a pool's
//! SELECT, an ORM's INSERT). A statement the policy let through unchanged, without
//! asking the server anything, gets the same verdict next time under the same facts, so
//! the session remembers it and skips libpg_query and the decision.
//!
//! The facts such a verdict can depend on: the statement text, whether a transaction
//! block is open, the tables created in it (only an empty list is remembered), the
//! session's TimeZone; the role's settings and the server version are fixed per session.
//!
//! Simple-protocol traffic writes its constants into the text, so the texts rarely
//! repeat; their shapes do (`parse::shape`). A shape is remembered when the
//! shape itself, parameters in place of the constants, passes unchanged: a parameter
//! stands for any value, so every text of that shape passes too. One check reads
//! constants the shape hides: the guard's scan for a `safe_migrations.` setting named
//! in the text (`set_config('safe_migrations.mode', ...)`), so a text with a constant
//! that mentions safe_migrations has no shape here.

use std::collections::{HashMap, HashSet};

use super::guard::Verdict;
use parse::shape::{shape, Shape};

/// Statements remembered per session: memory stays bounded whatever a client sends.
const CAPACITY: usize = 256;
/// Longer texts are decided every time (migrations rather than application queries).
const MAX_SQL_LEN: usize = 4096;

#[derive(Debug, Default)]
pub struct CleanVerdicts {
    /// Statement text -> the (transaction block open, TimeZone) it passed unchanged under.
    passed: HashMap<String, Vec<(bool, Option<String>)>>,
    /// Shapes that did not pass unchanged themselves: their texts are decided one by one.
    shapes_not_passing: HashSet<String>,
}

/// The shape `sql` may be remembered by, if it has one.
pub fn rememberable_shape(sql: &str) -> Option<Shape> {
    if sql.len() > MAX_SQL_LEN {
        return None;
    }
    shape(sql).filter(|shape| {
        !shape.constants.is_empty()
            && !shape
                .constants
                .iter()
                .any(|constant| constant.to_ascii_lowercase().contains("safe_migrations"))
    })
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

    /// Was `shape` found not to pass unchanged before?
    pub fn shape_does_not_pass(&self, shape: &str) -> bool {
        self.shapes_not_passing.contains(shape)
    }

    pub fn remember_shape_does_not_pass(&mut self, shape: &str) {
        if self.shapes_not_passing.len() >= CAPACITY {
            self.shapes_not_passing.clear();
        }
        self.shapes_not_passing.insert(shape.to_string());
    }

    /// `sql` (a text or a shape) passed unchanged under these facts, with no catalog
    /// question asked.
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
    use crate::guard::{judge, Facts};
    use parse::parse_sql;
    use policy::{Mode, Settings};

    /// Passes unchanged for an enforcing role, with no question for the server.
    fn passes(sql: &str) -> bool {
        let Ok(statements) = parse_sql(sql) else {
            return false;
        };
        let settings = Settings {
            mode: Mode::Enforce,
            ..Settings::default()
        };
        let answers = HashMap::new();
        let (verdict, missing) = judge(&statements, &Facts::idle(&settings, &answers));
        missing.is_empty() && passes_unchanged(&verdict)
    }

    #[test]
    fn a_text_whose_shape_passes_passes() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 83421",
            "UPDATE pgbench_accounts SET abalance = abalance + -4012 WHERE aid = 7",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)",
            "SELECT set_config('work_mem', '8MB', false)",
            "SELECT set_config('safe_migrations.mode', 'off', false)",
            "SELECT set_config('lock_timeout', '0', false)",
            "SELECT pg_catalog.set_config('safe_migrations.allow', 'require_concurrent_index', false)",
            "DO $$ BEGIN CREATE INDEX i ON t (c); END $$",
            "SET lock_timeout = '0'",
            "ALTER TABLE t ADD COLUMN c int DEFAULT 5",
            "CREATE INDEX i ON t (c) WHERE c > 5",
            "SELECT 1; CREATE INDEX i ON t (c) WHERE c > 5",
        ] {
            if let Some(shape) = rememberable_shape(sql).filter(|shape| passes(&shape.text)) {
                assert!(passes(sql), "{sql}: its shape {} passes, it does not", shape.text);
            }
        }
        assert!(passes("SELECT abalance FROM pgbench_accounts WHERE aid = $1"));
        assert!(!passes("SELECT set_config('safe_migrations.mode', 'off', false)"));
    }

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
        for n in 0..CAPACITY * 3 {
            verdicts.remember_shape_does_not_pass(&format!("SELECT date $1, {n}"));
        }
        assert!(verdicts.shapes_not_passing.len() <= CAPACITY);
    }

    #[test]
    fn a_text_naming_safe_migrations_in_a_constant_has_no_shape() {
        assert_eq!(
            rememberable_shape("SELECT set_config('work_mem', '8MB', false)").map(|shape| shape.text),
            Some("SELECT set_config($1, $2, false)".to_string())
        );
        assert_eq!(
            rememberable_shape("SELECT set_config('safe_migrations.mode', 'off', false)"),
            None
        );
        assert_eq!(
            rememberable_shape("SELECT set_config('SAFE_MIGRATIONS.mode', 'off', false)"),
            None
        );
        assert_eq!(
            rememberable_shape("SELECT 1 FROM t WHERE a = b"),
            Some(shape("SELECT 1 FROM t WHERE a = b").unwrap())
        );
        assert_eq!(rememberable_shape("SELECT a FROM t"), None);
    }
}
