//! Column types as written (`varchar(50)`, `numeric(10,2)[]`, `public.mood`) to the
//! policy's canonical `TypeName`.

use pg_query::protobuf::{a_const, Node, TypeName as PgTypeName};
use pg_query::NodeEnum;
use policy::TypeName;

use super::names;

pub fn type_name(type_name: Option<&PgTypeName>) -> TypeName {
    let Some(type_name) = type_name else {
        return TypeName::default();
    };
    let parts: Vec<&str> = type_name.names.iter().filter_map(names::string).collect();
    let modifiers = type_name.typmods.iter().filter_map(integer_modifier).collect();
    TypeName::from_parts(&parts, modifiers, !type_name.array_bounds.is_empty())
}

/// A type modifier: an integer constant (`varchar(50)`, `interval(3)`'s range mask).
fn integer_modifier(node: &Node) -> Option<i64> {
    match node.node.as_ref()? {
        NodeEnum::AConst(constant) => match constant.val.as_ref()? {
            a_const::Val::Ival(value) => Some(i64::from(value.ival)),
            _ => None,
        },
        NodeEnum::Integer(value) => Some(i64::from(value.ival)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::stmt;
    use policy::model::{AlterAction, ColumnDef};
    use policy::{Stmt, TypeName};

    fn added_type(column_sql: &str) -> TypeName {
        match stmt(&format!("ALTER TABLE t ADD COLUMN {column_sql}")) {
            Stmt::AlterTable(alter) => match &alter.actions[..] {
                [AlterAction::AddColumn {
                    column: ColumnDef { type_name, .. },
                    ..
                }] => type_name.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn ty(names: &[&str], modifiers: &[i64], array: bool) -> TypeName {
        TypeName::from_parts(names, modifiers.to_vec(), array)
    }

    #[test]
    fn sql_spellings_become_canonical_names() {
        assert_eq!(added_type("c varchar(50)"), ty(&["varchar"], &[50], false));
        assert_eq!(added_type("c character varying(50)"), ty(&["varchar"], &[50], false));
        assert_eq!(added_type("c integer"), ty(&["int4"], &[], false));
        assert_eq!(added_type("c bigint"), ty(&["int8"], &[], false));
        assert_eq!(added_type("c numeric(10, 2)"), ty(&["numeric"], &[10, 2], false));
        assert_eq!(added_type("c DECIMAL(12,2)"), ty(&["numeric"], &[12, 2], false));
        assert_eq!(
            added_type("c timestamp with time zone"),
            ty(&["timestamptz"], &[], false)
        );
        assert_eq!(added_type("c timestamp(3)"), ty(&["timestamp"], &[3], false));
        assert_eq!(added_type("c double precision"), ty(&["float8"], &[], false));
        assert_eq!(added_type("c boolean"), ty(&["bool"], &[], false));
        assert_eq!(added_type("c text"), ty(&["text"], &[], false));
        assert_eq!(added_type("c json"), ty(&["json"], &[], false));
    }

    #[test]
    fn interval_without_fields_has_no_modifiers() {
        assert_eq!(added_type("c interval"), ty(&["interval"], &[], false));
        assert_eq!(added_type("c interval(3)").modifiers.len(), 2);
    }

    #[test]
    fn arrays_serials_and_schema_qualified_types() {
        assert_eq!(added_type("c text[]"), ty(&["text"], &[], true));
        assert_eq!(added_type("c integer ARRAY"), ty(&["int4"], &[], true));
        assert!(added_type("c bigserial").is_serial());
        assert_eq!(added_type(r#"c public."Mood""#), ty(&["public", "Mood"], &[], false));
    }
}
