//! Postgres' raw parse nodes to `policy::model::Statement`: one file per statement
//! family. This code knows parse trees and nothing about policy.

mod alter_table;
mod columns;
mod create_table;
mod drop;
mod index;
mod misc;
mod names;
mod options;
mod rename;
mod types;

use pgrx::pg_sys;
use pgrx::pg_sys::NodeTag::*;
use policy::model::RoutineKind;
use policy::{Statement, Stmt};

/// The model of one raw statement. `query` is the whole query string the node's
/// locations point into; `location`/`len` delimit the statement (len 0 = to the end).
///
/// `node` must be a raw (or utility) parse node from the parser, or NULL.
pub fn statement(node: *mut pg_sys::Node, query: &str, location: i32, len: i32) -> Statement {
    Statement {
        stmt: stmt(node, query),
        source: statement_text(query, location, len).to_string(),
        // set_config is a function call, which runs outside the hook; PostgreSQL itself
        // refuses it for the superuser-only safe_migrations settings.
        changes: stored_setting(node).into_iter().collect(),
    }
}

/// The statement's own text, as Postgres delimits it (from the end of the previous
/// statement, so leading comments are included).
pub fn statement_text(query: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0).min(query.len());
    let end = match usize::try_from(len) {
        Ok(len) if len > 0 => (start + len).min(query.len()),
        _ => query.len(),
    };
    query.get(start..end).unwrap_or(query)
}

/// Does the query string seem to hold statements besides the one at `location`/`len`:
/// more than comments, whitespace and semicolons around it? (A `;` inside a comment or a
/// literal counts too, so the caller asks only where Postgres itself says the statement
/// runs in a transaction block, which a lone statement outside BEGIN does not.)
pub fn has_other_statements(query: &str, location: i32, len: i32) -> bool {
    let start = usize::try_from(location).unwrap_or(0).min(query.len());
    let end = match usize::try_from(len) {
        Ok(len) if len > 0 => (start + len).min(query.len()),
        _ => query.len(),
    };
    let is_empty = |text: &str| {
        text.split(';')
            .all(|part| policy::sql::strip_leading_comments(part).trim().is_empty())
    };
    !(query.get(..start).is_some_and(is_empty) && query.get(end..).is_some_and(is_empty))
}

macro_rules! cast {
    ($node:expr, $ty:ty) => {
        // The caller matched the node's tag, so it is a `$ty`.
        unsafe { &*($node as *const $ty) }
    };
}

/// The stored setting an ALTER ROLE / DATABASE / SYSTEM ... SET or RESET changes.
fn stored_setting(node: *mut pg_sys::Node) -> Option<policy::model::SettingChange> {
    if node.is_null() {
        return None;
    }
    // A non-NULL node starts with its tag; each arm casts to the struct its tag names.
    let (target, set) = match unsafe { (*node).type_ } {
        T_AlterRoleSetStmt => ("ALTER ROLE", cast!(node, pg_sys::AlterRoleSetStmt).setstmt),
        T_AlterDatabaseSetStmt => ("ALTER DATABASE", cast!(node, pg_sys::AlterDatabaseSetStmt).setstmt),
        T_AlterSystemStmt => ("ALTER SYSTEM", cast!(node, pg_sys::AlterSystemStmt).setstmt),
        _ => return None,
    };
    // setstmt is the parser's VariableSetStmt, or NULL.
    let set = unsafe { set.as_ref() }?;
    let name = (set.kind != pg_sys::VariableSetKind::VAR_RESET_ALL)
        .then(|| names::cstr(set.name).map(|name| name.to_ascii_lowercase()))
        .flatten();
    Some(policy::model::SettingChange::Stored {
        target: target.to_string(),
        name,
    })
}

fn stmt(node: *mut pg_sys::Node, query: &str) -> Stmt {
    if node.is_null() {
        return Stmt::Query;
    }
    // A non-NULL node starts with its tag.
    match unsafe { (*node).type_ } {
        T_IndexStmt => index::create_index(cast!(node, pg_sys::IndexStmt)),
        T_ReindexStmt => index::reindex(cast!(node, pg_sys::ReindexStmt)),
        T_AlterTableStmt => alter_table::alter_table(cast!(node, pg_sys::AlterTableStmt), query),
        T_CreateStmt => create_table::create_table(cast!(node, pg_sys::CreateStmt), query),
        T_CreateTableAsStmt => create_table::create_table_as(cast!(node, pg_sys::CreateTableAsStmt)),
        T_DropStmt => drop::drop(cast!(node, pg_sys::DropStmt)),
        T_RenameStmt => rename::rename(cast!(node, pg_sys::RenameStmt)),
        T_AlterObjectSchemaStmt => rename::set_schema(cast!(node, pg_sys::AlterObjectSchemaStmt)),
        T_TruncateStmt => misc::truncate(cast!(node, pg_sys::TruncateStmt)),
        T_VacuumStmt => misc::vacuum(cast!(node, pg_sys::VacuumStmt)),
        T_ClusterStmt => misc::cluster(cast!(node, pg_sys::ClusterStmt)),
        T_LockStmt => misc::lock(cast!(node, pg_sys::LockStmt)),
        T_RefreshMatViewStmt => misc::refresh(cast!(node, pg_sys::RefreshMatViewStmt)),
        T_TransactionStmt => misc::transaction(cast!(node, pg_sys::TransactionStmt)),
        T_VariableSetStmt => misc::variable_set(cast!(node, pg_sys::VariableSetStmt)),
        T_DiscardStmt => misc::discard(cast!(node, pg_sys::DiscardStmt)),
        T_DoStmt => Stmt::Routine(RoutineKind::Do),
        T_CreateFunctionStmt => Stmt::Routine(RoutineKind::CreateFunction),
        T_CallStmt => Stmt::Routine(RoutineKind::Call),
        T_SelectStmt | T_InsertStmt | T_UpdateStmt | T_DeleteStmt | T_ExplainStmt | T_CopyStmt | T_VariableShowStmt
        | T_DeclareCursorStmt | T_FetchStmt | T_ClosePortalStmt | T_PrepareStmt | T_ExecuteStmt | T_DeallocateStmt
        | T_NotifyStmt | T_ListenStmt | T_UnlistenStmt | T_ConstraintsSetStmt | T_CheckPointStmt => Stmt::Query,
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        T_MergeStmt => Stmt::Query,
        _ => other(node),
    }
}

/// A statement the model does not describe: its command tag, and whether it changes
/// schema (the commands event triggers fire for).
fn other(node: *mut pg_sys::Node) -> Stmt {
    // CreateCommandTag only reads the node; the tag name is a static string.
    let (tag, ddl) = unsafe {
        let tag = pg_sys::CreateCommandTag(node);
        (
            names::cstr(pg_sys::GetCommandTagName(tag)).unwrap_or_default(),
            pg_sys::command_tag_event_trigger_ok(tag),
        )
    };
    Stmt::Other { tag, ddl }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_text_follows_location_and_length() {
        let query = "SELECT 1; -- c\nALTER TABLE t DROP c; SELECT 2";
        let second = query.find(';').unwrap() as i32 + 1;
        let second_len = query[second as usize..].find(';').unwrap() as i32;
        assert_eq!(statement_text(query, second, second_len), " -- c\nALTER TABLE t DROP c");
        assert_eq!(statement_text(query, second + second_len + 1, 0), " SELECT 2");
        assert!(has_other_statements(query, second, second_len));
        assert!(!has_other_statements("ALTER TABLE t DROP c;", 0, 20));
        assert!(!has_other_statements("ALTER TABLE t DROP c; -- done\n", 0, 20));
    }
}
