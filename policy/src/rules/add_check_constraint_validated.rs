//! A CHECK constraint added without NOT VALID scans every row under ACCESS EXCLUSIVE.
//! NOT VALID skips the scan; VALIDATE CONSTRAINT later scans under SHARE UPDATE EXCLUSIVE,
//! which blocks neither reads nor writes.

use super::{
    added_constraints, alter_table_sql, default_constraint_name, unless_cheap, unparenthesized, validation_under_lock,
    Category, Rule, Scope,
};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterTable, ColumnDef, Constraint, ConstraintKind, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_check_constraint_validated",
    category: Category::Lock,
    summary: "CHECK without NOT VALID blocks reads and writes while every row is checked",
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
    findings.extend(validation_under_lock(alter, scope, false, RULE.id));
    findings
}

/// The finding for one CHECK; `inline` is the column it was declared on, if any.
fn finding(alter: &AlterTable, constraint: &Constraint, inline: Option<&ColumnDef>) -> Option<Finding> {
    let ConstraintKind::Check { expr_sql } = &constraint.kind else {
        return None;
    };
    let table = &alter.table;
    let expr = unparenthesized(expr_sql);
    let name =
        constraint.name.as_deref().map(sql::ident).unwrap_or_else(|| {
            default_constraint_name(table, &only_column(expr).into_iter().collect::<Vec<_>>(), "check")
        });
    let prefix = alter_table_sql(alter);
    let add_not_valid = format!(
        "{prefix} ADD CONSTRAINT {name} CHECK ({expr}) NOT VALID;\n    \
         {prefix} VALIDATE CONSTRAINT {name};  -- in a separate transaction"
    );
    let (what, hint) = match inline {
        None => (
            format!("ADD CONSTRAINT {name} CHECK"),
            format!(
                "Add the constraint NOT VALID, then validate it without blocking reads or writes:\n    {add_not_valid}"
            ),
        ),
        Some(column) => (
            format!("ADD COLUMN {} with CHECK", sql::ident(&column.name)),
            format!(
                "An inline CHECK cannot be NOT VALID. Add the column, then the constraint NOT VALID, then \
                 validate it:\n    {prefix} ADD COLUMN {} {};\n    {add_not_valid}",
                sql::ident(&column.name),
                column.type_name
            ),
        ),
    };
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: table.clone(),
    };
    Some(Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("{what} on {table} without NOT VALID blocks reads and writes while every row is checked"),
        format!(
            "Lock: {}. It is held while every row of {table} is checked (a full scan), and until the \
             transaction ends.",
            lock.describe()
        ),
        hint,
    ))
}

/// The column a CHECK expression refers to, when it refers to exactly one: Postgres then
/// names the constraint `<table>_<column>_check`, otherwise `<table>_check`.
fn only_column(expr: &str) -> Option<String> {
    const NOT_COLUMNS: &[&str] = &[
        "and",
        "or",
        "not",
        "is",
        "null",
        "true",
        "false",
        "in",
        "between",
        "like",
        "ilike",
        "similar",
        "to",
        "any",
        "all",
        "some",
        "case",
        "when",
        "then",
        "else",
        "end",
        "cast",
        "as",
        "array",
        "distinct",
        "from",
        "escape",
        "current_date",
        "current_timestamp",
        "localtimestamp",
    ];
    let mut columns: Vec<String> = Vec::new();
    let mut rest = expr;
    while let Some(c) = rest.chars().next() {
        let (token, after) = if c == '\'' || c == '"' {
            match rest[1..].find(c) {
                Some(n) => (Some(rest[1..n + 1].to_string()).filter(|_| c == '"'), &rest[n + 2..]),
                None => (None, ""),
            }
        } else if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len());
            let word = rest[..end].to_lowercase();
            (Some(word).filter(|w| !NOT_COLUMNS.contains(&w.as_str())), &rest[end..])
        } else if c == ':' && rest.starts_with("::") {
            // A cast's type name is not a column.
            let type_start = rest[2..].trim_start();
            let end = type_start
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(type_start.len());
            (None, &type_start[end..])
        } else {
            (None, &rest[c.len_utf8()..])
        };
        let called = after.trim_start().starts_with('(');
        if let Some(name) = token.filter(|_| !called) {
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
        rest = after;
    }
    match columns.as_slice() {
        [column] => Some(column.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlterAction;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn check_constraint(name: Option<&str>, expr: &str, not_valid: bool) -> Constraint {
        Constraint {
            name: name.map(str::to_owned),
            kind: ConstraintKind::Check { expr_sql: expr.into() },
            not_valid,
        }
    }

    #[test]
    fn add_check_without_not_valid_err() {
        let stmt = alter(
            "products",
            vec![AlterAction::AddConstraint(check_constraint(None, "(price > 0)", false))],
        );
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "add_check_constraint_validated: ADD CONSTRAINT products_price_check CHECK on products without \
             NOT VALID blocks reads and writes while every row is checked"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on products, blocks reads and writes"
        );
        assert!(finding.hint.ends_with(
            "ALTER TABLE products ADD CONSTRAINT products_price_check CHECK (price > 0) NOT VALID;\n    \
             ALTER TABLE products VALIDATE CONSTRAINT products_price_check;  -- in a separate transaction"
        ));
    }

    #[test]
    fn add_check_not_valid_ok() {
        let stmt = alter(
            "products",
            vec![AlterAction::AddConstraint(check_constraint(None, "price > 0", true))],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter(
            "products",
            vec![AlterAction::AddConstraint(check_constraint(None, "price > 0", false))],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("products")).is_empty());
    }

    #[test]
    fn default_name_follows_postgres() {
        assert_eq!(only_column("char_length(name) > 3").as_deref(), Some("name"));
        assert_eq!(
            only_column("status IN ('a', 'b') AND status <> 'c'").as_deref(),
            Some("status")
        );
        assert_eq!(only_column("price::numeric > 0").as_deref(), Some("price"));
        assert_eq!(only_column("\"Price\" > 0").as_deref(), Some("Price"));
        assert_eq!(only_column("low < high"), None);
    }

    #[test]
    fn two_columns_named_table_check_and_quoted_schema_qualified() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("Shop.products"),
            only: true,
            actions: vec![AlterAction::AddConstraint(check_constraint(None, "low < high", false))],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding.hint.contains(
            "ALTER TABLE ONLY \"Shop\".products ADD CONSTRAINT products_check CHECK (low < high) NOT VALID;"
        ));
    }

    #[test]
    fn inline_check_in_add_column_err() {
        let column = ColumnDef {
            constraints: vec![check_constraint(Some("positive"), "qty > 0", false)],
            ..column("qty", ty(&["int"], &[]))
        };
        let finding = only(findings(
            &RULE,
            alter("products", vec![add_column(column)]),
            &TestCatalog::default(),
        ));
        assert!(finding.hint.contains(
            "ALTER TABLE products ADD COLUMN qty integer;\n    ALTER TABLE products ADD CONSTRAINT positive \
             CHECK (qty > 0) NOT VALID;"
        ));
    }

    #[test]
    fn several_checks_in_one_alter_each_reported() {
        let stmt = alter(
            "products",
            vec![
                AlterAction::AddConstraint(check_constraint(Some("a"), "x > 0", false)),
                AlterAction::AddConstraint(check_constraint(Some("b"), "y > 0", false)),
            ],
        );
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 2);
    }
}
