//! A guarded transaction that holds a lock blocking reads or writes of an existing table
//! for longer than `max_lock_hold` is ended: its running statement is cancelled, or, idle
//! in its transaction, its session is terminated. Every query the lock blocks waits as
//! long as the transaction holds it, whatever the migration does meanwhile (a backfill,
//! a sleep, the tool's own work between statements); this bounds that outage.
//!
//! Enforced by time, not by a statement: the adapters arm a timer when the transaction
//! first takes such a lock (the clock starts when the statement that takes it starts:
//! while it waits for the lock, the queries queued behind it wait too), and raise the
//! report this module writes. In warn mode the transaction is not ended: the first
//! statement it sends after the budget ran out (its COMMIT, at the latest) gets the
//! report as a warning. `allow` turns it off for a role.

use super::{Category, Rule, Scope};
use crate::finding::Finding;
use crate::model::Statement;
use crate::settings::{format_duration_ms, Mode, Settings};
use crate::transaction::HeldLock;

pub const RULE: Rule = Rule {
    id: "lock_held_too_long",
    category: Category::Timeout,
    summary: "a transaction holding a lock that blocks traffic longer than max_lock_hold is ended",
    check,
};

/// Decided by the adapters' timers, not per statement.
fn check(_: &Statement, _: &Scope) -> Vec<Finding> {
    vec![]
}

/// The budget (ms) for a role with `settings`, when the rule applies to it.
pub fn budget_ms(settings: &Settings) -> Option<u64> {
    (settings.mode != Mode::Off && settings.max_lock_hold_ms > 0 && !settings.allow.contains(RULE.id))
        .then_some(settings.max_lock_hold_ms)
}

/// Does the rule end the transaction (enforce mode), or only warn?
pub fn ends_transactions(settings: &Settings) -> bool {
    settings.mode == Mode::Enforce
}

/// How the transaction was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its running statement was cancelled (the transaction is aborted, its locks gone).
    Cancelled,
    /// Its session was terminated: it sat idle in its transaction, or a cancel did not
    /// end it.
    Terminated,
    /// Warn mode: it goes on, warned.
    Warned,
}

/// The report when the budget ran out: message, detail, hint.
pub fn report(lock: &HeldLock, budget_ms: u64, ending: Ending) -> (String, String, String) {
    let what = match ending {
        Ending::Cancelled => "its running statement is cancelled",
        Ending::Terminated => "its session is terminated",
        Ending::Warned => "in enforce mode it would be ended",
    };
    let message = format!(
        "{}: this transaction held {} on {} for {} (safe_migrations.max_lock_hold), since `{}`: {what}",
        RULE.id,
        lock.level,
        lock.table,
        format_duration_ms(budget_ms),
        lock.statement
    );
    let detail = format!(
        "Lock: {}. Every query it blocks waited all that time; ending the transaction releases it, and \
         those queries resume.",
        lock.lock().describe()
    );
    let hint = "Keep the work under such a lock short: commit the schema change first, then backfill, validate or \
                wait in transactions of their own."
        .to_string();
    (message, detail, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LockLevel;
    use crate::rules::testing::q;
    use std::time::Instant;

    #[test]
    fn the_report_names_the_rule_the_table_the_lock_the_time_and_the_statement() {
        let lock = HeldLock {
            table: q("users"),
            level: LockLevel::AccessExclusive,
            statement: "ALTER TABLE users ADD COLUMN v int".into(),
            since: Instant::now(),
            subtransaction: 1,
        };
        let (message, detail, _) = report(&lock, 10_000, Ending::Terminated);
        assert_eq!(
            message,
            "lock_held_too_long: this transaction held ACCESS EXCLUSIVE on users for 10s \
             (safe_migrations.max_lock_hold), since `ALTER TABLE users ADD COLUMN v int`: its session is \
             terminated"
        );
        assert!(detail.contains("blocks reads and writes"), "{detail}");
    }

    #[test]
    fn warn_mode_warns_allow_and_off_turn_it_off() {
        let mut settings = Settings {
            mode: Mode::Enforce,
            ..Settings::default()
        };
        assert_eq!(budget_ms(&settings), Some(10_000));
        assert!(ends_transactions(&settings));
        settings.allow.insert(RULE.id.to_string());
        assert_eq!(budget_ms(&settings), None);
        settings.allow.clear();
        settings.mode = Mode::Warn;
        assert_eq!(budget_ms(&settings), Some(10_000));
        assert!(!ends_transactions(&settings));
        settings.mode = Mode::Off;
        assert_eq!(budget_ms(&settings), None);
        settings.mode = Mode::Enforce;
        settings.max_lock_hold_ms = 0;
        assert_eq!(budget_ms(&settings), None);
    }
}
