//! Postgres' raw parse nodes to `policy::model::Statement`: one file per statement
//! family. This code knows parse trees and nothing about policy.
//!
//! The one way in is [`statement`], an `unsafe fn`; the private functions beneath it take
//! raw pointers into a parse tree (nodes, Lists, RangeVars, TypeNames, C strings) and rely
//! on one rule, the `nodes` contract, which callers of [`statement`] uphold: every
//! such pointer is NULL or points into the tree the parser built for the statement being
//! mapped, which lives in that statement's memory context for the whole call and which
//! nothing modifies meanwhile. Inside, pointers only ever come from fields of that tree.
//! Downcasts go through [`cast::as_node`], the one place a tag is checked and a node
//! becomes a struct.

mod alter_table;
mod cast;
mod columns;
mod create_table;
mod dml;
mod drop;
mod index;
mod misc;
mod names;
mod options;
mod rename;
mod types;
mod view;

use pgrx::pg_sys;
use pgrx::pg_sys::NodeTag::*;
use policy::model::RoutineKind;
use policy::{Statement, Stmt};

use self::cast::{as_node, node_tag};

/// The model of one raw statement. `query` is the whole query string the node's
/// locations point into; `location`/`len` delimit the statement (len 0 = to the end).
///
/// # Safety
/// `node` must be NULL or a raw (or utility) parse node the parser built, alive and
/// unmodified for the duration of the call (see the module documentation). This is the
/// one entry point into `nodes`; the helpers beneath it rely on this contract.
pub unsafe fn statement(node: *mut pg_sys::Node, query: &str, location: i32, len: i32) -> Statement {
    Statement {
        stmt: stmt(node, query),
        source: statement_text(query, location, len).to_string(),
        // set_config is a function call, which runs outside the hook; PostgreSQL itself
        // refuses it for the superuser-only safe_migrations settings.
        changes: stored_setting(node).into_iter().collect(),
    }
}

/// The statement's own text: from the end of the previous statement (so the comments
/// before it, acknowledgements included, belong to it) to where Postgres says it ends.
/// PostgreSQL 15 to 17 start a statement's location just after the previous `;`; 18
/// starts it at its first keyword, after the comments, so there the text reaches back
/// to the previous `;` itself.
pub fn statement_text(query: &str, location: i32, len: i32) -> &str {
    #[cfg(all(feature = "pg18", not(test)))]
    // SAFETY: reads the start time of the client message being run (set for every
    // message), which tells one query string from the next one in the same buffer.
    let reach_back = Some(unsafe { pg_sys::GetCurrentStatementStartTimestamp() });
    // The unit tests' process is no backend (its tests call `text_of`).
    #[cfg(all(feature = "pg18", test))]
    let reach_back = Some(0);
    #[cfg(not(feature = "pg18"))]
    let reach_back = None;
    text_of(query, location, len, reach_back)
}

/// [`statement_text`], reaching back to the previous `;` where `reach_back` gives the
/// query string's key (the same for every statement of one string).
fn text_of(query: &str, location: i32, len: i32, reach_back: Option<i64>) -> &str {
    let first = usize::try_from(location).unwrap_or(0).min(query.len());
    let end = match usize::try_from(len) {
        Ok(len) if len > 0 => (first + len).min(query.len()),
        _ => query.len(),
    };
    let start = reach_back.map_or(first, |key| previous_statement_end(query, first, key));
    query.get(start..end).or_else(|| query.get(first..end)).unwrap_or(query)
}

