//! Fixtures and helpers shared by the pgrx tests.

use pgrx::prelude::*;

extension_sql!(
    r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sm_guarded') THEN
        CREATE ROLE sm_guarded NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sm_unguarded') THEN
        CREATE ROLE sm_unguarded NOLOGIN;
    END IF;
END
$$;
GRANT sm_guarded TO sm_unguarded;
CREATE SCHEMA fixture AUTHORIZATION sm_guarded;
CREATE TABLE fixture.customers (id int PRIMARY KEY);
CREATE TABLE fixture.orders (
    id int PRIMARY KEY,
    c int,
    v varchar(50),
    ts timestamp,
    email text,
    note text,
    CONSTRAINT email_present CHECK (email IS NOT NULL)
);
INSERT INTO fixture.customers VALUES (1);
INSERT INTO fixture.orders VALUES (1, 1, 'a', now(), 'a@example.com', 'n');
CREATE INDEX orders_c ON fixture.orders (c);
CREATE TABLE fixture.u (id int);
CREATE UNIQUE INDEX u_id ON fixture.u (id);
INSERT INTO fixture.u VALUES (1);
CREATE MATERIALIZED VIEW fixture.totals AS SELECT 1 AS x;
CREATE UNIQUE INDEX totals_x ON fixture.totals (x);
CREATE TABLE fixture.events (id int) PARTITION BY RANGE (id);
CREATE TABLE fixture.events_1 PARTITION OF fixture.events FOR VALUES FROM (0) TO (10);
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'fixture' LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO sm_guarded', t);
    END LOOP;
END
$$;
ALTER MATERIALIZED VIEW fixture.totals OWNER TO sm_guarded;
-- Tests drop it; objects of the extension itself could not be dropped.
ALTER EXTENSION safe_migrations DROP TABLE fixture.customers;

-- How a statement ends, without keeping its effects: 'ok', or
-- 'SQLSTATE: message | detail | hint'.
CREATE FUNCTION fixture.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    state text; message text; detail text; hint text;
BEGIN
    EXECUTE sql;
    RAISE EXCEPTION USING ERRCODE = 'SMTOK', MESSAGE = 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    IF state = 'SMTOK' THEN
        RETURN 'ok';
    END IF;
    RETURN state || ': ' || message || ' | ' || coalesce(detail, '') || ' | ' || coalesce(hint, '');
END
$fn$;

-- Every field of the error a statement raises, one per line.
CREATE FUNCTION fixture.error_fields(sql text) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    state text; message text; context text; schema_name text; table_name text; constraint_name text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        context = PG_EXCEPTION_CONTEXT, schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
        constraint_name = CONSTRAINT_NAME;
    RETURN concat_ws(E'\n', state, message, context, schema_name, table_name, constraint_name);
END
$fn$;
GRANT EXECUTE ON FUNCTION fixture.outcome(text), fixture.error_fields(text) TO PUBLIC;
"#,
    name = "test_fixtures",
);

/// Run `sql` (a SET or other session statement) and keep its effect.
pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How `sql` ends under the current settings; its effects are rolled back.
pub fn outcome(sql: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT fixture.outcome($1)", &[sql.into()])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_default()
}

/// Every field of the error `sql` raises.
pub fn error_fields(sql: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT fixture.error_fields($1)", &[sql.into()])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_default()
}

/// Error-level findings `safe_migrations.check` reports for `sql`.
pub fn error_findings(sql: &str) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT rule FROM safe_migrations.check($1) WHERE severity = 'error'",
                None,
                &[sql.into()],
            )
            .unwrap()
            .map(|row| row.get::<String>(1).unwrap().unwrap_or_default())
            .collect()
    })
}

/// Set the guard's mode for the rest of the test's transaction.
pub fn mode(mode: &str) {
    run(&format!("SET LOCAL safe_migrations.mode = '{mode}'"));
}

/// Assert that `outcome` is a rejection by `rule` with `sqlstate`.
#[track_caller]
pub fn assert_rejected(outcome: &str, sqlstate: &str, rule: &str) {
    let expected = format!("{sqlstate}: {rule}: ");
    assert!(outcome.starts_with(&expected), "expected {expected}..., got {outcome}");
}

/// The WARNING messages raised while `sql` runs (its effects rolled back, as `outcome`),
/// seen by an emit_log_hook installed for the call: what a client would be sent.
pub fn warnings_of(sql: &str) -> (String, Vec<String>) {
    // The hook sees what goes to the server log: warnings, whatever the cluster logs.
    run("SET LOCAL log_min_messages = warning");
    WARNINGS.with(|warnings| warnings.borrow_mut().clear());
    // SAFETY: the test runs in one backend on one thread; the hook is installed and put
    // back around this call, with the previous hook chained.
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(capture_warning);
    }
    let result = std::panic::catch_unwind(|| outcome(sql));
    // SAFETY: as above.
    unsafe {
        pg_sys::emit_log_hook = PREVIOUS_EMIT_LOG_HOOK;
    }
    let result = result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    (result, WARNINGS.with(|warnings| warnings.borrow().clone()))
}

thread_local! {
    static WARNINGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

/// emit_log_hook for `warnings_of`: collect WARNING messages, then call the previous hook.
///
/// # Safety
/// Called by Postgres only, as emit_log_hook, with the ErrorData being reported.
#[pg_guard]
unsafe extern "C-unwind" fn capture_warning(edata: *mut pg_sys::ErrorData) {
    // SAFETY: Postgres passes the ErrorData being reported, valid for the call.
    let data = unsafe { &*edata };
    if data.elevel == pg_sys::WARNING as i32 && !data.message.is_null() {
        // SAFETY: message is a NUL-terminated string owned by the ErrorData.
        let message = unsafe { std::ffi::CStr::from_ptr(data.message) }
            .to_string_lossy()
            .into_owned();
        WARNINGS.with(|warnings| warnings.borrow_mut().push(message));
    }
    // SAFETY: a plain read of the static on the backend's only thread; `warnings_of` writes
    // it only while this hook is not installed.
    if let Some(previous) = unsafe { PREVIOUS_EMIT_LOG_HOOK } {
        // SAFETY: the hook that was installed before ours, called as Postgres would call
        // it, with the same ErrorData.
        unsafe { previous(edata) };
    }
}
