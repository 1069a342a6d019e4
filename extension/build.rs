//! Compiles the C half of the extension (src/hook.c: the ProcessUtility hook, the GUCs,
//! raising reports) against the server headers of the Postgres this build targets.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/hook.c");
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    let pg_config = pg_config();
    let include_dir = query(&pg_config, "--includedir-server");
    cc::Build::new()
        .file("src/hook.c")
        .include(include_dir.trim())
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-fvisibility=default")
        .compile("safe_migrations_hook");
}

/// pg_config: $PGRX_PG_CONFIG_PATH, else the entry for the enabled pgNN feature in
/// ~/.pgrx/config.toml, else `pg_config` on PATH.
fn pg_config() -> PathBuf {
    if let Some(path) = std::env::var_os("PGRX_PG_CONFIG_PATH") {
        return PathBuf::from(path);
    }
    let version = (13..=18)
        .find(|v| std::env::var_os(format!("CARGO_FEATURE_PG{v}")).is_some())
        .unwrap_or(15);
    let config = std::env::var_os("PGRX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgrx")))
        .map(|dir| dir.join("config.toml"));
    if let Some(config) = config {
        println!("cargo:rerun-if-changed={}", config.display());
        if let Ok(text) = std::fs::read_to_string(&config) {
            let key = format!("pg{version}");
            for line in text.lines() {
                if let Some((name, value)) = line.split_once('=') {
                    if name.trim() == key {
                        return PathBuf::from(value.trim().trim_matches('"'));
                    }
                }
            }
        }
    }
    PathBuf::from("pg_config")
}

fn query(pg_config: &Path, flag: &str) -> String {
    let output = Command::new(pg_config)
        .arg(flag)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {flag}: {e}", pg_config.display()));
    assert!(output.status.success(), "{} {flag} failed", pg_config.display());
    String::from_utf8(output.stdout).expect("pg_config prints UTF-8")
}
