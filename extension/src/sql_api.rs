//! What `CREATE EXTENSION safe_migrations` installs: `check(sql)` to see the findings
//! for statements without running them, `policy()` for the session's effective
//! settings, `guard_active()`, and a warning when the library is not preloaded.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;
use policy::settings::SETTINGS;
use policy::{Mode, Placement, Settings, Transaction};

use crate::catalog::BackendCatalog;
use crate::nodes;
use crate::settings::current_settings;

/// The findings for every statement in `sql`, judged against the live catalog under this
/// session's settings with mode treated as enforce. Nothing is executed.
#[pg_extern]
fn check(
    sql: &str,
) -> TableIterator<
    'static,
    (
        name!(rule, String),
        name!(severity, String),
        name!(lock, Option<String>),
        name!(message, String),
        name!(detail, String),
        name!(hint, String),
    ),
> {
    let rows = decisions(sql, "check").into_iter().flat_map(|(_, decision)| {
        decision.findings.into_iter().map(|finding| {
            (
                finding.rule.to_string(),
                finding.severity.name().to_string(),
                finding.lock.as_ref().map(|lock| lock.describe()),
                finding.text(),
                finding.detail,
                finding.hint,
            )
        })
    });
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// What the guard makes of each statement in `sql` (its model, as the policy sees it),
/// and the lock_timeout cap (ms) it would run under, as `check` judges it. Nothing is
/// executed. The proxy's adapter must make the same of the same text (tests/tests/parity.rs).
#[pg_extern]
fn describe(
    sql: &str,
) -> TableIterator<
    'static,
    (
        name!(statement, String),
        name!(model, String),
        name!(lock_timeout_ms, Option<i64>),
    ),
> {
    let rows = decisions(sql, "describe").into_iter().map(|(statement, decision)| {
        (
            statement.source,
            format!("{:?}", statement.stmt),
            decision.lock_timeout_ms.and_then(|ms| i64::try_from(ms).ok()),
        )
    });
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// Each statement of `sql` and its decision under this session's settings, mode treated
/// as enforce, the text judged as if sent on its own: a string of several statements
/// runs in one implicit transaction block, and BEGIN opens an explicit one.
fn decisions(sql: &str, function: &str) -> Vec<(policy::Statement, policy::Decision)> {
    let mut settings = Settings::clone(&current_settings().unwrap_or_else(|error| error!("{error}")));
    settings.mode = Mode::Enforce;
    let source =
        CString::new(sql).unwrap_or_else(|_| error!("safe_migrations.{function}: the SQL contains a NUL byte"));
    // SAFETY: `source` is a live C string; pg_parse_query raises a syntax error like any
    // statement would, and returns a List of RawStmt in the current memory context.
    let raw_statements = unsafe { pgrx::PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(source.as_ptr())) };
    let placement = Placement {
        multi_statement: raw_statements.len() > 1,
        nested: false,
    };
    let mut transaction = Transaction::default();
    // Several statements in one string run in one implicit transaction.
    transaction.set_implicit(placement.multi_statement);
    // SAFETY: a plain int read on the backend's only thread.
    transaction.set_lock_timeout_ms(u64::try_from(unsafe { pg_sys::LockTimeout }).unwrap_or(0));
    let mut out = Vec::new();
    for raw in raw_statements.iter_ptr() {
        // SAFETY: each element is a RawStmt the parser just built, alive for this call.
        let raw = unsafe { &*raw };
        // SAFETY: raw.stmt is the statement's parse node, built by the parser just now.
        let statement = unsafe { nodes::statement(raw.stmt, sql, raw.stmt_location, raw.stmt_len) };
        let context = transaction.context(placement);
        let catalog = BackendCatalog {
            rows_changed: planned_rows_changed(&statement, raw, &source),
            ..BackendCatalog::default()
        };
        let decision = policy::decide(&statement, &context, &settings, &catalog);
        transaction.observe(&statement, &BackendCatalog::default());
        out.push((statement, decision));
    }
    out
}

unsafe extern "C" {
    /// hook.c: the planner's estimate of the rows a raw statement changes (-1: none, or
    /// it does not analyse), planned in a subtransaction rolled back at once.
    fn sm_plan_rows_changed(raw: *mut pg_sys::RawStmt, sql: *const std::ffi::c_char) -> f64;
}

/// The estimate of rows an UPDATE, DELETE or MERGE changes, from the plan PostgreSQL
/// makes for it here (nothing runs), as the executor hook reads it.
fn planned_rows_changed(statement: &policy::Statement, raw: &pg_sys::RawStmt, source: &CString) -> Option<f64> {
    let changes_rows = |write: &policy::model::DmlWrite| {
        matches!(
            write.kind,
            policy::model::WriteKind::Update | policy::model::WriteKind::Delete | policy::model::WriteKind::Merge
        )
    };
    let policy::Stmt::Dml(writes) = &statement.stmt else {
        return None;
    };
    if !writes.iter().any(changes_rows) {
        return None;
    }
    // SAFETY: `raw` is a RawStmt the parser built from `source`, alive for this call;
    // hook.c copies it before analysis and catches every error it raises, so nothing
    // unwinds through this frame.
    let rows = unsafe { sm_plan_rows_changed(std::ptr::from_ref(raw).cast_mut(), source.as_ptr()) };
    (rows >= 0.0).then_some(rows)
}

/// The effective `safe_migrations.*` settings of the current session.
#[pg_extern]
fn policy() -> TableIterator<'static, (name!(setting, String), name!(value, String))> {
    let settings = current_settings().unwrap_or_else(|error| error!("{error}"));
    TableIterator::new(SETTINGS.iter().map(move |spec| {
        (
            format!("safe_migrations.{}", spec.name),
            settings.value_of(spec.name).unwrap_or_default(),
        )
    }))
}

/// Is the guard installed in this server (the library is in shared_preload_libraries)?
#[pg_extern]
fn guard_active() -> bool {
    crate::shim::guard_active()
}

extension_sql!(
    r#"
DO $$
BEGIN
    IF NOT guard_active() THEN
        RAISE WARNING 'safe_migrations: the guard is not active: the library is not in shared_preload_libraries'
            USING HINT = 'Add safe_migrations to shared_preload_libraries in postgresql.conf and restart the server.';
    END IF;
END
$$;
"#,
    name = "warn_when_not_preloaded",
    requires = [guard_active],
);

// check() and policy() are for every role, guarded or not.
extension_sql!(
    "GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;\n",
    name = "grant_usage",
    requires = [check, policy, guard_active],
);
