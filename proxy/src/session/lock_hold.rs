//! Rule lock_held_too_long in the proxy: a guarded transaction that has held a lock
//! blocking reads or writes of an existing table for `max_lock_hold` is ended, as the
//! extension ends it. A statement in flight is cancelled with a CancelRequest of the
//! proxy's own (the server's key, captured at startup), and the server's 57014 for it
//! carries the rule's report instead of PostgreSQL's words; a session idle in its
//! transaction block gets the rule's FATAL and both connections close, which ends the
//! transaction on the server. A cancel that does not end the transaction within a grace
//! period (it met a COMMIT, or the statement had just finished) ends the session.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message as _;
use policy::blockers::mode_name;
use policy::catalog_queries::regclass;
use policy::model::LockLevel;
use policy::report::{Level, Report};
use policy::rules::lock_held_too_long::{budget_ms, ends_transactions, report, Ending};
use policy::sql::literal;
use policy::transaction::HeldLock;
use tokio::io::AsyncWriteExt;

use crate::messages::error_response;
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::Message;

use super::{Session, SessionError};

/// How long a cancelled transaction may take to end before its session is ended.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// CancelRequest's request code (protocol.h: 1234 << 16 | 5678).
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// The rule's timer in one session.
#[derive(Debug, Default)]
pub(super) struct LockHold {
    /// The server's BackendKeyData body (process id, secret key): what a cancel needs.
    pub(super) backend_key: Option<Bytes>,
    /// A cancel was sent at this moment; its 57014 carries the rule's report.
    pub(super) cancelled_at: Option<Instant>,
    /// A routine took some of the locks followed: the server is asked which it still
    /// holds before the next message, or the end of the budget, counts them.
    pub(super) routine_locks_unverified: bool,
    /// The server is being asked that: the budget waits for its answer (reading
    /// pg_locks waits for no lock).
    pub(super) verifying: bool,
    /// Warn mode: this transaction was warned.
    pub(super) warned: bool,
}

/// The query that says how strongly the session holds each of `locks`' tables now: one
/// row per lock, in order, with the LOCKMODE number of the strongest lock granted on it
/// (NULL for none; -1 when the name resolves to no relation now: renamed or dropped in
/// the routine, or another search_path, while the lock may still be held by oid).
fn held_now_sql(locks: &[HeldLock]) -> String {
    let rows: Vec<String> = locks
        .iter()
        .enumerate()
        .map(|(index, lock)| format!("({index}, {}::pg_catalog.oid)", regclass(&lock.table)))
        .collect();
    // LOCKMODE numbers 1 to 8, as pg_locks names them.
    let modes: Vec<String> = (1..=8)
        .map(|number| {
            let name = mode_name(LockLevel::from_lockmode(number));
            format!("WHEN {} THEN {number}", literal(name))
        })
        .collect();
    format!(
        "SELECT CASE WHEN t.relation IS NULL THEN -1 ELSE (SELECT max(CASE l.mode {} END) \
         FROM pg_catalog.pg_locks l WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' \
         AND l.granted AND l.relation = t.relation) END FROM (VALUES {}) AS t(i, relation) ORDER BY t.i",
        modes.join(" "),
        rows.join(", ")
    )
}

impl Session {
    /// Warn mode: the first statement the transaction sends once the budget has run out
    /// (its COMMIT at the latest) gets the rule's report as a WARNING, once, as the
    /// extension gives it.
    pub(super) fn lock_hold_warn_if_due(&mut self) {
        if ends_transactions(&self.settings) {
            return;
        }
        if !self.lock_held_now() {
            // Its transaction ended: the next one gets a warning of its own.
            self.lock_hold.warned = false;
            return;
        }
        let Some(budget) = budget_ms(&self.settings) else {
            return;
        };
        let Some(first) = self.transaction.locks().iter().min_by_key(|lock| lock.since) else {
            return;
        };
        if first.since.elapsed() < Duration::from_millis(budget) || self.lock_hold.warned {
            return;
        }
        self.lock_hold.warned = true;
        let (message, detail, hint) = report(first, budget, Ending::Warned);
        let warning = Report {
            level: Level::Warning,
            sqlstate: policy::finding::SQLSTATE_LOCK,
            message,
            detail: Some(detail),
            hint: Some(hint),
        };
        self.send_reports(&[warning]);
    }

