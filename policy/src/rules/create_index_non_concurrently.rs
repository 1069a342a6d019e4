//! CREATE INDEX without CONCURRENTLY holds SHARE on the table for the whole build.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{LockLevel, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "create_index_non_concurrently",
    category: Category::Lock,
    summary: "CREATE INDEX without CONCURRENTLY blocks writes for the whole build",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::CreateIndex(index) = &statement.stmt else {
        return vec![];
    };
    // ON ONLY builds nothing on a partitioned table: it creates an invalid shell on the
    // parent. On any other table ONLY changes nothing, and the index is built as usual
    // (where the catalog cannot say, as in a file that does not create the table, the
    // ONLY is taken as meant for a partitioned table).
    let shell_only = index.only && scope.catalog.is_partitioned(&index.table) != Some(false);
    if index.concurrently || shell_only || !scope.scan_rules_apply(&index.table) {
        return vec![];
    }
    let lock = Lock {
        level: LockLevel::Share,
        relation: index.table.clone(),
    };
    let kind = if index.unique {
        "CREATE UNIQUE INDEX"
    } else {
        "CREATE INDEX"
    };
    let keywords: &[&str] = if index.unique {
        &["CREATE", "UNIQUE", "INDEX"]
    } else {
        &["CREATE", "INDEX"]
    };
    let safe = sql::insert_after_keywords(&statement.source, keywords, "CONCURRENTLY").unwrap_or_else(|| {
        format!(
            "{kind} CONCURRENTLY {} ON {} (...)",
            index.name.as_deref().map(sql::ident).unwrap_or_default(),
            index.table
        )
    });
    let name = index
        .name
        .as_deref()
        .map(|n| format!(" {}", sql::ident(n)))
        .unwrap_or_default();
    vec![Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("{kind}{name} on {} without CONCURRENTLY blocks writes while the index builds", index.table),
        format!(
            "Lock: {}. {kind} holds this lock for the whole build, and every INSERT, UPDATE and DELETE on {} waits behind it.",
            lock.describe(),
            index.table
        ),
        format!("Build the index without blocking writes, outside a transaction block:\n    {safe};"),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CreateIndex;
    use crate::rules::testing::*;
    use crate::settings::Settings;

    fn create_index(concurrently: bool) -> Stmt {
        Stmt::CreateIndex(CreateIndex {
            name: Some("i".into()),
            table: q("orders"),
            concurrently,
            ..CreateIndex::default()
        })
    }

    #[test]
    fn create_index_on_existing_table_err() {
        let findings = findings(
            &RULE,
            create_index(false),
            &TestCatalog::default().existing_table("orders"),
        );
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.rule, "create_index_non_concurrently");
        assert_eq!(finding.sqlstate, "SM001");
        assert_eq!(
            finding.lock.as_ref().unwrap().describe(),
            "SHARE on orders, blocks writes"
        );
        assert_eq!(
            finding.text(),
            "create_index_non_concurrently: CREATE INDEX i on orders without CONCURRENTLY blocks writes while the index builds"
        );
    }

    #[test]
    fn hint_is_the_statement_with_concurrently() {
        let settings = enforce();
        let (context, catalog) = (crate::model::Context::default(), TestCatalog::default());
        let scope = Scope::new(&context, &catalog, &settings);
        let findings = (RULE.check)(&statement(create_index(false), "create index i on orders (c);"), &scope);
        assert!(
            findings[0].hint.ends_with("create index CONCURRENTLY i on orders (c);"),
            "{}",
            findings[0].hint
        );
    }

    #[test]
    fn create_index_concurrently_ok() {
        assert!(findings(&RULE, create_index(true), &TestCatalog::default()).is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        assert!(findings(&RULE, create_index(false), &TestCatalog::default().new_table("orders")).is_empty());
    }

    fn create_index_on_only() -> Stmt {
        Stmt::CreateIndex(CreateIndex {
            name: Some("i".into()),
            table: q("orders"),
            only: true,
            ..CreateIndex::default()
        })
    }

    #[test]
    fn create_index_on_only_partitioned_table_ok() {
        let catalog = TestCatalog::default()
            .existing_table("orders")
            .partitioned("orders", true);
        assert!(findings(&RULE, create_index_on_only(), &catalog).is_empty());
    }

    #[test]
    fn create_index_on_only_plain_table_err() {
        let catalog = TestCatalog::default()
            .existing_table("orders")
            .partitioned("orders", false);
        assert_eq!(findings(&RULE, create_index_on_only(), &catalog).len(), 1);
    }

    #[test]
    fn create_index_on_only_of_a_table_the_catalog_does_not_know_ok() {
        let catalog = TestCatalog::default().existing_table("orders");
        assert!(findings(&RULE, create_index_on_only(), &catalog).is_empty());
    }

    #[test]
    fn a_table_with_no_row_is_built_at_once_ok() {
        let mut catalog = TestCatalog::default();
        catalog.empty_tables.insert("orders".into());
        assert!(findings(&RULE, create_index(false), &catalog).is_empty());
        // The explicit lock is another matter: held until the transaction ends.
        let lock = Stmt::Lock {
            tables: vec![q("orders")],
            mode: crate::model::LockLevel::AccessExclusive,
        };
        assert!(!findings(&crate::rules::lock_table::RULE, lock, &catalog).is_empty());
    }

    #[test]
    fn small_table_below_min_rows_ok() {
        let settings = Settings {
            min_table_rows: 1000,
            ..enforce()
        };
        let catalog = TestCatalog::default().rows("orders", 10.0);
        let context = crate::model::Context::default();
        let scope = Scope::new(&context, &catalog, &settings);
        assert!((RULE.check)(&statement(create_index(false), ""), &scope).is_empty());
    }
}
