//! A FOREIGN KEY added without NOT VALID checks every existing row while it blocks writes
//! of both tables. NOT VALID skips the check; VALIDATE CONSTRAINT later checks the rows
//! under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.

use super::{
    added_constraints, alter_table_sql, default_constraint_name, unless_cheap, validation_under_lock, Category, Rule,
    Scope,
};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterTable, ColumnDef, Constraint, ConstraintKind, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_foreign_key_validated",
    category: Category::Lock,
    summary: "FOREIGN KEY without NOT VALID blocks writes of both tables while every row is checked",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let findings = added_constraints(alter)
        .filter(|added| added.validated)
        .filter_map(|added| finding(alter, added.constraint, added.inline))
        .collect();
    let mut findings = unless_cheap(findings, &alter.table, scope);
    findings.extend(validation_under_lock(alter, scope, true, RULE.id));
    findings
}

/// The finding for one FOREIGN KEY; `inline` is the column it was declared on, if any.
fn finding(alter: &AlterTable, constraint: &Constraint, inline: Option<&ColumnDef>) -> Option<Finding> {
    let ConstraintKind::ForeignKey {
        columns,
        referenced_table,
        referenced_columns,
        options_sql,
    } = &constraint.kind
    else {
        return None;
    };
    let table = &alter.table;
    let columns = match (columns.is_empty(), inline) {
        (true, Some(column)) => vec![column.name.clone()],
        _ => columns.clone(),
    };
    let name = constraint
        .name
        .as_deref()
        .map(sql::ident)
        .unwrap_or_else(|| default_constraint_name(table, &columns, "fkey"));
    let column_list = |names: &[String]| names.iter().map(|c| sql::ident(c)).collect::<Vec<_>>().join(", ");
    let referenced = if referenced_columns.is_empty() {
        referenced_table.to_string()
    } else {
        format!("{referenced_table} ({})", column_list(referenced_columns))
    };
    let options = if options_sql.is_empty() {
        String::new()
    } else {
        format!(" {options_sql}")
    };
    let prefix = alter_table_sql(alter);
    let add_not_valid = format!(
        "{prefix} ADD CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {referenced}{options} NOT VALID;\n    \
         {prefix} VALIDATE CONSTRAINT {name};  -- in a separate transaction",
        column_list(&columns)
    );
    let (level, what, hint) = match inline {
        None => (
            LockLevel::ShareRowExclusive,
            format!("ADD CONSTRAINT {name} FOREIGN KEY"),
            format!("Add the constraint NOT VALID, then validate it without blocking writes:\n    {add_not_valid}"),
        ),
        Some(column) => (
            LockLevel::AccessExclusive,
            format!("ADD COLUMN {} REFERENCES {referenced_table}", sql::ident(&column.name)),
            format!(
                "An inline REFERENCES cannot be NOT VALID. Add the column, then the foreign key NOT VALID, \
                 then validate it:\n    {prefix} ADD COLUMN {} {};\n    {add_not_valid}",
                sql::ident(&column.name),
                column.type_name
            ),
        ),
    };
    let lock = Lock {
        level,
        relation: table.clone(),
    };
    Some(Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("{what} on {table} without NOT VALID blocks writes while every row is checked"),
        format!(
            "Lock: {}; SHARE ROW EXCLUSIVE on {referenced_table}, blocks writes. Both are held while every \
             row of {table} is checked against {referenced_table} (a full scan), and until the transaction ends.",
            lock.describe()
        ),
        hint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlterAction;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn fk(name: Option<&str>, columns: &[&str], not_valid: bool) -> Constraint {
        Constraint {
            name: name.map(str::to_owned),
            kind: ConstraintKind::ForeignKey {
                columns: columns.iter().map(|c| c.to_string()).collect(),
                referenced_table: q("customers"),
                referenced_columns: vec!["id".into()],
                options_sql: String::new(),
            },
            not_valid,
        }
    }

    #[test]
    fn add_fk_without_not_valid_err() {
        let stmt = alter(
            "orders",
            vec![AlterAction::AddConstraint(fk(None, &["customer_id"], false))],
        );
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "add_foreign_key_validated: ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY on orders without \
             NOT VALID blocks writes while every row is checked"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "SHARE ROW EXCLUSIVE on orders, blocks writes"
        );
        assert!(finding.hint.contains(
            "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) \
             REFERENCES customers (id) NOT VALID;\n    ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_fkey;"
        ));
    }

    #[test]
    fn add_fk_not_valid_ok() {
        let stmt = alter(
            "orders",
            vec![AlterAction::AddConstraint(fk(None, &["customer_id"], true))],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn validate_constraint_ok() {
        let stmt = alter(
            "orders",
            vec![AlterAction::ValidateConstraint {
                name: "orders_customer_id_fkey".into(),
            }],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn validating_an_older_constraint_under_a_held_lock_is_reported_by_its_kind() {
        let validate = || {
            alter(
                "orders",
                vec![AlterAction::ValidateConstraint {
                    name: "orders_customer_id_fkey".into(),
                }],
            )
        };
        let mut catalog = TestCatalog::default().existing_table("orders");
        catalog
            .constraint_types
            .insert(("orders".into(), "orders_customer_id_fkey".into()), 'f');
        let holding = crate::model::Context {
            in_transaction_block: true,
            held_locks: vec![crate::transaction::HeldLock {
                table: q("orders"),
                level: LockLevel::Share,
                statement: "LOCK TABLE orders IN SHARE MODE".into(),
                since: std::time::Instant::now(),
                subtransaction: 1,
            }],
            ..crate::model::Context::default()
        };
        let finding = only(findings_in(&RULE, validate(), &catalog, &holding));
        assert!(
            finding.message.contains("taken by `LOCK TABLE orders IN SHARE MODE`"),
            "{}",
            finding.message
        );
        // No such lock held: VALIDATE alone blocks neither reads nor writes.
        assert!(findings(&RULE, validate(), &catalog).is_empty());
        // A CHECK of that name is the other rule's.
        catalog
            .constraint_types
            .insert(("orders".into(), "orders_customer_id_fkey".into()), 'c');
        assert!(findings_in(&RULE, validate(), &catalog, &holding).is_empty());
    }

    #[test]
    fn fk_on_table_created_in_same_transaction_ok() {
        let stmt = alter(
            "orders",
            vec![AlterAction::AddConstraint(fk(None, &["customer_id"], false))],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("orders")).is_empty());
    }

    #[test]
    fn inline_references_in_add_column_err() {
        let column = ColumnDef {
            constraints: vec![fk(None, &[], false)],
            ..column("customer_id", ty(&["pg_catalog", "int8"], &[]))
        };
        let finding = only(findings(
            &RULE,
            alter("orders", vec![add_column(column)]),
            &TestCatalog::default(),
        ));
        assert_eq!(finding.lock.unwrap().level, LockLevel::AccessExclusive);
        assert!(finding.hint.starts_with("An inline REFERENCES cannot be NOT VALID"));
        assert!(finding.hint.contains(
            "ALTER TABLE orders ADD COLUMN customer_id bigint;\n    ALTER TABLE orders ADD CONSTRAINT \
             orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;"
        ));
    }

    #[test]
    fn named_constraint_quoted_schema_qualified_table_with_options() {
        let mut constraint = fk(Some("FK Customer"), &["customer_id", "region"], false);
        if let ConstraintKind::ForeignKey { options_sql, .. } = &mut constraint.kind {
            *options_sql = "ON DELETE CASCADE".into();
        }
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("Sales.orders"),
            only: true,
            if_exists: true,
            actions: vec![AlterAction::AddConstraint(constraint)],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding.hint.contains(
            "ALTER TABLE IF EXISTS ONLY \"Sales\".orders ADD CONSTRAINT \"FK Customer\" FOREIGN KEY \
             (customer_id, region) REFERENCES customers (id) ON DELETE CASCADE NOT VALID;"
        ));
    }

    #[test]
    fn several_foreign_keys_in_one_alter_each_reported() {
        let stmt = alter(
            "orders",
            vec![
                AlterAction::AddConstraint(fk(None, &["customer_id"], false)),
                AlterAction::AddConstraint(fk(None, &["seller_id"], true)),
                AlterAction::AddConstraint(fk(None, &["buyer_id"], false)),
            ],
        );
        let found = findings(&RULE, stmt, &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert!(found[1].text().contains("orders_buyer_id_fkey"));
    }
}
