//! SQL-level prepared statements: `PREPARE name AS query` keeps a query under a name for
//! the session, `EXECUTE name (arguments)` runs it. The guard judges an EXECUTE as the
//! query it runs (the extension sees that query in its executor hook).

use std::collections::HashMap;

use pg_query::protobuf::{AConst, DiscardMode, Node, ParseResult, RawStmt};
use pg_query::{DeparseOptions, NodeEnum};

/// The statements a session (or a file) has prepared by SQL so far, as their PREPAREs'
/// text shows them.
#[derive(Debug, Default, Clone)]
pub struct Prepares {
    queries: HashMap<String, String>,
}

impl Prepares {
    /// Follow `sql`, a statement that ran: PREPARE adds its name (unless taken: a second
    /// PREPARE of a name fails), DEALLOCATE removes one or all, DISCARD ALL all.
    pub fn note(&mut self, sql: &str) {
        if !["prepare", "deallocate", "discard"]
            .iter()
            .any(|word| crate::starts_with_word(sql, word))
        {
            return;
        }
        let Some(parsed) = pg_query::parse(sql, 0).ok() else {
            return;
        };
        if let Some(node) = only_statement(&parsed.protobuf) {
            self.note_node(node);
        }
    }

    /// Follow every statement of `text`, in order.
    fn note_all(&mut self, text: &str) -> Result<(), String> {
        let parsed = pg_query::parse(text, 0).map_err(|err| err.to_string())?;
        for raw in &parsed.protobuf.stmts {
            if let Some(node) = raw.stmt.as_ref().and_then(|stmt| stmt.node.as_ref()) {
                self.note_node(node);
            }
        }
        Ok(())
    }

    fn note_node(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::PrepareStmt(prepare) => {
                if let Some(query) = prepare.query.as_deref().and_then(query_text) {
                    self.queries.entry(prepare.name.clone()).or_insert(query);
                }
            }
            NodeEnum::DeallocateStmt(deallocate) if deallocate.isall || deallocate.name.is_empty() => {
                self.queries.clear()
            }
            NodeEnum::DeallocateStmt(deallocate) => {
                self.queries.remove(&deallocate.name);
            }
            NodeEnum::DiscardStmt(discard) if discard.target == DiscardMode::DiscardAll as i32 => self.queries.clear(),
            _ => {}
        }
    }

    /// The query `name` runs, when a statement followed prepared it.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.queries.get(name).map(String::as_str)
    }
}

/// The name `EXECUTE name [(arguments)]` runs; None for any other statement.
pub fn executed_name(sql: &str) -> Option<String> {
    match only_statement(&pg_query::parse(sql, 0).ok()?.protobuf)? {
        NodeEnum::ExecuteStmt(execute) => Some(execute.name.clone()),
        _ => None,
    }
}

/// The query prepared statement `name` runs, from `pg_prepared_statements.statement`: for
/// one prepared by SQL that is the whole text the client sent with its PREPARE, read as
/// the session ran it (the first PREPARE of a name holds until a DEALLOCATE); for one
/// prepared by the protocol's Parse it is the statement itself. Err: why it cannot be
/// read.
pub fn prepared_query(text: &str, name: &str, from_sql: bool) -> Result<String, String> {
    let unreadable = || format!("the text that prepared statement {name} holds cannot be read");
    if !from_sql {
        let parsed = pg_query::parse(text, 0).map_err(|err| err.to_string())?.protobuf;
        let node = only_statement(&parsed).ok_or_else(unreadable)?;
        return query_text(&Node {
            node: Some(node.clone()),
        })
        .ok_or_else(unreadable);
    }
    let mut prepares = Prepares::default();
    prepares.note_all(text)?;
    prepares.query(name).map(str::to_string).ok_or_else(unreadable)
}

