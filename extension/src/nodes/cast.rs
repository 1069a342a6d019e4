//! The one place where a parse node's tag is read and a node pointer becomes a reference
//! to the struct that tag names (Postgres' `nodeTag`, `IsA` and `castNode`, except that a
//! mismatch is `None`, not an error).

use pgrx::pg_sys;

/// The tag of `node`; None for NULL.
///
/// # Safety
/// `node` is NULL or points to a valid node: a live, aligned struct whose first field is a
/// `NodeTag` holding one of the tags of the Postgres these bindings were generated for (so
/// every node the parser or `makeNode` built).
pub unsafe fn node_tag(node: *const pg_sys::Node) -> Option<pg_sys::NodeTag> {
    // SAFETY: per this function's contract a non-NULL `node` is a valid node, and every
    // node starts with its NodeTag, which holds a valid tag.
    unsafe { node.as_ref() }.map(|node| node.type_)
}

/// `node` as a `&T`, if it is not NULL and is tagged `tag`; None otherwise.
///
/// # Safety
/// - `node` is NULL or points to a valid node (as for [`node_tag`]) that stays alive and
///   is not modified for as long as the returned reference (`'a`, which the caller
///   chooses) is used. A parse tree is allocated in the memory context of the statement
///   being parsed or run and outlives the code that maps it.
/// - `T` is the struct Postgres declares for `tag` (`pg_sys::IndexStmt` for
///   `T_IndexStmt`, `pg_sys::List` for `T_List`, ...). Nothing here can check that
///   pairing: it is the caller's claim, and a wrong one is undefined behaviour.
pub unsafe fn as_node<'a, T>(node: *const pg_sys::Node, tag: pg_sys::NodeTag) -> Option<&'a T> {
    // SAFETY: `node` is NULL or a valid node (this function's contract).
    if unsafe { node_tag(node) } != Some(tag) {
        return None;
    }
    // SAFETY: `node` is non-NULL and tagged `tag`, so per the caller's pairing it points to
    // a `T`, valid and unmodified for `'a`.
    Some(unsafe { &*node.cast::<T>() })
}
