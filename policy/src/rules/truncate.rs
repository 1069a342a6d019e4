//! TRUNCATE takes ACCESS EXCLUSIVE and empties the table at once: every query on it waits,
//! and a long queue forms behind it while it waits for running transactions.
//!
//! Migration tools' own bookkeeping tables are exempt: golang-migrate records every
//! version with `TRUNCATE schema_migrations` + INSERT, and only the tool touches that
//! table, under its own advisory lock.

use super::{Category, Rule, Scope};
use crate::bookkeeping::is_bookkeeping;
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{LockLevel, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "truncate",
    category: Category::Lock,
    summary: "TRUNCATE blocks reads and writes of the table until the transaction ends",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Truncate { tables } = &statement.stmt else {
        return vec![];
    };
    tables
        .iter()
        .filter(|table| !is_bookkeeping(table))
        .filter(|table| scope.lock_rules_apply(table))
        .map(|table| {
            let lock = Lock {
                level: LockLevel::AccessExclusive,
                relation: table.clone(),
            };
            Finding::new(
                RULE.id,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!("TRUNCATE {table} blocks reads and writes of {table} and removes every row"),
                format!(
                    "Lock: {}. It is held until the transaction ends, and while it waits for running \
                     transactions every later query on {table} queues behind it.",
                    lock.describe()
                ),
                format!(
                    "Delete the rows in batches, each a short transaction that locks only its rows:\n    \
                     DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} LIMIT 10000);  -- repeat until \
                     it deletes 0 rows\n\
                     If the table must be emptied at once, acknowledge it:\n    \
                     -- safe_migrations:allow {} -- <why this is safe>",
                    RULE.id
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn truncate(tables: &[&str]) -> Stmt {
        Stmt::Truncate {
            tables: tables.iter().map(|t| q(t)).collect(),
        }
    }

    #[test]
    fn truncate_err() {
        let finding = only(findings(&RULE, truncate(&["sessions"]), &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "truncate: TRUNCATE sessions blocks reads and writes of sessions and removes every row"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on sessions, blocks reads and writes"
        );
        assert!(finding
            .hint
            .contains("DELETE FROM sessions WHERE ctid IN (SELECT ctid FROM sessions LIMIT 10000);"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        assert!(findings(
            &RULE,
            truncate(&["staging"]),
            &TestCatalog::default().new_table("staging")
        )
        .is_empty());
    }

    #[test]
    fn small_table_below_min_rows_ok() {
        let settings = crate::settings::Settings {
            min_table_rows: 100,
            ..enforce()
        };
        let catalog = TestCatalog::default().rows("lookup", 3.0);
        let context = crate::model::Context::default();
        let scope = Scope::new(&context, &catalog, &settings);
        assert!((RULE.check)(&statement(truncate(&["lookup"]), ""), &scope).is_empty());
    }

    #[test]
    fn several_tables_each_reported_quoted_schema_qualified() {
        let found = findings(&RULE, truncate(&["a", "Audit.Log"]), &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert!(found[1].text().starts_with("truncate: TRUNCATE \"Audit\".\"Log\""));
    }

    #[test]
    fn truncate_of_a_migration_tools_bookkeeping_table_ok() {
        let catalog = TestCatalog::default().existing_table("schema_migrations");
        assert!(findings(&RULE, truncate(&["public.schema_migrations"]), &catalog).is_empty());
        assert!(findings(&RULE, truncate(&["goose_db_version"]), &catalog).is_empty());
    }

    #[test]
    fn truncate_of_bookkeeping_and_an_application_table_reports_only_the_application_table() {
        let catalog = TestCatalog::default().existing_table("orders");
        let found = findings(&RULE, truncate(&["schema_migrations", "orders"]), &catalog);
        assert_eq!(found.len(), 1);
        assert!(found[0].text().contains("orders"), "{}", found[0].text());
    }
}
