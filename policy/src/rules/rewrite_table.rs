//! VACUUM FULL, CLUSTER, SET TABLESPACE and SET LOGGED/UNLOGGED/ACCESS METHOD copy the whole
//! relation under ACCESS EXCLUSIVE: nothing reads or writes it until the copy is done.

use super::{unless_cheap, Category, Rule, Scope};
use crate::finding::{Finding, Lock, SQLSTATE_LOCK};
use crate::model::{AlterAction, AlterTable, LockLevel, QualifiedName, RelationKind, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "rewrite_table",
    category: Category::Lock,
    summary: "VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED rewrite the table under ACCESS EXCLUSIVE",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    match &statement.stmt {
        Stmt::Vacuum { full: true, tables } if tables.is_empty() => {
            vec![everything("VACUUM FULL", "every table in the database")]
        }
        Stmt::Vacuum { full: true, tables } => tables
            .iter()
            .filter(|table| scope.scan_rules_apply(table))
            .map(|table| {
                finding(
                    format!("VACUUM FULL {table}"),
                    table,
                    format!(
                        "Reclaim the space without the long lock: pg_repack or pg_squeeze rebuild the table online, \
                         e.g.\n    pg_repack --table={table}\nPlain VACUUM makes dead space reusable without \
                         blocking reads or writes:\n    VACUUM {table};"
                    ),
                )
            })
            .collect(),
        Stmt::Cluster { table: None } => vec![everything("CLUSTER", "every table clustered before")],
        Stmt::Cluster { table: Some(table) } if scope.scan_rules_apply(table) => vec![finding(
            format!("CLUSTER {table}"),
            table,
            format!(
                "Reorder the table online with pg_repack instead:\n    pg_repack --table={table} --order-by=<columns>"
            ),
        )],
        Stmt::AlterTable(alter) => unless_cheap(
            alter
                .actions
                .iter()
                .filter_map(|action| alter_finding(alter, action))
                .collect(),
            &alter.table,
            scope,
        ),
        _ => vec![],
    }
}

fn alter_finding(alter: &AlterTable, action: &AlterAction) -> Option<Finding> {
    let relation = &alter.table;
    let command = match alter.kind {
        RelationKind::Index => "ALTER INDEX",
        RelationKind::MaterializedView => "ALTER MATERIALIZED VIEW",
        _ => "ALTER TABLE",
    };
    match action {
        AlterAction::SetTablespace { tablespace } => {
            let tablespace = sql::ident(tablespace);
            let hint = if alter.kind == RelationKind::Index {
                format!(
                    "Move the index by rebuilding it concurrently (Postgres 14+), outside a transaction block:\n    \
                     REINDEX (TABLESPACE {tablespace}) INDEX CONCURRENTLY {relation};"
                )
            } else {
                format!(
                    "Move the table online with pg_repack instead:\n    \
                     pg_repack --table={relation} --tablespace={tablespace}"
                )
            };
            Some(finding(
                format!("{command} {relation} SET TABLESPACE {tablespace}"),
                relation,
                hint,
            ))
        }
        AlterAction::Rewrite { what } => Some(finding(
            format!("{command} {relation} {what}"),
            relation,
            format!(
                "There is no online form of {what}. Run it while {relation} is small or in a maintenance window, \
                 and if it is reviewed and accepted, say so:\n    \
                 -- safe_migrations:allow {} -- <why this is safe>",
                RULE.id
            ),
        )),
        _ => None,
    }
}

fn finding(what: String, relation: &QualifiedName, hint: String) -> Finding {
    let lock = Lock {
        level: LockLevel::AccessExclusive,
        relation: relation.clone(),
    };
    Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        Some(lock.clone()),
        format!("{what} rewrites {relation} and blocks reads and writes until it is done"),
        format!(
            "Lock: {}. It is held while every row of {relation} is copied and its indexes are rebuilt.",
            lock.describe()
        ),
        hint,
    )
}

