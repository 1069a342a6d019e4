//! A backfill in the transaction of a schema change: the UPDATE (DELETE, MERGE, INSERT ...
//! SELECT) runs while the transaction still holds the lock the DDL took, so every query
//! the lock blocks waits for the whole backfill, not just the catalog change. Ecto,
//! Rails, Django and Flyway run each migration in one transaction, so a data migration
//! next to its schema change does exactly this.
//!
//! Not backfills: rows the statement carries itself (INSERT ... VALUES), the migration
//! tools' own bookkeeping, tables created in this transaction (no one else sees them),
//! and tables below `min_table_rows`.

use super::{Category, Rule, Scope};
use crate::bookkeeping::is_bookkeeping;
use crate::finding::{Finding, SQLSTATE_LOCK};
use crate::model::{DmlWrite, QualifiedName, Statement, Stmt, WriteKind};
use crate::transaction::HeldLock;

pub const RULE: Rule = Rule {
    id: "backfill_in_ddl_transaction",
    category: Category::Lock,
    summary: "a backfill in a transaction that holds a lock blocking reads or writes keeps it for the whole backfill",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Dml(writes) = &statement.stmt else {
        return vec![];
    };
    if scope.context.held_locks.is_empty() {
        return vec![];
    }
    let mut findings: Vec<Finding> = Vec::new();
    for write in writes {
        let already = findings
            .iter()
            .any(|f| f.message.contains(&format!(" of {} ", write.table)));
        if !write.kind.rewrites_rows()
            || already
            || is_bookkeeping(&write.table)
            || !scope.lock_rules_apply(&write.table)
        {
            continue;
        }
        let held = blocking_lock(&scope.context.held_locks, &write.table);
        findings.push(finding(write, held));
    }
    findings
}

/// The lock to name: one on the written table if the transaction holds one, else the
/// strongest (the first taken among equals).
fn blocking_lock<'a>(held: &'a [HeldLock], table: &QualifiedName) -> &'a HeldLock {
    held.iter()
        .find(|lock| lock.table == *table)
        .or_else(|| held.iter().rev().max_by_key(|lock| lock.level))
        .expect("held is not empty")
}

fn finding(write: &DmlWrite, held: &HeldLock) -> Finding {
    let table = &write.table;
    let lock = held.lock();
    Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!(
            "{} of {table} runs while this transaction holds {} on {}, taken by `{}`: the lock stays until \
             the transaction ends, for the whole backfill",
            write.kind.keyword(),
            held.level,
            held.table,
            held.statement
        ),
        format!(
            "Lock: {}. Every query it blocks waits until this transaction commits, so the outage lasts as \
             long as the backfill, which grows with {table}.",
            lock.describe()
        ),
        format!(
            "Commit the schema change first (end this migration), then backfill in a migration of its own, \
             outside a transaction block, in batches that each commit:\n    {}\n\
             or in a procedure that COMMITs after each batch.",
            batched(write)
        ),
    )
}

/// One batch of the backfill, to repeat until it changes no row.
fn batched(write: &DmlWrite) -> String {
    let table = &write.table;
    match write.kind {
        WriteKind::Delete => format!(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE <rows to delete> LIMIT 10000);  \
             -- repeat until it deletes 0 rows"
        ),
        WriteKind::Update | WriteKind::Merge => format!(
            "UPDATE {table} SET <column> = <value> WHERE ctid IN (SELECT ctid FROM {table} WHERE <rows not yet \
             done> LIMIT 10000);  -- repeat until it updates 0 rows"
        ),
        WriteKind::InsertSelect | WriteKind::InsertValues | WriteKind::MergeInsert => format!(
            "INSERT INTO {table} SELECT ... FROM <source> WHERE <key> > <last key copied> ORDER BY <key> LIMIT \
             10000;  -- repeat until it inserts 0 rows"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, LockLevel};
    use crate::rules::testing::*;
    use std::time::Instant;

    fn dml(kind: WriteKind, table: &str) -> Stmt {
        Stmt::Dml(vec![DmlWrite { table: q(table), kind }])
    }

    fn holding(table: &str, level: LockLevel) -> Context {
        Context {
            in_transaction_block: true,
            held_locks: vec![HeldLock {
                table: q(table),
                level,
                statement: format!("ALTER TABLE {table} ADD COLUMN verified boolean"),
                since: Instant::now(),
                subtransaction: 1,
            }],
            ..Context::default()
        }
    }

    #[test]
    fn a_backfill_under_the_ddl_s_lock_is_refused_and_names_the_statement_that_took_it() {
        let catalog = TestCatalog::default().existing_table("users");
        let context = holding("users", LockLevel::AccessExclusive);
        let found = findings_in(&RULE, dml(WriteKind::Update, "users"), &catalog, &context);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text(),
            "backfill_in_ddl_transaction: UPDATE of users runs while this transaction holds ACCESS EXCLUSIVE on \
             users, taken by `ALTER TABLE users ADD COLUMN verified boolean`: the lock stays until the \
             transaction ends, for the whole backfill"
        );
        assert!(found[0].hint.contains("LIMIT 10000"), "{}", found[0].hint);
        for kind in [
            WriteKind::Delete,
            WriteKind::Merge,
            WriteKind::MergeInsert,
            WriteKind::InsertSelect,
        ] {
            assert_eq!(
                findings_in(&RULE, dml(kind, "users"), &catalog, &context).len(),
                1,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_lock_on_another_table_counts_too() {
        let catalog = TestCatalog::default().existing_table("users").existing_table("orders");
        let found = findings_in(
            &RULE,
            dml(WriteKind::Update, "orders"),
            &catalog,
            &holding("users", LockLevel::Share),
        );
        assert_eq!(
            found[0].lock.as_ref().map(|lock| lock.relation.clone()),
            Some(q("users"))
        );
    }

    #[test]
    fn not_backfills() {
        let catalog = TestCatalog::default()
            .existing_table("users")
            .existing_table("schema_migrations")
            .new_table("fresh");
        let context = holding("users", LockLevel::AccessExclusive);
        // Rows the statement carries, the tool's bookkeeping, a table no one else sees.
        assert!(findings_in(&RULE, dml(WriteKind::InsertValues, "users"), &catalog, &context).is_empty());
        assert!(findings_in(&RULE, dml(WriteKind::Update, "schema_migrations"), &catalog, &context).is_empty());
        assert!(findings_in(&RULE, dml(WriteKind::Update, "fresh"), &catalog, &context).is_empty());
        // No lock held: a backfill on its own is another rule's business.
        assert!(findings(&RULE, dml(WriteKind::Update, "users"), &catalog).is_empty());
    }
}
