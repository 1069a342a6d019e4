//! ALTER ... RENAME (tables, columns, constraints, indexes, schemas, types ...) and
//! ALTER ... SET SCHEMA.

use pg_query::protobuf::{self, ObjectType};
use policy::model::{ObjectKind, Rename, SetSchema};
use policy::{QualifiedName, Stmt};

use super::{drop::object_kind, names};

pub fn rename(rename: &protobuf::RenameStmt) -> Stmt {
    let subname = (!rename.subname.is_empty()).then(|| rename.subname.clone());
    let (kind, object, subname) = match rename.rename_type() {
        // ALTER SCHEMA old RENAME TO new: the schema's name is in subname.
        ObjectType::ObjectSchema => (ObjectKind::Schema, QualifiedName::bare(&rename.subname), None),
        object_type => (object_kind(object_type), object(rename), subname),
    };
    Stmt::Rename(Rename {
        kind,
        object,
        subname,
        new_name: rename.newname.clone(),
    })
}

pub fn set_schema(set_schema: &protobuf::AlterObjectSchemaStmt) -> Stmt {
    let object = match &set_schema.relation {
        Some(relation) => names::range_var(Some(relation)),
        None => set_schema.object.as_deref().map(names::object_name).unwrap_or_default(),
    };
    Stmt::SetSchema(SetSchema {
        kind: object_kind(set_schema.object_type()),
        object,
        new_schema: set_schema.newschema.clone(),
    })
}

/// The relation for relation-level renames, the named object for the others.
fn object(rename: &protobuf::RenameStmt) -> QualifiedName {
    match &rename.relation {
        Some(relation) => names::range_var(Some(relation)),
        None => rename.object.as_deref().map(names::object_name).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;

    fn renamed(sql: &str) -> Rename {
        match stmt(sql) {
            Stmt::Rename(rename) => rename,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rename_column_table_constraint_index() {
        assert_eq!(
            renamed(r#"ALTER TABLE "public"."Users" RENAME COLUMN "Email" TO "email_address""#),
            Rename {
                kind: ObjectKind::Column,
                object: QualifiedName::new(Some("public"), "Users"),
                subname: Some("Email".into()),
                new_name: "email_address".into(),
            }
        );
        assert_eq!(
            renamed("ALTER TABLE IF EXISTS users RENAME TO accounts"),
            Rename {
                kind: ObjectKind::Table,
                object: QualifiedName::bare("users"),
                subname: None,
                new_name: "accounts".into(),
            }
        );
        let constraint = renamed("ALTER TABLE users RENAME CONSTRAINT users_fk TO users_org_fk");
        assert_eq!(constraint.kind, ObjectKind::Constraint);
        assert_eq!(constraint.subname.as_deref(), Some("users_fk"));
        assert_eq!(
            renamed("ALTER INDEX users_email RENAME TO users_email_idx").kind,
            ObjectKind::Index
        );
        assert_eq!(renamed("ALTER VIEW v RENAME TO w").kind, ObjectKind::View);
        assert_eq!(
            renamed("ALTER MATERIALIZED VIEW v RENAME TO w").kind,
            ObjectKind::MaterializedView
        );
        assert_eq!(renamed("ALTER SEQUENCE s RENAME TO t").kind, ObjectKind::Sequence);
    }

    #[test]
    fn rename_schema_and_type() {
        assert_eq!(
            renamed("ALTER SCHEMA legacy RENAME TO archive"),
            Rename {
                kind: ObjectKind::Schema,
                object: QualifiedName::bare("legacy"),
                subname: None,
                new_name: "archive".into(),
            }
        );
        let rename = renamed("ALTER TYPE public.mood RENAME TO feeling");
        assert_eq!(rename.kind, ObjectKind::Type);
        assert_eq!(rename.object, QualifiedName::new(Some("public"), "mood"));
        assert_eq!(renamed("ALTER FUNCTION f(int) RENAME TO g").kind, ObjectKind::Other);
    }

    #[test]
    fn set_schema_of_tables_and_types() {
        assert_eq!(
            stmt("ALTER TABLE IF EXISTS public.orders SET SCHEMA archive"),
            Stmt::SetSchema(SetSchema {
                kind: ObjectKind::Table,
                object: QualifiedName::new(Some("public"), "orders"),
                new_schema: "archive".into(),
            })
        );
        assert_eq!(
            stmt("ALTER TYPE mood SET SCHEMA app"),
            Stmt::SetSchema(SetSchema {
                kind: ObjectKind::Type,
                object: QualifiedName::bare("mood"),
                new_schema: "app".into(),
            })
        );
    }
}
