//! libpg_query's parse tree -> the policy model. Translation only: these modules know
//! parse nodes and nothing about rules. One module per statement family; `names`,
//! `types`, `expr` and `columns` hold the pieces they share.

mod alter_table;
pub mod calls;
mod columns;
mod create_table;
mod dml;
mod drop;
mod error_position;
mod expr;
pub mod implicit;
mod index;
mod libpg_query_ffi;
mod maintenance;
mod names;
mod options;
mod other;
pub mod plpgsql;
mod plpgsql_json;
pub mod prepared;
pub mod probe;
mod rename;
mod session_commands;
pub mod shape;
pub mod triggers;
mod types;
mod view;

use pg_query::protobuf::RawStmt;
use pg_query::NodeEnum;
use policy::{Statement, Stmt};

/// One statement of the input and where its text starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    pub statement: Statement,
    /// Byte offset of `statement.source` in the input.
    pub offset: usize,
    /// The tables it writes and the relations it reads (`implicit::reach`).
    pub reach: implicit::Reach,
}

/// The input is not valid SQL (or not something libpg_query accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// Byte offset into the input where the parser stopped, when it says.
    pub position: Option<usize>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Does `sql` start with `word` (lower case), after whitespace and comments?
/// May `sql` start or end a transaction block (BEGIN, START TRANSACTION, COMMIT, END,
/// ROLLBACK, ABORT, PREPARE TRANSACTION)? A first look at its first word; true for a
/// leading block comment.
pub fn transaction_control_word(sql: &str) -> bool {
    ["begin", "start", "commit", "end", "rollback", "abort", "prepare"]
        .iter()
        .any(|word| starts_with_word(sql, word))
}

pub fn starts_with_word(sql: &str, word: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if rest.starts_with("/*") {
            // Block comments nest in PostgreSQL: let the parser decide.
            return true;
        } else {
            return rest
                .get(..word.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(word));
        }
    }
}

/// Does `sql` parse to the same tree when '...' literals take backslash escapes
/// (standard_conforming_strings off) as when they do not? Where it does, the literals
/// end at the same places and hold the same text either way.
pub fn reads_the_same_with_nonstandard_strings(sql: &str) -> bool {
    let standard = pg_query::parse(sql, 0);
    let nonstandard = pg_query::parse(sql, pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS);
    match (standard, nonstandard) {
        (Ok(standard), Ok(nonstandard)) => standard.protobuf == nonstandard.protobuf,
        _ => false,
    }
}

/// Parse `sql` (one or many statements) and describe each statement in the model.
///
/// Each statement's source runs from the end of the previous statement (after its `;`)
/// to its own end, the `;` excluded, so leading comments are part of it.
pub fn parse_sql(sql: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    if let Some(nul) = sql.find('\0') {
        return Err(ParseError {
            message: "the input contains a NUL byte".to_string(),
            position: Some(nul),
        });
    }
    let parsed = pg_query::parse(sql, 0).map_err(|err| parse_error(sql, err))?;
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    let mut previous_end = 0;
    for raw in &parsed.protobuf.stmts {
        let (start, end) = statement_span(sql, raw, previous_end);
        previous_end = end;
        let source = &sql[start..end];
        let stmt = match raw.stmt.as_ref().and_then(|node| node.node.as_ref()) {
            Some(node) => translate(
                node,
                &Input {
                    sql,
                    source,
                    offset: start,
                },
            ),
            None => Stmt::Other {
                tag: String::new(),
                ddl: false,
            },
        };
        // A DO block's or a function's body: its PL/pgSQL expressions are no statements
        // decided one by one, so calls in them count for the statement that runs or
        // defines the body.
        let mut changes = if matches!(
            stmt,
            Stmt::Routine(policy::model::RoutineKind::Do | policy::model::RoutineKind::CreateFunction)
        ) {
            calls::set_config_calls_in_bodies(source)
        } else {
            calls::set_config_calls(source)
        };
        changes.extend(
            raw.stmt
                .as_ref()
                .and_then(|node| node.node.as_ref())
                .and_then(session_commands::stored_setting),
        );
        let reach = raw
            .stmt
            .as_ref()
            .and_then(|node| node.node.as_ref())
            .map(implicit::reach)
            .unwrap_or_default();
        statements.push(ParsedStatement {
            statement: Statement {
                stmt,
                source: source.to_string(),
                changes,
            },
            offset: start,
            reach,
        });
    }
    Ok(statements)
}

