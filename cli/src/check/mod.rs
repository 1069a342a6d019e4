//! `safe-migrations check`: lint SQL migration files with the rules the extension and the
//! proxy enforce. The catalog is what the files themselves show (a table created earlier
//! in the same transaction, for instance); everything else is unknown. A `DO` block's own
//! statements are decided one by one, as the extension decides them when the block runs.
//!
//! `file` decides one file's statements, `problem` is what is reported, `render` writes
//! problems as text, JSON, GitHub annotations, SARIF or a GitLab Code Quality report.

mod database;
mod file;
mod pgpass;
mod problem;
mod render;
mod routines;
mod run_catalog;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use policy::settings::{Unparsable, SETTINGS};
use policy::{Mode, Settings, Severity, Transaction};

use parse::parse_sql;

pub use database::Database;
pub use file::{check_sql, FileCheck};
pub use problem::Problem;
use render::render;
pub use run_catalog::RunCatalog;

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
    /// Answer the catalog from this database, read-only, as it stands before the files run
    /// (a staging copy, or a schema-only database CI restores): column types, constraints,
    /// domains, functions, and with --sizes database table sizes. Connect as the role the
    /// migrations run as: its `safe_migrations.*` settings (ALTER ROLE ... SET) are read
    /// and applied, but for the mode, which --mode sets. The files are judged in order as
    /// one run: a table an earlier file created is known, and empty until the run writes
    /// to it. Default: DATABASE_URL when it holds a postgres:// URL (said on standard
    /// error; --offline ignores it).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Judge without a database, whatever --database-url or DATABASE_URL says.
    #[arg(long)]
    pub offline: bool,
    /// With --database-url: whether its tables' sizes stand for the tables the migrations
    /// will meet. unknown (the default): a schema-only database, every table of unknown
    /// size (no exemption for small or empty tables, no planner estimate); database: a
    /// staging copy whose sizes are production's (row estimates, empty tables, the
    /// planner's estimates of writes). Tables the run creates are empty until it writes
    /// to them either way.
    #[arg(long, value_enum, default_value_t = SizesChoice::Unknown)]
    pub sizes: SizesChoice,
    /// How each file runs: file, one transaction unless it says COMMIT (as Flyway, sqlx
    /// and most ORMs run a migration); statement, each statement outside a BEGIN block
    /// committing on its own (psql -f, a tool's non-transactional migration).
    #[arg(long, value_enum, default_value_t = TransactionChoice::File)]
    pub transaction: TransactionChoice,
    /// SQL files, directories (every *.sql below them, in sorted order) or - for standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// GitHub Actions workflow commands (annotations).
    Github,
    /// SARIF 2.1.0, for GitHub code scanning (upload-sarif) and other SARIF readers.
    Sarif,
    /// A GitLab Code Quality report (artifacts:reports:codequality).
    Gitlab,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SizesChoice {
    Unknown,
    Database,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransactionChoice {
    File,
    Statement,
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
    let url = match (&args.database_url, args.offline) {
        (_, true) => None,
        (Some(url), false) => Some(("--database-url", url.trim().to_string())),
        (None, false) => from_environment().map(|url| ("DATABASE_URL", url)),
    };
    let database = match url.map(|(source, url)| Database::connect(&url).map_err(|err| format!("{source}: {err}"))) {
        None => None,
        Some(Ok(database)) => Some(database),
        Some(Err(err)) => {
            eprintln!("safe-migrations check: {err}");
            return ExitCode::from(EXIT_UNCHECKED);
        }
    };
    let mut settings = match &database {
        Some(database) => match role_settings(database) {
            Ok(settings) => settings,
            Err(err) => {
                eprintln!("safe-migrations check: {}: {err}", database.name);
                return ExitCode::from(EXIT_UNCHECKED);
            }
        },
        None => Settings {
            acknowledgements: true,
            ..Settings::default()
        },
    };
    let role_allow = settings.value_of("allow").unwrap_or_default();
    settings = Settings {
        mode: match args.mode {
            CheckMode::Enforce => Mode::Enforce,
            CheckMode::Warn => Mode::Warn,
        },
        unparsable: match args.unparsable {
            UnparsableChoice::Reject => Unparsable::Reject,
            UnparsableChoice::Allow => Unparsable::Allow,
        },
        ..settings
    };
    let allow: Vec<String> = std::iter::once(role_allow)
        .chain(args.allow.iter().cloned())
        .filter(|list| !list.trim().is_empty())
        .collect();
    if let Err(err) = settings.apply("allow", &allow.join(",")) {
        eprintln!("safe-migrations check: --allow: {err}");
        return ExitCode::from(EXIT_UNCHECKED);
    }
    let server_version_num = args.pg_version.map(version_num);

    let start = match args.transaction {
        TransactionChoice::File => Transaction::file(),
        TransactionChoice::Statement => Transaction::script(),
    };
    let mut problems = Vec::new();
    // With a database the files are one run, judged in order; without one, each file
    // on its own.
    let sizes = args.sizes == SizesChoice::Database;
    let mut catalog = RunCatalog::new(server_version_num, start.clone(), database.as_ref(), sizes);
    for input in inputs(&args.paths, &mut problems) {
        let name = input.display_name();
        let sql = match read(&input) {
            Ok(sql) => sql,
            Err(message) => {
                problems.push(Problem::unreadable(&name, message));
                continue;
            }
        };
        let statements = match parse_sql(&sql) {
            Ok(statements) => statements,
            Err(err) => {
                problems.push(Problem::syntax_error(&name, &sql, &err));
                continue;
            }
        };
        if database.is_none() {
            catalog = RunCatalog::new(server_version_num, start.clone(), None, false);
        }
        let mut check = FileCheck::with_catalog(&name, &sql, &settings, catalog);
        for parsed in &statements {
            problems.extend(check.statement(parsed));
        }
        problems.extend(check.finish());
        catalog = check.into_catalog();
        catalog.next_file();
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

/// The role's policy as the server gives it to the session (`ALTER ROLE ... SET
/// safe_migrations.*`, whether the extension is installed there or not), as the proxy
/// reads it.
fn role_settings(database: &Database) -> Result<Settings, String> {
    let names: Vec<String> = SETTINGS
        .iter()
        .map(|spec| format!("safe_migrations.{}", spec.name))
        .collect();
    let values = database.settings(&names)?;
    let mut settings = Settings::default();
    for (spec, value) in SETTINGS.iter().zip(values) {
        if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
            settings
                .apply(spec.name, &value)
                .map_err(|err| format!("the role's safe_migrations.{}: {err}", spec.name))?;
        }
    }
    Ok(settings)
}

/// DATABASE_URL, when it names a PostgreSQL database (a migration tool's CI often sets it,
/// for another database too): said on standard error, since it changes what is judged.
fn from_environment() -> Option<String> {
    let url = std::env::var("DATABASE_URL").ok()?.trim().to_string();
    if url.is_empty() {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    if !["postgres://", "postgresql://", "jdbc:postgresql://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        eprintln!("safe-migrations check: DATABASE_URL is not a postgres:// URL: judged without a database");
        return None;
    }
    eprintln!("safe-migrations check: judged against the database in DATABASE_URL (--offline: without it)");
    Some(url)
}

/// `--pg-version 15` or `--pg-version 150004` as server_version_num.
fn version_num(version: u32) -> u32 {
    if version < 100 {
        version * 10_000
    } else {
        version
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_version_accepts_major_or_version_num() {
        assert_eq!(version_num(15), 150000);
        assert_eq!(version_num(150004), 150004);
    }
}
