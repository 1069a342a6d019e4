//! DROP of any object; DROP INDEX is its own statement kind (CONCURRENTLY).

use pgrx::pg_sys;
use policy::model::{Drop, DropIndex, ObjectKind};
use policy::Stmt;

use super::names::{nodes, object_name};

pub fn drop(stmt: &pg_sys::DropStmt) -> Stmt {
    let objects = nodes(stmt.objects).into_iter().map(object_name).collect();
    let cascade = stmt.behavior == pg_sys::DropBehavior::DROP_CASCADE;
    if stmt.removeType == pg_sys::ObjectType::OBJECT_INDEX {
        return Stmt::DropIndex(DropIndex {
            indexes: objects,
            concurrently: stmt.concurrent,
            if_exists: stmt.missing_ok,
            cascade,
        });
    }
    Stmt::Drop(Drop {
        kind: object_kind(stmt.removeType),
        objects,
        if_exists: stmt.missing_ok,
        cascade,
    })
}

/// The model's object kinds; everything it does not name is Other.
pub fn object_kind(object_type: pg_sys::ObjectType::Type) -> ObjectKind {
    use pg_sys::ObjectType::*;
    match object_type {
        OBJECT_TABLE => ObjectKind::Table,
        OBJECT_COLUMN => ObjectKind::Column,
        OBJECT_INDEX => ObjectKind::Index,
        OBJECT_VIEW => ObjectKind::View,
        OBJECT_MATVIEW => ObjectKind::MaterializedView,
        OBJECT_SEQUENCE => ObjectKind::Sequence,
        OBJECT_SCHEMA => ObjectKind::Schema,
        OBJECT_TABCONSTRAINT => ObjectKind::Constraint,
        OBJECT_TYPE | OBJECT_DOMAIN => ObjectKind::Type,
        OBJECT_FOREIGN_TABLE => ObjectKind::ForeignTable,
        _ => ObjectKind::Other,
    }
}
