//! The SQL a `DO` block runs. libpg_query compiles the PL/pgSQL body to JSON; this module
//! walks it for every statement the block would send to the SQL engine, and where each is
//! in the `DO` statement, so the proxy's guard and `check` decide them alike, as the
//! extension does when the block runs. Translation only: nothing here knows the rules.

use pg_query::protobuf::Token;
use pg_query::NodeEnum;
use policy::QualifiedName;
use serde_json::Value;

use super::plpgsql_json::parse_plpgsql;

use super::{parse_sql, ParseError, ParsedStatement};

/// One thing a `DO` block runs, as the guard and `check` decide it. Offsets are bytes
/// into the `DO` statement's text.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockStatement {
    /// A statement whose text is known, parsed (its `offset` is into the `DO` statement).
    Parsed(Box<ParsedStatement>),
    /// SQL whose text cannot be known before the block runs.
    Unreadable { offset: usize, reason: Unreadable },
}

/// Why some of a `DO` block's SQL cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// `EXECUTE` of a computed string: the expression.
    Dynamic(String),
    /// The block is in another language (its name, lower case).
    OtherLanguage(String),
    /// The body, or a string it executes, does not parse.
    Unparsable(ParseError),
}

/// What the `DO` statement `source` runs, statement by statement in the order they appear
/// in the body; `None` when `source` is not a `DO`.
pub fn do_block_sql(source: &str) -> Option<Vec<BlockStatement>> {
    routine_sql(source, BodyKind::Do)
}

/// What a function or procedure runs when called, from its `CREATE FUNCTION` or `CREATE
/// PROCEDURE` statement (as `pg_get_functiondef` writes it): PL/pgSQL as for a `DO` block,
/// a SQL function's statements; `None` when `definition` is not one.
pub fn function_sql(definition: &str) -> Option<Vec<BlockStatement>> {
    routine_sql(definition, BodyKind::Function)
}

/// The name a `CREATE FUNCTION` or `CREATE PROCEDURE` statement defines.
pub fn defined_function(source: &str) -> Option<QualifiedName> {
    let parsed = pg_query::parse(source, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let Some(NodeEnum::CreateFunctionStmt(create)) = raw.stmt.as_ref().and_then(|node| node.node.as_ref()) else {
        return None;
    };
    let parts: Vec<&str> = create
        .funcname
        .iter()
        .filter_map(|part| match &part.node {
            Some(NodeEnum::String(value)) => Some(value.sval.as_str()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] => Some(QualifiedName::bare(name)),
        [.., schema, name] => Some(QualifiedName::new(Some(schema), name)),
        [] => None,
    }
}

/// Whose body is read: a DO block's (PL/pgSQL only) or a function's (PL/pgSQL or SQL).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Do,
    Function,
}

fn routine_sql(source: &str, kind: BodyKind) -> Option<Vec<BlockStatement>> {
    let keyword = source.len() - policy::sql::strip_leading_comments(source).len();
    let unreadable = |reason| BlockStatement::Unreadable {
        offset: keyword,
        reason,
    };
    let inner = match routine_statements(source, kind) {
        Ok(None) => return None,
        Ok(Some(DoBlock::Plpgsql(inner))) => inner,
        Ok(Some(DoBlock::OtherLanguage(language))) => {
            return Some(vec![unreadable(Unreadable::OtherLanguage(language))])
        }
        Err(error) => return Some(vec![unreadable(Unreadable::Unparsable(error))]),
    };
    let mut statements = Vec::new();
    for BodySql { sql, offset } in inner {
        let text = match sql {
            InnerSql::Known(text) => text,
            InnerSql::Dynamic(expression) => {
                statements.push(BlockStatement::Unreadable {
                    offset,
                    reason: Unreadable::Dynamic(expression),
                });
                continue;
            }
        };
        match parse_sql(&text) {
            Ok(parsed) => statements.extend(parsed.into_iter().map(|parsed| {
                BlockStatement::Parsed(Box::new(ParsedStatement {
                    offset: offset + parsed.offset,
                    ..parsed
                }))
            })),
            Err(error) => statements.push(BlockStatement::Unreadable {
                offset,
                reason: Unreadable::Unparsable(error),
            }),
        }
    }
    Some(statements)
}

/// What a `DO` statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DoBlock {
    /// A PL/pgSQL block: its SQL statements, in the order they appear in the body.
    Plpgsql(Vec<BodySql>),
    /// A block in another language (its name, lower case): its SQL cannot be seen.
    OtherLanguage(String),
}

