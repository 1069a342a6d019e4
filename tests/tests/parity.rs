//! Parity: every corpus statement decided four ways, by `safe-migrations check`'s
//! decision (in-process, file catalog), by the extension (guarded role, real cluster), by
//! the proxy (guarded role, cluster without the extension) and by `safe-migrations check
//! --database-url` (the binary, against a database holding the setup alone). The
//! extension and the proxy must send exactly the same reports, errors and leave the same
//! server state; check with the database must reach the extension's verdict but where
//! tests/corpus/database_differs.txt says why not; the CLI without a database may differ
//! only where its catalog cannot know. The corpus is tests/corpus/*.sql;
//! tests/corpus/live/ holds the cases that need a real schema (setup/ creates it).

use std::cell::Cell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use e2e::{Cluster, ClusterOptions, Proxy, SUPERUSER};
use parse::parse_sql;
use parse::plpgsql::{do_block_sql, BlockStatement};
use policy::catalog::ColumnTypeChange;
use policy::file_catalog::FileCatalog;
use policy::model::{RoutineKind, TransactionKind};
use policy::report::reports;
use policy::transaction::NESTED_CONTEXT;
use policy::transaction::{Placement, Transaction};
use policy::{Catalog, Context, Mode, NoCatalog, QualifiedName, Settings, Statement, Stmt, TypeName, Volatility};
use postgres::{Client, NoTls, SimpleQueryMessage};

/// The parity issue asks for at least this many statements.
const MIN_STATEMENTS: usize = 200;
/// `safe_migrations.min_table_rows` of both guarded roles, so that the estimated row
/// count of analyzed tables is a catalog answer too.
const MIN_TABLE_ROWS: u64 = 100;
/// `safe_migrations.max_rows_per_statement` of both guarded roles: the live corpus's
/// tables of 1,000 rows are below it, its `history` of 5,000 rows above.
const MAX_ROWS_PER_STATEMENT: u64 = 2_000;
/// In a live corpus file, the line that ends the setup section.
const SETUP_END: &str = "-- end setup";
/// Guarded role in warn mode: every statement runs, every finding arrives as a WARNING.
const WARN_ROLE: &str = "migrator";
/// Guarded role in enforce mode: refusals, their ErrorResponse and the state after them.
const ENFORCE_ROLE: &str = "enforcer";

/// One ErrorResponse or NoticeResponse, the fields parity compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    severity: String,
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl Message {
    fn from_db(error: &postgres::error::DbError) -> Message {
        Message {
            severity: error.severity().to_string(),
            code: error.code().code().to_string(),
            message: error.message().to_string(),
            detail: error.detail().map(str::to_owned),
            hint: error.hint().map(str::to_owned),
        }
    }

    fn from_report(report: &policy::report::Report) -> Message {
        Message {
            severity: report.level.name().to_string(),
            code: report.sqlstate.to_string(),
            message: report.message.clone(),
            detail: report.detail.clone(),
            hint: report.hint.clone(),
        }
    }

    /// The rule this message is about (`ack:<rule>` for an acknowledgement), or None for
    /// the server's own notices and errors.
    fn rule(&self) -> Option<String> {
        if let Some(rest) = self.message.strip_prefix("safe_migrations: ") {
            if let Some((rule, _)) = rest.split_once(" acknowledged: ") {
                return Some(format!("ack:{rule}"));
            }
        }
        let id = self.message.split(':').next().unwrap_or_default();
        if policy::RULES.iter().any(|rule| rule.id == id) {
            Some(id.to_string())
        } else {
            self.code.starts_with("SM").then(|| self.code.clone())
        }
    }

    fn is_safe_migrations(&self) -> bool {
        self.rule().is_some()
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, "\n        DETAIL {detail:?}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n        HINT {hint:?}")?;
        }
        Ok(())
    }
}

/// One statement of a corpus file.
struct Piece {
    location: String,
    source: String,
    stmt: Stmt,
    changes: Vec<policy::model::SettingChange>,
    /// Live files: the rules every finding of the statement names (`-- expect:`).
    expected: Option<Vec<String>>,
}

struct CorpusFile {
    name: String,
    /// A database name part: the file name without `.sql`, `/` replaced.
    stem: String,
    /// Runs as the database's owner (by a superuser) before the statements.
    setup: String,
    pieces: Vec<Piece>,
    live: bool,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
}

