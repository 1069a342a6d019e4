//! A `json` column has no equality operator: SELECT DISTINCT, UNION, GROUP BY and
//! comparisons on it fail, which breaks queries that work on every other column.
//! `jsonb` has equality, indexes, and is what application code expects. A domain over
//! `json` is json too (the catalog says what a domain's base type is).

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

/// How the column's type is json, when it is: `json` itself, or a domain over it.
fn json_type(type_name: &TypeName, scope: &Scope) -> Option<String> {
    if type_name.is_json() {
        return Some(type_name.to_string());
    }
    (type_name.may_be_domain() && scope.catalog.domain_base_type(type_name).as_deref() == Some("json"))
        .then(|| format!("{type_name} (a domain over json)"))
}

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    match &statement.stmt {
        Stmt::CreateTable(create) => create
            .columns
            .iter()
            .filter_map(|column| Some((column, json_type(&column.type_name, scope)?)))
            .map(|(column, described)| {
                finding(
                    "CREATE TABLE",
                    &create.table,
                    column,
                    &described,
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
                    AlterAction::AddColumn { column, .. } => Some(finding(
                        "ADD COLUMN",
                        &alter.table,
                        column,
                        &json_type(&column.type_name, scope)?,
                        format!(
                            "Add it as jsonb:\n    {} ADD COLUMN {} {};",
                            prefix(),
                            sql::ident(&column.name),
                            as_jsonb(&column.type_name)
                        ),
                    )),
                    AlterAction::AlterColumnType { column, new_type, .. } => {
                        let described = json_type(new_type, scope)?;
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
                            &described,
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

fn finding(command: &str, table: &QualifiedName, column: &ColumnDef, described: &str, hint: String) -> Finding {
    Finding::new(
        RULE.id,
        SQLSTATE_COMPATIBILITY,
        None,
        format!(
            "{command} makes {table}.{} a {described} column; use jsonb",
            sql::ident(&column.name),
        ),
        "json has no equality operator: SELECT DISTINCT, UNION, GROUP BY and = on the column fail, and it cannot \
         be indexed. jsonb stores the same documents, parsed, with equality and GIN indexes.",
        hint,
    )
}

/// `jsonb` in place of the type (`json`, or a domain over it); arrays stay arrays.
fn as_jsonb(type_name: &TypeName) -> TypeName {
    TypeName {
        schema: None,
        name: "jsonb".to_string(),
        modifiers: Vec::new(),
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
    fn a_domain_over_json_is_json_and_one_over_jsonb_is_not() {
        let mut catalog = TestCatalog::default();
        catalog.domain_bases.insert("meta".into(), "json".into());
        catalog.domain_bases.insert("doc".into(), "jsonb".into());
        let stmt = alter("events", vec![add_column(column("payload", ty(&["meta"], &[])))]);
        let finding = only(findings(&RULE, stmt, &catalog));
        assert_eq!(
            finding.text(),
            "json_column: ADD COLUMN makes events.payload a meta (a domain over json) column; use jsonb"
        );
        assert!(finding.hint.ends_with("ALTER TABLE events ADD COLUMN payload jsonb;"));
        let stmt = alter("events", vec![add_column(column("payload", ty(&["doc"], &[])))]);
        assert!(findings(&RULE, stmt, &catalog).is_empty());
        // Unknown to the catalog (the CLI): nothing said.
        let stmt = alter("events", vec![add_column(column("payload", ty(&["meta"], &[])))]);
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
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
