//! CREATE INDEX, DROP INDEX (in drop.rs) and REINDEX.

use pgrx::pg_sys;
use policy::model::{CreateIndex, Reindex, ReindexTarget};
use policy::{QualifiedName, Stmt};

use super::names::{cstr, range_var, recurses};
use super::options::flag_option;

pub fn create_index(stmt: &pg_sys::IndexStmt) -> Stmt {
    Stmt::CreateIndex(CreateIndex {
        name: cstr(stmt.idxname),
        table: range_var(stmt.relation),
        unique: stmt.unique || stmt.primary,
        concurrently: stmt.concurrent,
        if_not_exists: stmt.if_not_exists,
        only: !recurses(stmt.relation),
    })
}

pub fn reindex(stmt: &pg_sys::ReindexStmt) -> Stmt {
    let target = match stmt.kind {
        pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX => ReindexTarget::Index,
        pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE => ReindexTarget::Table,
        pg_sys::ReindexObjectType::REINDEX_OBJECT_SCHEMA => ReindexTarget::Schema,
        pg_sys::ReindexObjectType::REINDEX_OBJECT_SYSTEM => ReindexTarget::System,
        _ => ReindexTarget::Database,
    };
    let name = if stmt.relation.is_null() {
        cstr(stmt.name).map(|name| QualifiedName::bare(&name))
    } else {
        Some(range_var(stmt.relation))
    };
    #[cfg(feature = "pg13")]
    let concurrently = stmt.concurrent;
    #[cfg(not(feature = "pg13"))]
    let concurrently = flag_option(stmt.params, "concurrently");
    Stmt::Reindex(Reindex {
        target,
        name,
        concurrently,
    })
}
