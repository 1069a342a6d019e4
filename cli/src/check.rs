//! `safe-migrations check`: lint SQL migration files with the rules the extension and the
//! proxy enforce. The catalog is what the files themselves show (a table created earlier
//! in the same transaction, for instance); everything else is unknown. A `DO` block's own
//! statements are decided one by one, as the extension decides them when the block runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use policy::file_catalog::FileCatalog;
use policy::finding::SQLSTATE_UNPARSABLE;
use policy::model::RoutineKind;
use policy::settings::Unparsable;
use policy::transaction::Placement;
use policy::transaction::NESTED_CONTEXT;
use policy::{
    Catalog, Context, Finding, Mode, QualifiedName, Settings, Severity, Statement, Stmt, TypeName, Volatility,
};

use parse::plpgsql::{do_block_sql, BlockStatement, Unreadable};
use parse::{parse_sql, ParseError, ParsedStatement};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Major version of the server the migrations run on (e.g. 15), for rules that depend on it.
    #[arg(long, value_name = "N")]
    pub pg_version: Option<u32>,
    /// enforce: error-level findings fail the check; warn: every finding is a warning.
    #[arg(long, value_enum, default_value_t = CheckMode::Enforce)]
    pub mode: CheckMode,
    /// Rules not enforced, comma-separated (e.g. --allow drop_column,rename_column).
    #[arg(long, value_name = "RULE,...")]
    pub allow: Vec<String>,
    /// SQL that cannot be checked before it runs (a DO block's EXECUTE of a computed string,
    /// a DO block in another language): reject reports it (SM004), allow skips it.
    #[arg(long, value_enum, default_value_t = UnparsableChoice::Reject)]
    pub unparsable: UnparsableChoice,
    /// SQL files, directories (every *.sql below them, in sorted order) or - for standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckMode {
    Enforce,
    Warn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnparsableChoice {
    Reject,
    Allow,
}

/// Exit status: clean (warnings only), an error-level finding, input we could not check.
const EXIT_FINDINGS: u8 = 1;
const EXIT_UNCHECKED: u8 = 2;

pub fn run(args: CheckArgs) -> ExitCode {
    let mut settings = Settings {
        mode: match args.mode {
            CheckMode::Enforce => Mode::Enforce,
            CheckMode::Warn => Mode::Warn,
        },
        acknowledgements: true,
        unparsable: match args.unparsable {
            UnparsableChoice::Reject => Unparsable::Reject,
            UnparsableChoice::Allow => Unparsable::Allow,
        },
        ..Settings::default()
    };
    if let Err(err) = settings.apply("allow", &args.allow.join(",")) {
        eprintln!("safe-migrations check: --allow: {err}");
        return ExitCode::from(EXIT_UNCHECKED);
    }
    let server_version_num = args.pg_version.map(version_num);

    let mut problems = Vec::new();
    for input in inputs(&args.paths, &mut problems) {
        match read(&input) {
            Ok(sql) => problems.extend(check_sql(&input.display_name(), &sql, &settings, server_version_num)),
            Err(message) => problems.push(Problem::unreadable(&input.display_name(), message)),
        }
    }

    print!("{}", render(&problems, args.format));
    let status = if problems.iter().any(|p| p.unchecked) {
        EXIT_UNCHECKED
    } else if problems.iter().any(|p| p.severity == Severity::Error && p.counts) {
        EXIT_FINDINGS
    } else {
        0
    };
    ExitCode::from(status)
}

/// `--pg-version 15` or `--pg-version 150004` as server_version_num.
fn version_num(version: u32) -> u32 {
    if version < 100 {
        version * 10_000
    } else {
        version
    }
}

