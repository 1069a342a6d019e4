//! The pre-commit hook (`.pre-commit-hooks.yaml`, `scripts/pre-commit-check.sh`) as a
//! project uses it with pre-commit (from PyPI, tests/tools/precommit): a repository of
//! the hook files as they are in this tree, a project whose .pre-commit-config.yaml
//! names it, `pre-commit run` failing on an unsafe migration with the rule's message and
//! passing the safe one, the hook seeing only SQL files, and `git commit` stopped by the
//! installed hook. The checker is the binary this build made (SAFE_MIGRATIONS_BIN), not
//! one the hook builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::tools::{installed, report, tools_dir};

const TOOL: &str = "precommit";

fn pre_commit() -> PathBuf {
    tools_dir().join("venv/bin/pre-commit")
}

/// git in `dir`; its hooks run pre-commit with the test's cache and checker.
fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("PRE_COMMIT_HOME", cache_dir())
        .env("SAFE_MIGRATIONS_BIN", e2e::safe_migrations_bin())
        .output()
        .expect("run git")
}

fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sm-precommit-{}", std::process::id()))
}

fn cache_dir() -> PathBuf {
    work_dir().join("cache")
}

fn git_ok(dir: &Path, args: &[&str]) -> String {
    let output = git(dir, args);
    assert!(output.status.success(), "git {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_pre_commit_hook_stops_an_unsafe_migration_and_passes_the_safe_one() {
    if !installed(TOOL, &pre_commit()) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = work_dir();
    let _ = std::fs::remove_dir_all(&work);

    // The hook repository: this tree's hook files, committed.
    let hooks = work.join("hooks");
    std::fs::create_dir_all(hooks.join("scripts")).unwrap();
    std::fs::copy(
        root.join(".pre-commit-hooks.yaml"),
        hooks.join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("scripts/pre-commit-check.sh"),
        hooks.join("scripts/pre-commit-check.sh"),
    )
    .unwrap();
    git_ok(&hooks, &["init", "-q"]);
    git_ok(&hooks, &["add", "."]);
    git_ok(&hooks, &["commit", "-q", "-m", "hooks"]);
    let rev = git_ok(&hooks, &["rev-parse", "HEAD"]);

    // A project with an unsafe migration and a file that is no SQL.
    let project = work.join("project");
    std::fs::create_dir_all(project.join("migrations")).unwrap();
    std::fs::write(
        project.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: safe-migrations-check\n",
            hooks.display()
        ),
    )
    .unwrap();
    std::fs::write(project.join("migrations/001_index.sql"), "CREATE INDEX i ON t (c);\n").unwrap();
    std::fs::write(project.join("notes.txt"), "CREATE INDEX in prose is not checked;\n").unwrap();
    git_ok(&project, &["init", "-q"]);
    git_ok(&project, &["add", "."]);

    let run = |args: &[&str]| {
        Command::new(pre_commit())
            .args(args)
            .current_dir(&project)
            .env("PRE_COMMIT_HOME", cache_dir())
            .env("SAFE_MIGRATIONS_BIN", e2e::safe_migrations_bin())
            .output()
            .expect("run pre-commit")
    };
    let output = run(&["run", "--all-files"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let printed = text(&output);
    assert!(
        printed.contains("safe-migrations check") && printed.contains("Failed"),
        "{printed}"
    );
    assert!(
        printed.contains("migrations/001_index.sql:1:1: error[create_index_non_concurrently]"),
        "{printed}"
    );
    assert!(
        !printed.contains("notes.txt"),
        "the hook saw a file that is no SQL:\n{printed}"
    );

    // Installed as git's pre-commit hook, it stops the commit.
    let output = run(&["install"]);
    assert!(output.status.success(), "{}", text(&output));
    let commit = git(&project, &["commit", "-q", "-m", "unsafe"]);
    assert!(
        !commit.status.success(),
        "the unsafe migration was committed: {}",
        text(&commit)
    );
    assert!(
        text(&commit).contains("create_index_non_concurrently"),
        "{}",
        text(&commit)
    );
    assert!(!git(&project, &["rev-parse", "-q", "--verify", "HEAD"]).status.success());

    // The safe form passes, and commits.
    std::fs::write(
        project.join("migrations/001_index.sql"),
        "CREATE INDEX CONCURRENTLY i ON t (c);\n",
    )
    .unwrap();
    git_ok(&project, &["add", "."]);
    let output = run(&["run", "--all-files"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Passed"), "{}", text(&output));
    let commit = git(&project, &["commit", "-q", "-m", "safe"]);
    assert!(commit.status.success(), "{}", text(&commit));

    let _ = std::fs::remove_dir_all(&work);
    report(&format!("tool {TOOL}: pass"));
}
