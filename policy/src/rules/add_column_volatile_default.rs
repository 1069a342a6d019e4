//! Since Postgres 11 a constant or stable DEFAULT is stored once in the catalog, but a
//! volatile one (gen_random_uuid(), clock_timestamp(), random()) is computed for every
//! existing row: the table is rewritten under ACCESS EXCLUSIVE.

use super::{alter_table_sql, backfill_sql, not_null_steps, unless_cheap, Category, Rule, Scope};
use crate::catalog::{builtin_volatility, Volatility};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, AlterTable, ColumnDef, DefaultExpr, LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "add_column_volatile_default",
    category: Category::Lock,
    summary: "ADD COLUMN with a volatile DEFAULT rewrites the table under ACCESS EXCLUSIVE",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let findings = alter
        .actions
        .iter()
        .filter_map(|action| match action {
            AlterAction::AddColumn { column, .. } => column
                .default
                .as_ref()
                .filter(|default| !default.sql.trim().eq_ignore_ascii_case("null"))
                .map(|default| (column, default)),
            _ => None,
        })
        .filter_map(|(column, default)| finding(alter, column, default, scope))
        .collect();
    unless_cheap(findings, &alter.table, scope)
}

fn finding(alter: &AlterTable, column: &ColumnDef, default: &DefaultExpr, scope: &Scope) -> Option<Finding> {
    let table = &alter.table;
    let volatility = |f| scope.catalog.function_volatility(f).or_else(|| builtin_volatility(f));
    let before_11 = scope.catalog.server_version_num().is_some_and(|v| v < 110000);
    let volatile = default
        .functions
        .iter()
        .find(|f| volatility(f) == Some(Volatility::Volatile));
    let unknown: Vec<String> = default
        .functions
        .iter()
        .filter(|f| volatility(f).is_none())
        .map(|f| format!("{f}()"))
        .collect();
    let why = if before_11 {
        "before Postgres 11 every non-null DEFAULT is written into each existing row".to_string()
    } else if default.always_volatile {
        "the expression is evaluated for each existing row".to_string()
    } else if let Some(function) = volatile {
        format!("{function}() is volatile, so it is evaluated for each existing row")
    } else if !unknown.is_empty() {
        String::new()
    } else {
        return None;
    };
    let name = sql::ident(&column.name);
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: table.clone(),
    };
    let prefix = alter_table_sql(alter);
    let not_null = if column.not_null {
        format!(
            "\nThen make it NOT NULL without a long lock:\n    {}",
            not_null_steps(&prefix, table, &column.name)
        )
    } else {
        String::new()
    };
    let steps = format!(
        "Add the column without the default, set the default for new rows, then fill existing rows in \
         batches:\n    \
         {prefix} ADD COLUMN {name} {};\n    \
         {prefix} ALTER COLUMN {name} SET DEFAULT {};\n    \
         {}{not_null}",
        column.type_name,
        default.sql,
        backfill_sql(table, &format!("{name} = {}", default.sql), &format!("{name} IS NULL"))
    );
    let detail = format!(
        "Lock: {}. A rewrite copies every row of {table} and rebuilds its indexes while holding the lock.",
        lock.describe()
    );
    if why.is_empty() {
        return Some(
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock),
                format!(
                    "could not tell whether ADD COLUMN {name} DEFAULT {} rewrites {table}: the volatility of {} \
                     is unknown",
                    default.sql,
                    unknown.join(", ")
                ),
                format!("If the default calls a volatile function, {table} is rewritten. {detail}"),
                format!("If it is volatile: {steps}"),
            )
            .warning(),
        );
    }
    Some(Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock),
        format!("ADD COLUMN {name} DEFAULT {} rewrites {table}: {why}", default.sql),
        detail,
        steps,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use crate::model::QualifiedName;
    use crate::rules::testing::*;

    fn with_default(sql: &str, functions: &[&str]) -> AlterAction {
        add_column(ColumnDef {
            default: Some(DefaultExpr {
                sql: sql.into(),
                functions: functions.iter().map(|f| QualifiedName::bare(f)).collect(),
                always_volatile: false,
            }),
            ..column("token", ty(&["uuid"], &[]))
        })
    }

    #[test]
    fn volatile_builtin_default_err() {
        let stmt = alter("users", vec![with_default("gen_random_uuid()", &["gen_random_uuid"])]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "add_column_volatile_default: ADD COLUMN token DEFAULT gen_random_uuid() rewrites users: \
             gen_random_uuid() is volatile, so it is evaluated for each existing row"
        );
        assert_eq!(finding.severity, Severity::Error);
        assert_eq!(
            finding.hint,
            "Add the column without the default, set the default for new rows, then fill existing rows in \
             batches:\n    \
             ALTER TABLE users ADD COLUMN token uuid;\n    \
             ALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();\n    \
             UPDATE users SET token = gen_random_uuid() WHERE ctid IN (SELECT ctid FROM users WHERE token IS NULL \
             LIMIT 10000);  -- repeat until it updates 0 rows"
        );
    }

    #[test]
    fn stable_and_constant_defaults_ok() {
        let stmt = alter(
            "users",
            vec![with_default("now()", &["now"]), with_default("'pending'", &[])],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn user_function_volatility_from_catalog() {
        let volatile = TestCatalog::default().function("new_token", Volatility::Volatile);
        let stmt = || alter("users", vec![with_default("new_token()", &["new_token"])]);
        assert_eq!(findings(&RULE, stmt(), &volatile).len(), 1);
        let immutable = TestCatalog::default().function("new_token", Volatility::Immutable);
        assert!(findings(&RULE, stmt(), &immutable).is_empty());
    }

    #[test]
    fn unknown_user_function_is_a_warning_that_says_it_could_not_tell() {
        let stmt = alter("users", vec![with_default("new_token()", &["new_token"])]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.text(),
            "add_column_volatile_default: could not tell whether ADD COLUMN token DEFAULT new_token() rewrites \
             users: the volatility of new_token() is unknown"
        );
    }

    #[test]
    fn any_default_rewrites_before_postgres_11() {
        let stmt = alter("users", vec![with_default("now()", &["now"])]);
        let finding = only(findings(&RULE, stmt, &TestCatalog::default().version(100_012)));
        assert!(finding
            .text()
            .ends_with("before Postgres 11 every non-null DEFAULT is written into each existing row"));
    }

    #[test]
    fn always_volatile_expression_err() {
        let action = add_column(ColumnDef {
            default: Some(DefaultExpr {
                sql: "(SELECT max(id) FROM t)".into(),
                functions: vec![],
                always_volatile: true,
            }),
            ..column("n", ty(&["int"], &[]))
        });
        assert_eq!(
            findings(&RULE, alter("users", vec![action]), &TestCatalog::default()).len(),
            1
        );
    }

    #[test]
    fn not_null_volatile_default_hint_ends_with_safe_not_null() {
        let mut action = with_default("clock_timestamp()", &["clock_timestamp"]);
        if let AlterAction::AddColumn { column, .. } = &mut action {
            column.not_null = true;
        }
        let finding = only(findings(
            &RULE,
            alter("app.Users", vec![action]),
            &TestCatalog::default(),
        ));
        assert!(finding
            .hint
            .contains("ALTER TABLE app.\"Users\" ADD COLUMN token uuid;"));
        assert!(finding
            .hint
            .contains("ALTER TABLE app.\"Users\" ALTER COLUMN token SET NOT NULL;"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("users", vec![with_default("gen_random_uuid()", &["gen_random_uuid"])]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("users")).is_empty());
    }

    #[test]
    fn several_columns_in_one_alter_each_reported() {
        let stmt = alter(
            "users",
            vec![
                with_default("random()", &["random"]),
                with_default("now()", &["now"]),
                with_default("pg_catalog.gen_random_uuid()", &["gen_random_uuid"]),
            ],
        );
        assert_eq!(findings(&RULE, stmt, &TestCatalog::default()).len(), 2);
    }
}
