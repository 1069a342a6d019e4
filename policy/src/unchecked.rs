//! SQL that cannot be checked before it runs: refused as rule `unparsable` (SQLSTATE
//! SM004, fail closed) unless the role lets such SQL through. Worded here once for the two
//! adapters that judge SQL text before it runs (the proxy and `safe-migrations check`);
//! the extension sees every statement when it runs, parsed by PostgreSQL itself.

use crate::sql::one_line;

/// The rule id these reports carry.
pub const RULE: &str = "unparsable";

/// Who could not check the SQL, which decides how its user lets such SQL through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Proxy,
    Check,
}

impl Reader {
    /// How its user lets SQL it cannot check through.
    fn allow(self) -> &'static str {
        match self {
            Reader::Proxy => "set safe_migrations.unparsable = 'allow' for this role",
            Reader::Check => "pass --unparsable allow",
        }
    }

    /// Which routines' SQL it reads.
    fn reads(self) -> &'static str {
        match self {
            Reader::Proxy => "The proxy reads the SQL of PL/pgSQL DO blocks and of PL/pgSQL and SQL functions only.",
            Reader::Check => "safe-migrations check reads the SQL of PL/pgSQL DO blocks only.",
        }
    }
}

/// Why the SQL cannot be checked.
#[derive(Debug, Clone, Copy)]
pub enum Reason<'a> {
    /// The parser cannot read it: its message.
    Unparsable(&'a str),
    /// EXECUTE of a string computed when it runs: the expression.
    Dynamic(&'a str),
    /// A routine in a language whose SQL is not read: the language.
    OtherLanguage(&'a str),
}

/// A report's message, detail and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub message: String,
    pub detail: String,
    pub hint: String,
}

/// The report on SQL that `what` runs ("this DO block", "function f (called by this
/// statement)") and `reader` cannot check, for `reason`. Each adapter puts its own prefix
/// before the message.
pub fn text(what: &str, reason: Reason, reader: Reader) -> Text {
    let allow = reader.allow();
    match reason {
        Reason::Unparsable(error) => Text {
            message: format!("cannot parse SQL that {what} runs: {error}"),
            detail: "What cannot be parsed cannot be checked (fail closed).".to_string(),
            hint: format!("Fix the statement, or {allow}."),
        },
        Reason::Dynamic(expression) => Text {
            message: format!(
                "{what} runs dynamic SQL (EXECUTE of a computed string) that cannot be checked before it runs"
            ),
            detail: format!("EXECUTE {}", shortened(&one_line(expression))),
            hint: format!("Write the statements as plain SQL rather than a computed string, or {allow}."),
        },
        Reason::OtherLanguage(language) => Text {
            message: format!("{what} is in language {language}, whose SQL cannot be checked"),
            detail: reader.reads().to_string(),
            hint: format!("Run the statements directly, or {allow}."),
        },
    }
}

/// The report on a statement `reader` cannot parse.
pub fn unparsable_statement(error: &str, reader: Reader) -> Text {
    Text {
        message: format!("cannot parse this statement: {error}"),
        detail: "What cannot be parsed cannot be checked (fail closed).".to_string(),
        hint: format!("Fix the statement, or {}.", reader.allow()),
    }
}

/// At most 200 characters of `text`, with an ellipsis where it was cut.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reader_says_what_it_reads_and_how_to_let_such_sql_through() {
        let proxy = text(
            "this DO block",
            Reason::Dynamic("'ALTER TABLE '\n || quote_ident(t) || ' DROP COLUMN x'"),
            Reader::Proxy,
        );
        assert_eq!(
            proxy.message,
            "this DO block runs dynamic SQL (EXECUTE of a computed string) that cannot be checked before it runs"
        );
        assert_eq!(
            proxy.detail,
            "EXECUTE 'ALTER TABLE ' || quote_ident(t) || ' DROP COLUMN x'"
        );
        assert!(proxy
            .hint
            .ends_with("or set safe_migrations.unparsable = 'allow' for this role."));
        let check = text("this DO block", Reason::OtherLanguage("plperl"), Reader::Check);
        assert_eq!(
            check.message,
            "this DO block is in language plperl, whose SQL cannot be checked"
        );
        assert_eq!(
            check.detail,
            "safe-migrations check reads the SQL of PL/pgSQL DO blocks only."
        );
        assert!(check.hint.ends_with("or pass --unparsable allow."));
        let long = "x".repeat(300);
        assert_eq!(
            text("f", Reason::Dynamic(&long), Reader::Proxy).detail.len(),
            "EXECUTE ".len() + 203
        );
    }
}