/// One thing to report: a finding, an acknowledged finding, or input that could not be checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    /// 1-based; None when the file could not be read at all.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    /// The SQLSTATE the extension or the proxy raises for a finding (None for notes and for
    /// input that could not be checked).
    pub sqlstate: Option<&'static str>,
    pub rule: String,
    pub message: String,
    pub detail: String,
    pub hint: String,
    pub lock: Option<String>,
    /// Syntax error or unreadable input: the file was not (fully) checked.
    pub unchecked: bool,
    /// False for acknowledged findings, reported as notes.
    pub counts: bool,
}

impl Problem {
    fn unreadable(file: &str, message: String) -> Problem {
        Problem {
            file: file.to_string(),
            line: None,
            column: None,
            severity: Severity::Error,
            sqlstate: None,
            rule: "unreadable".to_string(),
            message,
            detail: String::new(),
            hint: String::new(),
            lock: None,
            unchecked: true,
            counts: true,
        }
    }

    fn syntax_error(file: &str, sql: &str, err: &ParseError) -> Problem {
        let (line, column) = Lines::new(sql).position(err.position.unwrap_or(0));
        Problem {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            severity: Severity::Error,
            sqlstate: None,
            rule: "syntax_error".to_string(),
            message: err.message.clone(),
            detail: "The rest of this file was not checked.".to_string(),
            hint: String::new(),
            lock: None,
            unchecked: true,
            counts: true,
        }
    }

    fn finding(file: &str, (line, column): (usize, usize), finding: &Finding) -> Problem {
        Problem {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            severity: finding.severity,
            sqlstate: Some(finding.sqlstate),
            rule: finding.rule.to_string(),
            message: finding.message.clone(),
            detail: finding.detail.clone(),
            hint: finding.hint.clone(),
            lock: finding.lock.as_ref().map(|lock| lock.describe()),
            unchecked: false,
            counts: true,
        }
    }
}

/// Check one file's SQL: every statement decided in order, the catalog learning from
/// each statement after its decision. A syntax error stops the file.
pub fn check_sql(file: &str, sql: &str, settings: &Settings, server_version_num: Option<u32>) -> Vec<Problem> {
    let statements = match parse_sql(sql) {
        Ok(statements) => statements,
        Err(err) => return vec![Problem::syntax_error(file, sql, &err)],
    };
    let mut check = FileCheck::new(file, sql, settings, server_version_num);
    statements.iter().flat_map(|parsed| check.statement(parsed)).collect()
}

/// One file's statements, decided in order with what the file showed before each.
pub struct FileCheck<'a> {
    file: &'a str,
    lines: Lines<'a>,
    settings: &'a Settings,
    server_version_num: Option<u32>,
    catalog: FileCatalog,
}

impl<'a> FileCheck<'a> {
    /// `file` names `sql`, the text the statements are parsed from, in problems.
    pub fn new(file: &'a str, sql: &'a str, settings: &'a Settings, server_version_num: Option<u32>) -> FileCheck<'a> {
        FileCheck {
            file,
            lines: Lines::new(sql),
            settings,
            server_version_num,
            catalog: FileCatalog::default(),
        }
    }

    /// The problems of the file's next statement: its own, then those of each statement
    /// its `DO` block runs, at that statement's position inside the block.
    pub fn statement(&mut self, parsed: &ParsedStatement) -> Vec<Problem> {
        let statement = &parsed.statement;
        let context = self.catalog.transaction().context(Placement::ALONE);
        let mut problems = self.decide(statement, &context, parsed.offset);
        if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            for inner in do_block_sql(&statement.source).unwrap_or_default() {
                match inner {
                    BlockStatement::Parsed(inner) => {
                        problems.extend(self.decide(&inner.statement, &NESTED_CONTEXT, parsed.offset + inner.offset))
                    }
                    BlockStatement::Unreadable { .. } if self.settings.unparsable == Unparsable::Allow => {}
                    BlockStatement::Unreadable { offset, reason } => {
                        problems.push(self.unreadable(parsed.offset + offset, &reason))
                    }
                }
            }
        }
        problems
    }