/// VACUUM FULL or CLUSTER without a table: one table after another, each locked while copied.
fn everything(command: &str, which: &str) -> Finding {
    Finding::new(
        RULE.id,
        SQLSTATE_LOCK,
        None,
        format!("{command} without a table rewrites {which}, blocking reads and writes of each while it is copied"),
        format!(
            "{command} takes ACCESS EXCLUSIVE on each table in turn, blocking reads and writes of it while it is \
             copied and its indexes are rebuilt."
        ),
        "Name the tables that need it and rebuild them online with pg_repack (pg_repack --table=<table>), \
         or run plain VACUUM, which blocks neither reads nor writes.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    #[test]
    fn vacuum_full_err() {
        let stmt = Stmt::Vacuum {
            full: true,
            tables: vec![q("events")],
        };
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(
            finding.text(),
            "rewrite_table: VACUUM FULL events rewrites events and blocks reads and writes until it is done"
        );
        assert_eq!(
            finding.lock.unwrap().describe(),
            "ACCESS EXCLUSIVE on events, blocks reads and writes"
        );
        assert!(finding.hint.contains("pg_repack --table=events"));
        assert!(finding.hint.ends_with("VACUUM events;"));
    }

    #[test]
    fn plain_vacuum_ok() {
        let stmt = Stmt::Vacuum {
            full: false,
            tables: vec![q("events")],
        };
        assert!(findings(&RULE, stmt, &TestCatalog::default()).is_empty());
    }

    #[test]
    fn vacuum_full_of_everything_err_without_a_single_lock() {
        let stmt = Stmt::Vacuum {
            full: true,
            tables: vec![],
        };
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert_eq!(finding.lock, None);
        assert!(finding.text().contains("every table in the database"));
    }

    #[test]
    fn cluster_err_and_new_table_ok() {
        let stmt = || Stmt::Cluster {
            table: Some(q("app.Events")),
        };
        let finding = only(findings(&RULE, stmt(), &TestCatalog::default()));
        assert!(finding
            .hint
            .contains("pg_repack --table=app.\"Events\" --order-by=<columns>"));
        assert!(findings(&RULE, stmt(), &TestCatalog::default().new_table("Events")).is_empty());
        assert_eq!(
            findings(&RULE, Stmt::Cluster { table: None }, &TestCatalog::default()).len(),
            1
        );
    }

    #[test]
    fn set_tablespace_and_set_logged_in_one_alter_each_reported() {
        let stmt = alter(
            "events",
            vec![
                AlterAction::SetTablespace {
                    tablespace: "Fast".into(),
                },
                AlterAction::Rewrite {
                    what: "SET LOGGED".into(),
                },
                AlterAction::SetDefault { column: "c".into() },
            ],
        );
        let found = findings(&RULE, stmt, &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].text(),
            "rewrite_table: ALTER TABLE events SET TABLESPACE \"Fast\" rewrites events and blocks reads and writes \
             until it is done"
        );
        assert!(found[0]
            .hint
            .ends_with("pg_repack --table=events --tablespace=\"Fast\""));
        assert!(found[1]
            .text()
            .starts_with("rewrite_table: ALTER TABLE events SET LOGGED rewrites events"));
    }

    #[test]
    fn alter_index_set_tablespace_hint_is_reindex_concurrently() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("events_at_idx"),
            kind: RelationKind::Index,
            actions: vec![AlterAction::SetTablespace {
                tablespace: "fast".into(),
            }],
            ..AlterTable::default()
        });
        let finding = only(findings(&RULE, stmt, &TestCatalog::default()));
        assert!(finding
            .hint
            .ends_with("REINDEX (TABLESPACE fast) INDEX CONCURRENTLY events_at_idx;"));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let stmt = alter(
            "events",
            vec![AlterAction::Rewrite {
                what: "SET UNLOGGED".into(),
            }],
        );
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("events")).is_empty());
    }
}