/// One SQL statement of a PL/pgSQL body and where its text starts in the `DO` statement
/// (for `EXECUTE` of a constant, inside the constant).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BodySql {
    sql: InnerSql,
    offset: usize,
}

/// One SQL statement of a PL/pgSQL body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InnerSql {
    /// Static SQL, or `EXECUTE` of a string constant: the statement text.
    Known(String),
    /// `EXECUTE` (or `FOR ... IN EXECUTE`, `OPEN ... FOR EXECUTE`, `RETURN QUERY EXECUTE`)
    /// of a computed string: the expression text, which says nothing certain of the SQL.
    Dynamic(String),
}

/// The statements the routine `source` runs; `None` when it is not a routine of `kind`.
fn routine_statements(source: &str, kind: BodyKind) -> Result<Option<DoBlock>, ParseError> {
    let Some(Header {
        language,
        body,
        sql_body,
    }) = routine_header(source, kind)?
    else {
        return Ok(None);
    };
    match language.as_str() {
        "plpgsql" => {}
        // A SQL function's body is its statements, one string.
        "sql" if kind == BodyKind::Function => {
            return Ok(Some(DoBlock::Plpgsql(
                sql_body
                    .map(|text| BodySql {
                        sql: InnerSql::Known(text),
                        offset: body,
                    })
                    .into_iter()
                    .collect(),
            )))
        }
        _ => return Ok(Some(DoBlock::OtherLanguage(language))),
    }
    let compiled = parse_plpgsql(&without_variadic_modes(source, body)).map_err(|err| ParseError {
        message: format!("the PL/pgSQL body: {err}"),
        position: None,
    })?;
    let mut walk = Walk::new(source, body);
    walk.collect(&compiled, None);
    Ok(Some(DoBlock::Plpgsql(walk.statements)))
}

/// `source` with the VARIADIC parameter modes before the body blanked out, offsets kept.
///
/// libpg_query compiles a function without a catalog, so it cannot see that a VARIADIC
/// parameter's type is an array and refuses the function ("VARIADIC parameter must be an
/// array"). The mode changes how the function is called, not which SQL its body runs.
fn without_variadic_modes(source: &str, body: usize) -> String {
    let Ok(tokens) = pg_query::scan_tokens(source) else {
        return source.to_string();
    };
    let mut text = source.to_string();
    for token in tokens.iter().filter(|token| token.token == Token::Variadic as i32) {
        let (Ok(start), Ok(end)) = (usize::try_from(token.start), usize::try_from(token.end)) else {
            continue;
        };
        if end <= body && text.is_char_boundary(start) && text.is_char_boundary(end) {
            text.replace_range(start..end, &" ".repeat(end - start));
        }
    }
    text
}

/// A routine's language (PL/pgSQL when a `DO` names none), where its body's text starts
/// (after the opening quote), and the body itself.
struct Header {
    language: String,
    body: usize,
    sql_body: Option<String>,
}