/// The rule ids of an `-- expect:` line among the statement's comments (`ok` = none).
fn expectation(source: &str) -> Option<Vec<String>> {
    policy::sql::comments(source).into_iter().find_map(|comment| {
        let list = comment.trim().strip_prefix("expect:")?;
        let mut rules: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty() && *id != "ok")
            .map(str::to_owned)
            .collect();
        rules.sort();
        Some(rules)
    })
}

/// `sql[from..]` split into statements, located by line in the whole file.
fn pieces(name: &str, sql: &str, from: usize, live: bool) -> Vec<Piece> {
    let body = &sql[from..];
    let parsed = parse_sql(body).unwrap_or_else(|err| panic!("{name}: {err}"));
    parsed
        .into_iter()
        .map(|parsed| {
            let source = parsed.statement.source;
            let keyword = from + parsed.offset + source.len() - policy::sql::strip_leading_comments(&source).len();
            Piece {
                location: format!("{name}:{}", sql[..keyword].matches('\n').count() + 1),
                expected: if live { expectation(&source) } else { None },
                source,
                stmt: parsed.statement.stmt,
                changes: parsed.statement.changes,
            }
        })
        .collect()
}

/// The policy corpus (with its setup from `live/setup/<file>`, if any) and the live corpus.
fn corpus() -> Vec<CorpusFile> {
    let dir = corpus_dir();
    let mut files = Vec::new();
    for path in sql_files(&dir) {
        let file_name = path.file_name().unwrap().to_string_lossy().to_string();
        let sql = std::fs::read_to_string(&path).unwrap();
        let setup = std::fs::read_to_string(dir.join("live/setup").join(&file_name)).unwrap_or_default();
        files.push(CorpusFile {
            stem: file_name.trim_end_matches(".sql").to_string(),
            pieces: pieces(&file_name, &sql, 0, false),
            name: file_name,
            setup,
            live: false,
        });
    }
    for path in sql_files(&dir.join("live")) {
        let file_name = format!("live/{}", path.file_name().unwrap().to_string_lossy());
        let sql = std::fs::read_to_string(&path).unwrap();
        let end = sql
            .find(&format!("\n{SETUP_END}\n"))
            .unwrap_or_else(|| panic!("{file_name}: no `{SETUP_END}` line"));
        let body_start = end + SETUP_END.len() + 2;
        files.push(CorpusFile {
            stem: file_name.trim_end_matches(".sql").replace('/', "_"),
            pieces: pieces(&file_name, &sql, body_start, true),
            name: file_name,
            setup: sql[..end].to_string(),
            live: true,
        });
    }
    files
}

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        acknowledgements: true,
        min_table_rows: MIN_TABLE_ROWS,
        max_rows_per_statement: MAX_ROWS_PER_STATEMENT,
        ..Settings::default()
    }
}

/// The CLI's file catalog, noting whether any question it was asked had no answer.
struct NotingCatalog<'a> {
    inner: &'a FileCatalog,
    unknown: Cell<bool>,
}

impl NotingCatalog<'_> {
    fn note<T>(&self, answer: Option<T>) -> Option<T> {
        if answer.is_none() {
            self.unknown.set(true);
        }
        answer
    }
}

impl Catalog for NotingCatalog<'_> {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        self.note(self.inner.created_in_transaction(table))
    }
    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        self.note(self.inner.column_type(table, column))
    }
    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        self.note(self.inner.function_volatility(name))
    }
    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        self.note(self.inner.has_validated_not_null_check(table, column))
    }
    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        self.note(self.inner.estimated_rows(table))
    }
    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        self.note(self.inner.is_partitioned(table))
    }
    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        self.note(self.inner.domain_has_constraints(type_name))
    }
    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        self.note(self.inner.domain_base_type(type_name))
    }
    fn relation_kind(&self, relation: &QualifiedName) -> Option<char> {
        self.note(self.inner.relation_kind(relation))
    }
    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        self.note(self.inner.relation_is_empty(table))
    }
    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        self.note(self.inner.nullable_index_columns(table, index))
    }
    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<policy::types::Coercion> {
        self.note(self.inner.coercion(from, to))
    }
    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<policy::catalog::ColumnDependents> {
        self.note(self.inner.type_change_dependents(change))
    }
    fn is_superuser(&self) -> Option<bool> {
        self.note(self.inner.is_superuser())
    }
    fn server_version_num(&self) -> Option<u32> {
        self.note(self.inner.server_version_num())
    }
    fn timezone(&self) -> Option<String> {
        self.note(self.inner.timezone())
    }
}

