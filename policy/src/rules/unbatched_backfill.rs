//! An UPDATE, DELETE or MERGE that changes more rows in one statement than
//! `max_rows_per_statement` (by the planner's estimate): every row it changes stays
//! locked until its transaction commits, so the application's writes to any of them wait
//! for the whole statement; one long transaction also holds back vacuum on every table
//! and writes its WAL in one burst that replicas must replay. The guides backfill in
//! batches of 1,000 to 10,000 rows, each committed.
//!
//! Decided where the statement runs, at every nesting level (functions, DO blocks,
//! CTEs): the estimate is the plan's. Not counted: the migration tools' own bookkeeping
//! and tables created in this transaction (no one else sees them).

use super::{Category, Rule, Scope};
use crate::bookkeeping::is_bookkeeping;
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{DmlWrite, LockLevel, Statement, Stmt, WriteKind};

pub const RULE: Rule = Rule {
    id: "unbatched_backfill",
    category: Category::Lock,
    summary: "an UPDATE, DELETE or MERGE of more rows than max_rows_per_statement locks them all until it commits",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Dml(writes) = &statement.stmt else {
        return vec![];
    };
    let limit = scope.settings.max_rows_per_statement;
    if limit == 0 {
        return vec![];
    }
    let changes_rows = |write: &&DmlWrite| {
        matches!(write.kind, WriteKind::Update | WriteKind::Delete | WriteKind::Merge)
            && !is_bookkeeping(&write.table)
            && !scope.is_new_table(&write.table)
    };
    let Some(write) = writes.iter().find(changes_rows) else {
        return vec![];
    };
    match scope.catalog.rows_changed_estimate(statement) {
        Some(rows) if rows > limit as f64 => vec![finding(write, rows, limit)],
        _ => vec![],
    }
}

fn finding(write: &DmlWrite, rows: f64, limit: u64) -> Finding {
    let table = &write.table;
    let keyword = write.kind.keyword();
    let lock = Lock {
        level: LockLevel::RowExclusive,
        relation: table.clone(),
    };
    Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!(
            "{keyword} of {table} changes about {} rows in one statement (the planner's estimate), more than \
             safe_migrations.max_rows_per_statement ({limit})",
            thousands(rows)
        ),
        format!(
            "Every row it changes stays locked until its transaction commits: the application's writes to \
             those rows wait for the whole statement, and one long transaction holds back vacuum and writes \
             its WAL in one burst. Lock: {}, and a row lock on each row changed.",
            lock.describe()
        ),
        format!(
            "Change the rows in batches of a few thousand, each committed: from a migration run outside a \
             transaction block,\n{}",
            batched_procedure(write)
        ),
    )
}

/// A procedure that commits each batch (CALL it outside a transaction block), then
/// drop it.
fn batched_procedure(write: &DmlWrite) -> String {
    let table = &write.table;
    let batch = match write.kind {
        WriteKind::Delete => {
            format!("DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE <rows to delete> LIMIT 10000);")
        }
        _ => format!(
            "UPDATE {table} SET <column> = <value> WHERE ctid IN (SELECT ctid FROM {table} WHERE <rows not yet \
             done> LIMIT 10000);"
        ),
    };
    format!(
        "    CREATE PROCEDURE backfill_in_batches() LANGUAGE plpgsql AS $$\n    BEGIN\n      LOOP\n        \
         {batch}\n        EXIT WHEN NOT FOUND;\n        COMMIT;\n      END LOOP;\n    END $$;\n    CALL \
         backfill_in_batches();\n    DROP PROCEDURE backfill_in_batches();"
    )
}

/// 1234567.8 -> "1,234,568".
fn thousands(rows: f64) -> String {
    let digits = format!("{:.0}", rows.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn dml(kind: WriteKind, table: &str) -> Stmt {
        Stmt::Dml(vec![DmlWrite { table: q(table), kind }])
    }

    #[test]
    fn more_rows_than_the_limit_in_one_statement_is_refused_with_the_batched_form() {
        let catalog = TestCatalog::default().existing_table("users").rows_changed(1_234_567.0);
        let found = findings(&RULE, dml(WriteKind::Update, "users"), &catalog);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text(),
            "unbatched_backfill: UPDATE of users changes about 1,234,567 rows in one statement (the planner's \
             estimate), more than safe_migrations.max_rows_per_statement (50000)"
        );
        assert!(found[0].hint.contains("COMMIT;"), "{}", found[0].hint);
        assert!(found[0].hint.contains("LIMIT 10000"), "{}", found[0].hint);
        for kind in [WriteKind::Delete, WriteKind::Merge] {
            assert_eq!(findings(&RULE, dml(kind, "users"), &catalog).len(), 1, "{kind:?}");
        }
    }

    #[test]
    fn batches_inserts_bookkeeping_new_tables_and_unknown_estimates_pass() {
        let batch = TestCatalog::default().existing_table("users").rows_changed(10_000.0);
        assert!(findings(&RULE, dml(WriteKind::Update, "users"), &batch).is_empty());
        let big = TestCatalog::default()
            .existing_table("users")
            .existing_table("schema_migrations")
            .new_table("fresh")
            .rows_changed(1e7);
        assert!(findings(&RULE, dml(WriteKind::InsertSelect, "users"), &big).is_empty());
        assert!(findings(&RULE, dml(WriteKind::MergeInsert, "users"), &big).is_empty());
        assert!(findings(&RULE, dml(WriteKind::Delete, "schema_migrations"), &big).is_empty());
        assert!(findings(&RULE, dml(WriteKind::Update, "fresh"), &big).is_empty());
        let unknown = TestCatalog::default().existing_table("users");
        assert!(findings(&RULE, dml(WriteKind::Update, "users"), &unknown).is_empty());
    }

    #[test]
    fn thousands_separates_groups() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(50_001.0), "50,001");
        assert_eq!(thousands(1e9), "1,000,000,000");
    }
}
