//! CREATE/DROP INDEX, REINDEX and DETACH PARTITION CONCURRENTLY refuse to run inside a
//! transaction block, a multi-statement query string or a function. Saying so before the
//! statement runs beats failing halfway through a migration.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_ACTIVE_SQL_TRANSACTION};
use crate::model::{AlterAction, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "concurrently_in_transaction",
    category: Category::Lock,
    summary: "a CONCURRENTLY statement inside a transaction block fails; run it alone",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let context = scope.context;
    let place = if context.nested {
        "inside a function, procedure or DO block"
    } else if context.in_transaction_block {
        "inside a transaction block"
    } else if context.multi_statement {
        "in a query string with other statements (an implicit transaction block)"
    } else {
        return vec![];
    };
    let Some(what) = concurrent_command(&statement.stmt) else {
        return vec![];
    };
    let text = sql::one_line(&statement.source);
    let run_alone = if text.is_empty() {
        String::new()
    } else {
        format!("\n    {text};")
    };
    vec![Finding::new(
        RULE.id,
        SQLSTATE_ACTIVE_SQL_TRANSACTION,
        None,
        format!("{what} cannot run {place}"),
        format!(
            "Postgres refuses {what} {place}: it commits several transactions of its own while it waits \
             for other sessions. The statement would fail with SQLSTATE 25001."
        ),
        format!(
            "Run it as the only statement of its migration, outside a transaction block:{run_alone}\n\
             Django: atomic = False on the Migration; Rails: disable_ddl_transaction!; Ecto: \
             @disable_ddl_transaction true and @disable_migration_lock true; sqlx: -- no-transaction as the \
             first line; Alembic: with op.get_context().autocommit_block(): ...; Flyway: \
             executeInTransaction=false in the script's .conf."
        ),
    )]
}

/// The command's name when `stmt` is one of the CONCURRENTLY forms Postgres refuses in a
/// transaction block. REFRESH MATERIALIZED VIEW CONCURRENTLY runs fine in one.
pub(crate) fn concurrent_command(stmt: &Stmt) -> Option<&'static str> {
    match stmt {
        Stmt::CreateIndex(index) if index.concurrently => Some("CREATE INDEX CONCURRENTLY"),
        Stmt::DropIndex(drop) if drop.concurrently => Some("DROP INDEX CONCURRENTLY"),
        Stmt::Reindex(reindex) if reindex.concurrently => Some("REINDEX CONCURRENTLY"),
        Stmt::AlterTable(alter) => alter
            .actions
            .iter()
            .any(|action| {
                matches!(
                    action,
                    AlterAction::DetachPartition {
                        concurrently: true,
                        finalize: false,
                        ..
                    }
                )
            })
            .then_some("ALTER TABLE ... DETACH PARTITION CONCURRENTLY"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, CreateIndex, DropIndex, Reindex, ReindexTarget};
    use crate::rules::testing::*;

    fn cic() -> Stmt {
        Stmt::CreateIndex(CreateIndex {
            name: Some("orders_status_idx".into()),
            table: q("orders"),
            concurrently: true,
            ..CreateIndex::default()
        })
    }

    fn in_transaction() -> Context {
        Context {
            in_transaction_block: true,
            ..Context::default()
        }
    }

    #[test]
    fn create_index_concurrently_in_transaction_block_err() {
        let settings = enforce();
        let (context, catalog) = (in_transaction(), TestCatalog::default());
        let scope = Scope::new(&context, &catalog, &settings);
        let source = "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);";
        let finding = only((RULE.check)(&statement(cic(), source), &scope));
        assert_eq!(
            finding.text(),
            "concurrently_in_transaction: CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
        );
        assert_eq!(finding.sqlstate, "25001");
        assert_eq!(finding.lock, None);
        assert!(finding
            .hint
            .contains("\n    CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);\n"));
        assert!(finding.hint.contains("disable_ddl_transaction!"));
    }

    #[test]
    fn create_index_concurrently_alone_ok() {
        assert!(findings(&RULE, cic(), &TestCatalog::default()).is_empty());
    }

    #[test]
    fn multi_statement_query_string_err() {
        let context = Context {
            multi_statement: true,
            ..Context::default()
        };
        let finding = only(findings_in(&RULE, cic(), &TestCatalog::default(), &context));
        assert!(finding.text().ends_with("(an implicit transaction block)"));
    }

    #[test]
    fn inside_a_function_err() {
        let context = Context {
            nested: true,
            ..Context::default()
        };
        let finding = only(findings_in(&RULE, cic(), &TestCatalog::default(), &context));
        assert!(finding.text().ends_with("inside a function, procedure or DO block"));
    }

    #[test]
    fn new_table_is_no_exemption() {
        let catalog = TestCatalog::default().new_table("orders");
        assert_eq!(findings_in(&RULE, cic(), &catalog, &in_transaction()).len(), 1);
    }

    #[test]
    fn drop_index_reindex_and_detach_concurrently_in_transaction_err() {
        let drop = Stmt::DropIndex(DropIndex {
            indexes: vec![q("i")],
            concurrently: true,
            ..DropIndex::default()
        });
        let reindex = Stmt::Reindex(Reindex {
            target: ReindexTarget::Index,
            name: Some(q("i")),
            concurrently: true,
        });
        let detach = alter(
            "measurements",
            vec![AlterAction::DetachPartition {
                partition: q("m_2020"),
                concurrently: true,
                finalize: false,
            }],
        );
        for stmt in [drop, reindex, detach] {
            assert_eq!(
                findings_in(&RULE, stmt, &TestCatalog::default(), &in_transaction()).len(),
                1
            );
        }
    }

    #[test]
    fn refresh_concurrently_and_plain_create_index_in_transaction_ok() {
        let refresh = Stmt::RefreshMaterializedView {
            view: q("v"),
            concurrently: true,
        };
        let plain = Stmt::CreateIndex(CreateIndex {
            table: q("orders"),
            ..CreateIndex::default()
        });
        for stmt in [refresh, plain] {
            assert!(findings_in(&RULE, stmt, &TestCatalog::default(), &in_transaction()).is_empty());
        }
    }
}
