//! One file's statements, decided in order with what the file showed before each, and
//! the statements its `DO` blocks run.

use policy::finding::SQLSTATE_UNPARSABLE;
use policy::model::{RoutineKind, TransactionKind};
use policy::settings::Unparsable;
use policy::transaction::Placement;
use policy::unchecked::{self, Reader, Reason, Text};
use policy::{Context, Mode, Settings, Severity, Statement, Stmt};

use parse::plpgsql::{do_block_sql, BlockStatement, Unreadable};
use parse::prepared::{executed_name, Prepares};
use parse::{parse_sql, starts_with_word, ParsedStatement};

use super::run_catalog::RunCatalog;
use super::Problem;

/// Check one file's SQL: every statement decided in order, the catalog learning from
/// each statement after its decision. A syntax error stops the file.
pub fn check_sql(file: &str, sql: &str, settings: &Settings, server_version_num: Option<u32>) -> Vec<Problem> {
    let statements = match parse_sql(sql) {
        Ok(statements) => statements,
        Err(err) => return vec![Problem::syntax_error(file, sql, &err)],
    };
    let mut check = FileCheck::new(file, sql, settings, server_version_num);
    let mut problems: Vec<Problem> = statements.iter().flat_map(|parsed| check.statement(parsed)).collect();
    problems.extend(check.finish());
    problems
}

/// One file's statements, decided in order with what the file showed before each.
pub struct FileCheck<'a, 'db> {
    file: &'a str,
    lines: Lines<'a>,
    settings: &'a Settings,
    catalog: RunCatalog<'db>,
    /// What the file's PREPAREs prepared: an EXECUTE runs it.
    prepares: Prepares,
    /// Where the last statement decided starts (its first keyword).
    last_statement: Option<usize>,
}

impl<'a, 'db> FileCheck<'a, 'db> {
    /// `file` names `sql`, the text the statements are parsed from, in problems.
    pub fn new(
        file: &'a str,
        sql: &'a str,
        settings: &'a Settings,
        server_version_num: Option<u32>,
    ) -> FileCheck<'a, 'db> {
        let catalog = RunCatalog::new(server_version_num, policy::Transaction::file(), None, false);
        FileCheck::with_catalog(file, sql, settings, catalog)
    }

    /// The next file of a run judged with `catalog`, which knows what the files before it
    /// did (and, with `--database-url`, the database).
    pub fn with_catalog(
        file: &'a str,
        sql: &'a str,
        settings: &'a Settings,
        catalog: RunCatalog<'db>,
    ) -> FileCheck<'a, 'db> {
        FileCheck {
            file,
            lines: Lines::new(sql),
            settings,
            catalog,
            prepares: Prepares::default(),
            last_statement: None,
        }
    }

