//! RENAME of tables, columns, constraints, schemas ... and ALTER ... SET SCHEMA.

use pgrx::pg_sys;
use policy::model::{ObjectKind, Rename, SetSchema};
use policy::{QualifiedName, Stmt};

use super::drop::object_kind;
use super::names::{cstr, object_name, range_var};

pub fn rename(stmt: &pg_sys::RenameStmt) -> Stmt {
    let kind = object_kind(stmt.renameType);
    let subname = cstr(stmt.subname);
    let (object, subname) = match kind {
        ObjectKind::Schema => (QualifiedName::bare(&subname.unwrap_or_default()), None),
        ObjectKind::Column | ObjectKind::Constraint => (range_var(stmt.relation), subname),
        _ if !stmt.relation.is_null() => (range_var(stmt.relation), subname),
        _ => (object_name(stmt.object), subname),
    };
    Stmt::Rename(Rename {
        kind,
        object,
        subname,
        new_name: cstr(stmt.newname).unwrap_or_default(),
    })
}

pub fn set_schema(stmt: &pg_sys::AlterObjectSchemaStmt) -> Stmt {
    let object = if stmt.relation.is_null() {
        object_name(stmt.object)
    } else {
        range_var(stmt.relation)
    };
    Stmt::SetSchema(SetSchema {
        kind: object_kind(stmt.objectType),
        object,
        new_schema: cstr(stmt.newschema).unwrap_or_default(),
    })
}
