//! LOCK TABLE in SHARE mode or stronger blocks writes (ACCESS EXCLUSIVE: reads too) until
//! the transaction ends. Weaker modes, such as the SHARE UPDATE EXCLUSIVE Ecto takes on
//! schema_migrations to serialise migrators, block neither reads nor writes.
//!
//! A warning, never a refusal: under the guard's lock_timeout cap (the `lock_timeout`
//! rule) a waiting LOCK gives up quickly, and taking locks explicitly, in order, is how
//! lock-retry helpers avoid deadlocks. What makes it costly is what the transaction does
//! while it holds the lock.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "lock_table",
    category: Category::Lock,
    summary: "LOCK TABLE in SHARE mode or stronger blocks writes until the transaction ends",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Lock { tables, mode } = &statement.stmt else {
        return vec![];
    };
    if !mode.blocks_writes() {
        return vec![];
    }
    tables
        .iter()
        .filter(|table| scope.lock_rules_apply(table))
        .map(|table| {
            let lock = Lock {
                level: *mode,
                relation: table.clone(),
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!(
                    "LOCK TABLE {table} IN {mode} MODE {} until the transaction ends",
                    mode.blocks_description()
                ),
                format!(
                    "Lock: {}. An explicit lock is held to the end of the transaction: keep the transaction \
                     short, and run nothing slow (a backfill, a scan) while it holds the lock.",
                    lock.describe()
                ),
                format!(
                    "Let each statement take the lock it needs. To keep two migrators apart, take a lock that \
                     conflicts only with itself, or an advisory lock:\n    \
                     LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE;\n    \
                     SELECT pg_advisory_xact_lock(hashtext({}));",
                    sql::literal(&table.sql())
                ),
            )
            .warning()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LockLevel;
    use crate::rules::testing::*;

    fn lock(tables: &[&str], mode: LockLevel) -> Stmt {
        Stmt::Lock {
            tables: tables.iter().map(|t| q(t)).collect(),
            mode,
        }
    }

    #[test]
    fn lock_access_exclusive_err() {
        let finding = only(findings(
            &RULE,
            lock(&["accounts"], LockLevel::AccessExclusive),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "lock_table: LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE blocks reads and writes until the \
             transaction ends"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on accounts, blocks reads and writes"
        );
        assert!(finding
            .hint
            .ends_with("SELECT pg_advisory_xact_lock(hashtext('accounts'));"));
    }

    #[test]
    fn lock_share_err() {
        let finding = only(findings(
            &RULE,
            lock(&["accounts"], LockLevel::Share),
            &TestCatalog::default(),
        ));
        assert!(finding.text().contains("IN SHARE MODE blocks writes"));
        assert_eq!(finding.severity, crate::finding::Severity::Warning);
    }

    #[test]
    fn ecto_schema_migrations_lock_ok() {
        let stmt = lock(&["schema_migrations"], LockLevel::ShareUpdateExclusive);
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn weaker_modes_ok() {
        for mode in [LockLevel::AccessShare, LockLevel::RowShare, LockLevel::RowExclusive] {
            assert!(findings(&RULE, lock(&["accounts"], mode), &TestCatalog::default()).is_empty());
        }
    }

    #[test]
    fn several_tables_each_reported_except_new_ones() {
        let stmt = lock(&["a", "app.B", "fresh"], LockLevel::Exclusive);
        let found = findings(&RULE, stmt, &TestCatalog::default().new_table("fresh"));
        assert_eq!(found.len(), 2);
        assert!(found[1]
            .text()
            .starts_with("lock_table: LOCK TABLE app.\"B\" IN EXCLUSIVE MODE"));
        assert!(found[1].hint.ends_with("hashtext('app.\"B\"'));"));
    }
}
