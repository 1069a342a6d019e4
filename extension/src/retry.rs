//! Rule lock_timeout's retries in the extension. hook.c runs a guarded statement whose
//! lock wait is capped in an internal subtransaction; when an attempt gives up
//! (lock_not_available), it rolls that back (leaving the lock queue at once, so the
//! traffic stalled behind the attempt goes on) and asks here what next: a pause and
//! another attempt, or the error, naming the sessions in the way (pg_locks and
//! pg_stat_activity, read through SPI in the transaction the attempt ran in). The
//! decision itself is the policy's (`policy::rules::lock_timeout`).

use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::time::{Duration, Instant, SystemTime};

use pgrx::PgMemoryContexts;
use policy::blockers::{blockers_sql, from_rows, Blocker};
use policy::finding::Lock;
use policy::locks::table_locks;
use policy::model::{LockLevel, QualifiedName};
use policy::rules::lock_timeout::{awaited_lock, gave_up, holds_lock, pause_ms, retry_log, Retry};
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
    retry: Retry,
    lock: Option<Lock>,
    locks: Vec<(QualifiedName, LockLevel)>,
    cap_ms: u64,
    started: Instant,
    /// Its first line: the transaction model's locks taken by it carry it.
    statement: String,
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
        RUNNING.set(Some(Running {
            retry: decision.retry.clone(),
            lock: awaited_lock(&statement.stmt),
            // The relations and levels whose conflicting holders a failed attempt names.
            locks: table_locks(&statement.stmt),
            cap_ms: decision.lock_timeout_ms.unwrap_or(0),
            started: Instant::now(),
            statement: policy::sql::first_line(&statement.source),
        }));
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
    let blockers = blockers(&running.locks);
    let elapsed = u64::try_from(running.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (pause, report) = match &running.retry {
        Retry::Attempts {
            retries,
            first_pause_ms,
        } if attempt <= *retries => {
            let pause = pause_ms(*first_pause_ms, attempt, jitter());
            pgrx::log!(
                "{}",
                retry_log(running.lock.as_ref(), attempt, retries + 1, pause, &blockers)
            );
            crate::verdict::locks_taken_again(&running.statement, Instant::now() + Duration::from_millis(pause));
            (c_int::try_from(pause).unwrap_or(c_int::MAX), None)
        }
        Retry::HoldsLock(held) => (
            -1,
            Some(holds_lock(running.lock.as_ref(), running.cap_ms, held, &blockers)),
        ),
        _ => (
            -1,
            Some(gave_up(
                running.lock.as_ref(),
                attempt,
                elapsed,
                running.cap_ms,
                &blockers,
            )),
        ),
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
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |time| time.subsec_nanos());
    // SAFETY: MyProcPid is a plain int set at backend start, read on the backend's thread.
    let pid = unsafe { pgrx::pg_sys::MyProcPid } as u32;
    f64::from(nanos.wrapping_mul(2_654_435_761).wrapping_add(pid.wrapping_mul(40_503)) % 1_000_000) / 1_000_000.0
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