fn routine_header(source: &str, kind: BodyKind) -> Result<Option<Header>, ParseError> {
    let parsed = pg_query::parse(source, 0).map_err(|err| ParseError {
        message: err.to_string(),
        position: None,
    })?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Ok(None);
    };
    let options = match (raw.stmt.as_ref().and_then(|node| node.node.as_ref()), kind) {
        (Some(NodeEnum::DoStmt(do_stmt)), BodyKind::Do) => &do_stmt.args,
        (Some(NodeEnum::CreateFunctionStmt(create)), BodyKind::Function) => &create.options,
        _ => return Ok(None),
    };
    let mut header = Header {
        language: "plpgsql".to_string(),
        body: 0,
        sql_body: None,
    };
    for option in options {
        let Some(NodeEnum::DefElem(elem)) = &option.node else {
            continue;
        };
        // DO 'body' holds a string; CREATE FUNCTION ... AS 'body' a list of them.
        let value = match elem.arg.as_ref().and_then(|node| node.node.as_ref()) {
            Some(NodeEnum::String(value)) => value,
            Some(NodeEnum::List(list)) => match list.items.first().and_then(|item| item.node.as_ref()) {
                Some(NodeEnum::String(value)) => value,
                _ => continue,
            },
            _ => continue,
        };
        match elem.defname.as_str() {
            "language" => header.language = value.sval.to_ascii_lowercase(),
            // The location of the body's string constant (of `AS` before it in CREATE
            // FUNCTION).
            "as" => {
                header.sql_body = Some(value.sval.clone());
                let mut constant = usize::try_from(elem.location).unwrap_or(0);
                if kind == BodyKind::Function {
                    let rest = source.get(constant..).unwrap_or_default();
                    let after_as = rest.get(2..).unwrap_or_default();
                    constant += rest.len() - after_as.trim_start().len();
                }
                if let Some(text) = source.get(constant..) {
                    header.body = constant + literal_content_start(text);
                }
            }
            _ => {}
        }
    }
    Ok(Some(header))
}

/// The byte offset where a string constant's value starts: after `'`, `E'`, `U&'` or `$tag$`.
fn literal_content_start(constant: &str) -> usize {
    let after = |delimiter: char, from: usize| constant[from..].find(delimiter).map(|at| from + at + 1);
    let start = if constant.starts_with('$') {
        after('$', 1)
    } else {
        after('\'', 0)
    };
    start.unwrap_or(0)
}

/// PL/pgSQL's parse mode for a whole SQL statement (`RAW_PARSE_DEFAULT`); the other modes
/// are expressions, type names and assignments, evaluated as a SELECT.
const RAW_PARSE_DEFAULT: u64 = 0;

/// Node types whose `query` (or `dynquery`) expression computes the SQL text to run.
const DYNAMIC_SQL: [(&str, &str); 4] = [
    ("PLpgSQL_stmt_dynexecute", "query"),
    ("PLpgSQL_stmt_dynfors", "query"),
    ("PLpgSQL_stmt_open", "dynquery"),
    ("PLpgSQL_stmt_return_query", "dynquery"),
];

/// The walk over the compiled body: its SQL, each located in the `DO` statement's text.
/// PL/pgSQL keeps only a statement's line number (in the body), so the text is looked for
/// on that line, after what an earlier statement on the same line took.
struct Walk<'a> {
    source: &'a str,
    /// Where each line of the body starts in `source`.
    body_lines: Vec<usize>,
    /// The end of the last text found.
    cursor: usize,
    statements: Vec<BodySql>,
}