    /// A routine may have released a lock it took (an error its EXCEPTION block caught
    /// rolls its subtransaction back): once the session is idle in its block, ask the
    /// server which of the locks followed it still holds, and forget the others.
    pub(super) async fn verify_routine_locks(&mut self) -> Result<(), SessionError> {
        if !self.lock_hold.routine_locks_unverified {
            return Ok(());
        }
        if budget_ms(&self.settings).is_none() {
            // The rule does not apply to the role: nothing to count.
            self.lock_hold.routine_locks_unverified = false;
            return Ok(());
        }
        if !self.tracker.idle() || self.tracker.status != TransactionStatus::InBlock {
            return Ok(());
        }
        self.lock_hold.routine_locks_unverified = false;
        let locks = self.transaction.locks().to_vec();
        if locks.is_empty() {
            return Ok(());
        }
        self.lock_hold.verifying = true;
        let answer = self.hidden_queries(&[held_now_sql(&locks)]).await;
        self.lock_hold.verifying = false;
        let Some(Some(rows)) = answer?.pop() else {
            return Ok(());
        };
        if rows.len() != locks.len() {
            return Ok(());
        }
        let held: Vec<Option<LockLevel>> = rows
            .iter()
            .zip(&locks)
            .map(|(row, lock)| {
                let mode: i32 = row.first().cloned().flatten()?.parse().ok()?;
                // A name that resolves to nothing now: unknown, counted as it was.
                Some(if mode < 0 {
                    lock.level
                } else {
                    LockLevel::from_lockmode(mode)
                })
            })
            .collect();
        self.transaction.locks_held_now(&held);
        Ok(())
    }

    /// When the rule acts next: the budget's end, counted from the statement that took
    /// the transaction's first such lock, or the end of a cancel's grace. None while the
    /// role is not under the rule or the transaction holds no such lock.
    pub(super) fn lock_hold_deadline(&self) -> Option<tokio::time::Instant> {
        if let Some(cancelled_at) = self.lock_hold.cancelled_at {
            return Some((cancelled_at + CANCEL_GRACE).into());
        }
        if !self.lock_held_now() || !ends_transactions(&self.settings) {
            return None;
        }
        let budget = budget_ms(&self.settings)?;
        let first = self.transaction.locks().iter().map(|lock| lock.since).min()?;
        Some((first + Duration::from_millis(budget)).into())
    }

    /// May the transaction hold its locks now? Something of the client's is in flight, or
    /// a block is open; a failed block released them (its error aborted the transaction)
    /// unless a savepoint is open, whose outer subtransaction still holds what it took.
    fn lock_held_now(&self) -> bool {
        !self.tracker.idle()
            || match self.tracker.status {
                TransactionStatus::InBlock => true,
                TransactionStatus::Failed => self.transaction.savepoints_open(),
                TransactionStatus::Idle => false,
            }
    }

    /// The deadline passed: end the transaction that still holds the lock.
    pub(super) async fn lock_hold_expired(&mut self) -> Result<bool, SessionError> {
        if self.lock_hold.routine_locks_unverified && self.tracker.idle() {
            // Counted only once the server says they are still held: the deadline is
            // worked out again.
            self.verify_routine_locks().await?;
            self.lock_hold.routine_locks_unverified = false;
            return Ok(true);
        }
        self.lock_hold_act().await
    }

    /// The deadline passed while something is in flight (or the locks are known to be
    /// held): cancel it, or end the session; false when the session is ended.
    pub(super) async fn lock_hold_act(&mut self) -> Result<bool, SessionError> {
        let in_flight = !self.tracker.idle();
        let holding = self.lock_held_now();
        if !holding {
            // Its transaction ended (or failed, which released its locks).
            self.lock_hold.cancelled_at = None;
            self.forget_tables_of_ended_transaction();
            return Ok(true);
        }
        if in_flight && self.lock_hold.cancelled_at.is_none() {
            self.send_cancel().await;
            self.lock_hold.cancelled_at = Some(Instant::now());
            return Ok(true);
        }
        self.terminate_for_lock_hold().await?;
        Ok(false)
    }

