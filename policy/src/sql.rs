//! Small SQL text helpers shared by rules and adapters: identifier quoting for hints
//! and a comment scanner (acknowledgements live in comments, which parsers drop).

/// Keywords `quote_ident` quotes (reserved, type/function-name and column-name keywords).
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// Quote an identifier the way Postgres' quote_ident does.
pub fn ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Quote a string literal.
pub fn literal(text: &str) -> String {
    if text.contains('\\') {
        // E'' reads backslashes the same way whatever standard_conforming_strings is.
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// The bodies of every comment in `sql` (`-- ...` to end of line, `/* ... */` nested),
/// skipping string literals, quoted identifiers and dollar-quoted bodies.
pub fn comments(sql: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let (token, next) = token_at(sql, i);
        if let Token::Comment(body) = token {
            found.push(&sql[body]);
        }
        i = next;
    }
    found
}

/// Just after the last `;` that ends a statement in `sql[from..to]`, read from `from`,
/// which must be where a statement or the gap between two begins (not inside a literal
/// or a comment); None if there is none. `;` inside comments, literals, quoted names and
/// dollar-quoted bodies does not count.
pub fn after_last_semicolon(sql: &str, from: usize, to: usize) -> Option<usize> {
    let to = to.min(sql.len());
    let mut found = None;
    let mut i = from;
    while i < to {
        let (token, next) = token_at(sql, i);
        if matches!(token, Token::Semicolon) {
            found = Some(next);
        }
        i = next;
    }
    found
}

enum Token {
    /// A comment, with the range of its body.
    Comment(std::ops::Range<usize>),
    Semicolon,
    /// A literal, a quoted name, a dollar-quoted body or any other byte.
    Other,
}

/// The token that begins at byte `i` of `sql`, and where the next one begins (the end of
/// `sql` for one left open). As PostgreSQL's scanner reads it: a `--` comment ends at a
/// newline or carriage return, `/* */` nests, an `E''` literal takes backslash escapes
/// (not a quote after a name ending in e: `LIKE'a\'`), a `$` inside a name (`a$b$`) opens
/// no dollar quote. (With standard_conforming_strings off, backslashes would escape in
/// every literal; the proxy refuses what reads differently either way.)
fn token_at(sql: &str, i: usize) -> (Token, usize) {
    let bytes = sql.as_bytes();
    match bytes[i] {
        b';' => (Token::Semicolon, i + 1),
        b'-' if bytes.get(i + 1) == Some(&b'-') => {
            let end = sql[i..].find(['\n', '\r']).map_or(sql.len(), |n| i + n);
            (Token::Comment(i + 2..end), end)
        }
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            let next = block_comment_end(sql, i);
            let body_end = if sql[..next].ends_with("*/") && next >= i + 4 {
                next - 2
            } else {
                next
            };
            (Token::Comment(i + 2..body_end), next)
        }
        b'\'' | b'"' => (Token::Other, quoted_end(sql, i)),
        b'$' if i == 0 || !is_identifier_byte(bytes[i - 1]) => match dollar_tag(&sql[i..]) {
            Some(tag) => {
                let body = i + tag.len();
                (
                    Token::Other,
                    sql[body..].find(tag).map_or(sql.len(), |n| body + n + tag.len()),
                )
            }
            None => (Token::Other, i + 1),
        },
        _ => (Token::Other, i + 1),
    }
}

/// `$tag$` or `$$` at the start of `text`, if it opens a dollar-quoted string.
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = &text[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag.is_empty()
        || (tag.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_alphanumeric() || c == '_'));
    valid.then(|| &text[..end + 2])
}

/// `sql` without leading white space and comments: where the statement's first keyword is.
pub fn strip_leading_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |n| &after[n + 1..]).trim_start();
        } else if rest.starts_with("/*") {
            let first = comments(rest).first().map_or(rest.len(), |body| body.len() + 4);
            rest = rest.get(first..).unwrap_or("").trim_start();
        } else {
            return rest;
        }
    }
}