    /// The catalog, for the run's next file.
    pub fn into_catalog(self) -> RunCatalog<'db> {
        self.catalog
    }

    /// The problems of the file's next statement: its own, then those of each statement
    /// its `DO` block runs, at that statement's position inside the block.
    /// An EXECUTE of a statement the file prepared is decided as the query it runs.
    pub fn statement(&mut self, parsed: &ParsedStatement) -> Vec<Problem> {
        self.prepares.note(&parsed.statement.source);
        self.catalog.forget_ended();
        let (executed, execute) = self.executed_query(parsed).unzip();
        self.catalog.set_executing(execute.flatten());
        let parsed = executed.as_ref().unwrap_or(parsed);
        let statement = &parsed.statement;
        let context = self.catalog.transaction().context(Placement::ALONE);
        let mut problems = Vec::new();
        if statement.stmt != Stmt::Routine(RoutineKind::Do) {
            problems.extend(self.routines(parsed, parsed.offset));
        }
        problems.extend(self.decide(statement, &context, parsed.offset));
        self.catalog.set_executing(None);
        if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            // What the block runs runs inside its transaction.
            let implicit = self.catalog.set_implicit(true);
            for inner in do_block_sql(&statement.source).unwrap_or_default() {
                match inner {
                    BlockStatement::Parsed(inner) => {
                        problems.extend(self.routines(&inner, parsed.offset + inner.offset));
                        let context = self.catalog.transaction().context(Placement::NESTED);
                        let statement = policy::transaction::run_by_routine(&inner.statement);
                        problems.extend(self.decide(&statement, &context, parsed.offset + inner.offset))
                    }
                    BlockStatement::Unreadable { .. } if self.settings.unparsable == Unparsable::Allow => {}
                    BlockStatement::Unreadable { offset, reason } => {
                        problems.push(self.unreadable(parsed.offset + offset, &reason))
                    }
                }
            }
            self.catalog.set_implicit(implicit);
        }
        // Outside any transaction the statement committed as it ended.
        if !self.catalog.transaction().running() {
            problems.extend(self.transaction_ends(parsed.offset + first_keyword(&statement.source)));
        }
        problems
    }

    /// The problems of the file's end: a transaction the file leaves running (the whole
    /// file, as tools run it, or a block it does not close) commits there.
    pub fn finish(&mut self) -> Vec<Problem> {
        match self.last_statement {
            Some(offset) if self.catalog.transaction().running() => self.transaction_ends(offset),
            _ => Vec::new(),
        }
    }

    /// The transaction ends after the statement at byte `offset`: it commits the renames
    /// it made (rule rename_table), judged as its COMMIT is.
    fn transaction_ends(&mut self, offset: usize) -> Vec<Problem> {
        if self.catalog.transaction().renamed_without_view().is_empty() {
            return Vec::new();
        }
        let decision = policy::decide_commit(self.catalog.transaction(), self.settings, &self.catalog);
        self.catalog.forget_renames();
        self.problems_of(&decision, offset)
    }

    /// With a database: the problems of what the routines `parsed` (at byte `offset`)
    /// runs do, reported at its first keyword.
    fn routines(&self, parsed: &ParsedStatement, offset: usize) -> Vec<Problem> {
        let position = self.lines.position(offset + first_keyword(&parsed.statement.source));
        super::routines::problems(parsed, &self.catalog, self.settings, self.file, position)
    }

    /// The query `EXECUTE name` runs, at the EXECUTE's place, when the file prepared it.
    /// `EXPLAIN ANALYZE` runs its statement: that is what is decided (an EXECUTE of it
    /// too), with the EXECUTE's text when there is one.
    fn executed_query(&self, parsed: &ParsedStatement) -> Option<(ParsedStatement, Option<String>)> {
        if parsed.statement.stmt != Stmt::Query {
            return None;
        }
        let analyzed = parse::probe::analyzed_write(&parsed.statement.source);
        let text = analyzed.as_deref().unwrap_or(&parsed.statement.source);
        let (mut executed, execute) = if starts_with_word(text, "execute") {
            let query = self.prepares.query(&executed_name(text)?)?;
            (parse_sql(query).ok()?.into_iter().next()?, Some(text.to_string()))
        } else {
            (parse_sql(analyzed.as_deref()?).ok()?.into_iter().next()?, None)
        };
        executed.offset = parsed.offset + first_keyword(&parsed.statement.source);
        Some((executed, execute))
    }

    /// Decide `statement`, whose source starts at byte `offset` of the file, then let the
    /// catalog learn from it.
    fn decide(&mut self, statement: &Statement, context: &Context, offset: usize) -> Vec<Problem> {
        let decision = policy::decide(statement, context, self.settings, &self.catalog);
        let keyword = offset + first_keyword(&statement.source);
        let mut problems = self.problems_of(&decision, keyword);
        // A COMMIT commits the renames before it.
        if matches!(
            statement.stmt,
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare)
        ) {
            problems.extend(self.transaction_ends(keyword));
        }
        self.catalog.observe(statement);
        self.last_statement = Some(keyword);
        problems
    }

    /// The problems of `decision` on the statement whose first keyword is at byte `offset`.
    fn problems_of(&self, decision: &policy::Decision, offset: usize) -> Vec<Problem> {
        let position = self.lines.position(offset);
        let mut problems: Vec<Problem> = decision
            .findings
            .iter()
            .map(|finding| Problem::finding(self.file, position, finding))
            .collect();
        problems.extend(decision.acknowledged.iter().map(|ack| Problem {
            file: self.file.to_string(),
            line: Some(position.0),
            column: Some(position.1),
            severity: Severity::Warning,
            sqlstate: None,
            rule: ack.rule.to_string(),
            message: format!("acknowledged: {}", ack.reason),
            detail: String::new(),
            hint: String::new(),
            lock: None,
            unchecked: false,
            counts: false,
        }));
        problems
    }

    /// SQL of a `DO` block, at byte `offset` of the file, that cannot be checked: refused
    /// like the proxy refuses it (fail closed), a warning in warn mode.
    fn unreadable(&self, offset: usize, reason: &Unreadable) -> Problem {
        let reason = match reason {
            Unreadable::Dynamic(expression) => Reason::Dynamic(expression),
            Unreadable::OtherLanguage(language) => Reason::OtherLanguage(language),
            Unreadable::Unparsable(error) => Reason::Unparsable(&error.message),
        };
        let Text { message, detail, hint } = unchecked::text("this DO block", reason, Reader::Check);
        let (line, column) = self.lines.position(offset);
        Problem {
            file: self.file.to_string(),
            line: Some(line),
            column: Some(column),
            severity: if self.settings.mode == Mode::Enforce {
                Severity::Error
            } else {
                Severity::Warning
            },
            sqlstate: Some(SQLSTATE_UNPARSABLE),
            rule: unchecked::RULE.to_string(),
            message,
            detail,
            hint,
            lock: None,
            unchecked: false,
            counts: true,
        }
    }
}

