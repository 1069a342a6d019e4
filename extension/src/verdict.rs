//! The hook's question, answered in Rust: map the utility statement, build its Context,
//! decide with the session's settings and the backend catalog, and hand hook.c the
//! reports to raise and the lock_timeout to run with, in plain C structs.

use std::cell::RefCell;
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
    /// Above 0: arm rule lock_held_too_long's timer (unless armed) for this many ms,
    /// with the reports below.
    lock_hold_ms: c_int,
    lock_hold_cancelled: *const c_char,
    lock_hold_terminated: *const c_char,
    lock_hold_detail: *const c_char,
    lock_hold_hint: *const c_char,
    /// How hook.c runs the statement (`retry::prepare`): 0 as it is, 1 in a subtransaction
    /// retried up to `lock_retries` times, 2 in a subtransaction and not retried.
    retry_mode: c_int,
    lock_retries: c_int,
}

/// Rule lock_held_too_long's timer for the transaction: when it fires, and what it says.
struct LockHold {
    remaining_ms: u64,
    cancelled: String,
    terminated: String,
    detail: String,
    hint: String,
}

/// The timer for a transaction that holds a lock blocking traffic, when the rule applies:
/// the budget runs from when the statement that took the first such lock started.
fn lock_hold(transaction: &Transaction, settings: &policy::Settings) -> Option<LockHold> {
    use policy::rules::lock_held_too_long::{budget_ms, ends_transactions, report, Ending};
    let first = transaction.locks().iter().min_by_key(|lock| lock.since)?;
    let budget = budget_ms(settings)?;
    let elapsed = u64::try_from(first.since.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Warn mode: hook.c raises this report as a WARNING instead of cancelling.
    let ending = if ends_transactions(settings) {
        Ending::Cancelled
    } else {
        Ending::Warned
    };
    let (cancelled, detail, hint) = report(first, budget, ending);
    let (terminated, ..) = report(first, budget, Ending::Terminated);
    Some(LockHold {
        remaining_ms: budget.saturating_sub(elapsed).max(1),
        cancelled,
        terminated,
        detail,
        hint,
    })
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
    let placement = Placement {
        // Outside any block the string holds this statement alone, whatever `;` its
        // comments or literals hold.
        multi_statement: toplevel
            && in_block
            && nodes::has_other_statements(&query, pstmt.stmt_location, pstmt.stmt_len),
        nested: !toplevel,
    };
    let messages = match current_settings() {
        Ok(settings) => {
            // Statements a function or procedure runs are always inside a transaction.
            let in_transaction = in_block || !toplevel;
            let context = with_transaction(in_transaction, |transaction| transaction.context(placement));
            let catalog = BackendCatalog::default();
            let decision = policy::decide(&statement, &context, &settings, &catalog);
            let mut hold = None;
            if decision.rejection().is_none() {
                // It runs: the locks it takes are held until the transaction ends.
                hold = with_transaction(in_transaction, |transaction| {
                    transaction.observe(&statement, &catalog);
                    note_locks_held(transaction);
                    // SAFETY: a plain bool read of hook.c's global on the backend's only
                    // thread. Once armed, the timer needs no new report.
                    let armed = unsafe { sm_lock_hold_armed };
                    if armed {
                        None
                    } else {
                        lock_hold(transaction, &settings)
                    }
                });
            }
            let lock_timeout_ms = decision.lock_timeout_ms;
            let retry = if decision.rejection().is_none() {
                crate::retry::prepare(&statement, &decision)
            } else {
                (0, 0)
            };
            return to_c(messages_for(&decision), lock_timeout_ms, hold, retry);
        }
        Err(error) => vec![settings_error(&error)],
    };
    to_c(messages, None, None, (0, 0))
}

/// The GUCs hold only values their own checks accepted; fail closed if they disagree.
fn settings_error(error: &impl std::fmt::Display) -> Message {
    Message {
        level: LEVEL_ERROR,
        sqlstate: "XX000".into(),
        message: format!("safe_migrations: {error}"),
        detail: None,
        hint: None,
    }
}

/// The locks `statement` took count from `since`: it is tried again (`retry`).
pub(crate) fn locks_taken_again(statement: &str, since: std::time::Instant) {
    TRANSACTION.with_borrow_mut(|transaction| transaction.locks_taken_again(statement, since));
}

thread_local! {
    /// This backend's transaction as the guard followed it: the locks its guarded
    /// statements took on existing tables. Reset when the transaction ends
    /// (`sm_transaction_ended`, from hook.c's transaction callback).
    static TRANSACTION: RefCell<Transaction> = RefCell::new(Transaction::default());
}

/// Run `f` on this backend's transaction, its status and lock_timeout as they are now.
fn with_transaction<T>(in_block: bool, f: impl FnOnce(&mut Transaction) -> T) -> T {
    TRANSACTION.with_borrow_mut(|transaction| {
        transaction.set_status(if in_block {
            TransactionStatus::InBlock
        } else {
            TransactionStatus::Idle
        });
        transaction.set_lock_timeout_ms(session_lock_timeout_ms());
        // SAFETY: GetCurrentSubTransactionId only reads the backend's transaction state.
        transaction.set_subtransaction(unsafe { pg_sys::GetCurrentSubTransactionId() });
        f(transaction)
    })
}

unsafe extern "C" {
    /// hook.c: does the guard's model of this transaction hold a lock that blocks reads or
    /// writes of an existing table? Cleared by hook.c when the transaction ends.
    static mut sm_transaction_holds_locks: bool;
    /// hook.c: is the lock_held_too_long timer armed for this transaction?
    static sm_lock_hold_armed: bool;
}

/// Tell hook.c's executor hook whether a backfill could now be under such a lock.
fn note_locks_held(transaction: &Transaction) {
    // SAFETY: a plain bool write to hook.c's global on the backend's only thread; hook.c
    // reads it only from hooks running on that thread, never during this write.
    unsafe { sm_transaction_holds_locks = !transaction.locks().is_empty() };
}

/// Called by hook.c's subtransaction callback, while the transaction holds a lock that
/// blocks traffic, when subtransaction `id` commits (its locks are `parent`'s now) or
/// aborts (ROLLBACK TO SAVEPOINT, an error a PL/pgSQL EXCEPTION block caught: PostgreSQL
/// released the locks taken in it). After an abort, the lock_held_too_long timer for the
/// locks still held (NULL when none, or nothing to arm): its budget runs from the first
/// of them.
#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sm_subtransaction_ended(id: u32, parent: u32, committed: bool) -> *mut SmVerdict {
    let hold = TRANSACTION.with(|transaction| {
        let mut transaction = transaction.try_borrow_mut().ok()?;
        if committed {
            transaction.subtransaction_committed(id, parent);
            note_locks_held(&transaction);
            return None;
        }
        transaction.subtransaction_aborted(id, parent);
        note_locks_held(&transaction);
        lock_hold(&transaction, &*current_settings().ok()?)
    });
    match hold {
        Some(hold) => to_c(Vec::new(), None, Some(hold), (0, 0)),
        None => std::ptr::null_mut(),
    }
}

