//! ALTER COLUMN TYPE rewrites the table (and rebuilds its indexes) under ACCESS EXCLUSIVE,
//! unless PostgreSQL finds the conversion a no-op: a binary-coercible cast in pg_cast
//! (varchar to text, text to citext), a length or precision that only grows, no domain
//! constraint to check (`types::type_change`). Even then it checks every row against the
//! column's CHECK constraints and builds again the indexes it cannot carry over
//! (`Catalog::type_change_dependents`). When a fact is unknown, say so.

use super::{alter_table_sql, backfill_sql, unless_cheap, Category, Rule, Scope};
use crate::catalog::ColumnTypeChange;
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, AlterTable, LockLevel, QualifiedName, Statement, Stmt, Using};
use crate::sql;
use crate::types::{type_change, Coercion, TypeChange, TypeName};

pub const RULE: Rule = Rule {
    id: "change_column_type",
    category: Category::Lock,
    summary: "ALTER COLUMN TYPE rewrites the table under ACCESS EXCLUSIVE unless pg_cast and the type modifiers make \
              it catalog-only; even then it re-checks CHECK constraints and rebuilds indexes it cannot keep",
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
                collation,
            } => finding(alter, column, new_type, *using, collation.as_ref(), scope),
            _ => None,
        })
        .collect();
    unless_cheap(findings, &alter.table, scope)
}

