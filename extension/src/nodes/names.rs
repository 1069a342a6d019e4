//! Names out of raw parse nodes: C strings, String nodes, name lists and RangeVars,
//! exactly as the parser left them (unquoted identifiers folded, quoted ones kept).

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::PgList;
use policy::QualifiedName;

/// A C string from a parse node, None for NULL.
///
/// Sound for any pointer the parser stored in a node: NULL or a NUL-terminated string
/// allocated in a memory context that outlives the statement.
pub fn cstr(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        None
    } else {
        Some(unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
    }
}

/// The nodes of a List, in order (empty for NIL).
///
/// Sound for NIL or a List of node pointers, which is what every list field we read holds.
pub fn nodes(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    unsafe { PgList::<pg_sys::Node>::from_pg(list) }.iter_ptr().collect()
}

/// Does `node` (possibly NULL) carry `tag`?
pub fn is(node: *const pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // Every node starts with its NodeTag, so reading it through a non-NULL node pointer is sound.
    !node.is_null() && unsafe { (*node).type_ } == tag
}

/// The text of a String node (a Value with a string in Postgres 13 and 14).
pub fn string_value(node: *const pg_sys::Node) -> Option<String> {
    if !is(node, pg_sys::NodeTag::T_String) {
        return None;
    }
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        // Checked above: the node is a Value holding a string.
        cstr(unsafe { (*(node as *const pg_sys::Value)).val.str_ })
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        // Checked above: the node is a String.
        cstr(unsafe { (*(node as *const pg_sys::String)).sval })
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
    // A non-NULL RangeVar from the parser.
    let rv = unsafe { &*rv };
    QualifiedName {
        schema: cstr(rv.schemaname),
        name: cstr(rv.relname).unwrap_or_default(),
    }
}

/// Whether the RangeVar was written without ONLY.
pub fn recurses(rv: *const pg_sys::RangeVar) -> bool {
    // A non-NULL RangeVar from the parser.
    rv.is_null() || unsafe { (*rv).inh }
}

/// Every RangeVar of a List of RangeVars.
pub fn range_vars(list: *mut pg_sys::List) -> Vec<QualifiedName> {
    nodes(list)
        .into_iter()
        .filter(|n| is(*n, pg_sys::NodeTag::T_RangeVar))
        .map(|n| range_var(n as *const pg_sys::RangeVar))
        .collect()
}

/// The name an object node of DROP / RENAME / SET SCHEMA denotes: a name list, a
/// String, a TypeName or an ObjectWithArgs.
pub fn object_name(node: *mut pg_sys::Node) -> QualifiedName {
    use pg_sys::NodeTag::*;
    if is(node, T_List) {
        qualified(node as *mut pg_sys::List)
    } else if is(node, T_String) {
        QualifiedName::bare(&string_value(node).unwrap_or_default())
    } else if is(node, T_TypeName) {
        // Checked: a TypeName.
        qualified(unsafe { (*(node as *const pg_sys::TypeName)).names })
    } else if is(node, T_ObjectWithArgs) {
        // Checked: an ObjectWithArgs.
        qualified(unsafe { (*(node as *const pg_sys::ObjectWithArgs)).objname })
    } else {
        QualifiedName::default()
    }
}

/// The integer in an A_Const (typmods, lock modes), if it holds one.
pub fn integer_const(node: *const pg_sys::Node) -> Option<i64> {
    if !is(node, pg_sys::NodeTag::T_A_Const) {
        return None;
    }
    // Checked: an A_Const; its value union is tagged by its own NodeTag.
    let constant = unsafe { &*(node as *const pg_sys::A_Const) };
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        (constant.val.type_ == pg_sys::NodeTag::T_Integer).then(|| unsafe { constant.val.val.ival } as i64)
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        let tag = unsafe { constant.val.node.type_ };
        (!constant.isnull && tag == pg_sys::NodeTag::T_Integer).then(|| i64::from(unsafe { constant.val.ival.ival }))
    }
}

/// The text of an A_Const (strings, integers and floats as written), for SET values.
pub fn const_text(node: *const pg_sys::Node) -> Option<String> {
    if !is(node, pg_sys::NodeTag::T_A_Const) {
        return None;
    }
    if let Some(int) = integer_const(node) {
        return Some(int.to_string());
    }
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    {
        // Checked: an A_Const; strings and floats are both stored as text.
        let constant = unsafe { &*(node as *const pg_sys::A_Const) };
        cstr(unsafe { constant.val.val.str_ })
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    {
        // Checked: an A_Const; its value union is tagged by its own NodeTag.
        let constant = unsafe { &*(node as *const pg_sys::A_Const) };
        if constant.isnull {
            return None;
        }
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
