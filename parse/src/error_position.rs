//! Where a syntax error is. The `pg_query` crate keeps only the message of a failed
//! parse; libpg_query also reports the cursor position, which we read here by calling
//! the same C function the crate links.

use std::ffi::{c_int, CString};

use super::libpg_query_ffi::{pg_query_free_parse_result, pg_query_parse};

/// Byte offset of the syntax error in `sql`, or None when it parses or the parser
/// gives no position.
pub fn syntax_error_position(sql: &str) -> Option<usize> {
    let input = CString::new(sql).ok()?;
    let cursor = cursor_position(&input)?;
    let chars = usize::try_from(cursor).ok()?.checked_sub(1)?;
    Some(sql.char_indices().nth(chars).map_or(sql.len(), |(byte, _)| byte))
}

/// The parser's 1-based cursor position for `input`, if parsing fails with one.
fn cursor_position(input: &CString) -> Option<c_int> {
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call; the
    // structs mirror pg_query.h's layout (pinned by libpg_query_ffi's test); `error` is read only when non-null and
    // before the result is freed, and the result is freed exactly once.
    unsafe {
        let result = pg_query_parse(input.as_ptr());
        let cursor = if result.error.is_null() {
            None
        } else {
            Some((*result.error).cursorpos).filter(|&pos| pos > 0)
        };
        pg_query_free_parse_result(result);
        cursor
    }
}