impl<'a> Walk<'a> {
    fn new(source: &'a str, body: usize) -> Walk<'a> {
        let body_lines = std::iter::once(body)
            .chain(
                source[body..]
                    .match_indices('\n')
                    .map(|(newline, _)| body + newline + 1),
            )
            .collect();
        Walk {
            source,
            body_lines,
            cursor: body,
            statements: Vec::new(),
        }
    }

    fn collect(&mut self, value: &Value, lineno: Option<usize>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| self.collect(item, lineno)),
            Value::Object(fields) => {
                for (key, node) in fields {
                    let lineno = match node.get("lineno").and_then(Value::as_u64) {
                        Some(line) if key.starts_with("PLpgSQL_stmt_") => usize::try_from(line).ok(),
                        _ => lineno,
                    };
                    if key == "PLpgSQL_expr" {
                        if node
                            .get("parseMode")
                            .and_then(Value::as_u64)
                            .unwrap_or(RAW_PARSE_DEFAULT)
                            == RAW_PARSE_DEFAULT
                        {
                            if let Some(query) = node.get("query").and_then(Value::as_str) {
                                let offset = self.locate(lineno, query, Located::Statement);
                                self.push(InnerSql::Known(query.to_string()), offset);
                            }
                        }
                        continue;
                    }
                    if let Some((_, field)) = DYNAMIC_SQL.iter().find(|(kind, _)| kind == key) {
                        if let Some(query) = node.get(*field).and_then(expression_text) {
                            let offset = self.locate(lineno, query, Located::Expression);
                            match string_constant(query) {
                                Some(text) => self.push(InnerSql::Known(text), offset + literal_content_start(query)),
                                None => self.push(InnerSql::Dynamic(query.to_string()), offset),
                            }
                        }
                    }
                    // A procedure's COMMIT and ROLLBACK end the transaction (and its locks).
                    if let Some(end) = match key.as_str() {
                        "PLpgSQL_stmt_commit" => Some("COMMIT"),
                        "PLpgSQL_stmt_rollback" => Some("ROLLBACK"),
                        _ => None,
                    } {
                        let offset = self.locate(lineno, end, Located::Statement);
                        self.push(InnerSql::Known(end.to_string()), offset);
                        continue;
                    }
                    if key == "PLpgSQL_stmt_if" {
                        // The branches in source order (the JSON's keys are sorted).
                        for branch in ["cond", "then_body", "elsif_list", "else_body"] {
                            if let Some(part) = node.get(branch) {
                                self.collect(part, lineno);
                            }
                        }
                        continue;
                    }
                    self.collect(node, lineno);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, sql: InnerSql, offset: usize) {
        self.statements.push(BodySql { sql, offset });
    }

    /// Where `text` starts: from body line `lineno` on (after an earlier text found on
    /// that line). A statement starts on its line, verbatim or, where PL/pgSQL rewrote it
    /// (it drops `INTO` clauses and runs `PERFORM` as `SELECT`), by its first word, else
    /// at the line's first token; an `EXECUTE` expression is verbatim but may follow on a
    /// later line.
    fn locate(&mut self, lineno: Option<usize>, text: &str, kind: Located) -> usize {
        let body = self.body_lines[0];
        let line_start = lineno
            .and_then(|line| self.body_lines.get(line.checked_sub(1)?))
            .copied()
            .unwrap_or(body);
        let line_end = self.source[line_start..]
            .find('\n')
            .map_or(self.source.len(), |newline| line_start + newline);
        let from = if (line_start..=line_end).contains(&self.cursor) {
            self.cursor
        } else {
            line_start
        };
        let find = |needle: &str, until: usize| {
            let at = from + self.source[from..].find(needle)?;
            (at <= until && !needle.is_empty()).then_some((at, at + needle.len()))
        };
        let found = match kind {
            Located::Expression => find(text, self.source.len()),
            Located::Statement => {
                let first_word = text
                    .split(|c: char| c.is_whitespace() || c == '(')
                    .next()
                    .unwrap_or(text);
                find(text, line_end).or_else(|| find(first_word, line_end))
            }
        };
        let (start, end) = found.unwrap_or_else(|| {
            let rest = &self.source[from..line_end];
            let token = from + rest.len() - rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';').len();
            (token, token)
        });
        self.cursor = end;
        start
    }
}

/// What `Walk::locate` looks for.
#[derive(Clone, Copy)]
enum Located {
    /// A SQL statement's text, which starts on its PL/pgSQL statement's line.
    Statement,
    /// An `EXECUTE` expression, verbatim, somewhere after its statement's line starts.
    Expression,
}

fn expression_text(expr: &Value) -> Option<&str> {
    expr.get("PLpgSQL_expr")?.get("query")?.as_str()
}

/// The value of `expression` when it is one string literal (any quoting).
fn string_constant(expression: &str) -> Option<String> {
    let parsed = pg_query::parse(&format!("SELECT {expression}"), 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let NodeEnum::SelectStmt(select) = raw.stmt.as_ref()?.node.as_ref()? else {
        return None;
    };
    let plain = select.from_clause.is_empty()
        && select.where_clause.is_none()
        && select.group_clause.is_empty()
        && select.having_clause.is_none()
        && select.values_lists.is_empty()
        && select.op == pg_query::protobuf::SetOperation::SetopNone as i32;
    let [target] = select.target_list.as_slice() else {
        return None;
    };
    let NodeEnum::ResTarget(target) = target.node.as_ref()? else {
        return None;
    };
    let NodeEnum::AConst(constant) = target.val.as_ref()?.node.as_ref()? else {
        return None;
    };
    match &constant.val {
        Some(pg_query::protobuf::a_const::Val::Sval(text)) if plain => Some(text.sval.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(source: &str) -> Vec<BodySql> {
        match routine_statements(source, BodyKind::Do).unwrap() {
            Some(DoBlock::Plpgsql(statements)) => statements,
            other => panic!("not a PL/pgSQL DO block: {other:?}"),
        }
    }

    /// The statements a function runs, as text (Unreadable as its reason).
    fn function_statements(definition: &str) -> Vec<String> {
        function_sql(definition)
            .expect("a function definition")
            .into_iter()
            .map(|statement| match statement {
                BlockStatement::Parsed(parsed) => parsed.statement.source.trim().to_string(),
                BlockStatement::Unreadable { reason, .. } => format!("{reason:?}"),
            })
            .collect()
    }

    #[test]
    fn a_functions_sql_is_read_from_its_definition() {
        // As pg_get_functiondef writes them.
        let plpgsql = "CREATE OR REPLACE FUNCTION public.migrate(n integer)\n RETURNS integer\n \
                       LANGUAGE plpgsql\nAS $function$\nBEGIN\n  CREATE INDEX i ON t (c);\n  \
                       EXECUTE format('DROP TABLE %I', 'x');\n  RETURN n + 1;\nEND\n$function$\n";
        assert_eq!(
            function_statements(plpgsql),
            vec![
                "CREATE INDEX i ON t (c)".to_string(),
                "Dynamic(\"format('DROP TABLE %I', 'x')\")".to_string()
            ]
        );
        let sql = "CREATE OR REPLACE PROCEDURE public.p()\n LANGUAGE sql\nAS $procedure$ \
                   ALTER TABLE t ADD COLUMN c int; CREATE INDEX i ON t (c) $procedure$\n";
        assert_eq!(
            function_statements(sql),
            vec!["ALTER TABLE t ADD COLUMN c int", "CREATE INDEX i ON t (c)"]
        );
        let python = "CREATE OR REPLACE FUNCTION public.f()\n RETURNS void\n LANGUAGE plpython3u\n\
                      AS $function$ pass $function$\n";
        assert_eq!(function_statements(python), vec!["OtherLanguage(\"plpython3u\")"]);
        assert_eq!(function_sql("DO $$ BEGIN NULL; END $$"), None);
        assert_eq!(
            defined_function(plpgsql),
            Some(QualifiedName::new(Some("public"), "migrate"))
        );
        assert_eq!(
            defined_function("CREATE PROCEDURE \"P\"() LANGUAGE sql AS 'SELECT 1'"),
            Some(QualifiedName::bare("P"))
        );
        assert_eq!(defined_function("SELECT 1"), None);
        assert_eq!(do_block_sql(plpgsql), None);
    }

    fn statements(source: &str) -> Vec<InnerSql> {
        located(source).into_iter().map(|body| body.sql).collect()
    }

    /// Each statement's text in `source` from where it was located, up to its own length.
    fn texts_at_offsets(source: &str) -> Vec<&str> {
        located(source)
            .iter()
            .map(|body| {
                let len = match &body.sql {
                    InnerSql::Known(text) | InnerSql::Dynamic(text) => text.len(),
                };
                &source[body.offset..(body.offset + len).min(source.len())]
            })
            .collect()
    }

    fn known(text: &str) -> InnerSql {
        InnerSql::Known(text.to_string())
    }

    #[test]
    fn static_sql_in_nested_blocks_and_branches() {
        let source = "DO $$
            BEGIN
                CREATE INDEX i ON t (c);
                IF (SELECT count(*) FROM t) > 0 THEN
                    ALTER TABLE t ADD COLUMN x int;
                ELSIF false THEN
                    UPDATE t SET c = 1;
                ELSE
                    DELETE FROM t;
                END IF;
                BEGIN
                    LOOP
                        INSERT INTO t VALUES (1);
                        EXIT;
                    END LOOP;
                EXCEPTION WHEN others THEN
                    DROP TABLE t;
                END;
            END $$";
        assert_eq!(
            statements(source),
            [
                known("CREATE INDEX i ON t (c)"),
                known("ALTER TABLE t ADD COLUMN x int"),
                known("UPDATE t SET c = 1"),
                known("DELETE FROM t"),
                known("INSERT INTO t VALUES (1)"),
                known("DROP TABLE t"),
            ]
        );
    }

    #[test]
    fn perform_and_query_loops_are_statements() {
        let source = "DO $$ DECLARE r record; BEGIN
                PERFORM 1;
                FOR r IN SELECT id FROM t LOOP NULL; END LOOP;
            END $$";
        assert_eq!(statements(source), [known("SELECT 1"), known("SELECT id FROM t")]);
    }

    #[test]
    fn execute_of_a_constant_is_its_text() {
        let source = "DO $$ BEGIN
                EXECUTE 'ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid()';
                EXECUTE $q$CREATE INDEX i ON t (c)$q$;
                EXECUTE E'DROP TABLE \\'t\\'';
            END $$";
        assert_eq!(
            statements(source),
            [
                known("ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid()"),
                known("CREATE INDEX i ON t (c)"),
                known("DROP TABLE 't'"),
            ]
        );
    }

    #[test]
    fn execute_of_a_computed_string_is_dynamic() {
        let source = "DO $$ DECLARE r record; BEGIN
                EXECUTE format('CREATE INDEX %I ON t (c)', 'i');
                EXECUTE 'DROP TABLE ' || 't';
                FOR r IN EXECUTE 'SELECT ' || 1 LOOP NULL; END LOOP;
            END $$";
        assert_eq!(
            statements(source),
            [
                InnerSql::Dynamic("format('CREATE INDEX %I ON t (c)', 'i')".to_string()),
                InnerSql::Dynamic("'DROP TABLE ' || 't'".to_string()),
                InnerSql::Dynamic("'SELECT ' || 1".to_string()),
            ]
        );
    }

    #[test]
    fn other_languages_and_other_statements() {
        assert_eq!(
            routine_statements("DO LANGUAGE plperl $$ 1; $$", BodyKind::Do).unwrap(),
            Some(DoBlock::OtherLanguage("plperl".to_string()))
        );
        assert_eq!(
            routine_statements("DO LANGUAGE PLPGSQL $$ BEGIN NULL; END $$", BodyKind::Do).unwrap(),
            Some(DoBlock::Plpgsql(Vec::new()))
        );
        assert_eq!(routine_statements("SELECT 1", BodyKind::Do).unwrap(), None);
    }

    #[test]
    fn a_body_that_does_not_compile_is_an_error() {
        assert!(routine_statements("DO $$ BEGIN CREATE INDEX; END $$", BodyKind::Do).is_err());
    }

    #[test]
    fn statements_are_located_on_their_line_of_the_do_statement() {
        let source = "-- a comment before the block\nDO\n$body$\nBEGIN\n  CREATE TABLE n (id int); CREATE INDEX i ON n (id);\n  \
                      IF true THEN\n    EXECUTE\n      'DROP TABLE n';\n  END IF;\n  \
                      EXECUTE format('x');\nEND\n$body$";
        assert_eq!(
            texts_at_offsets(source),
            [
                "CREATE TABLE n (id int)",
                "CREATE INDEX i ON n (id)",
                "DROP TABLE n",
                "format('x')"
            ]
        );
    }

    #[test]
    fn rewritten_statements_are_located_by_their_line() {
        // PL/pgSQL drops INTO and runs PERFORM as SELECT: the texts are not verbatim.
        let source =
            "DO $$ DECLARE v int; BEGIN\n  PERFORM 1;\n  SELECT 2 INTO v FROM t;\n  PERFORM 3; DROP TABLE t;\nEND $$";
        let offsets: Vec<usize> = located(source).iter().map(|body| body.offset).collect();
        let expected = [
            source.find("PERFORM 1").unwrap(),
            source.find("SELECT 2").unwrap(),
            source.find("PERFORM 3").unwrap(),
            source.find("DROP TABLE").unwrap(),
        ];
        assert_eq!(offsets, expected);
    }

    #[test]
    fn constants_are_located_inside_their_quotes() {
        for (source, constant) in [
            ("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", "DROP TABLE t"),
            ("DO $$ BEGIN EXECUTE $q$DROP TABLE t$q$; END $$", "DROP TABLE t"),
            ("DO $$ BEGIN EXECUTE E'DROP TABLE t'; END $$", "DROP TABLE t"),
            ("DO 'BEGIN EXECUTE $q$DROP TABLE t$q$; END'", "DROP TABLE t"),
        ] {
            assert_eq!(texts_at_offsets(source), [constant], "{source}");
        }
    }

    #[test]
    fn block_sql_is_parsed_with_offsets_into_the_do_statement() {
        let source = "DO $$ BEGIN EXECUTE 'CREATE TABLE n (id int); CREATE INDEX i ON n (id)'; \
                      EXECUTE 'SELEC 1'; EXECUTE format('%s', 1); END $$";
        let statements = do_block_sql(source).unwrap();
        let [BlockStatement::Parsed(create), BlockStatement::Parsed(index), BlockStatement::Unreadable {
            offset: unparsable,
            reason: Unreadable::Unparsable(_),
        }, BlockStatement::Unreadable {
            offset: dynamic,
            reason: Unreadable::Dynamic(expression),
        }] = statements.as_slice()
        else {
            panic!("{statements:?}");
        };
        assert_eq!(create.offset, source.find("CREATE TABLE").unwrap());
        // A statement's offset is where its source starts, after the previous one's `;`.
        assert_eq!(index.offset, source.find(" CREATE INDEX").unwrap());
        assert_eq!(*unparsable, source.find("SELEC 1").unwrap());
        assert_eq!(*dynamic, source.find("format").unwrap());
        assert_eq!(expression, "format('%s', 1)");
        assert_eq!(do_block_sql("SELECT 1"), None);
        assert_eq!(
            do_block_sql("/* plperl */ DO LANGUAGE plperl $$ 1; $$"),
            Some(vec![BlockStatement::Unreadable {
                offset: 13,
                reason: Unreadable::OtherLanguage("plperl".to_string())
            }])
        );
    }

    #[test]
    fn a_function_with_a_variadic_parameter_is_read() {
        let source = "CREATE FUNCTION v(VARIADIC a int[]) RETURNS int LANGUAGE plpgsql AS $$ \
                      BEGIN CREATE INDEX ON t (c); RETURN array_length(a, 1); END $$";
        let statements = function_sql(source).unwrap();
        assert!(
            matches!(statements.as_slice(), [BlockStatement::Parsed(parsed)] if parsed.statement.source.contains("CREATE INDEX")),
            "{statements:?}"
        );
    }
}

#[cfg(test)]
mod transaction_control_tests {
    use super::*;
    use policy::model::TransactionKind;
    use policy::Stmt;

    #[test]
    fn a_procedure_s_commit_and_rollback_are_statements_of_its_body() {
        let sql = "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$\nBEGIN\n    ALTER TABLE t ADD COLUMN c int;\n    COMMIT;\n    UPDATE t SET c = 1;\n    ROLLBACK;\nEND\n$$";
        let kinds: Vec<Stmt> = function_sql(sql)
            .unwrap_or_default()
            .into_iter()
            .map(|statement| match statement {
                BlockStatement::Parsed(parsed) => parsed.statement.stmt,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(kinds[0], Stmt::AlterTable(_)), "{kinds:?}");
        assert_eq!(kinds[1], Stmt::Transaction(TransactionKind::Commit));
        assert!(matches!(kinds[2], Stmt::Dml(_)), "{kinds:?}");
        assert_eq!(kinds[3], Stmt::Transaction(TransactionKind::Rollback));
    }
}