/// What `safe-migrations check` decides for one statement, in warn mode.
struct CliOutcome {
    reports: Vec<Message>,
    /// The file catalog could not answer a question the rules asked.
    unknown: bool,
}

/// The CLI's decisions for a file, as `safe-migrations check` makes them (the live
/// schema's setup is not SQL the CLI reads): each statement's reports, then those of the
/// statements its `DO` block runs.
fn cli_outcomes(file: &CorpusFile) -> Vec<CliOutcome> {
    let settings = settings(Mode::Warn);
    let mut catalog = FileCatalog::default();
    let mut outcomes = Vec::new();
    for piece in &file.pieces {
        let statement = Statement {
            stmt: piece.stmt.clone(),
            source: piece.source.clone(),
            changes: piece.changes.clone(),
        };
        let context = catalog.transaction().context(Placement::ALONE);
        let mut outcome = CliOutcome {
            reports: Vec::new(),
            unknown: false,
        };
        let commits = matches!(
            statement.stmt,
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare)
        );
        if commits {
            // It commits the renames before it, as `safe-migrations check` judges them.
            let decision = policy::decide_commit(catalog.transaction(), &settings, &catalog);
            outcome
                .reports
                .extend(reports(&decision).iter().map(Message::from_report));
            catalog.forget_renames();
        }
        // What a DO block runs runs inside its transaction (as `safe-migrations check`
        // has it).
        let implicit = (statement.stmt == Stmt::Routine(RoutineKind::Do)).then(|| catalog.set_implicit(true));
        let mut decide = |statement: &Statement, context: &Context| {
            let noting = NotingCatalog {
                inner: &catalog,
                unknown: Cell::new(false),
            };
            let decision = policy::decide(statement, context, &settings, &noting);
            outcome.unknown |= noting.unknown.get();
            outcome
                .reports
                .extend(reports(&decision).iter().map(Message::from_report));
            catalog.observe(statement);
        };
        decide(&statement, &context);
        if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            for inner in do_block_sql(&statement.source).unwrap_or_default() {
                // SQL the CLI cannot read is its own report; the extension runs it.
                if let BlockStatement::Parsed(inner) = inner {
                    decide(&policy::transaction::run_by_routine(&inner.statement), &NESTED_CONTEXT);
                }
            }
        }
        if let Some(implicit) = implicit {
            catalog.set_implicit(implicit);
        }
        if !catalog.transaction().running() {
            let decision = policy::decide_commit(catalog.transaction(), &settings, &catalog);
            outcome
                .reports
                .extend(reports(&decision).iter().map(Message::from_report));
            catalog.forget_renames();
        }
        outcomes.push(outcome);
    }
    // The file's end commits what it left running.
    let decision = policy::decide_commit(catalog.transaction(), &settings, &catalog);
    if let Some(last) = outcomes.last_mut() {
        last.reports.extend(reports(&decision).iter().map(Message::from_report));
    }
    outcomes
}

