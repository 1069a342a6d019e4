//! SQL that cannot be checked before it runs: refused as rule `unparsable` (SQLSTATE
//! SM004, fail closed) unless the role lets such SQL through. Worded here once for the two
//! adapters that judge SQL text before it runs (the proxy and `safe-migrations check`);
//! the extension sees every statement when it runs, parsed by PostgreSQL itself.

use crate::sql::first_line;

/// The rule id these reports carry.
pub const RULE: &str = "unparsable";

/// Who could not check the SQL, which decides how its user lets such SQL through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Proxy,
    Check,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Proxy => "the proxy",
            Reader::Check => "safe-migrations check",
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Reader::Proxy => "set safe_migrations.unparsable = 'allow' for this role",
            Reader::Check => "pass --unparsable allow",
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

/// The report on SQL that `what` runs ("this statement", "this DO block", "function f
/// (called by this statement)") and `reader` cannot check, for `reason`.
pub fn text(what: &str, reason: Reason, reader: Reader) -> Text {
    let (name, allow) = (reader.name(), reader.allow());
    match reason {
        Reason::Unparsable(error) => Text {
            message: format!("{name} cannot parse SQL that {what} runs: {error}"),
            detail: "What cannot be parsed cannot be checked (fail closed).".to_string(),
            hint: format!("Fix the statement, or {allow}."),
        },
        Reason::Dynamic(expression) => Text {
            message: format!(
                "{what} runs dynamic SQL (EXECUTE of a computed string) that {name} cannot check before it runs"
            ),
            detail: format!("EXECUTE {}", first_line(expression)),
            hint: format!("Write the statements as plain SQL, in the DO block or outside it, or {allow}."),
        },
        Reason::OtherLanguage(language) => Text {
            message: format!("{what} is in language {language}, whose SQL {name} cannot check"),
            detail: "Only the SQL of PL/pgSQL DO blocks and of PL/pgSQL and SQL functions is read.".to_string(),
            hint: format!("Run the statements directly, or {allow}."),
        },
    }
}

/// The report on a statement `reader` cannot parse.
pub fn unparsable_statement(error: &str, reader: Reader) -> Text {
    Text {
        message: format!("{} cannot parse this statement: {error}", reader.name()),
        detail: "What cannot be parsed cannot be checked (fail closed).".to_string(),
        hint: format!("Fix the statement, or {}.", reader.allow()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reader_says_how_its_user_lets_such_sql_through() {
        let proxy = text("this DO block", Reason::Dynamic("'DROP TABLE ' || t"), Reader::Proxy);
        assert_eq!(
            proxy.message,
            "this DO block runs dynamic SQL (EXECUTE of a computed string) that the proxy cannot check before it runs"
        );
        assert_eq!(proxy.detail, "EXECUTE 'DROP TABLE ' || t");
        assert!(proxy
            .hint
            .ends_with("or set safe_migrations.unparsable = 'allow' for this role."));
        let check = text("this DO block", Reason::OtherLanguage("plperl"), Reader::Check);
        assert_eq!(
            check.message,
            "this DO block is in language plperl, whose SQL safe-migrations check cannot check"
        );
        assert!(check.hint.ends_with("or pass --unparsable allow."));
    }
}
