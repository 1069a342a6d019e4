//! ALTER COLUMN TYPE rewrites the table (and rebuilds its indexes) under ACCESS EXCLUSIVE,
//! except for the few changes Postgres makes in the catalog only (varchar widening, varchar
//! to text, numeric precision up ...). When the current type is unknown, say so.

use super::{alter_table_sql, backfill_sql, unless_exempt, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, AlterTable, LockLevel, Statement, Stmt, Using};
use crate::sql;
use crate::types::{type_change, TypeChange, TypeName};

pub const RULE: Rule = Rule {
    id: "change_column_type",
    category: Category::Lock,
    summary: "ALTER COLUMN TYPE rewrites the table under ACCESS EXCLUSIVE, unless the change is catalog-only",
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
            AlterAction::AlterColumnType {
                column,
                new_type,
                using,
            } => finding(alter, column, new_type, *using, scope),
            _ => None,
        })
        .collect();
    unless_exempt(findings, &alter.table, scope)
}

fn finding(alter: &AlterTable, column: &str, new_type: &TypeName, using: Using, scope: &Scope) -> Option<Finding> {
    let table = &alter.table;
    // Ok(why the table is rewritten) or Err(why that cannot be decided here).
    let verdict = match (scope.catalog.column_type(table, column), using) {
        (_, Using::Expression) => Ok("USING recomputes every row".to_string()),
        (None, _) => Err(format!(
            "the current type of {table}.{} is unknown here",
            sql::ident(column)
        )),
        (Some(old), _) => match type_change(&old, new_type, scope.catalog.timezone().as_deref()) {
            TypeChange::Free => return None,
            TypeChange::Rewrite => Ok(format!("{old} to {new_type} is not a catalog-only change")),
            TypeChange::Unknown(reason) => Err(reason),
        },
    };
    let what = format!("ALTER COLUMN {} TYPE {new_type}", sql::ident(column));
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: table.clone(),
    };
    let detail = format!(
        "Lock: {}. A rewrite copies every row of {table} and rebuilds its indexes while holding the lock.",
        lock.describe()
    );
    let hint = new_column_steps(alter, column, new_type);
    Some(match verdict {
        Ok(why) => Finding::new(
            RULE.id,
            SQLSTATE_LOCK,
            Some(lock),
            format!("{what} rewrites {table}: {why}"),
            detail,
            hint,
        ),
        Err(reason) => Finding::new(
            RULE.id,
            SQLSTATE_LOCK,
            Some(lock),
            format!("could not tell whether {what} rewrites {table}: {reason}"),
            format!("If the change is not catalog-only, {table} is rewritten. {detail}"),
            format!("If it rewrites: {hint}"),
        )
        .warning(),
    })
}

/// Move the data to a new column in batches instead of rewriting the table in one go.
fn new_column_steps(alter: &AlterTable, column: &str, new_type: &TypeName) -> String {
    let table = &alter.table;
    let prefix = alter_table_sql(alter);
    let old = sql::ident(column);
    let new = sql::ident(&format!("{column}_new"));
    format!(
        "Add a column of the new type, keep it in step from the application (or a trigger), fill existing rows \
         in batches, then move reads and writes to it and drop the old column:\n    \
         {prefix} ADD COLUMN {new} {new_type};\n    {}",
        backfill_sql(
            table,
            &format!("{new} = {old}::{new_type}"),
            &format!("{new} IS NULL AND {old} IS NOT NULL")
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn change(column: &str, new_type: TypeName, using: Using) -> AlterAction {
        AlterAction::AlterColumnType {
            column: column.into(),
            new_type,
            using,
        }
    }

    fn int8() -> TypeName {
        ty(&["pg_catalog", "int8"], &[])
    }

    #[test]
    fn int_to_bigint_err() {
        let catalog = TestCatalog::default().column("orders", "id", ty(&["int"], &[]));
        let finding = only(findings(
            &RULE,
            alter("orders", vec![change("id", int8(), Using::None)]),
            &catalog,
        ));
        assert_eq!(
            finding.message,
            "change_column_type: ALTER COLUMN id TYPE bigint rewrites orders: integer to bigint is not a \
             catalog-only change"
        );
        assert_eq!(finding.severity, Severity::Error);
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on orders, blocks reads and writes"
        );
        assert!(finding.hint.contains(
            "ALTER TABLE orders ADD COLUMN id_new bigint;\n    UPDATE orders SET id_new = id::bigint WHERE ctid IN \
             (SELECT ctid FROM orders WHERE id_new IS NULL AND id IS NOT NULL LIMIT 10000);"
        ));
    }

    #[test]
    fn varchar_widening_ok() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let stmt = alter(
            "users",
            vec![change("name", ty(&["pg_catalog", "varchar"], &[100]), Using::None)],
        );
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn cast_of_column_using_is_like_no_using() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let stmt = alter("users", vec![change("name", ty(&["text"], &[]), Using::CastOfColumn)]);
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn using_expression_always_rewrites() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let stmt = alter("users", vec![change("name", ty(&["text"], &[]), Using::Expression)]);
        let finding = only(findings(&RULE, stmt, &catalog));
        assert!(finding.message.ends_with("rewrites users: USING recomputes every row"));
    }

    #[test]
    fn unknown_current_type_is_a_warning_that_says_so() {
        let finding = only(findings(
            &RULE,
            alter("orders", vec![change("id", int8(), Using::None)]),
            &TestCatalog::default(),
        ));
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.message,
            "change_column_type: could not tell whether ALTER COLUMN id TYPE bigint rewrites orders: the current \
             type of orders.id is unknown here"
        );
    }

    #[test]
    fn timestamp_to_timestamptz_depends_on_session_timezone() {
        let ts = ty(&["pg_catalog", "timestamp"], &[]);
        let stmt = || {
            alter(
                "events",
                vec![change("at", ty(&["pg_catalog", "timestamptz"], &[]), Using::None)],
            )
        };
        let utc = TestCatalog::default()
            .column("events", "at", ts.clone())
            .timezone("UTC");
        assert!(findings(&RULE, stmt(), &utc).is_empty());
        let berlin = TestCatalog::default()
            .column("events", "at", ts.clone())
            .timezone("Europe/Berlin");
        assert_eq!(only(findings(&RULE, stmt(), &berlin)).severity, Severity::Error);
        let unknown = TestCatalog::default().column("events", "at", ts);
        let finding = only(findings(&RULE, stmt(), &unknown));
        assert_eq!(finding.severity, Severity::Warning);
        assert!(finding.message.contains("TimeZone is not known here"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter("orders", vec![change("id", int8(), Using::None)]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("orders")).is_empty());
    }

    #[test]
    fn several_columns_quoted_schema_qualified_each_reported() {
        let catalog = TestCatalog::default()
            .column("Orders", "Total", ty(&["pg_catalog", "numeric"], &[10, 2]))
            .column("Orders", "qty", ty(&["int"], &[]));
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("shop.Orders"),
            if_exists: true,
            actions: vec![
                change("Total", ty(&["pg_catalog", "numeric"], &[12, 2]), Using::None),
                change("qty", int8(), Using::None),
                change("note", ty(&["text"], &[]), Using::None),
            ],
            ..AlterTable::default()
        });
        let found = findings(&RULE, stmt, &catalog);
        assert_eq!(found.len(), 2);
        assert!(found[0]
            .hint
            .contains("ALTER TABLE IF EXISTS shop.\"Orders\" ADD COLUMN qty_new bigint;"));
        assert_eq!(found[1].severity, Severity::Warning);
    }
}
