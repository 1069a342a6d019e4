//! The few libpg_query C functions the `pg_query` crate does not expose the way we need
//! (the cursor position of a syntax error; the raw PL/pgSQL JSON), declared once. The
//! structs mirror pg_query.h; the tests pin them against the crate's own reading of the
//! same results, so a layout change in a new libpg_query fails here, not in production.

use std::ffi::{c_char, c_int};

/// libpg_query's `PgQueryError` (pg_query.h).
#[repr(C)]
pub struct PgQueryError {
    pub message: *mut c_char,
    pub funcname: *mut c_char,
    pub filename: *mut c_char,
    pub lineno: c_int,
    /// 1-based character (not byte) position in the input; 0 when unknown.
    pub cursorpos: c_int,
    pub context: *mut c_char,
}

/// libpg_query's `PgQueryParseResult` (pg_query.h).
#[repr(C)]
pub struct PgQueryParseResult {
    pub parse_tree: *mut c_char,
    pub stderr_buffer: *mut c_char,
    pub error: *mut PgQueryError,
}

/// libpg_query's `PgQueryPlpgsqlParseResult` (pg_query.h).
#[repr(C)]
pub struct PgQueryPlpgsqlParseResult {
    pub plpgsql_funcs: *mut c_char,
    pub error: *mut PgQueryError,
}

extern "C" {
    // All four are exported by the libpg_query the `pg_query` crate links (statically).
    pub fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    pub fn pg_query_free_parse_result(result: PgQueryParseResult);
    pub fn pg_query_parse_plpgsql(input: *const c_char) -> PgQueryPlpgsqlParseResult;
    pub fn pg_query_free_plpgsql_parse_result(result: PgQueryPlpgsqlParseResult);
}

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, CString};

    use super::*;

    /// The error message read through our structs, as the crate reads it through its own.
    #[test]
    fn the_structs_read_what_the_crate_reads() {
        let sql = "SELECT FROM WHERE";
        let input = CString::new(sql).unwrap();
        // SAFETY: a valid NUL-terminated input; the error is read before the result is
        // freed, once.
        let ours = unsafe {
            let result = pg_query_parse(input.as_ptr());
            assert!(!result.error.is_null());
            let message = CStr::from_ptr((*result.error).message).to_string_lossy().into_owned();
            let cursor = (*result.error).cursorpos;
            pg_query_free_parse_result(result);
            (message, cursor)
        };
        let crate_message = match pg_query::parse(sql, 0) {
            Err(pg_query::Error::Parse(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(ours.0, crate_message);
        assert!(ours.1 > 0, "a syntax error has a position: {}", ours.1);

        let body = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$";
        let input = CString::new(body).unwrap();
        // SAFETY: as above.
        let ours = unsafe {
            let result = pg_query_parse_plpgsql(input.as_ptr());
            assert!(!result.error.is_null());
            let message = CStr::from_ptr((*result.error).message).to_string_lossy().into_owned();
            pg_query_free_plpgsql_parse_result(result);
            message
        };
        let crate_message = match pg_query::parse_plpgsql(body) {
            Err(pg_query::Error::Parse(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(ours, crate_message);
    }
}