fn finding(
    alter: &AlterTable,
    column: &str,
    new_type: &TypeName,
    using: Using,
    collation: Option<&QualifiedName>,
    scope: &Scope,
) -> Option<Finding> {
    let table = &alter.table;
    // Ok(why the table is rewritten) or Err(why that cannot be decided here).
    let verdict = match (scope.catalog.column_type(table, column), using) {
        (_, Using::Expression) => Ok("USING recomputes every row".to_string()),
        (None, _) => Err(format!(
            "the current type of {table}.{} is unknown here",
            sql::ident(column)
        )),
        (Some(old), _) => {
            // Built-in types are known without asking; the catalog knows the rest
            // (domains, extensions' types and their casts).
            let known = old == *new_type || Coercion::builtin(&old, new_type).is_some();
            let coercion = (!known).then(|| scope.catalog.coercion(&old, new_type)).flatten();
            match type_change(&old, new_type, coercion, scope.catalog.timezone().as_deref()) {
                TypeChange::Free => return dependents_finding(alter, column, new_type, collation, scope),
                TypeChange::Rewrite(why) => Ok(why),
                TypeChange::Unknown(reason) => Err(reason),
            }
        }
    };
    let what = format!("ALTER COLUMN {} TYPE {new_type}", sql::ident(column));
    let lock = exclusive(table);
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

fn exclusive(table: &QualifiedName) -> Lock {
    Lock {
        level: LockLevel::AccessExclusive,
        relation: table.clone(),
    }
}

/// A change that rewrites nothing still re-adds the column's CHECK constraints (a scan
/// of every row) and builds again the indexes it cannot carry over, all under the
/// ACCESS EXCLUSIVE lock the statement holds.
fn dependents_finding(
    alter: &AlterTable,
    column: &str,
    new_type: &TypeName,
    collation: Option<&QualifiedName>,
    scope: &Scope,
) -> Option<Finding> {
    let table = &alter.table;
    let what = format!("ALTER COLUMN {} TYPE {new_type}", sql::ident(column));
    let lock = exclusive(table);
    let change = ColumnTypeChange {
        table: table.clone(),
        column: column.to_string(),
        new_type: new_type.clone(),
        collation: collation.cloned(),
    };
    let Some(dependents) = scope.catalog.type_change_dependents(&change) else {
        return Some(
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!(
                    "could not tell whether {what} re-checks or rebuilds anything on {table}: the column's CHECK \
                     constraints and indexes are not known here"
                ),
                format!(
                    "The type change itself does not rewrite {table}, but PostgreSQL checks every row again against \
                     the column's CHECK constraints and builds again the indexes whose operator class, collation, \
                     expression or predicate it cannot carry over, holding {}.",
                    lock.describe()
                ),
                format!(
                    "If the column has such constraints or indexes: {}",
                    new_column_steps(alter, column, new_type)
                ),
            )
            .warning(),
        );
    };
    if dependents.checks.is_empty() && dependents.rebuilt_indexes.is_empty() {
        return None;
    }
    let names = |names: &[String]| names.iter().map(|n| sql::ident(n)).collect::<Vec<_>>().join(", ");
    let mut work = Vec::new();
    if !dependents.checks.is_empty() {
        work.push(format!(
            "checks every row against CHECK constraint{} {}",
            if dependents.checks.len() > 1 { "s" } else { "" },
            names(&dependents.checks)
        ));
    }
    if !dependents.rebuilt_indexes.is_empty() {
        work.push(format!(
            "builds index{} {} again",
            if dependents.rebuilt_indexes.len() > 1 { "es" } else { "" },
            names(&dependents.rebuilt_indexes)
        ));
    }
    let detail = format!(
        "Lock: {}. The type change itself is catalog-only, but PostgreSQL re-adds the column's CHECK constraints \
         (a scan of every row) and builds again the indexes whose operator class, collation, expression or \
         predicate it cannot carry over, all while holding the lock.",
        lock.describe()
    );
    let prefix = alter_table_sql(alter);
    let hint = if dependents.rebuilt_indexes.is_empty() {
        let drops: Vec<String> = dependents
            .checks
            .iter()
            .map(|check| format!("{prefix} DROP CONSTRAINT {};", sql::ident(check)))
            .collect();
        let readds: Vec<String> = dependents
            .checks
            .iter()
            .map(|check| {
                format!(
                    "{prefix} ADD CONSTRAINT {} CHECK (<its condition>) NOT VALID;\n    \
                     {prefix} VALIDATE CONSTRAINT {};  -- in its own transaction: SHARE UPDATE EXCLUSIVE",
                    sql::ident(check),
                    sql::ident(check)
                )
            })
            .collect();
        format!(
            "Drop the CHECK constraints, change the type, then add them back NOT VALID and validate them without \
             blocking reads or writes:\n    {}\n    {prefix} ALTER COLUMN {} TYPE {new_type};\n    {}",
            drops.join("\n    "),
            sql::ident(column),
            readds.join("\n    ")
        )
    } else {
        format!(
            "Drop the indexes first (DROP INDEX CONCURRENTLY), change the type, then build them again with CREATE \
             INDEX CONCURRENTLY; while they are gone, queries lose them and a unique index enforces nothing, so \
             for a unique key or where that is not acceptable, move to a new column instead. {}",
            new_column_steps(alter, column, new_type)
        )
    };
    Some(Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock),
        format!("{what} on {table} {}", work.join(" and ")),
        detail,
        hint,
    ))
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
    use crate::catalog::ColumnDependents;
    use crate::finding::Severity;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn change(column: &str, new_type: TypeName, using: Using) -> AlterAction {
        AlterAction::AlterColumnType {
            column: column.into(),
            new_type,
            using,
            collation: None,
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
            finding.text(),
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

    fn nothing_depends(catalog: TestCatalog, table: &str, column: &str) -> TestCatalog {
        catalog.with_dependents(table, column, ColumnDependents::default())
    }

    #[test]
    fn varchar_widening_ok() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let catalog = nothing_depends(catalog, "users", "name");
        let stmt = alter(
            "users",
            vec![change("name", ty(&["pg_catalog", "varchar"], &[100]), Using::None)],
        );
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn cast_of_column_using_is_like_no_using() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let catalog = nothing_depends(catalog, "users", "name");
        let stmt = alter("users", vec![change("name", ty(&["text"], &[]), Using::CastOfColumn)]);
        assert!(findings(&RULE, stmt, &catalog).is_empty());
    }

    #[test]
    fn using_expression_always_rewrites() {
        let catalog = TestCatalog::default().column("users", "name", ty(&["pg_catalog", "varchar"], &[50]));
        let stmt = alter("users", vec![change("name", ty(&["text"], &[]), Using::Expression)]);
        let finding = only(findings(&RULE, stmt, &catalog));
        assert!(finding.text().ends_with("rewrites users: USING recomputes every row"));
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
            finding.text(),
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
        let utc = nothing_depends(utc, "events", "at");
        assert!(findings(&RULE, stmt(), &utc).is_empty());
        let berlin = TestCatalog::default()
            .column("events", "at", ts.clone())
            .timezone("Europe/Berlin");
        assert_eq!(only(findings(&RULE, stmt(), &berlin)).severity, Severity::Error);
        let unknown = TestCatalog::default().column("events", "at", ts);
        let finding = only(findings(&RULE, stmt(), &unknown));
        assert_eq!(finding.severity, Severity::Warning);
        assert!(finding.text().contains("TimeZone is not known here"));
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
        assert_eq!(found.len(), 3);
        // numeric(10,2) -> numeric(12,2) rewrites nothing, but its constraints and
        // indexes are not known here.
        assert!(found[0]
            .text()
            .contains("could not tell whether ALTER COLUMN \"Total\""));
        assert!(found[1]
            .hint
            .contains("ALTER TABLE IF EXISTS shop.\"Orders\" ADD COLUMN qty_new bigint;"));
        assert_eq!(found[2].severity, Severity::Warning);
    }

    #[test]
    fn no_rewrite_still_rechecks_check_constraints_and_rebuilds_indexes() {
        let v = ty(&["pg_catalog", "varchar"], &[50]);
        let catalog = TestCatalog::default()
            .column("users", "name", v.clone())
            .with_dependents(
                "users",
                "name",
                ColumnDependents {
                    checks: vec!["name_not_blank".into()],
                    rebuilt_indexes: vec![],
                },
            );
        let stmt = || alter("users", vec![change("name", ty(&["text"], &[]), Using::None)]);
        let finding = only(findings(&RULE, stmt(), &catalog));
        assert_eq!(finding.severity, Severity::Error);
        assert_eq!(
            finding.text(),
            "change_column_type: ALTER COLUMN name TYPE text on users checks every row against CHECK constraint \
             name_not_blank"
        );
        assert!(finding.hint.contains(
            "ALTER TABLE users DROP CONSTRAINT name_not_blank;\n    ALTER TABLE users ALTER COLUMN name TYPE text;"
        ));
        let catalog = catalog.with_dependents(
            "users",
            "name",
            ColumnDependents {
                checks: vec!["a".into(), "b".into()],
                rebuilt_indexes: vec!["users_lower_name".into()],
            },
        );
        let finding = only(findings(&RULE, stmt(), &catalog));
        assert_eq!(
            finding.text(),
            "change_column_type: ALTER COLUMN name TYPE text on users checks every row against CHECK constraints a, \
             b and builds index users_lower_name again"
        );
        assert!(finding.hint.contains("ADD COLUMN name_new text"));
    }

    #[test]
    fn extension_types_are_decided_by_the_catalogs_casts() {
        let text = ty(&["text"], &[]);
        let citext = ty(&["citext"], &[]);
        let stmt = || alter("users", vec![change("email", citext.clone(), Using::None)]);
        let catalog = TestCatalog::default().column("users", "email", text.clone());
        let unknown = only(findings(&RULE, stmt(), &catalog));
        assert_eq!(unknown.severity, Severity::Warning);
        assert!(
            unknown.text().contains("depends on the catalog (domains, pg_cast)"),
            "{}",
            unknown.text()
        );
        let binary = Coercion {
            from_base: text.clone(),
            to_base: ty(&["public", "citext"], &[]),
            binary: true,
            checks_domain: false,
        };
        let catalog = nothing_depends(catalog, "users", "email").with_coercion(text.clone(), citext.clone(), binary);
        assert!(findings(&RULE, stmt(), &catalog).is_empty());
    }
}
