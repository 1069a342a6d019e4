//! ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows, and once it
//! is there, every INSERT from code that does not know the column fails.

use super::{alter_table_sql, unless_new, Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_COMPATIBILITY};
use crate::model::{AlterAction, ColumnDef, ConstraintKind, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_column_required",
    category: Category::Compatibility,
    summary: "ADD COLUMN NOT NULL without a DEFAULT breaks INSERTs from code that does not set it",
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
            AlterAction::AddColumn { column, .. } if is_required(column) => Some(column),
            _ => None,
        })
        .map(|column| {
            let prefix = alter_table_sql(alter);
            let name = sql::ident(&column.name);
            Finding::new(
                RULE.id,
                SQLSTATE_COMPATIBILITY,
                None,
                format!(
                    "ADD COLUMN {name} NOT NULL without a DEFAULT on {table} breaks INSERTs that do not set {name}"
                ),
                format!(
                    "The statement fails if {table} has any row, and once the column exists every INSERT from \
                     running code that does not know {name} fails with a not-null violation."
                ),
                format!(
                    "Give the column a default (catalog-only on Postgres 11+ when it is a constant):\n    \
                     {prefix} ADD COLUMN {name} {} NOT NULL DEFAULT <value>;\n\
                     or add it nullable, deploy code that sets it, backfill, and then make it NOT NULL (see \
                     set_not_null).",
                    column.type_name
                ),
            )
        })
        .collect();
    unless_new(findings, table, scope)
}

/// NOT NULL (or PRIMARY KEY) with nothing that fills existing rows or INSERTs that omit it.
fn is_required(column: &ColumnDef) -> bool {
    let primary_key = column
        .constraints
        .iter()
        .any(|c| matches!(c.kind, ConstraintKind::Unique { primary_key: true, .. }));
    (column.not_null || primary_key)
        && column.default.is_none()
        && !column.identity
        && !column.generated_stored
        && !column.type_name.is_serial()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Constraint, DefaultExpr};
    use crate::rules::testing::*;

    fn required(name: &str) -> ColumnDef {
        ColumnDef {
            not_null: true,
            ..column(name, ty(&["text"], &[]))
        }
    }

    #[test]
    fn add_not_null_column_without_default_err() {
        let finding = only(findings(
            &RULE,
            alter("users", vec![add_column(required("region"))]),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "add_column_required: ADD COLUMN region NOT NULL without a DEFAULT on users breaks INSERTs that do not \
             set region"
        );
        assert_eq!(finding.sqlstate, "SM002");
        assert!(finding
            .hint
            .contains("ALTER TABLE users ADD COLUMN region text NOT NULL DEFAULT <value>;"));
    }

    #[test]
    fn not_null_with_default_ok() {
        let column = ColumnDef {
            default: Some(DefaultExpr {
                sql: "'eu'".into(),
                ..DefaultExpr::default()
            }),
            ..required("region")
        };
        assert!(findings(&RULE, alter("users", vec![add_column(column)]), &TestCatalog::default()).is_empty());
    }

    #[test]
    fn nullable_identity_and_serial_columns_ok() {
        let identity = ColumnDef {
            identity: true,
            ..required("id")
        };
        let serial = ColumnDef {
            not_null: true,
            ..column("n", ty(&["bigserial"], &[]))
        };
        let stmt = alter(
            "users",
            vec![
                add_column(column("nickname", ty(&["text"], &[]))),
                add_column(identity),
                add_column(serial),
            ],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn primary_key_column_without_default_err() {
        let column = ColumnDef {
            constraints: vec![Constraint {
                name: None,
                kind: ConstraintKind::Unique {
                    primary_key: true,
                    columns: vec![],
                    using_index: None,
                },
                not_valid: false,
            }],
            ..column("uid", ty(&["uuid"], &[]))
        };
        assert_eq!(
            findings(&RULE, alter("users", vec![add_column(column)]), &TestCatalog::default()).len(),
            1
        );
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("users", vec![add_column(required("region"))]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("users")).is_empty());
    }

    #[test]
    fn several_columns_quoted_schema_qualified_each_reported() {
        let stmt = alter(
            "Geo.users",
            vec![add_column(required("Region")), add_column(required("zone"))],
        );
        let found = findings(&RULE, stmt, &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert!(found[0]
            .hint
            .contains("ALTER TABLE \"Geo\".users ADD COLUMN \"Region\" text NOT NULL DEFAULT <value>;"));
    }
}
