//! The functions a statement may call, found by the Postgres lexer (libpg_query's
//! scanner): every name followed by `(`, except where the name is being defined or is a
//! relation with a column list (`INSERT INTO t (a)`, `CREATE FUNCTION f(int)`).
//!
//! Over-approximate on purpose: the proxy looks each name up on the server and reads the
//! bodies of the user-defined functions it finds, so a name that is not a function costs
//! a lookup, while a call missed here would be SQL run unchecked.

use pg_query::protobuf::{KeywordKind, ScanToken, Token};
use policy::model::SettingChange;
use policy::QualifiedName;

/// Keywords after which `name (` defines or names something rather than calling it.
const NOT_A_CALL_AFTER: &[Token] = &[
    Token::Into,
    Token::Table,
    Token::References,
    Token::Index,
    Token::View,
    Token::TypeP,
    Token::Function,
    Token::Procedure,
    Token::Routine,
    Token::Aggregate,
    Token::Trigger,
    Token::Operator,
    Token::Copy,
    Token::Analyze,
    Token::Analyse,
    Token::Vacuum,
    Token::Prepare,
    Token::Execute,
    Token::Cursor,
    Token::Sequence,
    Token::Statistics,
    Token::Policy,
    Token::Handler,
    Token::Validator,
    Token::Language,
    Token::Cast,
    Token::Transform,
    Token::Method,
];

/// Functions `sql` may call, each once, in order; names in pg_catalog are left out
/// (built-in functions run no SQL of the caller's).
pub fn called_functions(sql: &str) -> Vec<QualifiedName> {
    let Some(tokens) = code_tokens(sql) else {
        return Vec::new();
    };
    let mut calls: Vec<QualifiedName> = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        if token.token != Token::Ascii40 as i32 || at == 0 || !is_name(&tokens[at - 1]) {
            continue;
        }
        // The dotted name before `(`: a.b.c(...) is schema b, function c.
        let mut start = at - 1;
        while start >= 2 && tokens[start - 1].token == Token::Ascii46 as i32 && is_name(&tokens[start - 2]) {
            start -= 2;
        }
        if start > 0
            && NOT_A_CALL_AFTER
                .iter()
                .any(|keyword| tokens[start - 1].token == *keyword as i32)
        {
            continue;
        }
        let parts: Vec<String> = tokens[start..at]
            .iter()
            .step_by(2)
            .map(|part| identifier(token_text(sql, part)))
            .collect();
        let name = match parts.as_slice() {
            [name] => QualifiedName::bare(name),
            [.., schema, name] => QualifiedName::new(Some(schema), name),
            [] => continue,
        };
        if name.schema.as_deref() != Some("pg_catalog") && !calls.contains(&name) {
            calls.push(name);
        }
    }
    calls
}

/// The settings `sql`'s `set_config` calls change: the first argument's text when it is
/// a plain string constant followed by `,`, else computed (an expression, a parameter,
/// an escape string). Comments and string contents are not tokens, so a setting only
/// mentioned there changes nothing. Built-in: only unqualified or pg_catalog calls.
pub fn set_config_calls(sql: &str) -> Vec<SettingChange> {
    set_config_calls_within(sql, false, 0)
}

/// As [`set_config_calls`], also in the string constants of the text (a `DO` block's or
/// a function's body, whose PL/pgSQL expressions, `x := set_config(...)`, are no SQL
/// statements the proxy decides one by one), to a few levels of nesting.
pub fn set_config_calls_in_bodies(sql: &str) -> Vec<SettingChange> {
    set_config_calls_within(sql, true, 0)
}

/// String constants in bodies are read this deep (a body's string holding a body).
const MAX_BODY_DEPTH: usize = 3;

