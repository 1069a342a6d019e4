//! CREATE TABLE (columns, inline and table constraints, PARTITION OF) and
//! CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW.

use pgrx::pg_sys;
use policy::model::CreateTable;
use policy::Stmt;

use super::cast::as_node;
use super::columns::{column_def, constraint};
use super::names::{nodes, range_var, range_vars};

pub fn create_table(stmt: &pg_sys::CreateStmt, source: &str) -> Stmt {
    let mut create = CreateTable {
        table: range_var(stmt.relation),
        // SAFETY: read only when non-NULL, so the parse tree's RangeVar (the `nodes` contract).
        temporary: !stmt.relation.is_null() && unsafe { (*stmt.relation).relpersistence } as u8 == b't',
        partition_of: if stmt.partbound.is_null() {
            None
        } else {
            range_vars(stmt.inhRelations).into_iter().next()
        },
        if_not_exists: stmt.if_not_exists,
        ..CreateTable::default()
    };
    for node in nodes(stmt.tableElts).into_iter().chain(nodes(stmt.constraints)) {
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); each tag
        // is paired with the struct parsenodes.h declares for it.
        let (column, table_constraint) = unsafe {
            (
                as_node::<pg_sys::ColumnDef>(node, pg_sys::NodeTag::T_ColumnDef),
                as_node::<pg_sys::Constraint>(node, pg_sys::NodeTag::T_Constraint),
            )
        };
        if let Some(def) = column {
            create.columns.push(column_def(def, source));
        } else if let Some(raw) = table_constraint {
            create.constraints.push(constraint(raw, None, source));
        }
    }
    Stmt::CreateTable(create)
}

pub fn create_table_as(stmt: &pg_sys::CreateTableAsStmt) -> Stmt {
    let table = if stmt.into.is_null() {
        Default::default()
    } else {
        // SAFETY: non-NULL, so the parse tree's IntoClause (the `nodes` contract).
        range_var(unsafe { (*stmt.into).rel })
    };
    Stmt::CreateTableAs {
        table,
        materialized: stmt.objtype == pg_sys::ObjectType::OBJECT_MATVIEW,
        if_not_exists: stmt.if_not_exists,
    }
}
