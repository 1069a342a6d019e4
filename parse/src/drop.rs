//! DROP of any object: DROP INDEX is its own statement in the model, everything else is
//! `Stmt::Drop` with the object kind.

use pg_query::protobuf::{self, DropBehavior, ObjectType};
use policy::model::{Drop, DropIndex, ObjectKind};
use policy::Stmt;

use super::names;

pub fn drop(drop: &protobuf::DropStmt) -> Stmt {
    let objects = drop.objects.iter().map(names::object_name).collect();
    let cascade = drop.behavior() == DropBehavior::DropCascade;
    match drop.remove_type() {
        ObjectType::ObjectIndex => Stmt::DropIndex(DropIndex {
            indexes: objects,
            concurrently: drop.concurrent,
            if_exists: drop.missing_ok,
            cascade,
        }),
        object_type => Stmt::Drop(Drop {
            kind: object_kind(object_type),
            objects,
            if_exists: drop.missing_ok,
            cascade,
        }),
    }
}

/// The model's kind for a Postgres object type.
pub fn object_kind(object_type: ObjectType) -> ObjectKind {
    match object_type {
        ObjectType::ObjectTable => ObjectKind::Table,
        ObjectType::ObjectColumn => ObjectKind::Column,
        ObjectType::ObjectIndex => ObjectKind::Index,
        ObjectType::ObjectView => ObjectKind::View,
        ObjectType::ObjectMatview => ObjectKind::MaterializedView,
        ObjectType::ObjectSequence => ObjectKind::Sequence,
        ObjectType::ObjectSchema => ObjectKind::Schema,
        ObjectType::ObjectTabconstraint => ObjectKind::Constraint,
        ObjectType::ObjectType | ObjectType::ObjectDomain => ObjectKind::Type,
        ObjectType::ObjectForeignTable => ObjectKind::ForeignTable,
        _ => ObjectKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;
    use policy::QualifiedName;

    fn dropped(sql: &str) -> Drop {
        match stmt(sql) {
            Stmt::Drop(drop) => drop,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drop_index_concurrently_if_exists_cascade() {
        assert_eq!(
            stmt(r#"DROP INDEX CONCURRENTLY IF EXISTS "public"."Users_email", other CASCADE"#),
            Stmt::DropIndex(DropIndex {
                indexes: vec![
                    QualifiedName::new(Some("public"), "Users_email"),
                    QualifiedName::bare("other")
                ],
                concurrently: true,
                if_exists: true,
                cascade: true,
            })
        );
        assert_eq!(
            stmt("DROP INDEX i"),
            Stmt::DropIndex(DropIndex {
                indexes: vec![QualifiedName::bare("i")],
                ..DropIndex::default()
            })
        );
    }

    #[test]
    fn drop_tables_and_relations() {
        assert_eq!(
            dropped(r#"DROP TABLE IF EXISTS "Orders", shop.items CASCADE"#),
            Drop {
                kind: ObjectKind::Table,
                objects: vec![QualifiedName::bare("Orders"), QualifiedName::new(Some("shop"), "items")],
                if_exists: true,
                cascade: true,
            }
        );
        assert_eq!(dropped("DROP VIEW v").kind, ObjectKind::View);
        assert_eq!(dropped("DROP MATERIALIZED VIEW mv").kind, ObjectKind::MaterializedView);
        assert_eq!(dropped("DROP SEQUENCE s").kind, ObjectKind::Sequence);
        assert_eq!(dropped("DROP FOREIGN TABLE f").kind, ObjectKind::ForeignTable);
    }

    #[test]
    fn drop_schema_type_and_other_objects() {
        assert_eq!(
            dropped("DROP SCHEMA legacy CASCADE"),
            Drop {
                kind: ObjectKind::Schema,
                objects: vec![QualifiedName::bare("legacy")],
                if_exists: false,
                cascade: true,
            }
        );
        assert_eq!(
            dropped("DROP TYPE IF EXISTS public.mood").objects,
            vec![QualifiedName::new(Some("public"), "mood")]
        );
        assert_eq!(dropped("DROP DOMAIN email").kind, ObjectKind::Type);
        let function = dropped("DROP FUNCTION app.touch(integer)");
        assert_eq!(function.kind, ObjectKind::Other);
        assert_eq!(function.objects, vec![QualifiedName::new(Some("app"), "touch")]);
        assert_eq!(dropped("DROP TRIGGER audit ON orders").kind, ObjectKind::Other);
        assert_eq!(dropped("DROP EXTENSION pgcrypto").kind, ObjectKind::Other);
    }
}
