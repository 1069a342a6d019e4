//! REFRESH MATERIALIZED VIEW without CONCURRENTLY holds ACCESS EXCLUSIVE on the view while
//! its query runs: nobody can read the view until the refresh is done.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{LockLevel, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "refresh_materialized_view_non_concurrently",
    category: Category::Lock,
    summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view while its query runs",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::RefreshMaterializedView {
        view,
        concurrently: false,
    } = &statement.stmt
    else {
        return vec![];
    };
    if !scope.lock_rules_apply(view) {
        return vec![];
    }
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: view.clone(),
    };
    vec![Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("REFRESH MATERIALIZED VIEW {view} without CONCURRENTLY blocks reads of {view}"),
        format!(
            "Lock: {}. The lock is held while the view's whole query runs and its result is written.",
            lock.describe()
        ),
        format!(
            "Refresh without blocking readers; CONCURRENTLY needs a unique index on the view \
             (on columns that identify a row):\n    \
             CREATE UNIQUE INDEX CONCURRENTLY ON {view} (...);\n    \
             REFRESH MATERIALIZED VIEW CONCURRENTLY {view};"
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn refresh(view: &str, concurrently: bool) -> Stmt {
        Stmt::RefreshMaterializedView {
            view: q(view),
            concurrently,
        }
    }

    #[test]
    fn refresh_err() {
        let finding = only(findings(
            &RULE,
            refresh("sales_summary", false),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "refresh_materialized_view_non_concurrently: REFRESH MATERIALIZED VIEW sales_summary without \
             CONCURRENTLY blocks reads of sales_summary"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on sales_summary, blocks reads and writes"
        );
        assert!(finding
            .hint
            .ends_with("REFRESH MATERIALIZED VIEW CONCURRENTLY sales_summary;"));
    }

    #[test]
    fn refresh_concurrently_ok() {
        assert!(findings(&RULE, refresh("sales_summary", true), &TestCatalog::default()).is_empty());
    }

    #[test]
    fn view_created_in_same_transaction_ok() {
        let catalog = TestCatalog::default().new_table("sales_summary");
        assert!(findings(&RULE, refresh("sales_summary", false), &catalog).is_empty());
    }

    #[test]
    fn schema_qualified_quoted_view_in_hint() {
        let finding = only(findings(
            &RULE,
            refresh("Reports.daily", false),
            &TestCatalog::default(),
        ));
        assert!(finding
            .hint
            .ends_with("REFRESH MATERIALIZED VIEW CONCURRENTLY \"Reports\".daily;"));
    }
}
