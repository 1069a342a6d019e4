//! Table maintenance and explicit locking: TRUNCATE, VACUUM / ANALYZE, CLUSTER, LOCK
//! TABLE, REFRESH MATERIALIZED VIEW.

use pg_query::protobuf;
use pg_query::NodeEnum;
use policy::{LockLevel, Stmt};

use super::{names, options};

pub fn truncate(truncate: &protobuf::TruncateStmt) -> Stmt {
    Stmt::Truncate {
        tables: names::range_vars(&truncate.relations),
    }
}

/// VACUUM and ANALYZE (`is_vacuumcmd` false) share one node.
pub fn vacuum(vacuum: &protobuf::VacuumStmt) -> Stmt {
    if !vacuum.is_vacuumcmd {
        return Stmt::Other {
            tag: "ANALYZE".into(),
            ddl: false,
        };
    }
    let tables = vacuum
        .rels
        .iter()
        .filter_map(|node| match node.node.as_ref()? {
            NodeEnum::VacuumRelation(relation) => Some(names::range_var(relation.relation.as_ref())),
            _ => None,
        })
        .collect();
    Stmt::Vacuum {
        full: options::enabled(&vacuum.options, "full"),
        tables,
    }
}

pub fn cluster(cluster: &protobuf::ClusterStmt) -> Stmt {
    Stmt::Cluster {
        table: cluster
            .relation
            .as_ref()
            .map(|relation| names::range_var(Some(relation))),
    }
}

pub fn lock(lock: &protobuf::LockStmt) -> Stmt {
    Stmt::Lock {
        tables: names::range_vars(&lock.relations),
        mode: LockLevel::from_lockmode(lock.mode),
    }
}

pub fn refresh(refresh: &protobuf::RefreshMatViewStmt) -> Stmt {
    Stmt::RefreshMaterializedView {
        view: names::range_var(refresh.relation.as_ref()),
        concurrently: refresh.concurrent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;
    use policy::QualifiedName;

    #[test]
    fn truncate_several_tables() {
        assert_eq!(
            stmt(r#"TRUNCATE TABLE ONLY "Logs", audit.events RESTART IDENTITY CASCADE"#),
            Stmt::Truncate {
                tables: vec![QualifiedName::bare("Logs"), QualifiedName::new(Some("audit"), "events")]
            }
        );
    }

    #[test]
    fn vacuum_full_in_both_spellings_and_analyze() {
        let full = |sql: &str| match stmt(sql) {
            Stmt::Vacuum { full, .. } => full,
            other => panic!("{other:?}"),
        };
        assert!(full("VACUUM FULL orders"));
        assert!(full("VACUUM (FULL, ANALYZE) orders"));
        assert!(full("VACUUM (VERBOSE, FULL true) orders"));
        assert!(!full("VACUUM (FULL false) orders"));
        assert!(!full("VACUUM ANALYZE orders"));
        assert_eq!(
            stmt("ANALYZE orders"),
            Stmt::Other {
                tag: "ANALYZE".into(),
                ddl: false
            }
        );
        assert_eq!(
            stmt("VACUUM FULL public.orders, items"),
            Stmt::Vacuum {
                full: true,
                tables: vec![
                    QualifiedName::new(Some("public"), "orders"),
                    QualifiedName::bare("items")
                ]
            }
        );
        assert_eq!(
            stmt("VACUUM"),
            Stmt::Vacuum {
                full: false,
                tables: vec![]
            }
        );
    }

    #[test]
    fn cluster_with_and_without_table() {
        assert_eq!(
            stmt("CLUSTER orders USING orders_created_idx"),
            Stmt::Cluster {
                table: Some(QualifiedName::bare("orders"))
            }
        );
        assert_eq!(stmt("CLUSTER"), Stmt::Cluster { table: None });
    }

    #[test]
    fn lock_modes() {
        let mode = |sql: &str| match stmt(sql) {
            Stmt::Lock { mode, .. } => mode,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            mode(r#"LOCK TABLE "schema_migrations" IN SHARE UPDATE EXCLUSIVE MODE"#),
            LockLevel::ShareUpdateExclusive
        );
        assert_eq!(mode("LOCK orders"), LockLevel::AccessExclusive);
        assert_eq!(mode("LOCK TABLE orders IN ACCESS SHARE MODE"), LockLevel::AccessShare);
        assert_eq!(mode("LOCK TABLE orders IN ROW SHARE MODE"), LockLevel::RowShare);
        assert_eq!(mode("LOCK TABLE orders IN ROW EXCLUSIVE MODE"), LockLevel::RowExclusive);
        assert_eq!(mode("LOCK TABLE orders IN SHARE MODE NOWAIT"), LockLevel::Share);
        assert_eq!(
            mode("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE"),
            LockLevel::ShareRowExclusive
        );
        assert_eq!(mode("LOCK TABLE orders IN EXCLUSIVE MODE"), LockLevel::Exclusive);
        assert_eq!(
            stmt("LOCK TABLE a, s.b IN ACCESS EXCLUSIVE MODE"),
            Stmt::Lock {
                tables: vec![QualifiedName::bare("a"), QualifiedName::new(Some("s"), "b")],
                mode: LockLevel::AccessExclusive
            }
        );
    }

    #[test]
    fn refresh_materialized_view() {
        assert_eq!(
            stmt("REFRESH MATERIALIZED VIEW CONCURRENTLY reports.daily"),
            Stmt::RefreshMaterializedView {
                view: QualifiedName::new(Some("reports"), "daily"),
                concurrently: true
            }
        );
        assert_eq!(
            stmt("REFRESH MATERIALIZED VIEW daily WITH NO DATA"),
            Stmt::RefreshMaterializedView {
                view: QualifiedName::bare("daily"),
                concurrently: false
            }
        );
    }
}