/// Where the statement beginning at `first` starts with its leading comments: just after
/// the last `;` before it, or the start of `query`.
///
/// Reading from the start of `query` each time would make a string of n statements cost
/// n² (a schema dump sent as one query); the statements of one query string arrive in
/// order, so the reading resumes where the previous statement's left off. It resumes
/// only for the same string (`key`, address, length and the bytes before the resume
/// point) and a later statement; otherwise it starts over.
fn previous_statement_end(query: &str, first: usize, key: i64) -> usize {
    use std::cell::Cell;
    /// How far the backend's last query string was read, and the last `;` found.
    #[derive(Clone, Copy)]
    struct Read {
        key: i64,
        address: usize,
        len: usize,
        upto: usize,
        start: usize,
        around: u64,
    }
    // The bytes just before `upto` (up to 8), to tell a reused buffer from the same string.
    fn around(query: &str, upto: usize) -> u64 {
        let bytes = &query.as_bytes()[upto.saturating_sub(8)..upto];
        bytes
            .iter()
            .fold(bytes.len() as u64, |acc, &b| (acc << 8) | u64::from(b))
    }
    thread_local! {
        static READ: Cell<Option<Read>> = const { Cell::new(None) };
    }
    let resume = READ.with(Cell::get).filter(|read| {
        read.key == key
            && read.address == query.as_ptr() as usize
            && read.len == query.len()
            && read.upto <= first
            && read.around == around(query, read.upto)
    });
    let (from, start) = resume.map_or((0, 0), |read| (read.upto, read.start));
    let start = policy::sql::after_last_semicolon(query, from, first).unwrap_or(start);
    READ.with(|read| {
        read.set(Some(Read {
            key,
            address: query.as_ptr() as usize,
            len: query.len(),
            upto: first,
            start,
            around: around(query, first),
        }))
    });
    start
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

/// The stored setting an ALTER ROLE / DATABASE / SYSTEM ... SET or RESET changes.
fn stored_setting(node: *mut pg_sys::Node) -> Option<policy::model::SettingChange> {
    // SAFETY: `node` is NULL or a parser-built node alive for this call (the `nodes`
    // contract); each tag is paired with the struct parsenodes.h declares for it.
    let (target, set) = unsafe {
        if let Some(stmt) = as_node::<pg_sys::AlterRoleSetStmt>(node, T_AlterRoleSetStmt) {
            ("ALTER ROLE", stmt.setstmt)
        } else if let Some(stmt) = as_node::<pg_sys::AlterDatabaseSetStmt>(node, T_AlterDatabaseSetStmt) {
            ("ALTER DATABASE", stmt.setstmt)
        } else if let Some(stmt) = as_node::<pg_sys::AlterSystemStmt>(node, T_AlterSystemStmt) {
            ("ALTER SYSTEM", stmt.setstmt)
        } else {
            return None;
        }
    };
    // SAFETY: setstmt is NULL or the VariableSetStmt the parser built into the same tree.
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
    if let Some(dml) = dml::dml(node) {
        return dml;
    }
    // SAFETY: `node` is NULL or a parser-built node alive for this call (the `nodes`
    // contract). Each arm hands `as_node` the tag it matched with the struct parsenodes.h
    // declares for that tag, so every `as_node` here is Some.
    let model = unsafe {
        let Some(tag) = node_tag(node) else {
            return Stmt::Query;
        };
        match tag {
            T_IndexStmt => as_node::<pg_sys::IndexStmt>(node, T_IndexStmt).map(index::create_index),
            T_ReindexStmt => as_node::<pg_sys::ReindexStmt>(node, T_ReindexStmt).map(index::reindex),
            T_AlterTableStmt => as_node::<pg_sys::AlterTableStmt>(node, T_AlterTableStmt)
                .map(|stmt| alter_table::alter_table(stmt, query)),
            T_CreateStmt => {
                as_node::<pg_sys::CreateStmt>(node, T_CreateStmt).map(|stmt| create_table::create_table(stmt, query))
            }
            T_CreateTableAsStmt => {
                as_node::<pg_sys::CreateTableAsStmt>(node, T_CreateTableAsStmt).map(create_table::create_table_as)
            }
            T_DropStmt => as_node::<pg_sys::DropStmt>(node, T_DropStmt).map(drop::drop),
            T_RenameStmt => as_node::<pg_sys::RenameStmt>(node, T_RenameStmt).map(rename::rename),
            T_ViewStmt => as_node::<pg_sys::ViewStmt>(node, T_ViewStmt).map(view::create_view),
            T_AlterObjectSchemaStmt => {
                as_node::<pg_sys::AlterObjectSchemaStmt>(node, T_AlterObjectSchemaStmt).map(rename::set_schema)
            }
            T_TruncateStmt => as_node::<pg_sys::TruncateStmt>(node, T_TruncateStmt).map(misc::truncate),
            T_VacuumStmt => as_node::<pg_sys::VacuumStmt>(node, T_VacuumStmt).map(misc::vacuum),
            T_ClusterStmt => as_node::<pg_sys::ClusterStmt>(node, T_ClusterStmt).map(misc::cluster),
            T_LockStmt => as_node::<pg_sys::LockStmt>(node, T_LockStmt).map(misc::lock),
            T_RefreshMatViewStmt => {
                as_node::<pg_sys::RefreshMatViewStmt>(node, T_RefreshMatViewStmt).map(misc::refresh)
            }
            T_TransactionStmt => as_node::<pg_sys::TransactionStmt>(node, T_TransactionStmt).map(misc::transaction),
            T_VariableSetStmt => as_node::<pg_sys::VariableSetStmt>(node, T_VariableSetStmt).map(misc::variable_set),
            T_DiscardStmt => as_node::<pg_sys::DiscardStmt>(node, T_DiscardStmt).map(misc::discard),
            T_DoStmt => Some(Stmt::Routine(RoutineKind::Do)),
            T_CreateFunctionStmt => Some(Stmt::Routine(RoutineKind::CreateFunction)),
            T_CallStmt => Some(Stmt::Routine(RoutineKind::Call)),
            T_SelectStmt | T_InsertStmt | T_UpdateStmt | T_DeleteStmt | T_ExplainStmt | T_CopyStmt
            | T_VariableShowStmt | T_DeclareCursorStmt | T_FetchStmt | T_ClosePortalStmt | T_PrepareStmt
            | T_ExecuteStmt | T_DeallocateStmt | T_NotifyStmt | T_ListenStmt | T_UnlistenStmt
            | T_ConstraintsSetStmt | T_CheckPointStmt => Some(Stmt::Query),
            #[cfg(not(any(feature = "pg13", feature = "pg14")))]
            T_MergeStmt => Some(Stmt::Query),
            _ => None,
        }
    };
    model.unwrap_or_else(|| other(node))
}

/// A statement the model does not describe: its command tag, and whether it changes
/// schema (the commands event triggers fire for).
fn other(node: *mut pg_sys::Node) -> Stmt {
    // SAFETY: `node` is a non-NULL parser-built node (`stmt` handled NULL), which
    // CreateCommandTag only reads; GetCommandTagName returns a static string.
    let (tag, ddl) = unsafe {
        let tag = pg_sys::CreateCommandTag(node);
        (
            names::cstr(pg_sys::GetCommandTagName(tag)).unwrap_or_default(),
            pg_sys::command_tag_event_trigger_ok(tag),
        )
    };
    Stmt::Other { tag, ddl }
}

/// The query a utility statement that wraps one runs; `node` itself otherwise.
///
/// # Safety
/// `node` is NULL or a valid raw parse node.
pub unsafe fn query_run_by(node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: as_node checks the tag before the cast; each wrapper's query is a raw
    // parse node of the same tree (or NULL for COPY of a table).
    unsafe {
        if let Some(prepare) = as_node::<pg_sys::PrepareStmt>(node, pg_sys::NodeTag::T_PrepareStmt) {
            return query_run_by(prepare.query);
        }
        if let Some(explain) = as_node::<pg_sys::ExplainStmt>(node, pg_sys::NodeTag::T_ExplainStmt) {
            return query_run_by(explain.query);
        }
        if let Some(copy) = as_node::<pg_sys::CopyStmt>(node, pg_sys::NodeTag::T_CopyStmt) {
            if !copy.query.is_null() {
                return query_run_by(copy.query);
            }
        }
        if let Some(ctas) = as_node::<pg_sys::CreateTableAsStmt>(node, pg_sys::NodeTag::T_CreateTableAsStmt) {
            return query_run_by(ctas.query);
        }
    }
    node
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
        // PostgreSQL 18 places a statement at its first keyword; its comments still belong to it.
        let keyword = query.find("ALTER").unwrap() as i32;
        let keyword_len = second + second_len - keyword;
        assert_eq!(
            text_of(query, keyword, keyword_len, Some(1)),
            " -- c\nALTER TABLE t DROP c"
        );
        assert_eq!(text_of(query, keyword, keyword_len, None), "ALTER TABLE t DROP c");
        assert_eq!(text_of(query, keyword + keyword_len + 2, 0, Some(1)), " SELECT 2");
        // Semicolons in comments and literals do not end a statement, read again or resumed.
        let query = "SELECT ';' /* ; */; -- ack; not a statement\nALTER TABLE t DROP c";
        let keyword = query.find("ALTER").unwrap() as i32;
        assert_eq!(text_of(query, 0, 18, Some(2)), "SELECT ';' /* ; */");
        assert_eq!(
            text_of(query, keyword, 0, Some(2)),
            " -- ack; not a statement\nALTER TABLE t DROP c"
        );
        assert_eq!(
            text_of(query, keyword, 0, Some(2)),
            " -- ack; not a statement\nALTER TABLE t DROP c"
        );
        // Another string in the same buffer (same address and length), a later message:
        // read from its start, not resumed from the first string's reading.
        let mut buffer = String::from("SELECT 1;          -- a\nDROP TABLE t");
        let first = buffer.find("DROP").unwrap() as i32;
        assert_eq!(text_of(&buffer, first, 0, Some(3)), "          -- a\nDROP TABLE t");
        let address = buffer.as_ptr();
        buffer.replace_range(.., "SELECT 1,          -- a\nDROP TABLE t");
        assert_eq!(buffer.as_ptr(), address);
        assert_eq!(
            text_of(&buffer, first, 0, Some(4)),
            "SELECT 1,          -- a\nDROP TABLE t"
        );
    }
}