/// Byte offset of the first keyword of a statement's source (after leading comments).
fn first_keyword(source: &str) -> usize {
    source.len() - policy::sql::strip_leading_comments(source).len()
}

/// Line starts of one file, to turn byte offsets into 1-based line and column (in
/// characters) without rescanning the file for every statement.
pub(super) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(newline, _)| newline + 1))
            .collect();
        Lines { text, starts }
    }

    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        (line, self.text[line_start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "-- é\nSELECT 1;\n  DROP TABLE t;\n";
        let lines = Lines::new(text);
        assert_eq!(lines.position(0), (1, 1));
        assert_eq!(lines.position(text.find("SELECT").unwrap()), (2, 1));
        assert_eq!(lines.position(text.find("DROP").unwrap()), (3, 3));
        assert_eq!(lines.position(text.len()), (4, 1));
        assert_eq!(Lines::new("é x").position(3), (1, 3));
    }

    #[test]
    fn position_is_the_first_keyword_after_leading_comments() {
        let problems = check_sql(
            "m.sql",
            "SELECT 1;\n-- comment\n/* more */ CREATE INDEX i ON t (c);",
            &Settings {
                mode: Mode::Enforce,
                ..Settings::default()
            },
            None,
        );
        let finding = problems
            .iter()
            .find(|p| p.rule == "create_index_non_concurrently")
            .unwrap();
        assert_eq!((finding.line, finding.column), (Some(3), Some(12)));
    }

    #[test]
    fn a_do_block_runs_its_statements_nested_in_a_transaction() {
        let problems = check_sql(
            "m.sql",
            "DO $$ BEGIN CREATE INDEX CONCURRENTLY i ON t (c); END $$;",
            &Settings {
                mode: Mode::Enforce,
                ..Settings::default()
            },
            None,
        );
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.column, p.rule.as_str(), p.sqlstate))
            .collect();
        assert_eq!(
            found,
            [(Some(1), Some(13), "concurrently_in_transaction", Some("25001"))]
        );
        assert_eq!(
            problems[0].message,
            "CREATE INDEX CONCURRENTLY cannot run inside a function, procedure or DO block"
        );
    }

    #[test]
    fn an_execute_runs_what_the_file_prepared() {
        let sql = "BEGIN;\nALTER TABLE t ADD COLUMN v int;\nPREPARE mark AS UPDATE t SET v = 1;\nEXECUTE mark;\n\
                   DEALLOCATE mark;\nEXECUTE mark;\nCOMMIT;";
        let settings = Settings {
            mode: Mode::Enforce,
            ..Settings::default()
        };
        let problems = check_sql("m.sql", sql, &settings, None);
        let found: Vec<_> = problems.iter().map(|p| (p.line, p.rule.as_str())).collect();
        assert_eq!(found, [(Some(4), "backfill_in_ddl_transaction")]);
    }

    #[test]
    fn syntax_error_reports_its_position() {
        let problems = check_sql("m.sql", "SELECT 1;\nCREATE TABLEE t ();", &Settings::default(), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].rule, "syntax_error");
        assert_eq!((problems[0].line, problems[0].column), (Some(2), Some(8)));
        assert!(problems[0].unchecked);
    }
}
