//! REINDEX without CONCURRENTLY blocks writes of the table and locks each index it
//! rebuilds ACCESS EXCLUSIVE, so queries that would use the index wait for the whole rebuild.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{LockLevel, Reindex, ReindexTarget, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "reindex_non_concurrently",
    category: Category::Lock,
    summary: "REINDEX without CONCURRENTLY blocks writes, and reads that use the index, for the whole rebuild",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Reindex(reindex) = &statement.stmt else {
        return vec![];
    };
    if reindex.concurrently {
        return vec![];
    }
    let (keyword, what) = match reindex.target {
        ReindexTarget::Index => ("INDEX", "the index"),
        ReindexTarget::Table => ("TABLE", "every index of the table"),
        ReindexTarget::Schema => (
            "SCHEMA",
            "every index of every table in the schema, one table at a time",
        ),
        ReindexTarget::Database => ("DATABASE", "every index in the database, one table at a time"),
        ReindexTarget::System => ("SYSTEM", "every system catalog index"),
    };
    let single_relation = matches!(reindex.target, ReindexTarget::Index | ReindexTarget::Table);
    if let (true, Some(name)) = (single_relation, &reindex.name) {
        if !scope.lock_rules_apply(name) {
            return vec![];
        }
    }
    let name = reindex.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
    let lock = reindex.name.as_ref().filter(|_| single_relation).map(|relation| Lock {
        level: LockLevel::AccessExclusive,
        relation: relation.clone(),
    });
    let locked = match &lock {
        Some(lock) => format!("Lock: {}. ", lock.describe()),
        None => String::new(),
    };
    vec![Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        lock,
        format!("REINDEX {keyword}{name} without CONCURRENTLY blocks writes while it rebuilds {what}"),
        format!(
            "{locked}REINDEX holds SHARE on each table (no INSERT, UPDATE or DELETE) and ACCESS EXCLUSIVE on \
             each index it rebuilds (no query that would use the index) for the whole rebuild of {what}."
        ),
        hint(reindex, keyword, &name),
    )]
}

fn hint(reindex: &Reindex, keyword: &str, name: &str) -> String {
    if reindex.target == ReindexTarget::System {
        return "System catalogs cannot be reindexed concurrently. Rebuild the user indexes that need it \
                with REINDEX INDEX CONCURRENTLY, and run REINDEX SYSTEM in a maintenance window."
            .to_string();
    }
    format!(
        "Rebuild without blocking writes, alone and outside a transaction block (Postgres 12+):\n    \
         REINDEX {keyword} CONCURRENTLY{name};"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn reindex(target: ReindexTarget, name: Option<&str>, concurrently: bool) -> Stmt {
        Stmt::Reindex(Reindex {
            target,
            name: name.map(q),
            concurrently,
        })
    }

    #[test]
    fn reindex_index_err() {
        let finding = only(findings(
            &RULE,
            reindex(ReindexTarget::Index, Some("orders_pkey"), false),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "reindex_non_concurrently: REINDEX INDEX orders_pkey without CONCURRENTLY blocks writes while it \
             rebuilds the index"
        );
        assert_eq!(finding.lock.unwrap().level, LockLevel::AccessExclusive);
        assert!(finding.hint.ends_with("REINDEX INDEX CONCURRENTLY orders_pkey;"));
    }

    #[test]
    fn reindex_table_err_with_schema_qualified_quoted_name() {
        let finding = only(findings(
            &RULE,
            reindex(ReindexTarget::Table, Some("app.Orders"), false),
            &TestCatalog::default(),
        ));
        assert!(finding.hint.ends_with("REINDEX TABLE CONCURRENTLY app.\"Orders\";"));
    }

    #[test]
    fn reindex_concurrently_ok() {
        let stmt = reindex(ReindexTarget::Table, Some("orders"), true);
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = reindex(ReindexTarget::Table, Some("orders"), false);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("orders")).is_empty());
    }

    #[test]
    fn reindex_schema_and_database_err_without_a_single_lock() {
        for target in [ReindexTarget::Schema, ReindexTarget::Database] {
            let finding = only(findings(
                &RULE,
                reindex(target, Some("app"), false),
                &TestCatalog::default(),
            ));
            assert_eq!(finding.lock, None);
            assert!(finding.hint.contains("CONCURRENTLY app;"), "{}", finding.hint);
        }
    }

    #[test]
    fn reindex_system_err_says_there_is_no_concurrent_form() {
        let finding = only(findings(
            &RULE,
            reindex(ReindexTarget::System, None, false),
            &TestCatalog::default(),
        ));
        assert!(finding
            .hint
            .starts_with("System catalogs cannot be reindexed concurrently"));
    }
}