/// What `safe-migrations check --database-url` reports for each statement of a file: the
/// binary run on the file's statements against a database that holds the setup alone
/// (the state before them; nothing of them runs), as the warn-mode role whose settings it
/// reads, statement by statement (`--transaction statement`, as this test runs them), in
/// warn mode. Its JSON, read back into the messages the extension sends (a finding's
/// `rule: message`, DETAIL and HINT; an acknowledgement's NOTICE), sorted.
fn check_outcomes(cluster: &Cluster, file: &CorpusFile, sql: &str) -> Vec<Vec<Message>> {
    let db = format!("parity_c_{}", file.stem);
    cluster.execute(
        &cluster.superuser_url(),
        &format!("CREATE DATABASE {} OWNER {WARN_ROLE}", policy::sql::ident(&db)),
    );
    if !file.setup.trim().is_empty() {
        cluster.execute(
            &cluster.url(SUPERUSER, &db),
            &format!("SET ROLE {WARN_ROLE};\n{}", file.setup),
        );
    }
    // The statements at their lines: the setup's lines left blank.
    let body_start = if file.live {
        sql.find(&format!("\n{SETUP_END}\n")).unwrap() + SETUP_END.len() + 2
    } else {
        0
    };
    let text = format!(
        "{}{}",
        "\n".repeat(sql[..body_start].matches('\n').count()),
        &sql[body_start..]
    );
    let path = std::env::temp_dir().join(format!("sm-parity-{}-{}.sql", std::process::id(), file.stem));
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(e2e::safe_migrations_bin())
        .args([
            "check",
            "--format",
            "json",
            "--mode",
            "warn",
            "--transaction",
            "statement",
            "--sizes",
            "database",
            "--database-url",
        ])
        .arg(cluster.url(WARN_ROLE, &db))
        .arg(&path)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run safe-migrations check");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let problems: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "{}: check --database-url: not JSON ({err}): {stdout}\n{}",
            file.name,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let lines: Vec<usize> = file
        .pieces
        .iter()
        .map(|piece| piece.location.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let mut outcomes = vec![Vec::new(); file.pieces.len()];
    for problem in problems.as_array().unwrap() {
        let text = |field: &str| problem[field].as_str().unwrap_or_default().to_string();
        let line = problem["line"].as_u64().unwrap_or(0) as usize;
        let index = lines.partition_point(|&start| start <= line).saturating_sub(1);
        let message = if text("severity") == "note" {
            Message {
                severity: "NOTICE".to_string(),
                code: "00000".to_string(),
                message: format!("safe_migrations: {} {}", text("rule"), text("message")),
                detail: None,
                hint: None,
            }
        } else {
            Message {
                severity: text("severity").to_uppercase(),
                code: text("sqlstate"),
                message: format!("{}: {}", text("rule"), text("message")),
                detail: Some(text("detail")),
                hint: Some(text("hint")),
            }
        };
        outcomes[index].push(message);
    }
    for outcome in &mut outcomes {
        outcome.sort_by_key(|message| message.to_string());
    }
    outcomes
}

/// tests/corpus/database_differs.txt: (file, statement on one line) -> (what differs:
/// `verdict` or `texts`, why).
fn database_differences() -> std::collections::HashMap<(String, String), (String, String)> {
    let path = corpus_dir().join("database_differs.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [file, statement, kind @ ("verdict" | "texts"), why] = fields.as_slice() else {
                panic!(
                    "{}: not file<TAB>statement<TAB>verdict|texts<TAB>why: {line}",
                    path.display()
                );
            };
            (
                (file.to_string(), statement.to_string()),
                (kind.to_string(), why.to_string()),
            )
        })
        .collect()
}

/// Reports as compared for their texts: numbers masked (estimates of tables the run has
/// written to differ), the hint without the rule reference the extension adds (check
/// names the page on a line of its own), sorted.
fn masked(messages: &[Message]) -> Vec<Message> {
    /// Whole numbers (digits not inside a name, with their thousands commas and decimals)
    /// as `#`.
    fn digits(text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        while at < chars.len() {
            let starts_number =
                chars[at].is_ascii_digit() && (at == 0 || !(chars[at - 1].is_alphanumeric() || chars[at - 1] == '_'));
            if !starts_number {
                out.push(chars[at]);
                at += 1;
                continue;
            }
            while at < chars.len()
                && (chars[at].is_ascii_digit()
                    || (matches!(chars[at], ',' | '.') && chars.get(at + 1).is_some_and(char::is_ascii_digit)))
            {
                at += 1;
            }
            out.push('#');
        }
        out
    }
    let mut masked: Vec<Message> = messages
        .iter()
        .map(|message| Message {
            message: digits(&message.message),
            detail: message.detail.as_deref().map(digits),
            hint: message.hint.as_deref().map(|hint| {
                let hint = match hint.rsplit_once("\nRule reference: ") {
                    Some((hint, _)) => hint,
                    None if hint.starts_with("Rule reference: ") => "",
                    None => hint,
                };
                digits(hint)
            }),
            ..message.clone()
        })
        .collect();
    masked.sort_by_key(|message| message.to_string());
    masked
}

/// A statement's verdict: each report's severity, SQLSTATE and rule (its text may differ
/// where it quotes what only the run shows: the planner's estimate of a table the run
/// wrote to, say).
fn verdict_of(messages: &[Message]) -> Vec<(String, String, Option<String>)> {
    let mut verdict: Vec<_> = messages
        .iter()
        .map(|message| (message.severity.clone(), message.code.clone(), message.rule()))
        .collect();
    verdict.sort();
    verdict
}