fn set_config_calls_within(sql: &str, bodies: bool, depth: usize) -> Vec<SettingChange> {
    // The scanner only for texts that can hold such a call: `set_config` spelled out, or
    // a U&"..." identifier, which may spell it with escapes.
    if !contains_ignoring_case(sql, "set_config") && !contains_ignoring_case(sql, "u&") {
        return Vec::new();
    }
    let Some(tokens) = code_tokens(sql) else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    if bodies {
        for token in tokens.iter().filter(|token| token.token == Token::Sconst as i32) {
            let text = token_text(sql, token);
            match string_constant(text) {
                Some(inner) if depth < MAX_BODY_DEPTH => {
                    changes.extend(set_config_calls_within(&inner, true, depth + 1));
                }
                // Unread (E'', U&'', too deep): a call in it cannot be ruled out.
                _ if contains_ignoring_case(text, "set_config") => {
                    changes.push(SettingChange::SetConfigComputed);
                }
                _ => {}
            }
        }
    }
    for (at, token) in tokens.iter().enumerate() {
        let called = tokens.get(at + 1).map(|t| t.token) == Some(Token::Ascii40 as i32);
        if token.token == Token::Uident as i32 && called {
            // A function named with Unicode escapes may be set_config: its argument is
            // not read (fail closed).
            changes.push(SettingChange::SetConfigComputed);
            continue;
        }
        if !is_name(token) || identifier(token_text(sql, token)) != "set_config" {
            continue;
        }
        let qualified = at >= 2 && tokens[at - 1].token == Token::Ascii46 as i32;
        if qualified && identifier(token_text(sql, &tokens[at - 2])) != "pg_catalog" {
            continue;
        }
        if tokens.get(at + 1).map(|t| t.token) != Some(Token::Ascii40 as i32) {
            continue;
        }
        let name = match (tokens.get(at + 2), tokens.get(at + 3)) {
            (Some(argument), Some(comma))
                if argument.token == Token::Sconst as i32 && comma.token == Token::Ascii44 as i32 =>
            {
                string_constant(token_text(sql, argument))
            }
            _ => None,
        };
        changes.push(match name {
            Some(name) => SettingChange::SetConfig(name.to_ascii_lowercase()),
            None => SettingChange::SetConfigComputed,
        });
    }
    changes
}

/// Does `text` contain the ASCII `word`, in any case? (Without a lower-cased copy: this
/// runs for every statement a guarded role sends.)
fn contains_ignoring_case(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
}

/// The value of a `'...'` or `$tag$...$tag$` constant; None for other spellings (E'',
/// U&'', and `'a'` newline `'b'`, which the scanner joins into one token), whose reading
/// the caller does not attempt.
fn string_constant(text: &str) -> Option<String> {
    if let Some(inner) = text.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')) {
        // Inside, quotes come only doubled; a lone one ends a piece that continues.
        let unquoted = inner.replace("''", "");
        return (!unquoted.contains('\'')).then(|| inner.replace("''", "'"));
    }
    let tag_end = text.strip_prefix('$')?.find('$')? + 2;
    let tag = &text[..tag_end];
    text.strip_prefix(tag)?.strip_suffix(tag).map(str::to_owned)
}

/// Does `sql` hold a `$n` parameter reference (outside literals and comments)?
pub fn has_parameters(sql: &str) -> bool {
    !parameter_numbers(sql).is_empty()
}

/// The highest `$n` of `sql` (0 for none): how many parameters an EXECUTE of it takes.
pub fn parameter_count(sql: &str) -> usize {
    parameter_numbers(sql).last().copied().unwrap_or(0)
}

/// The `$n` numbers `sql` refers to (outside literals and comments).
pub fn parameter_numbers(sql: &str) -> std::collections::BTreeSet<usize> {
    code_tokens(sql)
        .unwrap_or_default()
        .iter()
        .filter(|token| token.token == Token::Param as i32)
        .filter_map(|token| {
            let text = sql.get(usize::try_from(token.start).ok()?..usize::try_from(token.end).ok()?)?;
            text.strip_prefix('$')?.parse::<usize>().ok()
        })
        .collect()
}

/// The tokens of `sql` without its comments, which may stand between any two tokens
/// (`set_config/**/(...)` is a call).
fn code_tokens(sql: &str) -> Option<Vec<ScanToken>> {
    let tokens = pg_query::scan_tokens(sql).ok()?;
    Some(
        tokens
            .into_iter()
            .filter(|token| token.token != Token::SqlComment as i32 && token.token != Token::CComment as i32)
            .collect(),
    )
}

/// A token that can name a function: an identifier or a keyword allowed as one.
fn is_name(token: &ScanToken) -> bool {
    let keyword = token.keyword_kind;
    (token.token == Token::Ident as i32 || token.token == Token::Uident as i32)
        || keyword == KeywordKind::UnreservedKeyword as i32
        || keyword == KeywordKind::TypeFuncNameKeyword as i32
}

fn token_text<'a>(sql: &'a str, token: &ScanToken) -> &'a str {
    let start = usize::try_from(token.start).unwrap_or(0);
    let end = usize::try_from(token.end).unwrap_or(0);
    sql.get(start..end).unwrap_or_default()
}

