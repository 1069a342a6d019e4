//! Names: RangeVar, dotted name lists and the String nodes they are made of. The
//! parser has already folded unquoted identifiers to lower case; quoted ones keep theirs.

use pg_query::protobuf::{Node, RangeVar};
use pg_query::NodeEnum;
use policy::QualifiedName;

pub fn range_var(relation: Option<&RangeVar>) -> QualifiedName {
    match relation {
        Some(relation) => QualifiedName {
            schema: (!relation.schemaname.is_empty()).then(|| relation.schemaname.clone()),
            name: relation.relname.clone(),
        },
        None => QualifiedName::default(),
    }
}

/// The string value of a String node (identifiers in name lists).
pub fn string(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(value) => Some(&value.sval),
        _ => None,
    }
}

/// Every String node of a list, in order (column lists, name lists).
pub fn strings(nodes: &[Node]) -> Vec<String> {
    nodes.iter().filter_map(string).map(str::to_owned).collect()
}

/// A dotted name list (`schema.name`, or `db.schema.name`): the last two parts.
pub fn dotted(parts: &[Node]) -> QualifiedName {
    let parts: Vec<&str> = parts.iter().filter_map(string).collect();
    match parts.as_slice() {
        [] => QualifiedName::default(),
        [name] => QualifiedName::bare(name),
        [.., schema, name] => QualifiedName::new(Some(schema), name),
    }
}

/// The name of an object in DROP, COMMENT, ALTER ... SET SCHEMA and the like: a name
/// list, a bare String, a TypeName, or a function signature.
pub fn object_name(node: &Node) -> QualifiedName {
    match node.node.as_ref() {
        Some(NodeEnum::List(list)) => dotted(&list.items),
        Some(NodeEnum::String(value)) => QualifiedName::bare(&value.sval),
        Some(NodeEnum::TypeName(type_name)) => dotted(&type_name.names),
        Some(NodeEnum::ObjectWithArgs(function)) => dotted(&function.objname),
        Some(NodeEnum::RangeVar(relation)) => range_var(Some(relation)),
        _ => QualifiedName::default(),
    }
}

/// The relations of a list of RangeVar nodes (TRUNCATE, LOCK).
pub fn range_vars(nodes: &[Node]) -> Vec<QualifiedName> {
    nodes
        .iter()
        .filter_map(|node| match node.node.as_ref()? {
            NodeEnum::RangeVar(relation) => Some(range_var(Some(relation))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::testing::stmt;
    use policy::{QualifiedName, Stmt};

    fn truncated(sql: &str) -> Vec<QualifiedName> {
        match stmt(sql) {
            Stmt::Truncate { tables } => tables,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unquoted_names_are_folded_quoted_keep_their_case() {
        assert_eq!(
            truncated(r#"TRUNCATE Orders, "Orders", public."Line Items", db.s.t"#),
            vec![
                QualifiedName::bare("orders"),
                QualifiedName::bare("Orders"),
                QualifiedName::new(Some("public"), "Line Items"),
                QualifiedName::new(Some("s"), "t"),
            ]
        );
    }
}