/// What one statement got from the server (through the proxy or not).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Outcome {
    notices: Vec<Message>,
    error: Option<Message>,
    /// After a refusal (enforce pass): what the next statement gets, and the schema.
    after: Option<String>,
}

impl Outcome {
    fn rules(&self) -> Vec<String> {
        self.notices
            .iter()
            .chain(&self.error)
            .filter_map(Message::rule)
            .collect()
    }
}

/// Where the guarded sessions go: straight to the cluster, or through the proxy.
struct Target<'a> {
    label: &'static str,
    cluster: &'a Cluster,
    proxy: Option<&'a Proxy>,
}

impl Target<'_> {
    fn guarded_url(&self, role: &str, db: &str) -> String {
        match self.proxy {
            Some(proxy) => proxy.url(role, db),
            None => self.cluster.url(role, db),
        }
    }
}

/// A session whose notices are collected.
fn connect(url: &str) -> (Client, Arc<Mutex<Vec<Message>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    let mut config: postgres::Config = url.parse().unwrap();
    config.notice_callback(move |notice| sink.lock().unwrap().push(Message::from_db(&notice)));
    let client = config
        .connect(NoTls)
        .unwrap_or_else(|err| panic!("connect {url}: {err}"));
    (client, notices)
}

/// The schema of the database's user objects, one line each (relations, columns,
/// constraints, indexes with their validity), for comparing two servers.
const SCHEMA_SQL: &str = "SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') FROM (\
     SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text || coalesce(' ' || a.attname || ' ' || \
            pg_catalog.format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END || \
            coalesce(' DEFAULT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid), ''), '') AS line \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' \
       AND n.nspname NOT LIKE 'pg_toast_temp%' \
     UNION ALL SELECT 'constraint ' || co.conrelid::pg_catalog.regclass::text || ' ' || co.conname || ' ' || \
            pg_catalog.pg_get_constraintdef(co.oid) FROM pg_catalog.pg_constraint co \
     JOIN pg_catalog.pg_namespace n ON n.oid = co.connamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
     UNION ALL SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END \
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) lines";

fn first_value(client: &mut Client, sql: &str) -> Result<String, postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .unwrap_or_default())
}

fn server_error(err: &postgres::Error, context: &str) -> Message {
    match err.as_db_error() {
        Some(db) => Message::from_db(db),
        None => panic!("{context}: not a server error: {err}"),
    }
}

fn database(file: &CorpusFile, mode: Mode) -> String {
    let pass = if mode == Mode::Warn { "w" } else { "e" };
    format!("parity_{pass}_{}", file.stem)
}