    /// Once the cancelled transaction has ended (its 57014 relayed), the next lock
    /// starts a budget of its own.
    pub(super) fn lock_hold_settle(&mut self) {
        if self.lock_hold.cancelled_at.is_some()
            && self.tracker.idle()
            && self.tracker.status != TransactionStatus::InBlock
        {
            self.lock_hold.cancelled_at = None;
            self.forget_tables_of_ended_transaction();
        }
    }

    async fn send_cancel(&mut self) {
        let Some(key) = &self.lock_hold.backend_key else {
            return;
        };
        let length = u32::try_from(8 + key.len()).unwrap_or(u32::MAX);
        let mut packet = BytesMut::with_capacity(8 + key.len());
        packet.put_u32(length);
        packet.put_u32(CANCEL_REQUEST_CODE);
        packet.put_slice(key);
        if let Err(err) = self.upstream.cancel(&packet).await {
            tracing::warn!(role = %self.role, error = %err, "cannot send the lock_held_too_long cancel");
        }
    }

    /// The rule's report for the transaction's first lock.
    fn lock_hold_report(&self, ending: Ending) -> Option<(String, String, String)> {
        let first = self.transaction.locks().iter().min_by_key(|lock| lock.since)?;
        Some(report(first, budget_ms(&self.settings)?, ending))
    }

    /// The server's 57014 for the proxy's own cancel, with the rule's report in place of
    /// PostgreSQL's message, detail and hint; every other message as it came.
    pub(super) fn lock_hold_rewrite(&self, message: Message) -> Message {
        if self.lock_hold.cancelled_at.is_none()
            || message.tag != b'E'
            || error_response::sqlstate(&message).as_deref() != Some("57014")
        {
            return message;
        }
        let Some((text, detail, hint)) = self.lock_hold_report(Ending::Cancelled) else {
            return message;
        };
        error_response::with_report(&message, &text, &detail, &hint).unwrap_or(message)
    }

    /// The rule's FATAL to the client, then both connections close: the server ends the
    /// transaction when its client goes, as pg_terminate_backend would.
    async fn terminate_for_lock_hold(&mut self) -> Result<(), SessionError> {
        let (text, detail, hint) = self.lock_hold_report(Ending::Terminated).unwrap_or_else(|| {
            (
                policy::rules::lock_held_too_long::RULE.id.to_string(),
                String::new(),
                String::new(),
            )
        });
        tracing::warn!(role = %self.role, "{text}");
        if !self.tracker.idle() {
            // A statement still running holds the lock until it ends: cancel it again,
            // as the server ends the transaction only when it reads our Terminate.
            self.send_cancel().await;
        }
        let fields = vec![
            (b'S', "FATAL".to_string()),
            (b'V', "FATAL".to_string()),
            (b'C', "57P01".to_string()),
            (b'M', text),
            (b'D', detail),
            (b'H', hint),
        ];
        let _ = ErrorResponse::new(fields).encode(&mut self.to_client);
        // The client's FATAL first, then the end of its stream, and only then the
        // server's Terminate: once the server ends the transaction, other sessions go on,
        // and the client must already have been told why.
        let fatal = std::mem::take(&mut self.to_client);
        super::write(&mut self.client_wr, &fatal)
            .await
            .map_err(SessionError::Client)?;
        let _ = self.client_wr.shutdown().await;
        let terminate = [b'X', 0, 0, 0, 4];
        self.to_server.extend_from_slice(&terminate);
        let to_server = std::mem::take(&mut self.to_server);
        let _ = super::write(&mut self.server_wr, &to_server).await;
        // What the client sent meanwhile is read, not left to reset the connection (and
        // lose the FATAL on its way); a client that keeps its end open gets a second.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client_rd.discard_until_closed()).await;
        Ok(())
    }
}
