//! Renaming a column breaks every running instance of the application that still uses
//! the old name, from the moment the migration commits until the new code is deployed.
//!
//! A view that keeps the old column name (`CREATE VIEW t_compat AS SELECT new AS old ...`)
//! does not make it safe, unlike the view that keeps a renamed table's old name (rule
//! rename_table): running code reads and writes the table under its own name, not the
//! view, and no catalog tells which views the application uses. So a column rename is
//! refused with or without one; rename in steps (the hint), or acknowledge it.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_COMPATIBILITY};
use crate::model::{ObjectKind, Rename, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "rename_column",
    category: Category::Compatibility,
    summary: "RENAME COLUMN breaks application code that still uses the old name",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Rename(Rename {
        kind: ObjectKind::Column,
        object: table,
        subname: Some(old_name),
        new_name,
    }) = &statement.stmt
    else {
        return vec![];
    };
    if scope.is_new_table(table) {
        return vec![];
    }
    let (old, new) = (sql::ident(old_name), sql::ident(new_name));
    let column_type = scope
        .catalog
        .column_type(table, old_name)
        .map_or_else(|| "<type>".to_string(), |t| t.sql());
    vec![Finding::new(
        RULE.id,
        SQLSTATE_COMPATIBILITY,
        None,
        format!("RENAME COLUMN {table}.{old} TO {new} breaks application code that still uses {old}"),
        format!(
            "Running application instances keep reading and writing {table}.{old}; their queries fail from the \
             moment this commits until every instance runs code that uses {new}."
        ),
        format!(
            "Rename in steps that each work with old and new code:\n    \
             ALTER TABLE {table} ADD COLUMN {new} {column_type};\n    \
             -- deploy code that writes both columns, backfill {new} from {old} in batches,\n    \
             -- deploy code that reads {new}, stop writing {old}, then:\n    \
             ALTER TABLE {table} DROP COLUMN {old};"
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn rename(table: &str, old: &str, new: &str) -> Stmt {
        Stmt::Rename(Rename {
            kind: ObjectKind::Column,
            object: q(table),
            subname: Some(old.into()),
            new_name: new.into(),
        })
    }

    #[test]
    fn rename_column_err() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["text"], &[]));
        let finding = only(findings(&RULE, rename("users", "name", "full_name"), &catalog));
        assert_eq!(
            finding.text(),
            "rename_column: RENAME COLUMN users.name TO full_name breaks application code that still uses name"
        );
        assert_eq!(finding.sqlstate, "SM002");
        assert!(finding.hint.contains("ALTER TABLE users ADD COLUMN full_name text;"));
        assert!(finding.hint.ends_with("ALTER TABLE users DROP COLUMN name;"));
    }

    #[test]
    fn column_of_table_created_in_same_transaction_ok() {
        let catalog = TestCatalog::default().new_table("users");
        assert!(findings(&RULE, rename("users", "name", "full_name"), &catalog).is_empty());
    }

    #[test]
    fn rename_table_is_not_this_rule() {
        let stmt = Stmt::Rename(Rename {
            kind: ObjectKind::Table,
            object: q("users"),
            subname: None,
            new_name: "people".into(),
        });
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn quoted_schema_qualified_names_unknown_type() {
        let finding = only(findings(
            &RULE,
            rename("Crm.users", "Name", "user"),
            &TestCatalog::default(),
        ));
        assert!(finding.text().contains("\"Crm\".users.\"Name\" TO \"user\""));
        assert!(finding.hint.contains("ADD COLUMN \"user\" <type>;"));
    }
}