/// Run the file's statements one by one (simple protocol) as the guarded role of `mode`,
/// in a fresh database whose setup ran first. Inside a transaction block each statement
/// runs under a savepoint, so one that fails does not abort the ones after it.
fn run_file(target: &Target, file: &CorpusFile, mode: Mode) -> (Vec<Outcome>, String) {
    let role = if mode == Mode::Warn { WARN_ROLE } else { ENFORCE_ROLE };
    let db = database(file, mode);
    let cluster = target.cluster;
    cluster.execute(
        &cluster.superuser_url(),
        &format!("CREATE DATABASE {} OWNER {role}", policy::sql::ident(&db)),
    );
    if !file.setup.trim().is_empty() {
        cluster.execute(
            &cluster.url(SUPERUSER, &db),
            &format!("SET ROLE {role};\n{}", file.setup),
        );
    }
    let (mut client, notices) = connect(&target.guarded_url(role, &db));
    let context = |piece: &Piece| format!("{} {} ({mode:?})", target.label, piece.location);
    let mut transaction = Transaction::default();
    let mut outcomes = Vec::new();
    for piece in &file.pieces {
        let in_block = transaction.status().in_block();
        let savepoint = in_block && !matches!(piece.stmt, Stmt::Transaction(_));
        if savepoint {
            client
                .batch_execute("SAVEPOINT parity_statement")
                .unwrap_or_else(|err| panic!("{}: SAVEPOINT: {err}", context(piece)));
        }
        let before = (mode == Mode::Enforce && !in_block)
            .then(|| first_value(&mut client, SCHEMA_SQL).unwrap_or_else(|err| panic!("{}: {err}", context(piece))));
        notices.lock().unwrap().clear();
        let result = client.simple_query(&piece.source);
        // The server's own notices (VACUUM VERBOSE's INFO carries xids) are not compared.
        let mut outcome = Outcome {
            notices: std::mem::take(&mut *notices.lock().unwrap())
                .into_iter()
                .filter(Message::is_safe_migrations)
                .collect(),
            error: result.err().map(|err| server_error(&err, &context(piece))),
            after: None,
        };
        let refused = outcome.error.as_ref().is_some_and(Message::is_safe_migrations);
        if mode == Mode::Enforce && refused {
            let next = match client.simple_query("SELECT 1") {
                Ok(_) => "next statement runs".to_string(),
                Err(err) => format!("next statement gets {}", server_error(&err, &context(piece)).code),
            };
            if savepoint {
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT parity_statement")
                    .unwrap_or_else(|err| panic!("{}: ROLLBACK TO SAVEPOINT: {err}", context(piece)));
            }
            let schema = first_value(&mut client, SCHEMA_SQL).unwrap_or_else(|err| panic!("{}: {err}", context(piece)));
            let unchanged = match &before {
                Some(before) if *before == schema => ", schema unchanged",
                Some(_) => ", SCHEMA CHANGED by the refused statement",
                None => "",
            };
            outcome.after = Some(format!("{next}{unchanged}\n{schema}"));
        }
        if savepoint {
            let end = if outcome.error.is_some() {
                "ROLLBACK TO SAVEPOINT parity_statement; RELEASE SAVEPOINT parity_statement"
            } else {
                "RELEASE SAVEPOINT parity_statement"
            };
            client
                .batch_execute(end)
                .unwrap_or_else(|err| panic!("{}: {end}: {err}", context(piece)));
        }
        outcomes.push(outcome);
        transaction.observe(&Statement::new(piece.stmt.clone(), ""), &NoCatalog);
    }
    drop(client);
    let schema = cluster.execute(&cluster.url(SUPERUSER, &db), SCHEMA_SQL);
    (outcomes, schema)
}

/// Both passes of every file on one target.
fn run_target(target: &Target, files: &[CorpusFile]) -> Vec<[(Vec<Outcome>, String); 2]> {
    files
        .iter()
        .map(|file| {
            [
                run_file(target, file, Mode::Warn),
                run_file(target, file, Mode::Enforce),
            ]
        })
        .collect()
}

fn start_cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        // No background ANALYZE: reltuples must be what the setup made it on both servers.
        conf: vec![("autovacuum".to_string(), "off".to_string())],
        ..ClusterOptions::default()
    });
    let min_rows = MIN_TABLE_ROWS.to_string();
    let max_rows = MAX_ROWS_PER_STATEMENT.to_string();
    for (role, mode) in [(WARN_ROLE, "warn"), (ENFORCE_ROLE, "enforce")] {
        cluster.create_role(
            role,
            &[
                ("mode", mode),
                ("min_table_rows", &min_rows),
                ("max_rows_per_statement", &max_rows),
            ],
        );
    }
    cluster
}

fn rule_list(rules: &[String]) -> String {
    if rules.is_empty() {
        "ok".to_string()
    } else {
        rules.join(",")
    }
}

fn describe(outcome: &Outcome) -> String {
    let mut text = String::new();
    for notice in &outcome.notices {
        let _ = write!(text, "\n      notice: {notice}");
    }
    if let Some(error) = &outcome.error {
        let _ = write!(text, "\n      error:  {error}");
    }
    if let Some(after) = &outcome.after {
        let _ = write!(text, "\n      after:  {}", after.replace('\n', "\n              "));
    }
    if text.is_empty() {
        text.push_str("\n      (nothing)");
    }
    text
}