/// Called by hook.c just before a transaction commits or is prepared, when the guard
/// followed it: the renames it made with no view for the old name are judged as its
/// COMMIT is (rule rename_table). A multi-statement string's implicit transaction, a
/// COMMIT (which the hook does not judge: a commit that fails here ends its transaction,
/// rolled back), a procedure's COMMIT. NULL when there is nothing to raise.
#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sm_transaction_committing() -> *mut SmVerdict {
    let committing = TRANSACTION.with(|transaction| {
        let mut transaction = transaction.try_borrow_mut().ok()?;
        let pending = !transaction.renamed_without_view().is_empty();
        let committing = pending.then(|| transaction.clone());
        transaction.forget_renames();
        committing
    });
    let Some(committing) = committing else {
        return std::ptr::null_mut();
    };
    let messages = match current_settings() {
        Ok(settings) => messages_for(&policy::decide_commit(
            &committing,
            &settings,
            &BackendCatalog::default(),
        )),
        Err(error) => vec![settings_error(&error)],
    };
    if messages.is_empty() {
        return std::ptr::null_mut();
    }
    to_c(messages, None, None, (0, 0))
}

/// Called by hook.c when a transaction commits, aborts or is prepared: its locks are gone.
#[no_mangle]
pub extern "C-unwind" fn sm_transaction_ended() {
    // Never borrowed here while the guard holds it (an ERROR under the guard unwinds and
    // releases it before the abort callback runs); if it were, keep it rather than panic.
    TRANSACTION.with(|transaction| {
        if let Ok(mut transaction) = transaction.try_borrow_mut() {
            *transaction = Transaction::default();
        }
    });
}

