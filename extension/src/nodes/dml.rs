//! INSERT, UPDATE, DELETE, MERGE, and a SELECT whose WITH writes: the tables each writes,
//! the statement's own target first, then the data-modifying CTEs of its WITH in order
//! (PostgreSQL allows them only there). Mirrors parse/src/dml.rs.

use pgrx::pg_sys;
use pgrx::pg_sys::NodeTag::*;
use policy::model::{DmlWrite, WriteKind};
use policy::Stmt;

use super::cast::as_node;
use super::names::{nodes, range_var};

/// The model of `node` when it writes a table; None for anything else.
pub fn dml(node: *mut pg_sys::Node) -> Option<Stmt> {
    let writes = writes(node);
    (!writes.is_empty()).then_some(Stmt::Dml(writes))
}

fn writes(node: *mut pg_sys::Node) -> Vec<DmlWrite> {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); each
    // `as_node` pairs a tag with the struct parsenodes.h declares for it.
    let (own, with, select_with) = unsafe {
        if let Some(insert) = as_node::<pg_sys::InsertStmt>(node, T_InsertStmt) {
            let select = as_node::<pg_sys::SelectStmt>(insert.selectStmt, T_SelectStmt);
            let kind = match select {
                Some(select) if !carries_its_rows(select) => WriteKind::InsertSelect,
                _ => WriteKind::InsertValues,
            };
            // INSERT ... WITH ... SELECT: the SELECT's WITH runs for the INSERT.
            (
                Some(write(insert.relation, kind)),
                insert.withClause,
                select.map_or(std::ptr::null_mut(), |select| select.withClause),
            )
        } else if let Some(update) = as_node::<pg_sys::UpdateStmt>(node, T_UpdateStmt) {
            (
                Some(write(update.relation, WriteKind::Update)),
                update.withClause,
                std::ptr::null_mut(),
            )
        } else if let Some(delete) = as_node::<pg_sys::DeleteStmt>(node, T_DeleteStmt) {
            (
                Some(write(delete.relation, WriteKind::Delete)),
                delete.withClause,
                std::ptr::null_mut(),
            )
        } else if let Some((relation, with, inserts_only)) = merge(node) {
            let kind = if inserts_only {
                WriteKind::MergeInsert
            } else {
                WriteKind::Merge
            };
            (Some(write(relation, kind)), with, std::ptr::null_mut())
        } else if let Some(select) = as_node::<pg_sys::SelectStmt>(node, T_SelectStmt) {
            (None, select.withClause, std::ptr::null_mut())
        } else {
            return Vec::new();
        }
    };
    let mut writes: Vec<DmlWrite> = own.into_iter().collect();
    for with in [with, select_with] {
        if with.is_null() {
            continue;
        }
        // SAFETY: a non-NULL WithClause of the parse tree (the `nodes` contract).
        let ctes = unsafe { (*with).ctes };
        for cte in nodes(ctes) {
            // SAFETY: an element of the WITH's list, a CommonTableExpr of the parse tree.
            if let Some(cte) = unsafe { as_node::<pg_sys::CommonTableExpr>(cte, T_CommonTableExpr) } {
                writes.extend(self::writes(cte.ctequery));
            }
        }
    }
    writes
}

/// MERGE's target and WITH (PostgreSQL 15 and later), and whether its every WHEN clause
/// is for source rows the target lacks (it only inserts).
///
/// # Safety
/// `node` is NULL or a node of the parse tree (the `nodes` contract).
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
unsafe fn merge(node: *mut pg_sys::Node) -> Option<(*mut pg_sys::RangeVar, *mut pg_sys::WithClause, bool)> {
    // SAFETY: the caller's contract; T_MergeStmt is a MergeStmt.
    let merge = unsafe { as_node::<pg_sys::MergeStmt>(node, T_MergeStmt) }?;
    let inserts_only = nodes(merge.mergeWhenClauses).into_iter().all(|clause| {
        // SAFETY: an element of the MERGE's WHEN list, a MergeWhenClause of the tree.
        unsafe { as_node::<pg_sys::MergeWhenClause>(clause, T_MergeWhenClause) }.is_some_and(not_matched_by_target)
    });
    Some((merge.relation, merge.withClause, inserts_only))
}

#[cfg(any(feature = "pg15", feature = "pg16"))]
fn not_matched_by_target(clause: &pg_sys::MergeWhenClause) -> bool {
    !clause.matched
}

#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16")))]
fn not_matched_by_target(clause: &pg_sys::MergeWhenClause) -> bool {
    clause.matchKind == pg_sys::MergeMatchKind::MERGE_WHEN_NOT_MATCHED_BY_TARGET
}

/// # Safety
/// Nothing to uphold: there is no MERGE before PostgreSQL 15.
#[cfg(any(feature = "pg13", feature = "pg14"))]
unsafe fn merge(_: *mut pg_sys::Node) -> Option<(*mut pg_sys::RangeVar, *mut pg_sys::WithClause, bool)> {
    None
}

fn write(relation: *mut pg_sys::RangeVar, kind: WriteKind) -> DmlWrite {
    DmlWrite {
        table: range_var(relation),
        kind,
    }
}

/// VALUES, or a SELECT of constants (no FROM, no WITH, no set operation): rows the
/// statement carries itself rather than reads from tables.
fn carries_its_rows(select: &pg_sys::SelectStmt) -> bool {
    !select.valuesLists.is_null()
        || (select.fromClause.is_null() && select.withClause.is_null() && select.op == pg_sys::SetOperation::SETOP_NONE)
}
