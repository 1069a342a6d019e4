//! CREATE TABLE (columns, inline and table constraints, PARTITION OF) and
//! CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW.

use pgrx::pg_sys;
use policy::model::CreateTable;
use policy::Stmt;

use super::columns::{column_def, constraint};
use super::names::{is, nodes, range_var, range_vars};

pub fn create_table(stmt: &pg_sys::CreateStmt, source: &str) -> Stmt {
    let mut create = CreateTable {
        table: range_var(stmt.relation),
        // A non-NULL RangeVar from the parser.
        temporary: !stmt.relation.is_null() && unsafe { (*stmt.relation).relpersistence } as u8 == b't',
        partition_of: if stmt.partbound.is_null() {
            None
        } else {
            range_vars(stmt.inhRelations).into_iter().next()
        },
        ..CreateTable::default()
    };
    for node in nodes(stmt.tableElts).into_iter().chain(nodes(stmt.constraints)) {
        if is(node, pg_sys::NodeTag::T_ColumnDef) {
            create
                .columns
                .push(column_def(node as *const pg_sys::ColumnDef, source));
        } else if is(node, pg_sys::NodeTag::T_Constraint) {
            // Checked: a Constraint.
            create.constraints.push(constraint(
                unsafe { &*(node as *const pg_sys::Constraint) },
                None,
                source,
            ));
        }
    }
    Stmt::CreateTable(create)
}

pub fn create_table_as(stmt: &pg_sys::CreateTableAsStmt) -> Stmt {
    let table = if stmt.into.is_null() {
        Default::default()
    } else {
        // A non-NULL IntoClause from the parser.
        range_var(unsafe { (*stmt.into).rel })
    };
    Stmt::CreateTableAs {
        table,
        materialized: stmt.objtype == pg_sys::ObjectType::OBJECT_MATVIEW,
    }
}
