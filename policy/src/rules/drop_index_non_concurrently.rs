//! DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the index's table: every
//! query on the table, reads included, queues behind it (and behind whatever it waits for).

use super::{Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{LockLevel, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "drop_index_non_concurrently",
    category: Category::Lock,
    summary: "DROP INDEX without CONCURRENTLY blocks reads and writes of the table",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::DropIndex(drop) = &statement.stmt else {
        return vec![];
    };
    if drop.concurrently {
        return vec![];
    }
    let if_exists = if drop.if_exists { "IF EXISTS " } else { "" };
    drop.indexes
        .iter()
        .filter(|index| scope.lock_rules_apply(index))
        .map(|index| {
            let lock = Lock {
                level: LockLevel::AccessExclusive,
                relation: index.clone(),
            };
            let cascade = if drop.cascade {
                "\nDROP INDEX CONCURRENTLY does not support CASCADE: drop the objects that depend on the index first."
            } else {
                ""
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!("DROP INDEX {index} without CONCURRENTLY blocks reads and writes of its table"),
                format!(
                    "Lock: {}. DROP INDEX takes ACCESS EXCLUSIVE on the index and its table; every query on the \
                     table, reads included, waits until the transaction ends.",
                    lock.describe()
                ),
                format!(
                    "Drop the index without blocking queries, alone and outside a transaction block:\n    \
                     DROP INDEX CONCURRENTLY {if_exists}{index};{cascade}"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DropIndex;
    use crate::rules::testing::*;

    fn drop_index(names: &[&str], concurrently: bool) -> DropIndex {
        DropIndex {
            indexes: names.iter().map(|n| q(n)).collect(),
            concurrently,
            ..DropIndex::default()
        }
    }

    #[test]
    fn drop_index_err() {
        let finding = only(findings(
            &RULE,
            Stmt::DropIndex(drop_index(&["orders_status_idx"], false)),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "drop_index_non_concurrently: DROP INDEX orders_status_idx without CONCURRENTLY blocks reads and writes of its table"
        );
        assert_eq!(finding.lock.unwrap().level, LockLevel::AccessExclusive);
        assert!(
            finding.hint.ends_with("DROP INDEX CONCURRENTLY orders_status_idx;"),
            "{}",
            finding.hint
        );
    }

    #[test]
    fn drop_index_concurrently_ok() {
        let stmt = Stmt::DropIndex(drop_index(&["orders_status_idx"], true));
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn index_created_in_same_transaction_ok() {
        let stmt = Stmt::DropIndex(drop_index(&["orders_status_idx"], false));
        let catalog = TestCatalog::default().new_table("orders_status_idx");
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn several_indexes_one_finding_each() {
        let stmt = Stmt::DropIndex(drop_index(&["a_idx", "b_idx"], false));
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 2);
    }

    #[test]
    fn if_exists_cascade_and_quoted_schema_qualified_name_in_hint() {
        let stmt = Stmt::DropIndex(DropIndex {
            if_exists: true,
            cascade: true,
            ..drop_index(&["App.Orders_idx"], false)
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(
            finding
                .hint
                .contains("DROP INDEX CONCURRENTLY IF EXISTS \"App\".\"Orders_idx\";"),
            "{}",
            finding.hint
        );
        assert!(finding.hint.contains("does not support CASCADE"));
    }
}
