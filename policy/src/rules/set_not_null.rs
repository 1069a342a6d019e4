//! SET NOT NULL scans every row under ACCESS EXCLUSIVE to prove there is no NULL, unless
//! a validated `CHECK (col IS NOT NULL)` already proves it (Postgres 12+), and that check
//! can be added NOT VALID and validated without blocking anyone. ADD PRIMARY KEY USING
//! INDEX sets NOT NULL on each key column that lacks it, with the same scan.

use super::{alter_table_sql, not_null_steps, unless_cheap, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, ConstraintKind, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "set_not_null",
    category: Category::Lock,
    summary: "SET NOT NULL blocks reads and writes while every row is scanned, unless a validated CHECK proves it",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let table = &alter.table;
    // Each column made NOT NULL, with the primary key's index that does it, if any.
    let columns: Vec<(String, Option<&String>)> = alter
        .actions
        .iter()
        .flat_map(|action| match action {
            AlterAction::SetNotNull { column } => vec![(column.clone(), None)],
            AlterAction::AddConstraint(constraint) if !constraint.not_valid => match &constraint.kind {
                ConstraintKind::NotNull { column: Some(column) } => vec![(column.clone(), None)],
                ConstraintKind::Unique {
                    primary_key: true,
                    using_index: Some(index),
                    ..
                } => scope
                    .catalog
                    .nullable_index_columns(table, index)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|column| (column, Some(index)))
                    .collect(),
                _ => vec![],
            },
            _ => vec![],
        })
        .collect();
    let findings = columns
        .iter()
        .filter(|(column, _)| scope.catalog.has_validated_not_null_check(table, column) != Some(true))
        .map(|(column, primary_key_index)| {
            let what = match primary_key_index {
                Some(index) => format!(
                    "ADD PRIMARY KEY USING INDEX {} sets NOT NULL on {table}.{}, which",
                    sql::ident(index),
                    sql::ident(column)
                ),
                None => format!("SET NOT NULL on {table}.{}", sql::ident(column)),
            };
            let prefix = alter_table_sql(alter);
            let lock = Lock {
                level: LockLevel::AccessExclusive,
                relation: table.clone(),
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!("{what} blocks reads and writes while every row is scanned"),
                format!(
                    "Lock: {}. Without a validated CHECK ({} IS NOT NULL), Postgres scans all of {table} for \
                     NULLs while holding the lock, and keeps it until the transaction ends.",
                    lock.describe(),
                    sql::ident(column)
                ),
                format!(
                    "Prove the column has no NULL first, without blocking reads or writes:\n    {}",
                    not_null_steps(&prefix, table, column)
                ),
            )
        })
        .collect();
    unless_cheap(findings, table, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlterTable, Constraint};
    use crate::rules::testing::*;

    fn primary_key_using(index: &str) -> AlterAction {
        AlterAction::AddConstraint(Constraint {
            name: Some("orders_pkey".into()),
            kind: ConstraintKind::Unique {
                primary_key: true,
                columns: vec![],
                using_index: Some(index.into()),
            },
            not_valid: false,
        })
    }

    #[test]
    fn primary_key_using_an_index_on_nullable_columns_err() {
        let catalog =
            TestCatalog::default()
                .existing_table("orders")
                .index("orders", "orders_id_key", &["id", "region"]);
        let findings = findings(
            &RULE,
            alter("orders", vec![primary_key_using("orders_id_key")]),
            &catalog,
        );
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            findings[0]
                .text()
                .contains("ADD PRIMARY KEY USING INDEX orders_id_key sets NOT NULL on orders.id"),
            "{}",
            findings[0].text()
        );
    }

    #[test]
    fn primary_key_using_an_index_on_not_null_or_proven_columns_ok() {
        let catalog = TestCatalog::default()
            .existing_table("orders")
            .index("orders", "orders_id_key", &["id"])
            .index("orders", "orders_code_key", &[])
            .not_null_check("orders", "id");
        for index in ["orders_id_key", "orders_code_key", "unknown_index"] {
            assert!(
                findings(&RULE, alter("orders", vec![primary_key_using(index)]), &catalog).is_empty(),
                "{index}"
            );
        }
    }

    fn set_not_null(column: &str) -> AlterAction {
        AlterAction::SetNotNull { column: column.into() }
    }

    #[test]
    fn set_not_null_err() {
        let stmt = alter("users", vec![set_not_null("email")]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "set_not_null: SET NOT NULL on users.email blocks reads and writes while every row is scanned"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on users, blocks reads and writes"
        );
        assert_eq!(
            finding.hint,
            "Prove the column has no NULL first, without blocking reads or writes:\n    \
             ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email IS NOT NULL) NOT VALID;\n    \
             ALTER TABLE users VALIDATE CONSTRAINT users_email_check;  -- in its own transaction\n    \
             ALTER TABLE users ALTER COLUMN email SET NOT NULL;  -- no scan: the validated check proves it\n    \
             ALTER TABLE users DROP CONSTRAINT users_email_check;  -- optional"
        );
    }

    #[test]
    fn validated_not_null_check_exists_ok() {
        let stmt = alter("users", vec![set_not_null("email")]);
        let catalog = TestCatalog::default().not_null_check("users", "email");
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn check_on_another_column_does_not_count() {
        let stmt = alter("users", vec![set_not_null("email")]);
        let catalog = TestCatalog::default().not_null_check("users", "name");
        assert_eq!(findings(&RULE, stmt, &catalog).len(), 1);
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("users", vec![set_not_null("email")]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("users")).is_empty());
    }

    #[test]
    fn several_columns_in_one_alter_each_reported() {
        let stmt = alter(
            "users",
            vec![set_not_null("email"), set_not_null("name"), set_not_null("id")],
        );
        let catalog = TestCatalog::default().not_null_check("users", "id");
        assert_eq!(findings(&RULE, stmt, &catalog).len(), 2);
    }

    #[test]
    fn add_constraint_not_null_err() {
        let constraint = Constraint {
            name: None,
            kind: ConstraintKind::NotNull {
                column: Some("email".into()),
            },
            not_valid: false,
        };
        let stmt = alter("users", vec![AlterAction::AddConstraint(constraint)]);
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 1);
    }

    #[test]
    fn quoted_schema_qualified_names_if_exists_only() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("Auth.users"),
            if_exists: true,
            only: true,
            actions: vec![set_not_null("Email")],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding.text().contains("\"Auth\".users.\"Email\""));
        assert!(finding.hint.contains(
            "ALTER TABLE IF EXISTS ONLY \"Auth\".users ADD CONSTRAINT \"users_Email_check\" CHECK (\"Email\" IS NOT \
             NULL) NOT VALID;"
        ));
    }
}