/// Byte range of one statement's text: from the end of the previous statement (after
/// its `;`, and the `;` of any empty statements) to Postgres' stmt_location + stmt_len
/// (stmt_len 0 = to the end). Postgres starts a statement at its first token; starting
/// earlier keeps the comments in front of it, where acknowledgements are written.
fn statement_span(sql: &str, raw: &RawStmt, previous_end: usize) -> (usize, usize) {
    let location = usize::try_from(raw.stmt_location).unwrap_or(0).min(sql.len());
    let start = after_separators(sql, previous_end.min(location), location);
    let end = match usize::try_from(raw.stmt_len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(len) => (location + len).min(sql.len()),
    };
    (start, end.max(start))
}

/// The position after the last `;` in `sql[from..to]`, which holds only white space,
/// comments and semicolons; `from` when there is none.
fn after_separators(sql: &str, from: usize, to: usize) -> usize {
    let bytes = sql.as_bytes();
    let mut start = from;
    let mut i = from;
    while i < to {
        if bytes[i] == b';' {
            start = i + 1;
            i += 1;
        } else if bytes[i..to].starts_with(b"--") {
            i = bytes[i..to].iter().position(|&b| b == b'\n').map_or(to, |n| i + n + 1);
        } else if bytes[i..to].starts_with(b"/*") {
            let mut depth = 0;
            while i < to {
                if bytes[i..to].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..to].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    start
}

fn parse_error(sql: &str, err: pg_query::Error) -> ParseError {
    let message = match err {
        pg_query::Error::Parse(message) => message,
        other => other.to_string(),
    };
    ParseError {
        message,
        position: error_position::syntax_error_position(sql),
    }
}

/// What a translator sees besides the node: the whole input (node locations are byte
/// offsets into it) and the statement's own text.
pub(crate) struct Input<'a> {
    pub sql: &'a str,
    pub source: &'a str,
    pub offset: usize,
}

impl Input<'_> {
    /// The statement's text from byte `location` of the input to its end.
    pub fn text_from(&self, location: i32) -> Option<&str> {
        let location = usize::try_from(location).ok()?;
        let end = self.offset + self.source.len();
        (location >= self.offset && location <= end).then(|| &self.sql[location..end])
    }
}

