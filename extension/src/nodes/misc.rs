//! TRUNCATE, VACUUM, CLUSTER, LOCK, REFRESH MATERIALIZED VIEW, transaction control,
//! SET / RESET and DISCARD.

use pgrx::pg_sys;
use policy::model::{SetSetting, TransactionKind};
use policy::Stmt;

use super::cast::as_node;
use super::names::{const_text, cstr, nodes, range_var, range_vars, string_value};
use super::options::flag_option;
use policy::LockLevel;

pub fn truncate(stmt: &pg_sys::TruncateStmt) -> Stmt {
    Stmt::Truncate {
        tables: range_vars(stmt.relations),
    }
}

/// VACUUM [FULL]; ANALYZE alone changes no schema and takes SHARE UPDATE EXCLUSIVE.
pub fn vacuum(stmt: &pg_sys::VacuumStmt) -> Stmt {
    if !stmt.is_vacuumcmd {
        return Stmt::Other {
            tag: "ANALYZE".into(),
            ddl: false,
        };
    }
    let tables = nodes(stmt.rels)
        .into_iter()
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); a
        // T_VacuumRelation node is a VacuumRelation.
        .filter_map(|node| unsafe { as_node::<pg_sys::VacuumRelation>(node, pg_sys::NodeTag::T_VacuumRelation) })
        .map(|relation| range_var(relation.relation))
        .collect();
    Stmt::Vacuum {
        full: flag_option(stmt.options, "full"),
        tables,
    }
}

pub fn cluster(stmt: &pg_sys::ClusterStmt) -> Stmt {
    Stmt::Cluster {
        table: (!stmt.relation.is_null()).then(|| range_var(stmt.relation)),
    }
}

pub fn lock(stmt: &pg_sys::LockStmt) -> Stmt {
    Stmt::Lock {
        tables: range_vars(stmt.relations),
        mode: LockLevel::from_lockmode(stmt.mode),
    }
}

pub fn refresh(stmt: &pg_sys::RefreshMatViewStmt) -> Stmt {
    Stmt::RefreshMaterializedView {
        view: range_var(stmt.relation),
        concurrently: stmt.concurrent,
    }
}

pub fn transaction(stmt: &pg_sys::TransactionStmt) -> Stmt {
    use pg_sys::TransactionStmtKind::*;
    let savepoint = cstr(stmt.savepoint_name).unwrap_or_default();
    Stmt::Transaction(match stmt.kind {
        TRANS_STMT_BEGIN | TRANS_STMT_START => TransactionKind::Begin,
        TRANS_STMT_COMMIT => TransactionKind::Commit,
        TRANS_STMT_ROLLBACK => TransactionKind::Rollback,
        TRANS_STMT_SAVEPOINT => TransactionKind::Savepoint(savepoint),
        TRANS_STMT_RELEASE => TransactionKind::Release(savepoint),
        TRANS_STMT_ROLLBACK_TO => TransactionKind::RollbackToSavepoint(savepoint),
        TRANS_STMT_PREPARE => TransactionKind::Prepare,
        TRANS_STMT_COMMIT_PREPARED => TransactionKind::CommitPrepared,
        _ => TransactionKind::RollbackPrepared,
    })
}

/// SET / SET LOCAL / RESET / RESET ALL; the value as text, list items joined by ", ".
pub fn variable_set(stmt: &pg_sys::VariableSetStmt) -> Stmt {
    use pg_sys::VariableSetKind::*;
    let name = cstr(stmt.name).map(|name| name.to_ascii_lowercase());
    let value = match stmt.kind {
        VAR_SET_VALUE | VAR_SET_MULTI => {
            let parts: Vec<String> = nodes(stmt.args).into_iter().filter_map(set_argument).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        _ => None,
    };
    Stmt::Set(SetSetting {
        name: if stmt.kind == VAR_RESET_ALL { None } else { name },
        value,
        local: stmt.is_local,
    })
}

/// One SET argument: a constant, or a constant cast to a type (`SET x = interval '1s'`).
fn set_argument(node: *mut pg_sys::Node) -> Option<String> {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
    // T_TypeCast node is a TypeCast.
    if let Some(cast) = unsafe { as_node::<pg_sys::TypeCast>(node, pg_sys::NodeTag::T_TypeCast) } {
        return set_argument(cast.arg);
    }
    const_text(node).or_else(|| string_value(node))
}

pub fn discard(stmt: &pg_sys::DiscardStmt) -> Stmt {
    Stmt::Discard {
        all: stmt.target == pg_sys::DiscardMode::DISCARD_ALL,
    }
}
