//! Throughput of the CLI's classification: the policy corpus repeated to 10,000
//! statements, parsed with libpg_query and decided with the file catalog, on one thread.
//!
//! `cargo run --release -p safe-migrations --example classify_bench [OUT.sql]`; with
//! OUT.sql, also writes the 10,000-statement file for timing `safe-migrations check`.

use std::path::Path;
use std::time::{Duration, Instant};

use parse::parse_sql;
use policy::file_catalog::FileCatalog;
use policy::{Context, Mode, Settings};

const STATEMENTS: usize = 10_000;
const RUNS: usize = 5;

fn main() {
    let corpus = corpus_statements();
    let sql: String = corpus
        .iter()
        .cycle()
        .take(STATEMENTS)
        .map(|source| format!("{source};"))
        .collect();
    if let Some(out) = std::env::args().nth(1) {
        std::fs::write(&out, &sql).unwrap_or_else(|err| panic!("{out}: {err}"));
    }
    let settings = Settings {
        mode: Mode::Enforce,
        ..Settings::default()
    };

    let whole = best_of(|| {
        let statements = parse_sql(&sql).expect("the corpus parses");
        assert_eq!(statements.len(), STATEMENTS);
        decide_all(statements.iter().map(|parsed| &parsed.statement), &settings)
    });
    let one_by_one = best_of(|| {
        let statements: Vec<_> = corpus
            .iter()
            .cycle()
            .take(STATEMENTS)
            .flat_map(|source| parse_sql(source).expect("the corpus parses"))
            .collect();
        decide_all(statements.iter().map(|parsed| &parsed.statement), &settings)
    });
    report("one 10,000-statement string (check)", whole);
    report("10,000 separate strings (proxy)", one_by_one);
}

/// The statements of every corpus file, each with its leading comments.
fn corpus_statements() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| parse_sql(&std::fs::read_to_string(file).unwrap()).expect("the corpus parses"))
        .map(|parsed| parsed.statement.source)
        .collect()
}

/// Decide every statement in order with one file catalog; the number of findings.
fn decide_all<'a>(statements: impl Iterator<Item = &'a policy::Statement>, settings: &Settings) -> usize {
    let mut catalog = FileCatalog::default();
    let mut findings = 0;
    for statement in statements {
        findings += policy::decide(statement, &Context::default(), settings, &catalog)
            .findings
            .len();
        catalog.observe(statement);
    }
    findings
}

fn best_of(mut run: impl FnMut() -> usize) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(run());
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn report(what: &str, elapsed: Duration) {
    println!(
        "parse + decide, {what}: {STATEMENTS} statements in {:.1} ms = {:.0} statements/s (best of {RUNS})",
        elapsed.as_secs_f64() * 1000.0,
        STATEMENTS as f64 / elapsed.as_secs_f64()
    );
}