fn translate(node: &NodeEnum, input: &Input) -> Stmt {
    if let Some(dml) = dml::dml(node) {
        return dml;
    }
    match node {
        NodeEnum::IndexStmt(index) => index::create_index(index),
        NodeEnum::ReindexStmt(reindex) => index::reindex(reindex),
        NodeEnum::DropStmt(drop) => drop::drop(drop),
        NodeEnum::AlterTableStmt(alter) => alter_table::alter_table(alter, input),
        NodeEnum::CreateStmt(create) => create_table::create_table(create, input),
        NodeEnum::CreateTableAsStmt(create) => create_table::create_table_as(create),
        NodeEnum::SelectStmt(select) => create_table::select(select),
        NodeEnum::RenameStmt(rename) => rename::rename(rename),
        NodeEnum::ViewStmt(view) => view::create_view(view),
        NodeEnum::AlterObjectSchemaStmt(set_schema) => rename::set_schema(set_schema),
        NodeEnum::TruncateStmt(truncate) => maintenance::truncate(truncate),
        NodeEnum::VacuumStmt(vacuum) => maintenance::vacuum(vacuum),
        NodeEnum::ClusterStmt(cluster) => maintenance::cluster(cluster),
        NodeEnum::LockStmt(lock) => maintenance::lock(lock),
        NodeEnum::RefreshMatViewStmt(refresh) => maintenance::refresh(refresh),
        NodeEnum::TransactionStmt(transaction) => session_commands::transaction(transaction),
        NodeEnum::VariableSetStmt(set) => session_commands::set(set),
        NodeEnum::DiscardStmt(discard) => session_commands::discard(discard),
        other => other::other(other, input),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use policy::Stmt;

    /// The model of the only statement in `sql`.
    pub fn stmt(sql: &str) -> Stmt {
        let mut parsed = super::parse_sql(sql).unwrap_or_else(|err| panic!("{sql}: {err:?}"));
        assert_eq!(parsed.len(), 1, "{sql}");
        parsed.remove(0).statement.stmt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_include_leading_comments_and_offsets_point_at_them() {
        let sql = "-- first\nCREATE INDEX i ON t (c);\n-- safe_migrations:allow drop_table -- old\nDROP TABLE t;";
        let parsed = parse_sql(sql).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].offset, 0);
        assert_eq!(parsed[0].statement.source, "-- first\nCREATE INDEX i ON t (c)");
        assert_eq!(
            parsed[1].statement.source,
            "\n-- safe_migrations:allow drop_table -- old\nDROP TABLE t"
        );
        assert_eq!(&sql[parsed[1].offset..parsed[1].offset + 5], "\n-- s");
    }

    #[test]
    fn last_statement_without_semicolon_runs_to_the_end() {
        let parsed = parse_sql("SELECT 1; SELECT 2 ").unwrap();
        assert_eq!(parsed[1].statement.source, " SELECT 2 ");
        assert_eq!(parsed[1].offset, 9);
    }

    #[test]
    fn semicolons_inside_comments_do_not_split_the_leading_comment() {
        let sql = "SELECT 1; -- one; twö\n/* thrée; */ SELECT 2";
        let parsed = parse_sql(sql).unwrap();
        assert_eq!(parsed[1].statement.source, " -- one; twö\n/* thrée; */ SELECT 2");
    }

    #[test]
    fn empty_statements_are_skipped() {
        let parsed = parse_sql(";; SELECT 1;;").unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].statement.stmt, Stmt::Query);
    }

    #[test]
    fn syntax_error_has_its_byte_position() {
        let sql = "SELECT 1;\nCREATE INDEXX i ON t (c);";
        let err = parse_sql(sql).unwrap_err();
        assert_eq!(err.message, "syntax error at or near \"INDEXX\"");
        assert_eq!(err.position, Some(17));
    }

    #[test]
    fn syntax_error_position_counts_bytes_not_characters() {
        let sql = "SELECT 'é€'; SELEC 1";
        let err = parse_sql(sql).unwrap_err();
        assert_eq!(err.position, sql.find("SELEC 1"));
    }

    #[test]
    fn every_prefix_of_a_migration_parses_or_fails_without_panicking() {
        let sql = "-- añadir índice; ok\n/* ü; */ CREATE INDEX \"Índice\" ON t (c) WHERE c <> 'é;';\n\
                   ALTER TABLE t ADD COLUMN d text DEFAULT 'x' CHECK (d <> ''), ALTER e TYPE int USING e::int;";
        for (end, _) in sql.char_indices() {
            if let Ok(statements) = parse_sql(&sql[..end]) {
                for parsed in statements {
                    assert!(sql[..end][parsed.offset..].starts_with(&parsed.statement.source));
                }
            }
        }
    }

    #[test]
    fn nul_byte_is_an_error_not_a_panic() {
        let err = parse_sql("SELECT 1;\0").unwrap_err();
        assert_eq!(err.position, Some(9));
    }

    #[test]
    fn backslashes_that_move_a_literals_end_read_differently_without_standard_strings() {
        // Standard strings: one literal. Backslash escapes: three statements.
        assert!(!reads_the_same_with_nonstandard_strings(
            r"SELECT 'a\''; CREATE INDEX i ON t (c); -- '"
        ));
        assert!(!reads_the_same_with_nonstandard_strings(r"SELECT 'a\nb'"));
        assert!(reads_the_same_with_nonstandard_strings(r"SELECT E'a\nb', $$\$$ -- \"));
    }
}
