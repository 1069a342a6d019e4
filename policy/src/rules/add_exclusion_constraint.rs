//! ADD CONSTRAINT ... EXCLUDE builds its index and checks every row under ACCESS EXCLUSIVE,
//! and unlike UNIQUE or CHECK it has no NOT VALID or USING INDEX form to do that online.

use super::{unless_cheap, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, ConstraintKind, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_exclusion_constraint",
    category: Category::Lock,
    summary: "EXCLUDE constraints block reads and writes while their index builds; there is no online form",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let table = &alter.table;
    let findings = alter
        .actions
        .iter()
        .filter_map(|action| match action {
            AlterAction::AddConstraint(constraint) if constraint.kind == ConstraintKind::Exclusion => Some(constraint),
            _ => None,
        })
        .map(|constraint| {
            let name = constraint
                .name
                .as_deref()
                .map(|n| format!(" {}", sql::ident(n)))
                .unwrap_or_default();
            let lock = Lock {
                level: LockLevel::AccessExclusive,
                relation: table.clone(),
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!("ADD CONSTRAINT{name} EXCLUDE on {table} blocks reads and writes while its index builds"),
                format!(
                    "Lock: {}. It is held while the index is built and every row of {table} is checked against \
                     the others, and until the transaction ends. Exclusion constraints cannot be added NOT VALID \
                     or from an index built CONCURRENTLY.",
                    lock.describe()
                ),
                format!(
                    "Add exclusion constraints when the table is created or while it is still small, or in a \
                     maintenance window with a short lock_timeout. If this one is reviewed and accepted, say so:\n    \
                     -- safe_migrations:allow {} -- <why this is safe>",
                    RULE.id
                ),
            )
        })
        .collect();
    unless_cheap(findings, table, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Constraint;
    use crate::rules::testing::*;

    fn exclusion(name: Option<&str>) -> AlterAction {
        AlterAction::AddConstraint(Constraint {
            name: name.map(str::to_owned),
            kind: ConstraintKind::Exclusion,
            not_valid: false,
        })
    }

    #[test]
    fn add_exclusion_constraint_err() {
        let stmt = alter("bookings", vec![exclusion(Some("no_overlap"))]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "add_exclusion_constraint: ADD CONSTRAINT no_overlap EXCLUDE on bookings blocks reads and writes \
             while its index builds"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on bookings, blocks reads and writes"
        );
        assert!(finding
            .hint
            .ends_with("-- safe_migrations:allow add_exclusion_constraint -- <why this is safe>"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("bookings", vec![exclusion(None)]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("bookings")).is_empty());
    }

    #[test]
    fn other_constraints_ok() {
        let stmt = alter(
            "bookings",
            vec![AlterAction::AddConstraint(Constraint {
                name: None,
                kind: ConstraintKind::Other,
                not_valid: false,
            })],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn unnamed_constraint_on_schema_qualified_table() {
        let stmt = alter("Rooms.bookings", vec![exclusion(None), exclusion(Some("B"))]);
        let found = findings(&RULE, stmt, &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert!(found[0].text().contains("ADD CONSTRAINT EXCLUDE on \"Rooms\".bookings"));
        assert!(found[1].text().contains("ADD CONSTRAINT \"B\" EXCLUDE"));
    }
}
