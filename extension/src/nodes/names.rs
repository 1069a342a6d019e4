//! Names out of raw parse nodes: C strings, String nodes, name lists and RangeVars,
//! exactly as the parser left them (unquoted identifiers folded, quoted ones kept).

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::PgList;
use policy::QualifiedName;

use super::cast::{as_node, node_tag};

/// A C string from a parse node, None for NULL.
///
/// Sound for NULL or a NUL-terminated string that outlives the call: any pointer the
/// parser stored in a node (allocated in a memory context that outlives the statement),
/// or a static string such as a command tag's name.
pub fn cstr(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: non-NULL, so a NUL-terminated string that outlives this call (above); it
        // is copied out before returning.
        Some(unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
    }
}

/// The nodes of a List, in order (empty for NIL).
///
/// Sound for NIL or a List of node pointers, which is what every list field we read holds.
pub fn nodes(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    // SAFETY: `list` is NIL or a List of pointers: a field of the parse tree, or the List
    // `shim::raw_function_calls` built over it (the `nodes` contract). PgList only reads
    // it; the element pointers are copied out.
    unsafe { PgList::<pg_sys::Node>::from_pg(list) }.iter_ptr().collect()
}

/// Does `node` (possibly NULL) carry `tag`?
pub fn is(node: *const pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract).
    (unsafe { node_tag(node) }) == Some(tag)
}

/// The text of a String node (a Value with a string in Postgres 13 and 14).
pub fn string_value(node: *const pg_sys::Node) -> Option<String> {
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
        // T_String node is a Value.
        let value = unsafe { as_node::<pg_sys::Value>(node, pg_sys::NodeTag::T_String) }?;
        // SAFETY: a T_String Value holds its text in `str`.
        cstr(unsafe { value.val.str_ })
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
        // T_String node is a String.
        cstr(unsafe { as_node::<pg_sys::String>(node, pg_sys::NodeTag::T_String) }?.sval)
    }
}

/// A List of String nodes as text (other nodes are skipped: `*` in a column list).
pub fn strings(list: *mut pg_sys::List) -> Vec<String> {
    nodes(list).into_iter().filter_map(|n| string_value(n)).collect()
}

/// A dotted name list (`schema.table`, `catalog.schema.table`) as a QualifiedName.
pub fn qualified(list: *mut pg_sys::List) -> QualifiedName {
    let parts = strings(list);
    match parts.as_slice() {
        [] => QualifiedName::default(),
        [name] => QualifiedName::bare(name),
        [.., schema, name] => QualifiedName::new(Some(schema), name),
    }
}

/// A RangeVar's schema and relation name.
pub fn range_var(rv: *const pg_sys::RangeVar) -> QualifiedName {
    if rv.is_null() {
        return QualifiedName::default();
    }
    // SAFETY: non-NULL, so a RangeVar of the parse tree (the `nodes` contract).
    let rv = unsafe { &*rv };
    QualifiedName {
        schema: cstr(rv.schemaname),
        name: cstr(rv.relname).unwrap_or_default(),
    }
}

/// Whether the RangeVar was written without ONLY.
pub fn recurses(rv: *const pg_sys::RangeVar) -> bool {
    // SAFETY: read only when non-NULL, so a RangeVar of the parse tree (the `nodes`
    // contract).
    rv.is_null() || unsafe { (*rv).inh }
}

/// Every RangeVar of a List of RangeVars.
pub fn range_vars(list: *mut pg_sys::List) -> Vec<QualifiedName> {
    nodes(list)
        .into_iter()
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); a
        // T_RangeVar node is a RangeVar.
        .filter_map(|n| unsafe { as_node::<pg_sys::RangeVar>(n, pg_sys::NodeTag::T_RangeVar) })
        .map(|rv| range_var(rv))
        .collect()
}

/// The name an object node of DROP / RENAME / SET SCHEMA denotes: a name list, a
/// String, a TypeName or an ObjectWithArgs.
pub fn object_name(node: *mut pg_sys::Node) -> QualifiedName {
    use pg_sys::NodeTag::*;
    // A List is itself a node: `qualified` takes the pointer as it is (nothing is read here).
    if is(node, T_List) {
        return qualified(node.cast::<pg_sys::List>());
    }
    if is(node, T_String) {
        return QualifiedName::bare(&string_value(node).unwrap_or_default());
    }
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); each tag
    // is paired with the struct parsenodes.h declares for it.
    unsafe {
        if let Some(type_name) = as_node::<pg_sys::TypeName>(node, T_TypeName) {
            qualified(type_name.names)
        } else if let Some(object) = as_node::<pg_sys::ObjectWithArgs>(node, T_ObjectWithArgs) {
            qualified(object.objname)
        } else {
            QualifiedName::default()
        }
    }
}

/// The integer in an A_Const (typmods, lock modes), if it holds one.
pub fn integer_const(node: *const pg_sys::Node) -> Option<i64> {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
    // T_A_Const node is an A_Const.
    let constant = unsafe { as_node::<pg_sys::A_Const>(node, pg_sys::NodeTag::T_A_Const) }?;
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        // SAFETY: the Value's tag says its union holds an integer.
        (constant.val.type_ == pg_sys::NodeTag::T_Integer).then(|| unsafe { constant.val.val.ival } as i64)
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        if constant.isnull {
            return None;
        }
        // SAFETY: a non-NULL constant's union holds a value node, which starts with its
        // tag.
        let tag = unsafe { constant.val.node.type_ };
        // SAFETY: that tag says the union holds an Integer.
        (tag == pg_sys::NodeTag::T_Integer).then(|| i64::from(unsafe { constant.val.ival.ival }))
    }
}

/// The text of an A_Const (strings, integers and floats as written), for SET values.
pub fn const_text(node: *const pg_sys::Node) -> Option<String> {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
    // T_A_Const node is an A_Const.
    let constant = unsafe { as_node::<pg_sys::A_Const>(node, pg_sys::NodeTag::T_A_Const) }?;
    if let Some(int) = integer_const(node) {
        return Some(int.to_string());
    }
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        // SAFETY: not an integer, so a String, Float or BitString Value, each keeping its
        // text in `str`, or a Null one, whose union makeNode zeroed (NULL for `cstr`).
        cstr(unsafe { constant.val.val.str_ })
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        if constant.isnull {
            return None;
        }
        // SAFETY: a non-NULL constant's union holds a value node, which starts with its
        // tag; each arm reads the member that tag names.
        unsafe {
            match constant.val.node.type_ {
                pg_sys::NodeTag::T_String => cstr(constant.val.sval.sval),
                pg_sys::NodeTag::T_Float => cstr(constant.val.fval.fval),
                pg_sys::NodeTag::T_Boolean => Some(if constant.val.boolval.boolval { "true" } else { "false" }.into()),
                _ => None,
            }
        }
    }
}
