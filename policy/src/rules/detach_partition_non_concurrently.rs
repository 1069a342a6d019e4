//! DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the partitioned table:
//! every query on every partition waits. Postgres 14+ can detach with SHARE UPDATE EXCLUSIVE.

use super::{alter_table_sql, unless_exempt, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, LockLevel, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "detach_partition_non_concurrently",
    category: Category::Lock,
    summary: "DETACH PARTITION without CONCURRENTLY blocks reads and writes of the partitioned table",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let findings = alter
        .actions
        .iter()
        .filter_map(|action| match action {
            AlterAction::DetachPartition {
                partition,
                concurrently: false,
                finalize: false,
            } => Some(partition),
            _ => None,
        })
        .map(|partition| {
            let prefix = alter_table_sql(alter);
            let lock = Lock {
                level: LockLevel::AccessExclusive,
                relation: alter.table.clone(),
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!(
                    "DETACH PARTITION {partition} from {} without CONCURRENTLY blocks reads and writes of {}",
                    alter.table, alter.table
                ),
                format!(
                    "Lock: {}. Every query on {} and its partitions waits until the transaction ends.",
                    lock.describe(),
                    alter.table
                ),
                format!(
                    "Detach with SHARE UPDATE EXCLUSIVE instead, alone and outside a transaction block \
                     (Postgres 14+, not for a default partition):\n    \
                     {prefix} DETACH PARTITION {partition} CONCURRENTLY;\n\
                     If it is interrupted, finish it with:\n    \
                     {prefix} DETACH PARTITION {partition} FINALIZE;"
                ),
            )
        })
        .collect();
    unless_exempt(findings, &alter.table, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn detach(partition: &str, concurrently: bool, finalize: bool) -> AlterAction {
        AlterAction::DetachPartition {
            partition: q(partition),
            concurrently,
            finalize,
        }
    }

    #[test]
    fn detach_partition_err() {
        let stmt = alter("measurements", vec![detach("measurements_2020", false, false)]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "detach_partition_non_concurrently: DETACH PARTITION measurements_2020 from measurements without \
             CONCURRENTLY blocks reads and writes of measurements"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on measurements, blocks reads and writes"
        );
        assert!(finding
            .hint
            .contains("ALTER TABLE measurements DETACH PARTITION measurements_2020 CONCURRENTLY;"));
    }

    #[test]
    fn detach_concurrently_and_finalize_ok() {
        let stmt = alter(
            "measurements",
            vec![detach("m_2020", true, false), detach("m_2021", false, true)],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("measurements", vec![detach("m_2020", false, false)]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("measurements")).is_empty());
    }

    #[test]
    fn schema_qualified_if_exists_only_in_hint() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("app.Events"),
            if_exists: true,
            only: true,
            actions: vec![detach("app.events_old", false, false)],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding
            .hint
            .contains("ALTER TABLE IF EXISTS ONLY app.\"Events\" DETACH PARTITION app.events_old CONCURRENTLY;"));
    }
}
