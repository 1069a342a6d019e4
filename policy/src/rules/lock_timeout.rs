//! Every guarded DDL statement whose lock blocks reads or writes runs with a
//! lock_timeout in (0, cap], so a statement queued behind a long transaction fails
//! fast instead of queueing every later query behind itself.

use super::{Category, Rule, Scope};
use crate::finding::Finding;
use crate::locks::strongest_lock;
use crate::model::{Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "lock_timeout",
    category: Category::Timeout,
    summary: "guarded DDL runs with lock_timeout capped (never 0 = wait forever)",
    check,
};

/// The cap is applied by the adapter (`Decision::lock_timeout_ms`), not reported.
fn check(_: &Statement, _: &Scope) -> Vec<Finding> {
    vec![]
}

/// The lock_timeout (ms) to run `stmt` with: min(session value, cap), where a session
/// value of 0 means "forever". None when no cap applies: the cap is 0, the rule is
/// allowed for the role, or the statement's lock blocks neither reads nor writes.
pub fn effective_lock_timeout(stmt: &Stmt, scope: &Scope) -> Option<u64> {
    let cap = scope.settings.lock_timeout_cap_ms;
    if cap == 0 || scope.settings.allow.contains(RULE.id) {
        return None;
    }
    let lock = strongest_lock(stmt)?;
    if !(lock.blocks_reads() || lock.blocks_writes()) {
        return None;
    }
    let session = scope.context.session_lock_timeout_ms;
    Some(if session == 0 { cap } else { session.min(cap) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, CreateIndex, LockLevel};
    use crate::rules::testing::*;

    fn effective(stmt: Stmt, session_ms: u64, cap_ms: u64) -> Option<u64> {
        let settings = crate::settings::Settings {
            lock_timeout_cap_ms: cap_ms,
            ..enforce()
        };
        let context = Context {
            session_lock_timeout_ms: session_ms,
            ..Context::default()
        };
        let catalog = TestCatalog::default();
        effective_lock_timeout(&stmt, &Scope::new(&context, &catalog, &settings))
    }

    fn lock(mode: LockLevel) -> Stmt {
        Stmt::Lock {
            tables: vec![q("t")],
            mode,
        }
    }

    #[test]
    fn session_zero_means_forever_so_the_cap_wins() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 0, 3000), Some(3000));
    }

    #[test]
    fn a_lower_session_value_is_kept() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 500, 3000), Some(500));
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 60_000, 3000), Some(3000));
    }

    #[test]
    fn cap_zero_disables() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 0, 0), None);
    }

    #[test]
    fn concurrently_builds_are_not_capped() {
        let cic = Stmt::CreateIndex(CreateIndex {
            concurrently: true,
            table: q("t"),
            ..CreateIndex::default()
        });
        assert_eq!(effective(cic, 0, 3000), None);
        assert_eq!(effective(lock(LockLevel::ShareUpdateExclusive), 0, 3000), None);
    }

    #[test]
    fn queries_and_session_commands_are_not_capped() {
        assert_eq!(effective(Stmt::Query, 0, 3000), None);
    }

    #[test]
    fn unknown_ddl_is_capped() {
        assert_eq!(
            effective(
                Stmt::Other {
                    tag: "CREATE POLICY".into(),
                    ddl: true
                },
                0,
                3000
            ),
            Some(3000)
        );
    }
}