/// Called by hook.c's ExecutorStart hook for an INSERT, UPDATE, DELETE or MERGE (or a
/// query whose WITH writes) of a role whose mode is not off, while the transaction holds
/// a lock that blocks reads or writes (a backfill under a schema change's lock) or when
/// the planner expects it to change more than max_rows_per_statement rows
/// (`rows_changed`, -1 when it changes none). NULL when there is nothing to raise.
///
/// # Safety
/// `pstmt` is the PlannedStmt the executor is about to run and `source_text` the query
/// text it came from (QueryDesc's plannedstmt and sourceText), both valid for the call;
/// `location` and `len` place the statement in that text (the plan's own, or for a
/// query EXPLAIN ANALYZE, COPY or CREATE TABLE AS runs, the wrapper's).
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn sm_judge_executor(
    _pstmt: *mut pg_sys::PlannedStmt,
    source_text: *const c_char,
    location: c_int,
    len: c_int,
    rows_changed: f64,
) -> *mut SmVerdict {
    if source_text.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the QueryDesc's sourceText (see # Safety), non-NULL, valid for the call.
    let source = unsafe { CStr::from_ptr(source_text).to_string_lossy() };
    let text = nodes::statement_text(&source, location, len).to_string();
    let Some(statement) = parsed_statement(&text) else {
        return std::ptr::null_mut();
    };
    let Ok(settings) = current_settings() else {
        return std::ptr::null_mut();
    };
    // SAFETY: IsTransactionBlock only reads the backend's transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    let context = with_transaction(in_block, |transaction| transaction.context(Placement::NESTED));
    let catalog = BackendCatalog {
        rows_changed: (rows_changed >= 0.0).then_some(rows_changed),
        ..BackendCatalog::default()
    };
    let decision = policy::decide(&statement, &context, &settings, &catalog);
    let messages = messages_for(&decision);
    if messages.is_empty() {
        return std::ptr::null_mut();
    }
    to_c(messages, None, None, (0, 0))
}

/// The model of the write `text` holds (the executor has a plan, not the tree as
/// written, and findings name tables as the statement wrote them): the statement itself,
/// or the query that PREPARE, EXPLAIN ANALYZE, COPY (query) or CREATE TABLE AS runs.
fn parsed_statement(text: &str) -> Option<policy::Statement> {
    let source = std::ffi::CString::new(text).ok()?;
    // SAFETY: `source` is a live C string. The text already parsed once (it is running),
    // so pg_parse_query does not raise; it returns a List of RawStmt in the current
    // memory context, which PgList only reads.
    let raw_statements = unsafe { pgrx::PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(source.as_ptr())) };
    let raw = raw_statements.get_ptr(0)?;
    // SAFETY: a RawStmt the parser just built; its stmt is the statement's parse node, and
    // the wrappers' query fields are parse nodes of the same tree.
    let statement = unsafe {
        let node = nodes::query_run_by((*raw).stmt);
        nodes::statement(node, text, (*raw).stmt_location, (*raw).stmt_len)
    };
    matches!(statement.stmt, policy::Stmt::Dml(_)).then_some(statement)
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
fn to_c(
    messages: Vec<Message>,
    lock_timeout_ms: Option<u64>,
    hold: Option<LockHold>,
    (retry_mode, lock_retries): (c_int, c_int),
) -> *mut SmVerdict {
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
        let text = |text: Option<&String>| text.map_or(std::ptr::null(), |text| cstring(text));
        verdict.write(SmVerdict {
            nreports: c_int::try_from(messages.len()).unwrap_or(c_int::MAX),
            reports,
            lock_timeout_ms: lock_timeout_ms.map_or(0, |ms| c_int::try_from(ms).unwrap_or(c_int::MAX)),
            lock_hold_ms: hold
                .as_ref()
                .map_or(0, |hold| c_int::try_from(hold.remaining_ms).unwrap_or(c_int::MAX)),
            lock_hold_cancelled: text(hold.as_ref().map(|hold| &hold.cancelled)),
            lock_hold_terminated: text(hold.as_ref().map(|hold| &hold.terminated)),
            lock_hold_detail: text(hold.as_ref().map(|hold| &hold.detail)),
            lock_hold_hint: text(hold.as_ref().map(|hold| &hold.hint)),
            retry_mode,
            lock_retries,
        });
        verdict
    }
}
