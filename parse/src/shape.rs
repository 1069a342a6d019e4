//! A statement's shape: its text with every constant replaced by a parameter (`$1`,
//! `$2` ...), found by a scan of the tokens, not a parse. Application traffic sent as
//! simple queries repeats a few shapes with different constants (`... WHERE aid = 1`,
//! `... WHERE aid = 2`); a guarded session decides a shape once instead of parsing
//! every text (proxy/src/clean_verdicts.rs says when that is sound).
//!
//! The scan gives up (`None`) wherever it could read a token differently from the
//! server: backslashes (whose meaning depends on standard_conforming_strings), `U&`
//! strings, parameters already in the text, a number glued to a name (`1abc`), an
//! unterminated quote or comment.

/// The text with its constants replaced by `$1`, `$2` ..., and the constants' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub text: String,
    pub constants: Vec<String>,
}

/// The shape of `sql`, if the scan can read every token of it with certainty.
pub fn shape(sql: &str) -> Option<Shape> {
    if sql.contains('\\') {
        return None;
    }
    let bytes = sql.as_bytes();
    let mut text = String::with_capacity(sql.len());
    let mut constants = Vec::new();
    // Start of the text not yet copied to `text`.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let constant_end = match byte {
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = sql[at..].find('\n').map_or(bytes.len(), |end| at + end);
                continue;
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = block_comment_end(bytes, at)?;
                continue;
            }
            b'"' => {
                at = quoted_end(bytes, at, b'"')?;
                continue;
            }
            b'\'' => quoted_end(bytes, at, b'\'')?,
            b'$' => match dollar_quote_end(sql, at)? {
                Some(end) => end,
                None => {
                    at += 1;
                    continue;
                }
            },
            b'0'..=b'9' => number_end(bytes, at)?,
            b'.' if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => number_end(bytes, at)?,
            _ if is_identifier_start(byte) => {
                let end = identifier_end(bytes, at);
                // E'...', B'...', X'...', N'...': one constant with its prefix.
                let prefixed = end == at + 1 && matches!(byte | 0x20, b'e' | b'b' | b'x' | b'n');
                if bytes.get(end) == Some(&b'\'') && prefixed {
                    quoted_end(bytes, end, b'\'')?
                } else if bytes.get(end) == Some(&b'&') && (byte | 0x20) == b'u' && end == at + 1 {
                    return None;
                } else {
                    at = end;
                    continue;
                }
            }
            _ => {
                at += 1;
                continue;
            }
        };
        text.push_str(&sql[copied..at]);
        constants.push(sql[at..constant_end].to_string());
        text.push('$');
        text.push_str(&constants.len().to_string());
        at = constant_end;
        copied = at;
    }
    text.push_str(&sql[copied..]);
    Some(Shape { text, constants })
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_identifier_part(byte: u8) -> bool {
    is_identifier_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

fn identifier_end(bytes: &[u8], start: usize) -> usize {
    start
        + bytes[start..]
            .iter()
            .position(|&byte| !is_identifier_part(byte))
            .unwrap_or(bytes.len() - start)
}

/// End of a '...' or "..." token starting at `start` (a doubled quote is part of it).
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut at = start + 1;
    loop {
        let close = at + bytes[at..].iter().position(|&byte| byte == quote)?;
        if bytes.get(close + 1) == Some(&quote) {
            at = close + 2;
        } else {
            return Some(close + 1);
        }
    }
}

/// End of a (nested) /* ... */ comment starting at `start`.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while at + 1 < bytes.len() {
        match (bytes[at], bytes[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => at += 1,
        }
    }
    None
}

/// At a `$`: `Some(end)` of a dollar-quoted constant, `None` for a lone `$` (an
/// operator character); gives up on a parameter (`$1`).
fn dollar_quote_end(sql: &str, start: usize) -> Option<Option<usize>> {
    let bytes = sql.as_bytes();
    let after = &bytes[start + 1..];
    if after.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag_len = after.iter().position(|&byte| !is_identifier_part(byte) || byte == b'$');
    match tag_len {
        Some(len) if after[len] == b'$' && (len == 0 || is_identifier_start(after[0])) => {
            let delimiter = &sql[start..start + len + 2];
            let body = start + len + 2;
            let close = sql[body..].find(delimiter)?;
            Some(Some(body + close + delimiter.len()))
        }
        _ => Some(None),
    }
}

/// End of a numeric constant: digits, a fraction, an exponent. A name glued to it
/// (`1abc`, `0x1F`, `1_000`) is read differently by different server versions.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits = |at: usize| at + bytes[at..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let mut at = digits(start);
    if bytes.get(at) == Some(&b'.') && bytes.get(at + 1) != Some(&b'.') {
        at = digits(at + 1);
    }
    if bytes.get(at).is_some_and(|&byte| byte | 0x20 == b'e') {
        let sign = usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        if bytes.get(at + 1 + sign).is_some_and(u8::is_ascii_digit) {
            at = digits(at + 1 + sign);
        }
    }
    if bytes
        .get(at)
        .is_some_and(|&byte| is_identifier_part(byte) || byte == b'.')
    {
        return None;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sql: &str) -> Option<String> {
        shape(sql).map(|shape| shape.text)
    }

    #[test]
    fn constants_become_parameters() {
        let shaped = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 83421;").unwrap();
        assert_eq!(shaped.text, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
        assert_eq!(shaped.constants, vec!["83421"]);
        assert_eq!(
            text("UPDATE t SET a = a + -5, b = 'it''s', c = 1.5e-3, d = .5 WHERE e = E'x' AND f = $q$a'b$q$"),
            Some("UPDATE t SET a = a + -$1, b = $2, c = $3, d = $4 WHERE e = $5 AND f = $6".to_string())
        );
        assert_eq!(
            text("SELECT $$a$$, x'1F', B'101'"),
            Some("SELECT $1, $2, $3".to_string())
        );
    }

    #[test]
    fn names_comments_and_quoted_identifiers_stay() {
        assert_eq!(
            text("SELECT t1.c2, \"a'1\" FROM t1 -- it's 1\n /* 2 /* 'x' */ 3 */ WHERE x$1 = 2"),
            Some("SELECT t1.c2, \"a'1\" FROM t1 -- it's 1\n /* 2 /* 'x' */ 3 */ WHERE x$1 = $1".to_string())
        );
        assert_eq!(text("SELECT 1 a, 2"), Some("SELECT $1 a, $2".to_string()));
    }

    #[test]
    fn gives_up_where_the_server_could_read_the_text_otherwise() {
        for sql in [
            "SELECT 'a\\'b'",
            "SELECT U&'d\\0061t'",
            "SELECT u&'x'",
            "SELECT $1",
            "SELECT 1abc",
            "SELECT 0x1F",
            "SELECT 1_000",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT 1 /* unterminated",
            "SELECT $tag$ unterminated",
        ] {
            assert_eq!(text(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_lone_dollar_is_an_operator_character() {
        assert_eq!(text("SELECT 1 $ 2"), Some("SELECT $1 $ $2".to_string()));
    }
}
