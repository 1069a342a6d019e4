//! `safe-migrations check`: lint SQL migration files with the rules the extension and the
//! proxy enforce. The catalog is what the files themselves show (a table created earlier
//! in the same transaction, for instance); everything else is unknown. A `DO` block's own
//! statements are decided one by one, as the extension decides them when the block runs.
//!
//! `file` decides one file's statements, `problem` is what is reported, `render` writes
//! problems as text, JSON, GitHub annotations, SARIF or a GitLab Code Quality report.

mod file;
mod problem;
mod render;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use policy::settings::Unparsable;
use policy::{Mode, Settings, Severity};

pub use file::{check_sql, FileCheck};
pub use problem::Problem;
use render::render;

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
    /// GitHub Actions workflow commands (annotations).
    Github,
    /// SARIF 2.1.0, for GitHub code scanning (upload-sarif) and other SARIF readers.
    Sarif,
    /// A GitLab Code Quality report (artifacts:reports:codequality).
    Gitlab,
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