    /// Decide `statement`, whose source starts at byte `offset` of the file, then let the
    /// catalog learn from it.
    fn decide(&mut self, statement: &Statement, context: &Context, offset: usize) -> Vec<Problem> {
        let decision = policy::decide(
            statement,
            context,
            self.settings,
            &VersionedCatalog {
                catalog: &self.catalog,
                server_version_num: self.server_version_num,
            },
        );
        let position = self.lines.position(offset + first_keyword(&statement.source));
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
        self.catalog.observe(&statement.stmt);
        problems
    }

    /// SQL of a `DO` block, at byte `offset` of the file, that cannot be checked: refused
    /// like the proxy refuses it (fail closed), a warning in warn mode.
    fn unreadable(&self, offset: usize, reason: &Unreadable) -> Problem {
        let allow = "or pass --unparsable allow to let SQL that cannot be checked through";
        let (message, detail, hint) = match reason {
            Unreadable::Dynamic(expression) => (
                "this DO block runs dynamic SQL (EXECUTE of a computed string) that cannot be checked before it runs"
                    .to_string(),
                format!("EXECUTE {}", policy::sql::one_line(expression)),
                format!("Write the statements as plain SQL, in the DO block or outside it, {allow}."),
            ),
            Unreadable::OtherLanguage(language) => (
                format!("this DO block is in language {language}, whose SQL cannot be checked"),
                "Only the SQL of PL/pgSQL DO blocks is read.".to_string(),
                format!("Run the statements directly, {allow}."),
            ),
            Unreadable::Unparsable(error) => (
                format!("cannot parse SQL this DO block runs: {}", error.message),
                "What cannot be parsed cannot be checked (fail closed).".to_string(),
                format!("Fix the statement, {allow}."),
            ),
        };
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
            rule: "unparsable".to_string(),
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
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(newline, _)| newline + 1))
            .collect();
        Lines { text, starts }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        (line, self.text[line_start..offset].chars().count() + 1)
    }
}

/// The file catalog, with the server version given on the command line.
struct VersionedCatalog<'a> {
    catalog: &'a FileCatalog,
    server_version_num: Option<u32>,
}

impl Catalog for VersionedCatalog<'_> {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        self.catalog.created_in_transaction(table)
    }
    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        self.catalog.column_type(table, column)
    }
    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        self.catalog.function_volatility(name)
    }
    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        self.catalog.has_validated_not_null_check(table, column)
    }
    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        self.catalog.estimated_rows(table)
    }
    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        self.catalog.is_partitioned(table)
    }
    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        self.catalog.domain_has_constraints(type_name)
    }
    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        self.catalog.nullable_index_columns(table, index)
    }
    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<policy::types::Coercion> {
        self.catalog.coercion(from, to)
    }
    fn type_change_dependents(
        &self,
        table: &QualifiedName,
        column: &str,
        new_type: &TypeName,
        collation: Option<&QualifiedName>,
    ) -> Option<policy::catalog::ColumnDependents> {
        self.catalog.type_change_dependents(table, column, new_type, collation)
    }
    fn is_superuser(&self) -> Option<bool> {
        self.catalog.is_superuser()
    }
    fn server_version_num(&self) -> Option<u32> {
        self.server_version_num.or_else(|| self.catalog.server_version_num())
    }
    fn timezone(&self) -> Option<String> {
        self.catalog.timezone()
    }
}

enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn display_name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(path) => path.display().to_string(),
        }
    }
}

/// The inputs named on the command line, directories expanded to their *.sql files in
/// sorted (migration) order. Paths that do not exist are reported as unreadable.
fn inputs(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<Input> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
        } else if path.is_dir() {
            let mut files = Vec::new();
            if let Err(err) = sql_files(path, &mut files) {
                problems.push(Problem::unreadable(&path.display().to_string(), err.to_string()));
            }
            if files.is_empty() {
                eprintln!("safe-migrations check: no .sql files in {}", path.display());
            }
            files.sort();
            inputs.extend(files.into_iter().map(Input::File));
        } else {
            inputs.push(Input::File(path.clone()));
        }
    }
    inputs
}

