//! Renaming a table, view or schema, or moving a relation to another schema, breaks every
//! running instance of the application that still uses the old name. A view under the old
//! name keeps old code working while new code moves over.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_COMPATIBILITY};
use crate::model::{ObjectKind, QualifiedName, Rename, SetSchema, Statement, Stmt, TransactionKind};
use crate::sql;
use crate::transaction::{renames_a_relation, PendingRename};

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
        // A relation renamed or moved in a transaction that commits later is judged at
        // that commit (`decide_commit`): a view made under the old name before then keeps
        // old code working. Outside one it commits as it runs: judged now.
        Stmt::Rename(Rename { kind, .. }) | Stmt::SetSchema(SetSchema { kind, .. })
            if relation_command(*kind).is_some() && scope.context.commits_later =>
        {
            vec![]
        }
        Stmt::Rename(Rename { kind, object, .. }) if !scope.is_new_table(object) => {
            match PendingRename::of(&statement.stmt) {
                Some(rename)
                    if relation_command(*kind).is_some() && renames_a_relation(*kind, object, scope.catalog) =>
                {
                    vec![committed_without_view(&rename)]
                }
                _ => vec![],
            }
        }
        Stmt::SetSchema(SetSchema {
            kind,
            object,
            new_schema,
        }) if !scope.is_new_table(object) => {
            if renames_a_relation(*kind, object, scope.catalog) {
                if let Some(rename) = PendingRename::of(&statement.stmt) {
                    return vec![committed_without_view(&rename)];
                }
            }
            let moved = QualifiedName {
                schema: Some(new_schema.clone()),
                name: object.name.clone(),
            };
            vec![finding(
                format!("SET SCHEMA {} of {object}", sql::ident(new_schema)),
                &object.to_string(),
                format!("Deploy code that names {moved} before moving it, or acknowledge the move."),
            )]
        }
        Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare) => scope
            .context
            .renamed_without_view
            .iter()
            .map(committed_without_view)
            .collect(),
        _ => vec![],
    }
}

