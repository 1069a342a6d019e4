//! Type names from the parse tree (`varchar(50)`, `numeric(10,2)`, `int[]`) into the
//! canonical policy form.

use pgrx::pg_sys;

use super::names::{integer_const, nodes, strings};

/// The policy form of a raw TypeName; NULL gives the empty name.
pub fn type_name(type_name: *const pg_sys::TypeName) -> policy::TypeName {
    if type_name.is_null() {
        return policy::TypeName::default();
    }
    // SAFETY: non-NULL, so a TypeName of the parse tree (the `nodes` contract).
    let type_name = unsafe { &*type_name };
    let names = strings(type_name.names);
    let parts: Vec<&str> = names.iter().map(String::as_str).collect();
    let modifiers = nodes(type_name.typmods)
        .into_iter()
        .filter_map(|node| integer_const(node))
        .collect();
    let array = !type_name.arrayBounds.is_null();
    policy::TypeName::from_parts(&parts, modifiers, array)
}
