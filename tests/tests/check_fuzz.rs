//! Whatever SQL a file holds, `safe-migrations check` answers (problems or a syntax
//! error) and never panics: corpus statements, mutated by a seeded generator (ranges
//! deleted, duplicated or moved, keywords and quoting characters spliced in), checked
//! under each mode. `SAFE_MIGRATIONS_FUZZ_SEED` / `SAFE_MIGRATIONS_FUZZ_CASES` vary it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use e2e::{env_number, Rng};
use parse::parse_sql;
use policy::{Mode, Settings};
use safe_migrations_cli::check::check_sql;

const SPLICES: &[&str] = &[
    " CONCURRENTLY ",
    " NOT VALID ",
    " IF NOT EXISTS ",
    " USING INDEX ",
    "DO $$ BEGIN ",
    " END $$;",
    "$$",
    "$x$",
    "'",
    "\"",
    "(",
    ")",
    ";",
    ",",
    "--",
    "/*",
    "*/",
    "\\",
    " DEFAULT now() ",
    " TYPE bigint USING a::bigint ",
    " PARTITION OF t FOR VALUES IN (1) ",
    " ALTER TABLE t ",
    " ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES u ",
    " EXECUTE 'CREATE INDEX ON t (a)' ",
    "é",
    "\u{0}",
    "ﬀ",
];

/// A char boundary of `text` at random.
fn boundary(rng: &mut Rng, text: &str) -> usize {
    let mut at = rng.below(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(rng: &mut Rng, text: &mut String) {
    let (a, b) = (boundary(rng, text), boundary(rng, text));
    let (start, end) = (a.min(b), a.max(b).min(a.min(b) + 200));
    let end = (end..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    match rng.below(4) {
        0 => {
            text.replace_range(start..end, "");
        }
        1 => {
            let piece = text[start..end].to_string();
            text.insert_str(start, &piece);
        }
        2 => {
            let piece = text[start..end].to_string();
            text.replace_range(start..end, "");
            let at = boundary(rng, text);
            text.insert_str(at, &piece);
        }
        _ => {
            let splice = *rng.pick(SPLICES);
            text.insert_str(start, splice);
        }
    }
}

#[test]
fn mutated_corpus_statements_never_panic_the_checker() {
    let seed = env_number("SAFE_MIGRATIONS_FUZZ_SEED", 0x5afe_2026_1122);
    let cases = env_number("SAFE_MIGRATIONS_FUZZ_CASES", 400) as usize;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    paths.sort();
    // Every corpus statement, in file order (a DO block or a function body is one).
    let statements: Vec<String> = paths
        .iter()
        .flat_map(|path| parse_sql(&std::fs::read_to_string(path).unwrap()).expect("the corpus parses"))
        .map(|parsed| parsed.statement.source)
        .collect();
    let settings: Vec<Settings> = [Mode::Enforce, Mode::Warn]
        .into_iter()
        .map(|mode| Settings {
            mode,
            ..Settings::default()
        })
        .collect();
    let mut rng = Rng::new(seed);
    let (mut answered, mut syntax_errors) = (0, 0);
    for case in 0..cases {
        // One to three neighbouring statements, one of them mutated (a syntax error stops
        // a file, so mutating them all would mostly test the parser's error path).
        let first = rng.below(statements.len());
        let taken = &statements[first..(first + 1 + rng.below(3)).min(statements.len())];
        let victim = rng.below(taken.len());
        let sql: String = taken
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let mut source = source.clone();
                if i == victim {
                    for _ in 0..1 + rng.below(2) {
                        mutate(&mut rng, &mut source);
                    }
                }
                source + ";\n"
            })
            .collect();
        for settings in &settings {
            let problems = catch_unwind(AssertUnwindSafe(|| check_sql("mutated.sql", &sql, settings, None)))
                .unwrap_or_else(|_| panic!("seed {seed} case {case} panicked on:\n{sql}"));
            answered += 1;
            syntax_errors += usize::from(problems.iter().any(|p| p.rule == "syntax_error"));
        }
    }
    // Most mutations keep the file valid enough to reach the rules.
    eprintln!("seed {seed}: {answered} checks, {syntax_errors} syntax errors");
    assert!(
        syntax_errors * 4 < answered * 3,
        "{syntax_errors} of {answered} were syntax errors"
    );
}
