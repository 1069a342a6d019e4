//! ADD CONSTRAINT UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE. Building
//! the index CONCURRENTLY first and attaching it with USING INDEX takes the strong lock
//! only for a catalog update.

use super::{added_constraints, alter_table_sql, default_constraint_name, unless_cheap, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterTable, ColumnDef, Constraint, ConstraintKind, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_unique_constraint",
    category: Category::Lock,
    summary: "UNIQUE or PRIMARY KEY without USING INDEX blocks reads and writes while its index builds",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let findings = added_constraints(alter)
        .filter_map(|added| finding(alter, added.constraint, added.inline))
        .collect();
    unless_cheap(findings, &alter.table, scope)
}

/// The finding for one UNIQUE / PRIMARY KEY; `inline` is the column it was declared on, if any.
fn finding(alter: &AlterTable, constraint: &Constraint, inline: Option<&ColumnDef>) -> Option<Finding> {
    let ConstraintKind::Unique {
        primary_key,
        columns,
        using_index: None,
    } = &constraint.kind
    else {
        return None;
    };
    let table = &alter.table;
    let columns = match (columns.is_empty(), inline) {
        (true, Some(column)) => vec![column.name.clone()],
        _ => columns.clone(),
    };
    let (kind, name) = if *primary_key {
        ("PRIMARY KEY", default_constraint_name(table, &[], "pkey"))
    } else {
        ("UNIQUE", default_constraint_name(table, &columns, "key"))
    };
    let name = constraint.name.as_deref().map(sql::ident).unwrap_or(name);
    let prefix = alter_table_sql(alter);
    let column_list = columns.iter().map(|c| sql::ident(c)).collect::<Vec<_>>().join(", ");
    let add_column = match inline {
        Some(column) => format!(
            "{prefix} ADD COLUMN {} {};\n    ",
            sql::ident(&column.name),
            column.type_name
        ),
        None => String::new(),
    };
    let not_null = if *primary_key {
        "\nThe columns must already be NOT NULL (see set_not_null), or the last step scans the table."
    } else {
        ""
    };
    let what = match inline {
        Some(column) => format!("ADD COLUMN {} {kind}", sql::ident(&column.name)),
        None => format!("ADD CONSTRAINT {name} {kind}"),
    };
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: table.clone(),
    };
    Some(Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("{what} on {table} blocks reads and writes while its unique index builds"),
        format!(
            "Lock: {}. It is held for the whole build of the index over every row of {table}, and until the \
             transaction ends.",
            lock.describe()
        ),
        format!(
            "Build the index without blocking writes, then attach it (a catalog update):\n    \
             {add_column}CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({column_list});  -- outside a \
             transaction block\n    \
             {prefix} ADD CONSTRAINT {name} {kind} USING INDEX {name};{not_null}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlterAction;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn unique(name: Option<&str>, primary_key: bool, columns: &[&str], using_index: Option<&str>) -> AlterAction {
        AlterAction::AddConstraint(Constraint {
            name: name.map(str::to_owned),
            kind: ConstraintKind::Unique {
                primary_key,
                columns: columns.iter().map(|c| c.to_string()).collect(),
                using_index: using_index.map(str::to_owned),
            },
            not_valid: false,
        })
    }

    #[test]
    fn add_unique_err() {
        let stmt = alter("users", vec![unique(None, false, &["email"], None)]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "add_unique_constraint: ADD CONSTRAINT users_email_key UNIQUE on users blocks reads and writes while \
             its unique index builds"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on users, blocks reads and writes"
        );
        assert!(finding.hint.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);  -- outside a transaction block\n    \
             ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;"
        ));
    }

    #[test]
    fn add_primary_key_err_names_pkey_and_not_null() {
        let stmt = alter("users", vec![unique(None, true, &["id"], None)]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding
            .hint
            .contains("ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey;"));
        assert!(finding.hint.contains("must already be NOT NULL"));
    }

    #[test]
    fn unique_using_index_ok() {
        let stmt = alter("users", vec![unique(Some("u"), false, &[], Some("users_email_key"))]);
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("users", vec![unique(None, false, &["email"], None)]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("users")).is_empty());
    }

    #[test]
    fn inline_unique_in_add_column_err() {
        let column = ColumnDef {
            constraints: vec![Constraint {
                name: None,
                kind: ConstraintKind::Unique {
                    primary_key: false,
                    columns: vec![],
                    using_index: None,
                },
                not_valid: false,
            }],
            ..column("slug", ty(&["text"], &[]))
        };
        let finding = only(findings(
            &RULE,
            alter("posts", vec![add_column(column)]),
            &TestCatalog::default(),
        ));
        assert!(finding.hint.contains(
            "ALTER TABLE posts ADD COLUMN slug text;\n    CREATE UNIQUE INDEX CONCURRENTLY posts_slug_key ON posts (slug);"
        ));
    }

    #[test]
    fn named_multi_column_constraint_on_quoted_schema_qualified_table() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("Acct.members"),
            only: true,
            actions: vec![unique(Some("Members Uniq"), false, &["org_id", "user_id"], None)],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding
            .hint
            .contains("CREATE UNIQUE INDEX CONCURRENTLY \"Members Uniq\" ON \"Acct\".members (org_id, user_id);"));
        assert!(finding
            .hint
            .contains("ALTER TABLE ONLY \"Acct\".members ADD CONSTRAINT \"Members Uniq\" UNIQUE USING INDEX"));
    }

    #[test]
    fn several_constraints_in_one_alter_each_reported() {
        let stmt = alter(
            "users",
            vec![unique(None, true, &["id"], None), unique(None, false, &["email"], None)],
        );
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 2);
    }
}
