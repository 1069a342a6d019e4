//! libpg_query's PL/pgSQL compiler, read through its C API because its JSON is broken
//! for trigger functions: each datum it cannot dump (the "promise" variables TG_NAME,
//! TG_OP, ... that a trigger function gets) is written as `{}}` instead of `{}`, so
//! `pg_query::parse_plpgsql` fails to read it and every trigger function would be
//! unreadable. The text is repaired (those datums become empty objects, which the walk
//! ignores) and then read as JSON.

use std::ffi::{CStr, CString};

use serde_json::Value;

use super::libpg_query_ffi::{pg_query_free_plpgsql_parse_result, pg_query_parse_plpgsql};

/// The compiled functions of `source` (a `CREATE FUNCTION` or `DO` statement), as the
/// JSON `pg_query::parse_plpgsql` would give for a well-formed dump.
pub fn parse_plpgsql(source: &str) -> Result<Value, String> {
    let input = CString::new(source).map_err(|_| "the text contains a NUL byte".to_string())?;
    // SAFETY: pg_query_parse_plpgsql takes a NUL-terminated string it does not keep, and returns
    // either an error or the JSON text, both owned by the result until it is freed; we
    // copy what we need out of them before freeing it, exactly once.
    let text = unsafe {
        let result = pg_query_parse_plpgsql(input.as_ptr());
        let text = if !result.error.is_null() {
            let message = (*result.error).message;
            Err(if message.is_null() {
                "PL/pgSQL compilation failed".to_string()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            })
        } else if result.plpgsql_funcs.is_null() {
            Err("PL/pgSQL compilation returned nothing".to_string())
        } else {
            Ok(CStr::from_ptr(result.plpgsql_funcs).to_string_lossy().into_owned())
        };
        pg_query_free_plpgsql_parse_result(result);
        text?
    };
    serde_json::from_str(&repaired(&text)).map_err(|err| format!("Error parsing JSON: {err}"))
}

/// `json` with each undumpable datum (`{}}` where an array element starts, outside
/// strings) written as the empty object `{}`.
fn repaired(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = None;
    let mut rest = json;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(previous, Some('[' | ',')) && rest.starts_with("{}}") {
            out.push_str("{}");
            rest = &rest[3..];
            previous = Some('}');
            continue;
        }
        if !c.is_whitespace() || in_string {
            previous = Some(c);
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undumpable_datums_become_empty_objects_and_strings_stay() {
        assert_eq!(
            repaired(r#"{"datums":[{"a":1}},{}},{}},{"b":"x,{}}"}}]}"#),
            r#"{"datums":[{"a":1}},{},{},{"b":"x,{}}"}}]}"#
        );
        assert_eq!(repaired(r#"[{}}]"#), "[{}]");
        assert_eq!(repaired(r#"{"q":"\"[{}}"}"#), r#"{"q":"\"[{}}"}"#);
    }

    #[test]
    fn a_trigger_function_compiles() {
        let source = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                      EXECUTE 'CREATE INDEX i ON t (c)'; NEW.x := 1; RETURN NEW; END $$";
        assert!(
            pg_query::parse_plpgsql(source).is_err(),
            "libpg_query's dump is fixed: drop the repair"
        );
        let compiled = parse_plpgsql(source).unwrap();
        assert!(compiled.to_string().contains("CREATE INDEX i ON t (c)"));
        assert!(parse_plpgsql("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN; END").is_err());
    }
}