/// An identifier as the catalog stores it: quoted ones as written, others lower-cased.
fn identifier(text: &str) -> String {
    match text.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted_by_their_highest_number_outside_literals_and_comments() {
        assert_eq!(parameter_count("UPDATE t SET c = $2 WHERE id < $1"), 2);
        assert_eq!(parameter_count("UPDATE t SET c = '$9' -- $8\n WHERE id = $1"), 1);
        assert_eq!(parameter_count("UPDATE t SET c = 1"), 0);
        assert!(has_parameters("DELETE FROM t WHERE id = $1"));
    }

    #[test]
    fn set_config_names_come_from_the_tokens() {
        let names = |sql: &str| set_config_calls(sql);
        assert_eq!(
            names("SELECT set_config('Safe_Migrations.Mode', 'off', false)"),
            [SettingChange::SetConfig("safe_migrations.mode".into())]
        );
        assert_eq!(
            names("SELECT pg_catalog.set_config($$work_mem$$, '8MB', false), 1"),
            [SettingChange::SetConfig("work_mem".into())]
        );
        for computed in [
            "SELECT set_config($1, $2, false)",
            "SELECT set_config('safe_' || 'migrations.mode', 'off', false)",
            "SELECT set_config(E'safe_migrations.mode', 'off', false)",
            "SELECT set_config(name, 'off', false) FROM v",
            "SELECT U&\"\\0073et_config\"('safe_migrations.mode', 'off', false)",
            "SELECT set_config('safe_'\n'migrations.mode', 'off', false)",
            "SELECT U&\"\\0073et_config\"/**/('safe_migrations.mode', 'off', false)",
        ] {
            assert_eq!(names(computed), [SettingChange::SetConfigComputed], "{computed}");
        }
        assert_eq!(
            names("SELECT set_config/* a comment */('safe_migrations.mode', 'off', false)"),
            [SettingChange::SetConfig("safe_migrations.mode".into())]
        );
        assert_eq!(
            names("SELECT set_config -- a comment\n ('safe_migrations.mode', 'off', false)"),
            [SettingChange::SetConfig("safe_migrations.mode".into())]
        );
        // In bodies: a PL/pgSQL expression, a function's quoted body.
        assert_eq!(
            set_config_calls_in_bodies(
                "DO $$DECLARE x text; BEGIN x := set_config('safe_migrations.mode', 'off', false); END$$"
            ),
            [SettingChange::SetConfig("safe_migrations.mode".into())]
        );
        assert_eq!(
            set_config_calls_in_bodies(
                "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT set_config(''safe_migrations.mode'', ''off'', false)'"
            ),
            [SettingChange::SetConfig("safe_migrations.mode".into())]
        );
        assert!(
            set_config_calls("DO $$BEGIN PERFORM set_config('safe_migrations.mode', 'off', false); END$$").is_empty()
        );
        for nothing in [
            "SELECT 'set_config(''safe_migrations.mode'', ''off'', false)'",
            "SELECT 1 -- set_config('safe_migrations.mode', 'off', false)",
            "SELECT other.set_config('safe_migrations.mode', 'off', false)",
            "SELECT current_setting('safe_migrations.mode')",
        ] {
            assert!(names(nothing).is_empty(), "{nothing}");
        }
    }

    fn names(sql: &str) -> Vec<String> {
        called_functions(sql).iter().map(QualifiedName::to_string).collect()
    }

    #[test]
    fn calls_are_found_wherever_they_are() {
        for (sql, expected) in [
            ("SELECT f()", vec!["f"]),
            ("CALL app.migrate(1)", vec!["app.migrate"]),
            ("INSERT INTO t VALUES (s.f(1))", vec!["s.f"]),
            ("SELECT ARRAY[f()]", vec!["f"]),
            ("VALUES (f())", vec!["f"]),
            ("PREPARE s AS SELECT f()", vec!["f"]),
            ("DECLARE c CURSOR FOR SELECT f()", vec!["f"]),
            (
                "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = f()",
                vec!["f"],
            ),
            // An unreserved keyword before `(` may be a function's name: looked up, found
            // to be none.
            (
                "INSERT INTO t SELECT 1 ON CONFLICT (a) DO UPDATE SET b = g()",
                vec!["conflict", "g"],
            ),
            ("SELECT 1 FROM t LIMIT f()", vec!["f"]),
            ("SELECT * FROM t TABLESAMPLE bernoulli(f())", vec!["bernoulli", "f"]),
            (
                "SELECT \"Mixed\"(1), UPPERCASE(2), a.b.c()",
                vec!["\"Mixed\"", "uppercase", "b.c"],
            ),
            ("SELECT f(g(h())), f()", vec!["f", "g", "h"]),
            ("SELECT pg_catalog.now(), count(*)", vec!["count"]),
        ] {
            assert_eq!(names(sql), expected, "{sql}");
        }
    }

    #[test]
    fn names_that_are_defined_or_relations_are_not_calls() {
        for sql in [
            "INSERT INTO t (a, b) VALUES (1, 2)",
            "CREATE TABLE t (a int)",
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TABLE t (a int REFERENCES u (id))",
            "COPY t (a) FROM STDIN",
            "EXECUTE s (1)",
            "SELECT 'f(1)', $$g()$$ -- h()\n",
            "SELECT CAST(1 AS numeric(10, 2)), coalesce(1, 2), x::varchar(3)",
            "ANALYZE t (a)",
        ] {
            assert_eq!(names(sql), Vec::<String>::new(), "{sql}");
        }
    }
}
