//! The SQL a `DO` block runs. libpg_query compiles the PL/pgSQL body to JSON; this module
//! walks it for every statement the block would send to the SQL engine, so the guard can
//! decide them like client statements. Translation only: nothing here knows the rules.

use pg_query::NodeEnum;
use serde_json::Value;

use super::ParseError;

/// What a `DO` statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoBlock {
    /// A PL/pgSQL block: its SQL statements, in the order they appear in the body.
    Plpgsql(Vec<InnerSql>),
    /// A block in another language (its name, lower case): its SQL cannot be seen.
    OtherLanguage(String),
}

/// One SQL statement of a PL/pgSQL body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InnerSql {
    /// Static SQL, or `EXECUTE` of a string constant: the statement text.
    Known(String),
    /// `EXECUTE` (or `FOR ... IN EXECUTE`, `OPEN ... FOR EXECUTE`, `RETURN QUERY EXECUTE`)
    /// of a computed string: the expression text, which says nothing certain of the SQL.
    Dynamic(String),
}

/// The statements the `DO` statement `source` runs; `None` when `source` is not a `DO`.
pub fn do_block_statements(source: &str) -> Result<Option<DoBlock>, ParseError> {
    let Some(language) = do_language(source)? else {
        return Ok(None);
    };
    if language != "plpgsql" {
        return Ok(Some(DoBlock::OtherLanguage(language)));
    }
    let compiled = pg_query::parse_plpgsql(source).map_err(|err| ParseError {
        message: format!("the DO block's PL/pgSQL body: {err}"),
        position: None,
    })?;
    let mut statements = Vec::new();
    collect(&compiled, &mut statements);
    Ok(Some(DoBlock::Plpgsql(statements)))
}

/// The language of the `DO` statement `source` (PL/pgSQL when it names none).
fn do_language(source: &str) -> Result<Option<String>, ParseError> {
    let parsed = pg_query::parse(source, 0).map_err(|err| ParseError {
        message: err.to_string(),
        position: None,
    })?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Ok(None);
    };
    let Some(NodeEnum::DoStmt(do_stmt)) = raw.stmt.as_ref().and_then(|node| node.node.as_ref()) else {
        return Ok(None);
    };
    let mut language = "plpgsql".to_string();
    for arg in &do_stmt.args {
        if let Some(NodeEnum::DefElem(elem)) = &arg.node {
            if elem.defname == "language" {
                if let Some(NodeEnum::String(name)) = elem.arg.as_ref().and_then(|node| node.node.as_ref()) {
                    language = name.sval.to_ascii_lowercase();
                }
            }
        }
    }
    Ok(Some(language))
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

fn collect(value: &Value, statements: &mut Vec<InnerSql>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect(item, statements)),
        Value::Object(fields) => {
            for (key, node) in fields {
                if key == "PLpgSQL_expr" {
                    if node
                        .get("parseMode")
                        .and_then(Value::as_u64)
                        .unwrap_or(RAW_PARSE_DEFAULT)
                        == RAW_PARSE_DEFAULT
                    {
                        if let Some(query) = node.get("query").and_then(Value::as_str) {
                            statements.push(InnerSql::Known(query.to_string()));
                        }
                    }
                    continue;
                }
                if let Some((_, field)) = DYNAMIC_SQL.iter().find(|(kind, _)| kind == key) {
                    if let Some(query) = node.get(*field).and_then(expression_text) {
                        statements.push(match string_constant(query) {
                            Some(text) => InnerSql::Known(text),
                            None => InnerSql::Dynamic(query.to_string()),
                        });
                    }
                }
                if key == "PLpgSQL_stmt_if" {
                    // The branches in source order (the JSON's keys are sorted).
                    for branch in ["cond", "then_body", "elsif_list", "else_body"] {
                        if let Some(part) = node.get(branch) {
                            collect(part, statements);
                        }
                    }
                    continue;
                }
                collect(node, statements);
            }
        }
        _ => {}
    }
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

    fn statements(source: &str) -> Vec<InnerSql> {
        match do_block_statements(source).unwrap() {
            Some(DoBlock::Plpgsql(statements)) => statements,
            other => panic!("not a PL/pgSQL DO block: {other:?}"),
        }
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
            do_block_statements("DO LANGUAGE plperl $$ 1; $$").unwrap(),
            Some(DoBlock::OtherLanguage("plperl".to_string()))
        );
        assert_eq!(
            do_block_statements("DO LANGUAGE PLPGSQL $$ BEGIN NULL; END $$").unwrap(),
            Some(DoBlock::Plpgsql(Vec::new()))
        );
        assert_eq!(do_block_statements("SELECT 1").unwrap(), None);
    }

    #[test]
    fn a_body_that_does_not_compile_is_an_error() {
        assert!(do_block_statements("DO $$ BEGIN CREATE INDEX; END $$").is_err());
    }
}