/// The finding for a rename or move that commits with no view for the old name.
pub fn committed_without_view(rename: &PendingRename) -> Finding {
    let command = relation_command(rename.kind).unwrap_or("ALTER TABLE");
    let old = &rename.old;
    let change = if rename.moved {
        format!(
            "SET SCHEMA {}",
            sql::ident(rename.new.schema.as_deref().unwrap_or_default())
        )
    } else {
        format!("RENAME TO {}", sql::ident(&rename.new.name))
    };
    let mut finding = finding(
        format!("{command} {old} {change}"),
        &old.to_string(),
        view_in_place(command, old, &change, &rename.new),
    );
    finding.detail.push_str(&format!(
        " It commits with no view named {old} that reads all of {} (SELECT * FROM {}).",
        rename.new, rename.new
    ));
    finding
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
         Grant the view what the application's roles may do on the table (unless they own it), and drop the \
         view once no running code uses {old}."
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
    use crate::model::{Context, CreateView};
    use crate::rules::testing::*;
    use crate::transaction::{Placement, Transaction, TransactionStatus};

    fn rename(kind: ObjectKind, object: &str, new_name: &str) -> Stmt {
        Stmt::Rename(Rename {
            kind,
            object: q(object),
            subname: None,
            new_name: new_name.into(),
        })
    }

    fn create_view(view: &str, query: Option<&str>) -> Stmt {
        Stmt::CreateView(CreateView {
            view: q(view),
            all_of: query.map(q),
            ..CreateView::default()
        })
    }

    fn set_schema(object: &str, new_schema: &str) -> Stmt {
        Stmt::SetSchema(SetSchema {
            kind: ObjectKind::Table,
            object: q(object),
            new_schema: new_schema.into(),
        })
    }

    /// The findings at the COMMIT of a transaction block that ran `stmts`.
    fn at_commit(stmts: Vec<Stmt>, catalog: &TestCatalog) -> Vec<Finding> {
        let mut transaction = Transaction::with_status(TransactionStatus::InBlock);
        for stmt in stmts {
            let context = transaction.context(Placement::ALONE);
            assert!(
                findings_in(&RULE, stmt.clone(), catalog, &context).is_empty(),
                "{stmt:?}"
            );
            transaction.observe(&statement(stmt, ""), catalog);
        }
        let context = Context {
            renamed_without_view: transaction.renamed_without_view(),
            ..transaction.context(Placement::ALONE)
        };
        findings_in(&RULE, Stmt::Transaction(TransactionKind::Commit), catalog, &context)
    }

    #[test]
    fn rename_table_committed_without_view_err() {
        let finding = only(at_commit(
            vec![rename(ObjectKind::Table, "users", "accounts")],
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
        assert!(finding.detail.contains("no view named users"), "{}", finding.detail);
    }

    #[test]
    fn outside_a_transaction_a_rename_is_judged_as_it_runs() {
        let catalog = TestCatalog::default();
        let finding = only(findings(
            &RULE,
            rename(ObjectKind::Table, "users", "accounts"),
            &catalog,
        ));
        assert_eq!(
            finding.text(),
            "rename_table: ALTER TABLE users RENAME TO accounts breaks application code that still uses users"
        );
        assert_eq!(
            only(findings(&RULE, set_schema("public.users", "archive"), &catalog)).sqlstate,
            "SM002"
        );
        // And nothing is left for a commit to judge again.
        let mut transaction = Transaction::default();
        transaction.observe(&statement(rename(ObjectKind::Table, "users", "accounts"), ""), &catalog);
        assert!(transaction.renamed_without_view().is_empty());
    }

    #[test]
    fn rename_with_a_view_over_all_of_the_new_name_ok() {
        let catalog = TestCatalog::default();
        let renamed = || rename(ObjectKind::Table, "users", "accounts");
        assert!(at_commit(vec![renamed(), create_view("users", Some("accounts"))], &catalog).is_empty());
        // Not a stand-in: another name, a view of something else, a query that is not
        // SELECT * of the new name, a temporary view, a view dropped again.
        for stmts in [
            vec![renamed(), create_view("people", Some("accounts"))],
            vec![renamed(), create_view("users", Some("other"))],
            vec![renamed(), create_view("users", None)],
            vec![
                renamed(),
                Stmt::CreateView(CreateView {
                    view: q("users"),
                    temporary: true,
                    all_of: Some(q("accounts")),
                    ..CreateView::default()
                }),
            ],
            vec![
                renamed(),
                create_view("users", Some("accounts")),
                Stmt::Drop(crate::model::Drop {
                    kind: ObjectKind::View,
                    objects: vec![q("users")],
                    if_exists: false,
                    cascade: false,
                }),
            ],
            vec![
                renamed(),
                create_view("users", Some("accounts")),
                create_view("users", None),
            ],
        ] {
            assert_eq!(at_commit(stmts.clone(), &catalog).len(), 1, "{stmts:?}");
        }
    }

    #[test]
    fn a_view_made_in_a_savepoint_rolled_back_does_not_count() {
        let catalog = TestCatalog::default();
        let mut transaction = Transaction::with_status(TransactionStatus::InBlock);
        for stmt in [
            rename(ObjectKind::Table, "users", "accounts"),
            Stmt::Transaction(TransactionKind::Savepoint("s".into())),
            create_view("users", Some("accounts")),
            Stmt::Transaction(TransactionKind::RollbackToSavepoint("s".into())),
        ] {
            transaction.observe(&statement(stmt, ""), &catalog);
        }
        assert_eq!(transaction.renamed_without_view().len(), 1);
        // A rename rolled back to its savepoint is undone: nothing to commit.
        let mut transaction = Transaction::with_status(TransactionStatus::InBlock);
        for stmt in [
            Stmt::Transaction(TransactionKind::Savepoint("s".into())),
            rename(ObjectKind::Table, "users", "accounts"),
            Stmt::Transaction(TransactionKind::RollbackToSavepoint("s".into())),
        ] {
            transaction.observe(&statement(stmt, ""), &catalog);
        }
        assert!(transaction.renamed_without_view().is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let catalog = TestCatalog::default().new_table("users");
        assert!(at_commit(vec![rename(ObjectKind::Table, "users", "accounts")], &catalog).is_empty());
    }

    #[test]
    fn rename_view_and_materialized_view_err_schema_qualified() {
        let finding = only(at_commit(
            vec![rename(ObjectKind::MaterializedView, "Stats.daily", "Daily")],
            &TestCatalog::default(),
        ));
        assert!(finding.hint.contains(
            "ALTER MATERIALIZED VIEW \"Stats\".daily RENAME TO \"Daily\";\n    \
             CREATE VIEW \"Stats\".daily AS SELECT * FROM \"Stats\".\"Daily\";"
        ));
        assert_eq!(
            at_commit(vec![rename(ObjectKind::View, "v", "w")], &TestCatalog::default()).len(),
            1
        );
    }

    #[test]
    fn set_schema_err_unless_a_view_stands_in() {
        let catalog = TestCatalog::default();
        let finding = only(at_commit(vec![set_schema("public.users", "archive")], &catalog));
        assert_eq!(
            finding.text(),
            "rename_table: ALTER TABLE public.users SET SCHEMA archive breaks application code that still uses \
             public.users"
        );
        assert!(finding
            .hint
            .contains("CREATE VIEW public.users AS SELECT * FROM archive.users;"));
        assert!(at_commit(
            vec![
                set_schema("public.users", "archive"),
                create_view("public.users", Some("archive.users"))
            ],
            &catalog
        )
        .is_empty());
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
