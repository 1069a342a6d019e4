//! Rule lock_timeout's retries in the extension. hook.c runs a guarded statement whose
//! lock wait is capped in an internal subtransaction; when an attempt gives up
//! (lock_not_available), it rolls that back (leaving the lock queue at once, so the
//! traffic stalled behind the attempt goes on) and asks here what next: a pause and
//! another attempt, or the error, naming the sessions in the way (pg_locks and
//! pg_stat_activity, read through SPI in the transaction the attempt ran in). The
//! decision itself is the policy's (`policy::rules::lock_timeout`).

use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::time::{Duration, Instant};

use pgrx::PgMemoryContexts;
use policy::blockers::{blockers_sql, from_rows, Blocker};
use policy::model::{LockLevel, QualifiedName};
use policy::rules::lock_timeout::{AfterAttempt, Retry, Retrying};
use policy::{Decision, Statement};

use crate::catalog::query_rows;

/// What hook.c does after an attempt gave up; must match SmRetry in hook.c.
#[repr(C)]
pub struct SmRetry {
    /// >= 0: pause this long, then try again; -1: raise the error below instead.
    pause_ms: c_int,
    message: *const c_char,
    detail: *const c_char,
    hint: *const c_char,
}

/// The statement hook.c is running with retries.
struct Running {
    retrying: Retrying,
    started: Instant,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

/// hook.c's way of running `statement`: 0 as it is, 1 in a subtransaction retried up to
/// the second number's times, 2 in a subtransaction and not retried (the transaction
/// holds another lock that blocks traffic). Remembered for `sm_lock_wait_gave_up`.
pub fn prepare(statement: &Statement, decision: &Decision) -> (c_int, c_int) {
    let (mode, retries) = match (&decision.retry, decision.lock_timeout_ms) {
        (Retry::Attempts { retries, .. }, Some(_)) => (1, c_int::try_from(*retries).unwrap_or(c_int::MAX)),
        (Retry::HoldsLock(_), Some(_)) => (2, 0),
        _ => (0, 0),
    };
    if mode != 0 {
        if let Some(retrying) = Retrying::new(statement, decision) {
            RUNNING.set(Some(Running {
                retrying,
                started: Instant::now(),
            }));
        }
    }
    (mode, retries)
}

/// Called by hook.c when attempt `attempt` (1 for the first) of the statement it runs
/// gave up waiting for its lock, once the attempt is rolled back.
#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sm_lock_wait_gave_up(attempt: c_int) -> *mut SmRetry {
    let attempt = u32::try_from(attempt).unwrap_or(1).max(1);
    let Some(running) = RUNNING.take() else {
        return to_c(-1, None);
    };
    let blockers = blockers(&running.retrying.locks);
    let elapsed = u64::try_from(running.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (pause, report) = match running.retrying.after_attempt(attempt, elapsed, &blockers, jitter()) {
        AfterAttempt::Pause { pause_ms, log } => {
            pgrx::log!("{log}");
            crate::verdict::locks_taken_again(
                &running.retrying.statement,
                Instant::now() + Duration::from_millis(pause_ms),
            );
            (c_int::try_from(pause_ms).unwrap_or(c_int::MAX), None)
        }
        AfterAttempt::Fail { message, detail, hint } => (-1, Some((message, detail, hint))),
    };
    if pause >= 0 {
        RUNNING.set(Some(running));
    }
    to_c(pause, report)
}

/// Called by hook.c when the statement it ran with retries ended (or failed otherwise).
#[no_mangle]
pub extern "C-unwind" fn sm_lock_retries_done() {
    RUNNING.set(None);
}

/// The sessions holding or queueing for a conflicting lock, as this session may see them.
fn blockers(locks: &[(QualifiedName, LockLevel)]) -> Vec<Blocker> {
    if locks.is_empty() {
        return Vec::new();
    }
    query_rows(&blockers_sql(locks))
        .map(|rows| from_rows(&rows))
        .unwrap_or_default()
}

/// 0 to 1, different for sessions retrying together.
fn jitter() -> f64 {
    // SAFETY: MyProcPid is a plain int set at backend start, read on the backend's thread.
    let pid = unsafe { pgrx::pg_sys::MyProcPid } as u32;
    policy::rules::lock_timeout::jitter(pid)
}

fn to_c(pause_ms: c_int, report: Option<(String, String, String)>) -> *mut SmRetry {
    let cstring = |text: &str| {
        // SAFETY: CurrentMemoryContext is the caller's (hook.c's statement context).
        unsafe { PgMemoryContexts::CurrentMemoryContext.pstrdup(&text.replace('\0', "")) as *const c_char }
    };
    let (message, detail, hint) = match &report {
        Some((message, detail, hint)) => (cstring(message), cstring(detail), cstring(hint)),
        None => (std::ptr::null(), std::ptr::null(), std::ptr::null()),
    };
    // SAFETY: palloc0 raises on out-of-memory rather than returning NULL; the struct is
    // written whole before hook.c reads it.
    unsafe {
        let retry = pgrx::pg_sys::palloc0(std::mem::size_of::<SmRetry>()) as *mut SmRetry;
        retry.write(SmRetry {
            pause_ms,
            message,
            detail,
            hint,
        });
        retry
    }
}
