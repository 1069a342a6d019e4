//! The hook's question, answered in Rust: map the utility statement, build its Context,
//! decide with the session's settings and the backend catalog, and hand hook.c the
//! reports to raise and the lock_timeout to run with, in plain C structs.

use std::ffi::{c_char, c_int, CStr};

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use policy::report::{reports, Level, Report};
use policy::{Decision, Placement, Transaction, TransactionStatus};

use crate::catalog::BackendCatalog;
use crate::nodes;
use crate::settings::current_settings;

/// Must match SM_LEVEL_* in hook.c.
const LEVEL_LOG: c_int = 0;
const LEVEL_NOTICE: c_int = 1;
const LEVEL_WARNING: c_int = 2;
const LEVEL_ERROR: c_int = 3;

/// One message for hook.c to raise; must match SmReport in hook.c.
#[repr(C)]
pub struct SmReport {
    level: c_int,
    sqlstate: [c_char; 6],
    message: *const c_char,
    detail: *const c_char,
    hint: *const c_char,
}

/// The verdict on one statement; must match SmVerdict in hook.c.
#[repr(C)]
pub struct SmVerdict {
    nreports: c_int,
    reports: *const SmReport,
    /// > 0: run the statement with this lock_timeout (ms).
    lock_timeout_ms: c_int,
}

/// A message to raise, before it is copied into C memory.
struct Message {
    level: c_int,
    sqlstate: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl From<Report> for Message {
    fn from(report: Report) -> Message {
        Message {
            level: match report.level {
                Level::Notice => LEVEL_NOTICE,
                Level::Warning => LEVEL_WARNING,
                Level::Error => LEVEL_ERROR,
            },
            sqlstate: report.sqlstate.to_string(),
            message: report.message,
            detail: report.detail,
            hint: report.hint,
        }
    }
}

/// Called by hook.c for every utility statement of a role whose mode is not off.
///
/// # Safety
/// `pstmt` is the PlannedStmt ProcessUtility received and `query_string` its source text.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn sm_judge_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    context: c_int,
) -> *mut SmVerdict {
    // SAFETY: both come from ProcessUtility (see # Safety), non-NULL and valid for the call.
    let (pstmt, query) = unsafe { (&*pstmt, CStr::from_ptr(query_string).to_string_lossy()) };
    let toplevel = u32::try_from(context) == Ok(pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL);
    // SAFETY: utilityStmt is the utility statement's parse node, alive for the call.
    let statement = unsafe { nodes::statement(pstmt.utilityStmt, &query, pstmt.stmt_location, pstmt.stmt_len) };
    // IsTransactionBlock is true inside BEGIN and in a multi-statement string's implicit
    // block; statements run by functions are always inside a transaction.
    // SAFETY: IsTransactionBlock only reads the backend's transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    let mut transaction = Transaction::with_status(if in_block {
        TransactionStatus::InBlock
    } else {
        TransactionStatus::Idle
    });
    transaction.set_lock_timeout_ms(session_lock_timeout_ms());
    let context = transaction.context(Placement {
        // Outside any block the string holds this statement alone, whatever `;` its
        // comments or literals hold.
        multi_statement: toplevel
            && in_block
            && nodes::has_other_statements(&query, pstmt.stmt_location, pstmt.stmt_len),
        nested: !toplevel,
    });
    let messages = match current_settings() {
        Ok(settings) => {
            let decision = policy::decide(&statement, &context, &settings, &BackendCatalog);
            let lock_timeout_ms = decision.lock_timeout_ms;
            return to_c(messages_for(&decision), lock_timeout_ms);
        }
        // The GUCs hold only values their own checks accepted; fail closed if they disagree.
        Err(error) => vec![Message {
            level: LEVEL_ERROR,
            sqlstate: "XX000".into(),
            message: format!("safe_migrations: {error}"),
            detail: None,
            hint: None,
        }],
    };
    to_c(messages, None)
}

/// The LockTimeout global, which the lock_timeout GUC assigns.
fn session_lock_timeout_ms() -> u64 {
    // SAFETY: a plain int read on the backend's only thread.
    u64::try_from(unsafe { pg_sys::LockTimeout }).unwrap_or(0)
}

/// The client-facing reports of `decision`, each acknowledgement also logged with the
/// role that made it (server log only).
fn messages_for(decision: &Decision) -> Vec<Message> {
    let mut acknowledged = decision.acknowledged.iter();
    let mut messages = Vec::new();
    for report in reports(decision) {
        let is_notice = report.level == Level::Notice;
        messages.push(Message::from(report));
        if let Some(ack) = is_notice.then(|| acknowledged.next()).flatten() {
            messages.push(Message {
                level: LEVEL_LOG,
                sqlstate: "00000".into(),
                message: format!(
                    "safe_migrations: {} acknowledged {}: {}",
                    role_description(),
                    ack.rule,
                    ack.reason
                ),
                detail: None,
                hint: None,
            });
        }
    }
    messages
}

/// `role "app"`, or `role "app" (session user "alice")` after SET ROLE.
fn role_description() -> String {
    let name = |oid| {
        // SAFETY: GetUserNameFromId(noerr) returns a palloc'd name or NULL for any OID.
        let ptr = unsafe { pg_sys::GetUserNameFromId(oid, true) };
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL, so that NUL-terminated palloc'd name; copied at once.
            unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
        }
    };
    // SAFETY: GetUserId and GetSessionUserId only read backend globals.
    let (current, session) = unsafe { (pg_sys::GetUserId(), pg_sys::GetSessionUserId()) };
    if current == session {
        format!("role \"{}\"", name(current))
    } else {
        format!("role \"{}\" (session user \"{}\")", name(current), name(session))
    }
}

/// Copy the verdict into palloc'd C structs that hook.c reads before the statement runs.
fn to_c(messages: Vec<Message>, lock_timeout_ms: Option<u64>) -> *mut SmVerdict {
    let cstring = |text: &str| {
        // SAFETY: CurrentMemoryContext is the statement's context inside ProcessUtility.
        unsafe { PgMemoryContexts::CurrentMemoryContext.pstrdup(&text.replace('\0', "")) as *const c_char }
    };
    // SAFETY: palloc0 raises on out-of-memory rather than returning NULL, and its memory is
    // MAXALIGNed; `reports` has room for every index written, and every field we leave
    // unwritten is valid as zero; hook.c reads exactly `nreports` entries.
    unsafe {
        let reports = pg_sys::palloc0(std::mem::size_of::<SmReport>() * messages.len().max(1)) as *mut SmReport;
        for (i, message) in messages.iter().enumerate() {
            let mut sqlstate = [0 as c_char; 6];
            for (slot, byte) in sqlstate.iter_mut().zip(message.sqlstate.bytes().take(5)) {
                *slot = byte as c_char;
            }
            reports.add(i).write(SmReport {
                level: message.level,
                sqlstate,
                message: cstring(&message.message),
                detail: message.detail.as_deref().map_or(std::ptr::null(), cstring),
                hint: message.hint.as_deref().map_or(std::ptr::null(), cstring),
            });
        }
        let verdict = pg_sys::palloc0(std::mem::size_of::<SmVerdict>()) as *mut SmVerdict;
        verdict.write(SmVerdict {
            nreports: c_int::try_from(messages.len()).unwrap_or(c_int::MAX),
            reports,
            lock_timeout_ms: lock_timeout_ms.map_or(0, |ms| c_int::try_from(ms).unwrap_or(c_int::MAX)),
        });
        verdict
    }
}