/// The statement as one line for a hint or a log: leading comments, the trailing
/// semicolon and runs of white space removed.
pub fn one_line(sql: &str) -> String {
    let text = strip_leading_comments(sql).trim().trim_end_matches(';').trim_end();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The statement's first line (after leading comments), at most 200 characters: how a
/// report or a log names a statement or an expression that may be long.
pub fn first_line(source: &str) -> String {
    let text = strip_leading_comments(source).trim();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// Insert `word` after the leading keywords `after` (matched case-insensitively, any
/// white space between them) of the statement; None when the statement does not start so.
pub fn insert_after_keywords(sql: &str, after: &[&str], word: &str) -> Option<String> {
    let text = one_line(sql);
    let mut pos = 0;
    for keyword in after {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.len() < keyword.len() || !trimmed[..keyword.len()].eq_ignore_ascii_case(keyword) {
            return None;
        }
        pos += keyword.len();
        if text[pos..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            return None;
        }
    }
    Some(format!("{} {}{}", &text[..pos], word, &text[pos..]))
}

/// Keywords that end a DEFAULT expression inside a column definition.
const COLUMN_CONSTRAINT_KEYWORDS: &[&str] = &[
    "not",
    "null",
    "constraint",
    "check",
    "references",
    "unique",
    "primary",
    "generated",
    "collate",
    "default",
    "deferrable",
    "initially",
];

/// The text of an expression starting at byte `start` of `source` (a parse node's
/// location), up to the first top-level `,`, `)`, `;`, column-constraint keyword, or the
/// end. Both adapters take DEFAULT text with this, so their hints are identical.
pub fn expression_at(source: &str, start: usize) -> String {
    let Some(text) = source.get(start..) else {
        return String::new();
    };
    let end = scan_expression_end(text, true);
    text[..end].trim().to_string()
}

/// The text of a column's DEFAULT expression, given the location of its DEFAULT
/// constraint node (the `DEFAULT` keyword, or `CONSTRAINT` when the default is named):
/// the expression after the first `DEFAULT` keyword there, as `expression_at` takes it.
/// Expression nodes point at their operator, not their start, so both adapters start
/// from the constraint.
pub fn default_expression_at(source: &str, constraint_location: usize) -> String {
    let Some(text) = source.get(constraint_location..) else {
        return String::new();
    };
    let lower = text.to_ascii_lowercase();
    let keyword = lower.match_indices("default").find(|(at, _)| {
        let before_ok = *at == 0 || !is_word_byte(lower.as_bytes()[at - 1]);
        let after = lower.as_bytes().get(at + "default".len()).copied();
        before_ok && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    match keyword {
        Some((at, _)) => expression_at(source, constraint_location + at + "default".len()),
        None => String::new(),
    }
}

/// The text between the parenthesis that opens at or after byte `start` and its match
/// (for `CHECK (expr)`: pass the constraint's location).
pub fn parenthesized_at(source: &str, start: usize) -> String {
    let Some(text) = source.get(start..) else {
        return String::new();
    };
    let Some(open) = first_open_parenthesis(text) else {
        return String::new();
    };
    let inner = &text[open + 1..];
    // Bounded by its parenthesis: `CHECK (a IS NOT NULL)` goes on past NOT.
    let end = scan_expression_end(inner, false);
    inner[..end].trim().to_string()
}

/// The first `(` of `text` outside quoted names, literals and comments
/// (`ADD CONSTRAINT "k(a)" CHECK (b > 0)`: the CHECK's).
fn first_open_parenthesis(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => return Some(i),
            b'\'' | b'"' => i = quoted_end(text, i),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment_end(text, i),
            _ => i += 1,
        }
    }
    None
}

/// Just after the quoted name or literal that opens at byte `start` (`'`, `"`; an E''
/// literal takes backslash escapes).
fn quoted_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[start];
    let escapes = quote == b'\''
        && start >= 1
        && matches!(bytes[start - 1], b'e' | b'E')
        && (start < 2 || !is_identifier_byte(bytes[start - 2]));
    let mut i = start + 1;
    while i < bytes.len() {
        let escaped = escapes && bytes[i] == b'\\';
        let doubled = bytes[i] == quote && bytes.get(i + 1) == Some(&quote);
        if escaped || doubled {
            i += 2;
        } else if bytes[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    text.len()
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Byte length of the expression at the start of `text` (see `expression_at`), up to
/// its last token: comments inside it are part of it (`CHECK (a > 0 -- why` then
/// `AND b > 0)` is one expression), comments after it are not.
/// A column constraint keyword at the top level (`NOT NULL`, `REFERENCES` ...) ends it
/// where `constraint_keywords_end_it`.
fn scan_expression_end(text: &str, constraint_keywords_end_it: bool) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // CASE ... END nests like parentheses: `CASE WHEN x IS NULL THEN 0 END` goes on past NULL.
    let mut case_depth = 0usize;
    // Just after the expression's last token so far.
    let mut last_end = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'(' | b'[' => depth += 1,
            b')' | b']' if depth == 0 => return last_end,
            b')' | b']' => depth -= 1,
            b',' | b';' if depth == 0 => return last_end,
            b'\'' | b'"' => {
                i = quoted_end(text, i);
                last_end = i;
                continue;
            }
            // A dollar quote, unless the `$` is part of a name (`a$b`).
            b'$' if i == 0 || !is_identifier_byte(bytes[i - 1]) => {
                if let Some(tag) = dollar_tag(&text[i..]) {
                    let body = i + tag.len();
                    i = text[body..].find(tag).map_or(text.len(), |n| body + n + tag.len());
                    last_end = i;
                    continue;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(text, i);
                continue;
            }
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ if depth == 0 && c.is_ascii_alphabetic() && (i == 0 || !is_word_byte(bytes[i - 1])) => {
                let word_end = text[i..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .map_or(text.len(), |n| i + n);
                let word = text[i..word_end].to_ascii_lowercase();
                match word.as_str() {
                    "case" => case_depth += 1,
                    "end" => case_depth = case_depth.saturating_sub(1),
                    _ if constraint_keywords_end_it
                        && case_depth == 0
                        && i > 0
                        && COLUMN_CONSTRAINT_KEYWORDS.contains(&word.as_str()) =>
                    {
                        return last_end
                    }
                    _ => {}
                }
                i = word_end;
                last_end = i;
                continue;
            }
            _ => {}
        }
        i += 1;
        last_end = i.min(text.len());
    }
    last_end
}

/// Just after the block comment that opens at byte `start` of `text` (they nest).
fn block_comment_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    text.len()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b':'
}

/// A FOREIGN KEY's match type, referential actions and deferrability, with Postgres'
/// one-letter codes (pg_constraint.confmatchtype 'f'/'p'/'s', confupdtype/confdeltype
/// 'a'/'r'/'c'/'n'/'d'). Both adapters build `options_sql` from this, so hints match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKeyOptions {
    pub match_type: char,
    pub on_update: char,
    pub on_delete: char,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

impl Default for ForeignKeyOptions {
    fn default() -> Self {
        ForeignKeyOptions {
            match_type: 's',
            on_update: 'a',
            on_delete: 'a',
            deferrable: false,
            initially_deferred: false,
        }
    }
}

impl ForeignKeyOptions {
    /// `MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED`:
    /// pg_get_constraintdef's order, defaults (MATCH SIMPLE, NO ACTION, NOT DEFERRABLE)
    /// left out. INITIALLY DEFERRED implies DEFERRABLE.
    pub fn sql(&self) -> String {
        let action = |code: char| match code {
            'r' => Some("RESTRICT"),
            'c' => Some("CASCADE"),
            'n' => Some("SET NULL"),
            'd' => Some("SET DEFAULT"),
            _ => None,
        };
        let mut parts: Vec<String> = Vec::new();
        match self.match_type {
            'f' => parts.push("MATCH FULL".into()),
            'p' => parts.push("MATCH PARTIAL".into()),
            _ => {}
        }
        if let Some(update) = action(self.on_update) {
            parts.push(format!("ON UPDATE {update}"));
        }
        if let Some(delete) = action(self.on_delete) {
            parts.push(format!("ON DELETE {delete}"));
        }
        if self.deferrable || self.initially_deferred {
            parts.push("DEFERRABLE".into());
        }
        if self.initially_deferred {
            parts.push("INITIALLY DEFERRED".into());
        }
        parts.join(" ")
    }
}

/// An ALTER TABLE subcommand as SQL, for messages, from its name in Postgres'
/// AlterTableType (`AT_SetRelOptions` -> `SET (...)`): both adapters name the
/// subcommands the model does not describe with it, so their models agree.
pub fn alter_table_subcommand_sql(name: &str) -> &'static str {
    match name {
        "AT_AddColumn" | "AT_AddColumnToView" => "ADD COLUMN",
        "AT_ColumnDefault" | "AT_CookedColumnDefault" => "ALTER COLUMN SET DEFAULT",
        "AT_DropNotNull" => "ALTER COLUMN DROP NOT NULL",
        "AT_SetNotNull" => "ALTER COLUMN SET NOT NULL",
        "AT_SetExpression" => "ALTER COLUMN SET EXPRESSION",
        "AT_DropExpression" => "ALTER COLUMN DROP EXPRESSION",
        "AT_SetStatistics" => "ALTER COLUMN SET STATISTICS",
        "AT_SetOptions" => "ALTER COLUMN SET (...)",
        "AT_ResetOptions" => "ALTER COLUMN RESET (...)",
        "AT_SetStorage" => "ALTER COLUMN SET STORAGE",
        "AT_SetCompression" => "ALTER COLUMN SET COMPRESSION",
        "AT_DropColumn" => "DROP COLUMN",
        "AT_AddIndex" | "AT_ReAddIndex" => "ADD INDEX",
        "AT_AddConstraint" | "AT_ReAddConstraint" | "AT_ReAddDomainConstraint" | "AT_AddIndexConstraint" => {
            "ADD CONSTRAINT"
        }
        "AT_AlterConstraint" => "ALTER CONSTRAINT",
        "AT_ValidateConstraint" => "VALIDATE CONSTRAINT",
        "AT_DropConstraint" => "DROP CONSTRAINT",
        "AT_ReAddComment" => "COMMENT",
        "AT_AlterColumnType" => "ALTER COLUMN TYPE",
        "AT_AlterColumnGenericOptions" => "ALTER COLUMN OPTIONS (...)",
        "AT_ChangeOwner" => "OWNER TO",
        "AT_ClusterOn" => "CLUSTER ON",
        "AT_DropCluster" => "SET WITHOUT CLUSTER",
        "AT_SetLogged" => "SET LOGGED",
        "AT_SetUnLogged" => "SET UNLOGGED",
        "AT_DropOids" => "SET WITHOUT OIDS",
        "AT_SetAccessMethod" => "SET ACCESS METHOD",
        "AT_SetTableSpace" => "SET TABLESPACE",
        "AT_SetRelOptions" => "SET (...)",
        "AT_ResetRelOptions" => "RESET (...)",
        "AT_ReplaceRelOptions" => "SET (...)",
        "AT_EnableTrig" | "AT_EnableTrigAll" | "AT_EnableTrigUser" => "ENABLE TRIGGER",
        "AT_EnableAlwaysTrig" => "ENABLE ALWAYS TRIGGER",
        "AT_EnableReplicaTrig" => "ENABLE REPLICA TRIGGER",
        "AT_DisableTrig" | "AT_DisableTrigAll" | "AT_DisableTrigUser" => "DISABLE TRIGGER",
        "AT_EnableRule" => "ENABLE RULE",
        "AT_EnableAlwaysRule" => "ENABLE ALWAYS RULE",
        "AT_EnableReplicaRule" => "ENABLE REPLICA RULE",
        "AT_DisableRule" => "DISABLE RULE",
        "AT_AddInherit" => "INHERIT",
        "AT_DropInherit" => "NO INHERIT",
        "AT_AddOf" => "OF",
        "AT_DropOf" => "NOT OF",
        "AT_ReplicaIdentity" => "REPLICA IDENTITY",
        "AT_EnableRowSecurity" => "ENABLE ROW LEVEL SECURITY",
        "AT_DisableRowSecurity" => "DISABLE ROW LEVEL SECURITY",
        "AT_ForceRowSecurity" => "FORCE ROW LEVEL SECURITY",
        "AT_NoForceRowSecurity" => "NO FORCE ROW LEVEL SECURITY",
        "AT_GenericOptions" => "OPTIONS (...)",
        "AT_AttachPartition" => "ATTACH PARTITION",
        "AT_DetachPartition" => "DETACH PARTITION",
        "AT_DetachPartitionFinalize" => "DETACH PARTITION FINALIZE",
        "AT_AddIdentity" => "ALTER COLUMN ADD GENERATED AS IDENTITY",
        "AT_SetIdentity" => "ALTER COLUMN SET GENERATED",
        "AT_DropIdentity" => "ALTER COLUMN DROP IDENTITY",
        "AT_ReAddStatistics" => "STATISTICS",
        _ => "ALTER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_text_stops_at_the_next_constraint() {
        let sql = "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid() NOT NULL, ADD d int";
        let start = sql.find("gen_random").unwrap();
        assert_eq!(expression_at(sql, start), "gen_random_uuid()");
        let sql = "ALTER TABLE t ADD COLUMN c text DEFAULT 'a, b' || lower('X');";
        assert_eq!(expression_at(sql, sql.find("'a").unwrap()), "'a, b' || lower('X')");
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK ((price > 0) AND (qty > 0)) NOT VALID";
        assert_eq!(
            parenthesized_at(sql, sql.find("CHECK").unwrap()),
            "(price > 0) AND (qty > 0)"
        );
    }

    #[test]
    fn literals_read_the_same_whatever_standard_conforming_strings_is() {
        assert_eq!(literal("o'rders"), "'o''rders'");
        assert_eq!(literal(r"a\b'c"), r"E'a\\b''c'");
    }

    #[test]
    fn comments_inside_an_expression_are_part_of_it_and_after_it_are_not() {
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0 -- why\n AND b > 0) NOT VALID";
        assert_eq!(
            parenthesized_at(sql, sql.find("CHECK").unwrap()),
            "a > 0 -- why\n AND b > 0"
        );
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK (a /* ) */ > 0 /* done */)";
        assert_eq!(parenthesized_at(sql, sql.find("CHECK").unwrap()), "a /* ) */ > 0");
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK (a <> E'\\'' AND b > 0) NOT VALID";
        assert_eq!(
            parenthesized_at(sql, sql.find("CHECK").unwrap()),
            "a <> E'\\'' AND b > 0"
        );
        let sql = "ALTER TABLE t ADD CONSTRAINT \"k(a IS NOT NULL)\" CHECK (b > 0)";
        assert_eq!(parenthesized_at(sql, sql.find("CONSTRAINT").unwrap()), "b > 0");
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK (a$b$ > 0 AND c > 0)";
        assert_eq!(parenthesized_at(sql, sql.find("CHECK").unwrap()), "a$b$ > 0 AND c > 0");
        let sql = "ALTER TABLE t ADD CONSTRAINT k CHECK (a IS NOT NULL AND b IS NOT NULL) NOT VALID";
        assert_eq!(
            parenthesized_at(sql, sql.find("CHECK").unwrap()),
            "a IS NOT NULL AND b IS NOT NULL"
        );
        let sql = "ALTER TABLE t ADD COLUMN c int DEFAULT 0 -- zero, for now\n NOT NULL";
        assert_eq!(expression_at(sql, sql.find('0').unwrap()), "0");
    }

    #[test]
    fn default_text_goes_on_through_case_end() {
        let sql = "ALTER TABLE t ADD c int DEFAULT CASE WHEN random() IS NULL THEN 0 ELSE 1 END NOT NULL";
        assert_eq!(
            default_expression_at(sql, sql.find("DEFAULT").unwrap()),
            "CASE WHEN random() IS NULL THEN 0 ELSE 1 END"
        );
    }

    #[test]
    fn default_text_from_the_constraint_location() {
        let sql = "ALTER TABLE t ADD COLUMN c int CONSTRAINT d DEFAULT 1 + 2 NOT NULL";
        assert_eq!(default_expression_at(sql, sql.find("CONSTRAINT").unwrap()), "1 + 2");
        let sql = "ALTER TABLE t ADD c uuid default gen_random_uuid(), ADD d int";
        assert_eq!(
            default_expression_at(sql, sql.find("default").unwrap()),
            "gen_random_uuid()"
        );
    }

    #[test]
    fn quotes_like_quote_ident() {
        assert_eq!(ident("orders"), "orders");
        assert_eq!(ident("Orders"), "\"Orders\"");
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("my table"), "\"my table\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn finds_comments_but_not_inside_strings() {
        let sql = "-- one\nSELECT '-- no', $$ /* no */ $$, \"--no\" /* two /* nested */ */ -- three";
        assert_eq!(comments(sql), vec![" one", " two /* nested */ ", " three"]);
    }

    #[test]
    fn after_last_semicolon_skips_comments_literals_and_dollar_bodies() {
        let sql = "SELECT ';'; DO $$ BEGIN; END $$; -- a; b\n/* ; */ E'\\';' ALTER";
        let last = sql.find("$$; --").unwrap() + 3;
        assert_eq!(after_last_semicolon(sql, 0, sql.len()), Some(last));
        assert_eq!(after_last_semicolon(sql, 0, 11), Some(11));
        assert_eq!(after_last_semicolon(sql, 0, 10), None);
        assert_eq!(after_last_semicolon(sql, last, sql.len()), None);
        // A name ending in e before a quote, a `$` inside a name, a comment ended by \r.
        let sql = "SELECT 1 WHERE x LIKE'a\\'; SELECT a$b$; -- c\r; SELECT 3";
        assert_eq!(
            after_last_semicolon(sql, 0, sql.len()),
            Some(sql.rfind(';').unwrap() + 1)
        );
        assert_eq!(
            after_last_semicolon(sql, 0, sql.find(" SELECT a$").unwrap()),
            Some(sql.find(" SELECT a$").unwrap())
        );
    }

    #[test]
    fn inserts_concurrently_after_leading_keywords() {
        assert_eq!(
            insert_after_keywords(
                "-- c\n create  unique INDEX i ON t (c);",
                &["CREATE", "UNIQUE", "INDEX"],
                "CONCURRENTLY"
            ),
            Some("create unique INDEX CONCURRENTLY i ON t (c)".to_string())
        );
        assert_eq!(insert_after_keywords("CREATE INDEXES", &["CREATE", "INDEX"], "X"), None);
    }

    #[test]
    fn foreign_key_options_in_pg_get_constraintdef_order() {
        let options = ForeignKeyOptions {
            match_type: 'f',
            on_update: 'c',
            on_delete: 'n',
            deferrable: true,
            initially_deferred: true,
        };
        assert_eq!(
            options.sql(),
            "MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED"
        );
        assert_eq!(ForeignKeyOptions::default().sql(), "");
        let deferred = ForeignKeyOptions {
            on_delete: 'r',
            initially_deferred: true,
            ..ForeignKeyOptions::default()
        };
        assert_eq!(deferred.sql(), "ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED");
    }
}