/// `EXECUTE renamed (arguments)` with the arguments of `sql`, an EXECUTE. Unless
/// `evaluate` (the caller knows that evaluating them does nothing: no volatile function),
/// an argument that is not a constant (a function call, a subquery) is NULL instead, and
/// the flag says so: then only a generic plan, which reads no argument, plans as the
/// statement's would.
pub fn execute_as(sql: &str, renamed: &str, evaluate: bool) -> Option<(String, bool)> {
    let parsed = pg_query::parse(sql, 0).ok()?.protobuf;
    let NodeEnum::ExecuteStmt(execute) = only_statement(&parsed)? else {
        return None;
    };
    let mut execute = execute.clone();
    execute.name = renamed.to_string();
    let mut constants = true;
    for parameter in &mut execute.params {
        if !evaluate && !is_constant(parameter) {
            constants = false;
            *parameter = Node {
                node: Some(NodeEnum::AConst(AConst {
                    isnull: true,
                    location: -1,
                    val: None,
                })),
            };
        }
    }
    let result = ParseResult {
        version: parsed.version,
        stmts: vec![RawStmt {
            stmt: Some(Box::new(Node {
                node: Some(NodeEnum::ExecuteStmt(execute)),
            })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    Some((pg_query::deparse(&result, DeparseOptions::default()).ok()?, constants))
}

/// A literal, or a cast of one (`'2024-01-01'::date`, `-1`, `NULL`).
fn is_constant(node: &Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(cast)) => cast.arg.as_deref().is_some_and(is_constant),
        _ => false,
    }
}

/// The one statement of `parsed`, when it holds exactly one.
pub(crate) fn only_statement(parsed: &ParseResult) -> Option<&NodeEnum> {
    let [raw] = parsed.stmts.as_slice() else {
        return None;
    };
    raw.stmt.as_ref()?.node.as_ref()
}

fn query_text(query: &Node) -> Option<String> {
    query.node.as_ref()?.deparse(DeparseOptions::default()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execute_names_its_prepared_statement() {
        assert_eq!(executed_name("EXECUTE relabel(1)").as_deref(), Some("relabel"));
        assert_eq!(executed_name("execute \"Relabel\"").as_deref(), Some("Relabel"));
        assert_eq!(executed_name("EXPLAIN EXECUTE relabel(1)"), None);
        assert_eq!(executed_name("SELECT 1"), None);
    }

    #[test]
    fn prepares_are_followed_until_deallocated() {
        let mut prepares = Prepares::default();
        prepares.note("PREPARE relabel(int) AS UPDATE t SET c = 1 WHERE id < $1");
        prepares.note("/* again */ PREPARE relabel AS DELETE FROM t");
        prepares.note("prepare purge as delete from t");
        assert_eq!(prepares.query("relabel"), Some("UPDATE t SET c = 1 WHERE id < $1"));
        assert_eq!(prepares.query("purge"), Some("DELETE FROM t"));
        prepares.note("DEALLOCATE PREPARE relabel");
        assert_eq!(prepares.query("relabel"), None);
        assert_eq!(prepares.query("purge"), Some("DELETE FROM t"));
        prepares.note("DISCARD PLANS");
        assert_eq!(prepares.query("purge"), Some("DELETE FROM t"));
        prepares.note("DEALLOCATE ALL");
        assert_eq!(prepares.query("purge"), None);
        prepares.note("PREPARE purge AS DELETE FROM t");
        prepares.note("DISCARD ALL");
        assert_eq!(prepares.query("purge"), None);
    }

    #[test]
    fn the_query_is_found_in_the_text_the_client_sent() {
        let text = "SET x = 1; PREPARE a AS DELETE FROM t; PREPARE b AS UPDATE t SET c = $1";
        assert_eq!(prepared_query(text, "b", true).as_deref(), Ok("UPDATE t SET c = $1"));
        assert!(prepared_query(text, "c", true).is_err());
        // As the session ran the text: DEALLOCATE, then PREPARE again.
        let again = "PREPARE a AS SELECT 1; DEALLOCATE a; PREPARE a AS UPDATE t SET c = 2";
        assert_eq!(prepared_query(again, "a", true).as_deref(), Ok("UPDATE t SET c = 2"));
        // Prepared by Parse: the text is the statement.
        assert_eq!(
            prepared_query("UPDATE t SET c = $1", "whatever", false).as_deref(),
            Ok("UPDATE t SET c = $1")
        );
        assert!(prepared_query("SELECT 1; SELECT 2", "x", false).is_err());
    }

    #[test]
    fn only_constant_arguments_are_kept() {
        assert_eq!(
            execute_as("EXECUTE relabel(1000, 'a'::text, -2, NULL)", "hidden", false),
            Some(("EXECUTE hidden(1000, 'a'::text, -2, NULL)".to_string(), true))
        );
        assert_eq!(
            execute_as("EXECUTE relabel(nextval('s'), 3)", "hidden", false),
            Some(("EXECUTE hidden(NULL, 3)".to_string(), false))
        );
        assert_eq!(
            execute_as("EXECUTE relabel(length('abc'), 3)", "hidden", true),
            Some(("EXECUTE hidden(length('abc'), 3)".to_string(), true))
        );
        assert_eq!(
            execute_as("EXECUTE relabel", "hidden", false),
            Some(("EXECUTE hidden".to_string(), true))
        );
        assert_eq!(execute_as("SELECT 1", "hidden", false), None);
    }
}
