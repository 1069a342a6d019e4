//! CREATE VIEW: the view, and the relation it stands in for when its query is exactly
//! `SELECT * FROM relation` (the raw query: DefineView analyses it after the hook).

use pgrx::pg_sys;
use pgrx::pg_sys::NodeTag::{T_A_Star, T_ColumnRef, T_RangeVar, T_ResTarget, T_SelectStmt};
use policy::model::CreateView;
use policy::{QualifiedName, Stmt};

use super::cast::as_node;
use super::names::{cstr, nodes, range_var, string_value};

pub fn create_view(stmt: &pg_sys::ViewStmt) -> Stmt {
    // SAFETY: `query` is NULL or the view's raw parse node (the `nodes` contract); a
    // T_SelectStmt node is a SelectStmt.
    let select = unsafe { as_node::<pg_sys::SelectStmt>(stmt.query, T_SelectStmt) };
    // SAFETY: read only when non-NULL, so the view's RangeVar of the parse tree.
    let temporary = !stmt.view.is_null() && unsafe { (*stmt.view).relpersistence } as u8 == b't';
    Stmt::CreateView(CreateView {
        view: range_var(stmt.view),
        replace: stmt.replace,
        temporary,
        // Column aliases rename what old code reads.
        all_of: select.filter(|_| stmt.aliases.is_null()).and_then(all_of),
    })
}

/// The relation `SELECT * FROM relation` reads, with no other clause.
fn all_of(select: &pg_sys::SelectStmt) -> Option<QualifiedName> {
    let plain = select.distinctClause.is_null()
        && select.intoClause.is_null()
        && select.whereClause.is_null()
        && select.groupClause.is_null()
        && select.havingClause.is_null()
        && select.windowClause.is_null()
        && select.valuesLists.is_null()
        && select.sortClause.is_null()
        && select.limitOffset.is_null()
        && select.limitCount.is_null()
        && select.lockingClause.is_null()
        && select.withClause.is_null()
        && select.op == pg_sys::SetOperation::SETOP_NONE;
    let [from] = nodes(select.fromClause)[..] else {
        return None;
    };
    // SAFETY: a node of the parse tree (the `nodes` contract); T_RangeVar is a RangeVar.
    let relation = unsafe { as_node::<pg_sys::RangeVar>(from, T_RangeVar) }?;
    let [target] = nodes(select.targetList)[..] else {
        return None;
    };
    let (named, renames_columns) = if relation.alias.is_null() {
        (cstr(relation.relname), false)
    } else {
        // SAFETY: non-NULL, so the RangeVar's Alias of the parse tree. `FROM accounts AS
        // a (x, y)` renames its columns.
        unsafe { (cstr((*relation.alias).aliasname), !(*relation.alias).colnames.is_null()) }
    };
    (plain && relation.inh && !renames_columns && is_star(target, named.as_deref())).then(|| range_var(relation))
}

/// `*`, or `name.*` for the FROM item's name (its alias, if it has one).
fn is_star(target: *mut pg_sys::Node, named: Option<&str>) -> bool {
    // SAFETY: a node of the parse tree (the `nodes` contract); T_ResTarget is a ResTarget.
    let Some(target) = (unsafe { as_node::<pg_sys::ResTarget>(target, T_ResTarget) }) else {
        return false;
    };
    // SAFETY: the ResTarget's value, a node of the parse tree; T_ColumnRef is a ColumnRef.
    let Some(column) = (unsafe { as_node::<pg_sys::ColumnRef>(target.val, T_ColumnRef) }) else {
        return false;
    };
    let star = |node: *mut pg_sys::Node| super::names::is(node, T_A_Star);
    match nodes(column.fields)[..] {
        [only] => star(only),
        [prefix, last] => star(last) && string_value(prefix).as_deref() == named,
        _ => false,
    }
}