#[test]
fn extension_and_proxy_agree_on_every_corpus_statement() {
    let files = corpus();
    let total: usize = files.iter().map(|file| file.pieces.len()).sum();
    assert!(
        total >= MIN_STATEMENTS,
        "the corpus has {total} statements, fewer than {MIN_STATEMENTS}"
    );

    let with_extension = start_cluster(true);
    let without_extension = start_cluster(false);
    let proxy = Proxy::start(&without_extension, &[]);
    let extension = Target {
        label: "extension",
        cluster: &with_extension,
        proxy: None,
    };
    let through_proxy = Target {
        label: "proxy",
        cluster: &without_extension,
        proxy: Some(&proxy),
    };
    let (extension_runs, proxy_runs) = std::thread::scope(|scope| {
        let extension_runs = scope.spawn(|| run_target(&extension, &files));
        let proxy_runs = scope.spawn(|| run_target(&through_proxy, &files));
        (extension_runs.join().unwrap(), proxy_runs.join().unwrap())
    });

    let mut report = String::new();
    let mut failures = String::new();
    let mut cli_notes = String::new();
    let (mut disagreements, mut cli_unknown, mut cli_differs) = (0, 0, 0);
    let (mut database_differs, mut database_messages) = (0, 0);
    let known_differences = database_differences();
    let mut database_known = std::collections::HashSet::new();
    for ((file, extension_file), proxy_file) in files.iter().zip(&extension_runs).zip(&proxy_runs) {
        let cli = cli_outcomes(file);
        let sql = std::fs::read_to_string(corpus_dir().join(&file.name)).unwrap();
        let with_database = check_outcomes(&with_extension, file, &sql);
        for (index, piece) in file.pieces.iter().enumerate() {
            let (warn_ext, warn_proxy) = (&extension_file[0].0[index], &proxy_file[0].0[index]);
            let (enforce_ext, enforce_proxy) = (&extension_file[1].0[index], &proxy_file[1].0[index]);
            let ext_rules = warn_ext.rules();
            let cli_reports: Vec<&Message> = cli[index].reports.iter().collect();
            let ext_reports: Vec<&Message> = warn_ext
                .notices
                .iter()
                .filter(|message| message.is_safe_migrations())
                .collect();
            let cli_rules: Vec<String> = cli[index].reports.iter().filter_map(Message::rule).collect();
            let mut verdict = "agree";
            if cli_reports != ext_reports {
                if cli[index].unknown {
                    verdict = "cli-unknown";
                    cli_unknown += 1;
                } else {
                    verdict = "cli-differs";
                    cli_differs += 1;
                    let cli_outcome = Outcome {
                        notices: cli[index].reports.clone(),
                        ..Outcome::default()
                    };
                    let _ = writeln!(
                        cli_notes,
                        "{} {}\n    cli:{}\n    extension:{}\n",
                        piece.location,
                        policy::sql::one_line(&piece.source),
                        describe(&cli_outcome),
                        describe(warn_ext)
                    );
                }
            }
            let mut problems = Vec::new();
            // The extension's reports, a refusal (an error even in warn mode) included.
            let mut ext_sorted: Vec<Message> = ext_reports
                .iter()
                .map(|message| (*message).clone())
                .chain(
                    warn_ext
                        .error
                        .iter()
                        .filter(|error| error.is_safe_migrations())
                        .cloned(),
                )
                .collect();
            ext_sorted.sort_by_key(|message| message.to_string());
            // The verdict (each report's severity, SQLSTATE and rule), then the texts with
            // their numbers masked: a difference fails unless database_differs.txt says why.
            let verdict_differs = verdict_of(&with_database[index]) != verdict_of(&ext_sorted);
            let texts_differ = masked(&with_database[index]) != masked(&ext_sorted);
            let key = (file.name.clone(), policy::sql::one_line(&piece.source));
            if verdict_differs || texts_differ {
                database_messages += usize::from(texts_differ);
                // A line that says only the texts differ does not excuse a verdict.
                let excused = known_differences
                    .get(&key)
                    .is_some_and(|(kind, _)| kind == "verdict" || !verdict_differs);
                if excused {
                    database_known.insert(key);
                } else {
                    database_differs += 1;
                    let database_outcome = Outcome {
                        notices: with_database[index].clone(),
                        ..Outcome::default()
                    };
                    problems.push(format!(
                        "check --database-url ({}):{}\n    extension:{}",
                        if verdict_differs { "verdict" } else { "texts" },
                        describe(&database_outcome),
                        describe(warn_ext)
                    ));
                }
            }
            if warn_ext != warn_proxy {
                problems.push(format!(
                    "warn mode:\n    extension:{}\n    proxy:{}",
                    describe(warn_ext),
                    describe(warn_proxy)
                ));
            }
            if enforce_ext != enforce_proxy {
                problems.push(format!(
                    "enforce mode:\n    extension:{}\n    proxy:{}",
                    describe(enforce_ext),
                    describe(enforce_proxy)
                ));
            }
            if let Some(after) = enforce_ext
                .after
                .as_deref()
                .filter(|after| after.contains("SCHEMA CHANGED"))
            {
                problems.push(format!(
                    "enforce mode: the refused statement changed the schema: {after}"
                ));
            }
            if let Some(expected) = &piece.expected {
                let mut found: Vec<String> = ext_rules
                    .iter()
                    .filter(|rule| !rule.starts_with("ack:"))
                    .cloned()
                    .collect();
                found.sort();
                if *expected != found {
                    problems.push(format!(
                        "live expectation: -- expect: {} but the extension reported {}",
                        rule_list(expected),
                        rule_list(&found)
                    ));
                }
            } else if file.live {
                problems.push("live statement without an `-- expect:` line".to_string());
            }
            if !problems.is_empty() {
                verdict = "DISAGREE";
                disagreements += 1;
                let _ = writeln!(
                    failures,
                    "{} {}\n  {}\n",
                    piece.location,
                    policy::sql::one_line(&piece.source),
                    problems.join("\n  ")
                );
            }
            let _ = writeln!(
                report,
                "{:<28} ext={:<48} proxy={:<48} cli={:<48} {verdict}",
                piece.location,
                rule_list(&ext_rules),
                rule_list(&warn_proxy.rules()),
                rule_list(&cli_rules)
            );
        }
        for (pass, index) in [("warn", 0), ("enforce", 1)] {
            if extension_file[index].1 != proxy_file[index].1 {
                disagreements += 1;
                let _ = writeln!(
                    failures,
                    "{} ({pass} pass): the schema after the file differs\n  extension:\n{}\n  proxy:\n{}\n",
                    file.name, extension_file[index].1, proxy_file[index].1
                );
            }
        }
    }
    for ((file, statement), (_, why)) in &known_differences {
        if !database_known.contains(&(file.clone(), statement.clone())) {
            disagreements += 1;
            let _ = writeln!(
                failures,
                "{file} {statement}\n  tests/corpus/database_differs.txt says check --database-url differs from the \
                 extension here ({why}), but it agrees now (or the statement is gone): remove the line\n"
            );
        }
    }
    let summary = format!(
        "parity: {total} statements, {disagreements} disagreements (extension vs proxy vs check \
         --database-url: {database_differs}, besides the {} listed; texts differ for {database_messages}), \
         {cli_unknown} cli-unknown, \
         {cli_differs} cli-differs (without a database)",
        known_differences.len()
    );
    report.push_str(&summary);
    report.push('\n');
    if !cli_notes.is_empty() {
        report.push_str("\nWhere the CLI differs with every catalog question answered:\n\n");
        report.push_str(&cli_notes);
    }
    if !failures.is_empty() {
        report.push_str("\nDisagreements:\n\n");
        report.push_str(&failures);
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parity-report.txt");
    std::fs::write(&path, &report).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    println!("{report}");
    println!("report written to {}", path.display());
    assert_eq!(disagreements, 0, "{summary}\n\n{failures}");
}

/// The two adapters make the same model of every corpus statement: what the extension
/// reads from Postgres' parse nodes (`safe_migrations.describe`) and what the proxy reads
/// from libpg_query's tree, compared whole (so the lock_timeout cap, which the policy
/// decides from the model, agrees too).
#[test]
fn extension_and_proxy_make_the_same_model_of_every_corpus_statement() {
    let cluster = start_cluster(true);
    let mut client = Client::connect(&cluster.superuser_url(), NoTls).unwrap();
    let mut compared = 0;
    let mut differences = Vec::new();
    for file in corpus() {
        for piece in &file.pieces {
            let rows = match client.query("SELECT model FROM safe_migrations.describe($1)", &[&piece.source]) {
                Ok(rows) => rows,
                Err(err) => {
                    differences.push(format!("{}: the extension cannot describe it: {err}", piece.location));
                    continue;
                }
            };
            let extension: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let proxy = vec![format!("{:?}", piece.stmt)];
            compared += 1;
            if extension != proxy {
                differences.push(format!(
                    "{}: {}\n  extension: {extension:?}\n  proxy:     {proxy:?}",
                    piece.location,
                    piece.source.trim()
                ));
            }
        }
    }
    assert!(compared >= MIN_STATEMENTS, "only {compared} statements compared");
    assert!(
        differences.is_empty(),
        "{} of {compared} statements modelled differently:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
