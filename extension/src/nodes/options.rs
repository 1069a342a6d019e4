//! Option lists (`VACUUM (FULL)`, `REINDEX (CONCURRENTLY)`): DefElems whose argument,
//! when present, is a boolean.

use pgrx::pg_sys;

use super::cast::as_node;
use super::names::{const_text, cstr, nodes, string_value};

/// Is the boolean option `name` on in a List of DefElems? (`FULL`, `FULL true`, `FULL 1`, `FULL on`)
pub fn flag_option(list: *mut pg_sys::List, name: &str) -> bool {
    nodes(list).into_iter().any(|node| {
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); a
        // T_DefElem node is a DefElem.
        let Some(elem) = (unsafe { as_node::<pg_sys::DefElem>(node, pg_sys::NodeTag::T_DefElem) }) else {
            return false;
        };
        if cstr(elem.defname).as_deref() != Some(name) {
            return false;
        }
        if elem.arg.is_null() {
            return true;
        }
        let value = string_value(elem.arg)
            .or_else(|| const_text(elem.arg))
            .or_else(|| boolean(elem.arg));
        value.is_some_and(|v| policy::settings::parse_bool(&v) == Some(true))
    })
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
fn boolean(_: *mut pg_sys::Node) -> Option<String> {
    None
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
fn boolean(node: *mut pg_sys::Node) -> Option<String> {
    // SAFETY: `node` is a DefElem's argument, NULL or a node of the parse tree (the `nodes`
    // contract); a T_Boolean node is a Boolean.
    let boolean = unsafe { as_node::<pg_sys::Boolean>(node, pg_sys::NodeTag::T_Boolean) }?;
    Some(if boolean.boolval { "true" } else { "false" }.to_string())
}
