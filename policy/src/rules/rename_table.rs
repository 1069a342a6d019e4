//! Renaming a table, view or schema, or moving a relation to another schema, breaks every
//! running instance of the application that still uses the old name. A view under the old
//! name keeps old code working while new code moves over.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_COMPATIBILITY};
use crate::model::{ObjectKind, QualifiedName, Rename, SetSchema, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "rename_table",
    category: Category::Compatibility,
    summary: "renaming a table, view or schema (or SET SCHEMA) breaks code that uses the old name",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    match &statement.stmt {
        Stmt::Rename(Rename {
            kind: ObjectKind::Schema,
            object,
            new_name,
            ..
        }) => {
            let (old, new) = (sql::ident(&object.name), sql::ident(new_name));
            vec![finding(
                format!("ALTER SCHEMA {old} RENAME TO {new}"),
                &old,
                format!(
                    "Move the application to the new name first: deploy code that names {new}, or, for code that \
                     does not qualify names, give its role both schemas on the search_path before the rename:\n    \
                     ALTER ROLE <application role> SET search_path = {old}, {new}, public;"
                ),
            )]
        }
        Stmt::Rename(Rename {
            kind, object, new_name, ..
        }) if !scope.is_new_table(object) => {
            let Some(command) = relation_command(*kind) else {
                return vec![];
            };
            let renamed = QualifiedName {
                schema: object.schema.clone(),
                name: new_name.clone(),
            };
            vec![finding(
                format!("{command} {object} RENAME TO {}", sql::ident(new_name)),
                &object.to_string(),
                view_in_place(
                    command,
                    object,
                    &format!("RENAME TO {}", sql::ident(new_name)),
                    &renamed,
                ),
            )]
        }
        Stmt::SetSchema(SetSchema {
            kind,
            object,
            new_schema,
        }) if !scope.is_new_table(object) => {
            let moved = QualifiedName {
                schema: Some(new_schema.clone()),
                name: object.name.clone(),
            };
            let set_schema = format!("SET SCHEMA {}", sql::ident(new_schema));
            let hint = match relation_command(*kind) {
                Some(command) => view_in_place(command, object, &set_schema, &moved),
                None => format!("Deploy code that names {moved} before moving it, or acknowledge the move."),
            };
            vec![finding(format!("{set_schema} of {object}"), &object.to_string(), hint)]
        }
        _ => vec![],
    }
}

/// The ALTER command for relations a view can stand in for.
fn relation_command(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Table => Some("ALTER TABLE"),
        ObjectKind::View => Some("ALTER VIEW"),
        ObjectKind::MaterializedView => Some("ALTER MATERIALIZED VIEW"),
        ObjectKind::ForeignTable => Some("ALTER FOREIGN TABLE"),
        _ => None,
    }
}

/// Rename and leave a view under the old name, in one transaction.
fn view_in_place(command: &str, old: &QualifiedName, change: &str, new: &QualifiedName) -> String {
    format!(
        "Keep the old name working with a view (a simple view is updatable, so writes work too), in one \
         transaction:\n    \
         {command} {old} {change};\n    \
         CREATE VIEW {old} AS SELECT * FROM {new};\n\
         Drop the view once no running code uses {old}."
    )
}

fn finding(what: String, old: &str, hint: String) -> Finding {
    Finding::new(
        RULE.id,
        SQLSTATE_COMPATIBILITY,
        None,
        format!("{what} breaks application code that still uses {old}"),
        format!(
            "Running application instances keep using {old}; their queries fail from the moment this commits \
             until every instance runs code that uses the new name."
        ),
        hint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn rename(kind: ObjectKind, object: &str, new_name: &str) -> Stmt {
        Stmt::Rename(Rename {
            kind,
            object: q(object),
            subname: None,
            new_name: new_name.into(),
        })
    }

    #[test]
    fn rename_table_err() {
        let finding = only(findings(
            &RULE,
            rename(ObjectKind::Table, "users", "accounts"),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "rename_table: ALTER TABLE users RENAME TO accounts breaks application code that still uses users"
        );
        assert_eq!(finding.sqlstate, "SM002");
        assert!(finding
            .hint
            .contains("ALTER TABLE users RENAME TO accounts;\n    CREATE VIEW users AS SELECT * FROM accounts;"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let catalog = TestCatalog::default().new_table("users");
        assert!(findings(&RULE, rename(ObjectKind::Table, "users", "accounts"), &catalog).is_empty());
    }

    #[test]
    fn rename_view_and_materialized_view_err_schema_qualified() {
        let finding = only(findings(
            &RULE,
            rename(ObjectKind::MaterializedView, "Stats.daily", "Daily"),
            &TestCatalog::default(),
        ));
        assert!(finding.hint.contains(
            "ALTER MATERIALIZED VIEW \"Stats\".daily RENAME TO \"Daily\";\n    \
             CREATE VIEW \"Stats\".daily AS SELECT * FROM \"Stats\".\"Daily\";"
        ));
        assert_eq!(
            findings(&RULE, rename(ObjectKind::View, "v", "w"), &TestCatalog::default()).len(),
            1
        );
    }

    #[test]
    fn set_schema_err() {
        let stmt = Stmt::SetSchema(SetSchema {
            kind: ObjectKind::Table,
            object: q("public.users"),
            new_schema: "archive".into(),
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "rename_table: SET SCHEMA archive of public.users breaks application code that still uses public.users"
        );
        assert!(finding
            .hint
            .contains("CREATE VIEW public.users AS SELECT * FROM archive.users;"));
    }

    #[test]
    fn rename_schema_err() {
        let finding = only(findings(
            &RULE,
            rename(ObjectKind::Schema, "billing", "Billing"),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "rename_table: ALTER SCHEMA billing RENAME TO \"Billing\" breaks application code that still uses billing"
        );
    }

    #[test]
    fn renaming_an_index_or_column_is_not_this_rule() {
        for kind in [ObjectKind::Index, ObjectKind::Column, ObjectKind::Constraint] {
            assert!(findings(&RULE, rename(kind, "t", "u"), &TestCatalog::default()).is_empty());
        }
    }
}
