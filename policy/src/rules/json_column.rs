//! A `json` column has no equality operator: SELECT DISTINCT, UNION, GROUP BY and
//! comparisons on it fail, which breaks queries that work on every other column.
//! `jsonb` has equality, indexes, and is what application code expects.

use super::{alter_table_sql, Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_COMPATIBILITY};
use crate::model::{AlterAction, ColumnDef, QualifiedName, Statement, Stmt};
use crate::sql;
use crate::types::TypeName;

pub const RULE: Rule = Rule {
    id: "json_column",
    category: Category::Compatibility,
    summary: "json columns break DISTINCT, UNION and equality; use jsonb",
    check,
};

fn check(statement: &Statement, _: &Scope) -> Vec<Finding> {
    match &statement.stmt {
        Stmt::CreateTable(create) => create
            .columns
            .iter()
            .filter(|column| column.type_name.is_json())
            .map(|column| {
                finding(
                    "CREATE TABLE",
                    &create.table,
                    column,
                    format!(
                        "Declare the column jsonb in the CREATE TABLE:\n    {} {}",
                        sql::ident(&column.name),
                        as_jsonb(&column.type_name)
                    ),
                )
            })
            .collect(),
        Stmt::AlterTable(alter) => {
            // Built only for the actions that have a finding.
            let prefix = || alter_table_sql(alter);
            alter
                .actions
                .iter()
                .filter_map(|action| match action {
                    AlterAction::AddColumn { column, .. } if column.type_name.is_json() => Some(finding(
                        "ADD COLUMN",
                        &alter.table,
                        column,
                        format!(
                            "Add it as jsonb:\n    {} ADD COLUMN {} {};",
                            prefix(),
                            sql::ident(&column.name),
                            as_jsonb(&column.type_name)
                        ),
                    )),
                    AlterAction::AlterColumnType { column, new_type, .. } if new_type.is_json() => {
                        let name = sql::ident(column);
                        let jsonb = as_jsonb(new_type);
                        Some(finding(
                            "ALTER COLUMN TYPE",
                            &alter.table,
                            &ColumnDef {
                                name: column.clone(),
                                type_name: new_type.clone(),
                                ..ColumnDef::default()
                            },
                            format!(
                                "Change it to jsonb:\n    {} ALTER COLUMN {name} TYPE {jsonb} USING {name}::{jsonb};",
                                prefix()
                            ),
                        ))
                    }
                    _ => None,
                })
                .collect()
        }
        _ => vec![],
    }
}

fn finding(command: &str, table: &QualifiedName, column: &ColumnDef, hint: String) -> Finding {
    Finding::new(
        RULE.id,
        SQLSTATE_COMPATIBILITY,
        None,
        format!(
            "{command} makes {table}.{} a {} column; use jsonb",
            sql::ident(&column.name),
            column.type_name
        ),
        "json has no equality operator: SELECT DISTINCT, UNION, GROUP BY and = on the column fail, and it cannot \
         be indexed. jsonb stores the same documents, parsed, with equality and GIN indexes.",
        hint,
    )
}

/// The same type with `jsonb` for `json` (arrays stay arrays).
fn as_jsonb(type_name: &TypeName) -> TypeName {
    TypeName {
        name: "jsonb".to_string(),
        ..type_name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CreateTable, Using};
    use crate::rules::testing::*;

    fn json() -> TypeName {
        ty(&["json"], &[])
    }

    #[test]
    fn add_json_column_err() {
        let stmt = alter("events", vec![add_column(column("payload", json()))]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "json_column: ADD COLUMN makes events.payload a json column; use jsonb"
        );
        assert_eq!(finding.sqlstate, "SM002");
        assert_eq!(finding.lock, None);
        assert!(finding.hint.ends_with("ALTER TABLE events ADD COLUMN payload jsonb;"));
    }

    #[test]
    fn add_jsonb_column_ok() {
        let stmt = alter("events", vec![add_column(column("payload", ty(&["jsonb"], &[])))]);
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn json_in_create_table_err_even_when_new() {
        let stmt = Stmt::CreateTable(CreateTable {
            table: q("app.Events"),
            columns: vec![
                column("id", ty(&["int"], &[])),
                column("Payload", TypeName { array: true, ..json() }),
            ],
            ..CreateTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default().new_table("Events")));
        assert_eq!(
            finding.text(),
            "json_column: CREATE TABLE makes app.\"Events\".\"Payload\" a json[] column; use jsonb"
        );
        assert!(finding.hint.ends_with("\"Payload\" jsonb[]"));
    }

    #[test]
    fn alter_column_type_json_err() {
        let stmt = alter(
            "events",
            vec![AlterAction::AlterColumnType {
                column: "payload".into(),
                new_type: json(),
                using: Using::CastOfColumn,
                collation: None,
            }],
        );
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding
            .hint
            .ends_with("ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb;"));
    }

    #[test]
    fn several_json_columns_in_one_alter_each_reported() {
        let stmt = alter(
            "events",
            vec![
                add_column(column("a", json())),
                add_column(column("b", ty(&["text"], &[]))),
                add_column(column("c", json())),
            ],
        );
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 2);
    }
}