fn sql_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sql_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("sql")) {
            files.push(path);
        }
    }
    Ok(())
}

fn read(input: &Input) -> Result<String, String> {
    let mut bytes = Vec::new();
    let result = match input {
        Input::Stdin => std::io::stdin().read_to_end(&mut bytes).map(|_| ()),
        Input::File(path) => std::fs::read(path).map(|read| bytes = read),
    };
    result.map_err(|err| format!("cannot read: {err}"))?;
    String::from_utf8(bytes).map_err(|err| format!("not UTF-8 text (byte {})", err.utf8_error().valid_up_to()))
}

fn render(problems: &[Problem], format: Format) -> String {
    match format {
        Format::Text => render_text(problems),
        Format::Json => render_json(problems),
        Format::Github => render_github(problems),
    }
}

fn location(problem: &Problem) -> String {
    match (problem.line, problem.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", problem.file),
        _ => problem.file.clone(),
    }
}

fn render_text(problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        let level = match (problem.counts, problem.severity) {
            (false, _) => "note",
            (true, severity) => severity.name(),
        };
        out.push_str(&format!(
            "{}: {level}[{}]: {}\n",
            location(problem),
            problem.rule,
            problem.message
        ));
        for (label, text) in [("detail", &problem.detail), ("hint", &problem.hint)] {
            if !text.is_empty() {
                out.push_str(&format!("  {label}: {}\n", text.replace('\n', "\n  ")));
            }
        }
    }
    let count = |severity: Severity| problems.iter().filter(|p| p.counts && p.severity == severity).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    if errors + warnings > 0 {
        out.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    }
    out
}

fn render_json(problems: &[Problem]) -> String {
    let objects: Vec<serde_json::Value> = problems
        .iter()
        .map(|problem| {
            serde_json::json!({
                "file": problem.file,
                "line": problem.line,
                "column": problem.column,
                "severity": if problem.counts { problem.severity.name() } else { "note" },
                "sqlstate": problem.sqlstate,
                "rule": problem.rule,
                "message": problem.message,
                "detail": problem.detail,
                "hint": problem.hint,
                "lock": problem.lock,
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&objects).unwrap_or_else(|_| "[]".to_string());
    out.push('\n');
    out
}

/// GitHub Actions workflow commands: one annotation per problem.
fn render_github(problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        let command = match (problem.counts, problem.severity) {
            (false, _) => "notice",
            (true, Severity::Error) => "error",
            (true, Severity::Warning) => "warning",
        };
        let mut properties = vec![format!("file={}", escape_property(&problem.file))];
        if let (Some(line), Some(column)) = (problem.line, problem.column) {
            properties.push(format!("line={line}"));
            properties.push(format!("col={column}"));
        }
        properties.push(format!("title={}", escape_property(&problem.rule)));
        let mut message = problem.message.clone();
        for text in [&problem.detail, &problem.hint] {
            if !text.is_empty() {
                message.push('\n');
                message.push_str(text);
            }
        }
        out.push_str(&format!(
            "::{command} {}::{}\n",
            properties.join(","),
            escape_data(&message)
        ));
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
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
    fn syntax_error_reports_its_position() {
        let problems = check_sql("m.sql", "SELECT 1;\nCREATE TABLEE t ();", &Settings::default(), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].rule, "syntax_error");
        assert_eq!((problems[0].line, problems[0].column), (Some(2), Some(8)));
        assert!(problems[0].unchecked);
    }

    #[test]
    fn github_escapes_properties_and_data() {
        assert_eq!(escape_property("a,b:c%"), "a%2Cb%3Ac%25");
        assert_eq!(escape_data("one\ntwo"), "one%0Atwo");
    }

    #[test]
    fn pg_version_accepts_major_or_version_num() {
        assert_eq!(version_num(15), 150000);
        assert_eq!(version_num(150004), 150004);
    }
}
