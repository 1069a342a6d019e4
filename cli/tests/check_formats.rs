//! `safe-migrations check --format sarif` and `--format gitlab` as code scanning and GitLab
//! read them: the built binary's output validated against SARIF's official 2.1.0 schema
//! and against GitLab's Code Quality format, and read back for what each problem says.

use std::path::{Path, PathBuf};
use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_safe-migrations");

/// A directory of migrations: an unsafe statement, an acknowledged one, a syntax error, in
/// files whose names need encoding in a URI.
fn migrations(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("safe-migrations-formats-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001 add index.sql"),
        "CREATE TABLE t (c int);\nCOMMIT;\nCREATE INDEX i ON t (c);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("002_drop_ü.sql"),
        "-- safe_migrations:allow drop_column -- nothing reads it\nALTER TABLE t DROP COLUMN c;\n",
    )
    .unwrap();
    std::fs::write(dir.join("003_broken.sql"), "ALTER TABLE t ADD COLUMN;\n").unwrap();
    dir
}

fn check(dir: &Path, format: &str) -> serde_json::Value {
    let output = Command::new(BINARY)
        .args(["check", "--format", format])
        .arg(dir)
        .output()
        .unwrap();
    // Input that could not be checked: exit status 2.
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{format} output is no JSON ({err}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn validate(schema: &serde_json::Value, instance: &serde_json::Value, what: &str) {
    let validator = jsonschema::draft7::new(schema).unwrap_or_else(|err| panic!("{what} schema: {err}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} does not validate:\n{}", errors.join("\n"));
}

/// SARIF's official schema, from serde-sarif's source in cargo's registry (a
/// dev-dependency for it; `cargo metadata` says where its source is).
fn sarif_schema() -> serde_json::Value {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "serde-sarif")
        .and_then(|package| package["manifest_path"].as_str())
        .expect("serde-sarif in cargo metadata");
    let schema = Path::new(manifest).parent().unwrap().join("src/schema.json");
    let mut schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&schema).unwrap()).unwrap();
    // The published schema's pattern for a `language` (a tag like `en-US`, on runs and
    // tool components) has a stray `]`, which the validator's regular expressions refuse:
    // that pattern as it is meant (this output sets no language).
    let erratum = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    assert_eq!(
        replace_pattern(&mut schema, erratum, "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$"),
        2,
        "the SARIF schema changed"
    );
    assert_eq!(
        schema["title"], "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema",
        "not SARIF's schema"
    );
    schema
}

/// Replace every `"pattern": from` in `schema` by `to`; how many there were.
fn replace_pattern(schema: &mut serde_json::Value, from: &str, to: &str) -> usize {
    match schema {
        serde_json::Value::Object(map) => {
            let mut count = 0;
            for (key, value) in map.iter_mut() {
                if key == "pattern" && value == from {
                    *value = serde_json::json!(to);
                    count += 1;
                } else {
                    count += replace_pattern(value, from, to);
                }
            }
            count
        }
        serde_json::Value::Array(items) => items.iter_mut().map(|item| replace_pattern(item, from, to)).sum(),
        _ => 0,
    }
}

#[test]
fn sarif_validates_against_the_official_schema_and_says_what_each_problem_is() {
    let dir = migrations("sarif");
    let log = check(&dir, "sarif");
    validate(&sarif_schema(), &log, "the SARIF log");
    let typed: serde_sarif::sarif::Sarif = serde_json::from_value(log.clone()).unwrap();
    assert_eq!(typed.runs.len(), 1);
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "safe-migrations");
    let results = run["results"].as_array().unwrap();
    let summary: Vec<String> = results
        .iter()
        .map(|result| {
            let location = &result["locations"][0]["physicalLocation"];
            let uri = location["artifactLocation"]["uri"].as_str().unwrap();
            format!(
                "{} {} {} line {} suppressed {}",
                result["ruleId"].as_str().unwrap(),
                result["level"].as_str().unwrap(),
                uri.rsplit('/').next().unwrap(),
                location["region"]["startLine"],
                result.get("suppressions").is_some()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "create_index_non_concurrently error 001%20add%20index.sql line 3 suppressed false",
            "drop_column note 002_drop_%C3%BC.sql line 2 suppressed true",
            "syntax_error error 003_broken.sql line 1 suppressed false",
        ]
    );
    // Each result's rule is in the driver's rules at its index.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
    let text = results[0]["message"]["text"].as_str().unwrap();
    assert!(text.contains("CREATE INDEX CONCURRENTLY i ON t (c);"), "{text}");
    assert_eq!(results[0]["properties"]["sqlstate"], "SM001");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gitlab_code_quality_validates_and_fingerprints_each_problem_once() {
    let dir = migrations("gitlab");
    let report = check(&dir, "gitlab");
    let schema: serde_json::Value = serde_json::from_str(include_str!("schemas/gitlab-code-quality.json")).unwrap();
    validate(&schema, &report, "the Code Quality report");
    let issues = report.as_array().unwrap();
    let summary: Vec<String> = issues
        .iter()
        .map(|issue| {
            format!(
                "{} {} {} line {}",
                issue["check_name"].as_str().unwrap(),
                issue["severity"].as_str().unwrap(),
                Path::new(issue["location"]["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy(),
                issue["location"]["lines"]["begin"]
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "create_index_non_concurrently critical 001 add index.sql line 3",
            "drop_column info 002_drop_ü.sql line 2",
            "syntax_error blocker 003_broken.sql line 1",
        ]
    );
    let mut fingerprints: Vec<&str> = issues
        .iter()
        .map(|issue| issue["fingerprint"].as_str().unwrap())
        .collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), issues.len(), "fingerprints repeat");
    // The same input, the same fingerprints (GitLab compares them between pipelines).
    assert_eq!(check(&dir, "gitlab"), report);
    let _ = std::fs::remove_dir_all(dir);
}
