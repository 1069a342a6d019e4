//! Rule lock_timeout's retries in the proxy, as the extension runs them: a guarded
//! statement whose lock wait reached the cap is run again after a growing, jittered
//! pause, and the client sees one statement and one answer, the last attempt's.
//!
//! A Query of one such statement is sent as the client sent it, and its answer is held
//! back (`Tracker::push_captured_segments`) until it is known whether the attempt gave up
//! (SQLSTATE 55P03, lock_not_available):
//! - Outside a transaction block each attempt is the Query again, in a transaction of
//!   its own; a failed one has left the lock queue and released everything.
//! - Inside one each attempt runs under a hidden savepoint, rolled back when it gave up
//!   (which leaves the queue and keeps the client's transaction as it was) and released
//!   when it did not; a statement that failed otherwise leaves the savepoint inside the
//!   aborted transaction, where the client's ROLLBACK (TO SAVEPOINT) ends it with the rest.
//!
//! After each attempt that gave up, the proxy asks who holds or waits for a conflicting
//! lock (`policy::blockers`), logs the retry with them, and pauses; when no attempt is
//! left (or the transaction holds another lock that blocks traffic, which every pause
//! would keep: `Retry::HoldsLock`), the server's error reaches the client with the rule's
//! message, the sessions in the way as its DETAIL and the rule's hint, every other field
//! as the server sent it. Inside a block the transaction is then failed again by a hidden
//! statement raising the same SQLSTATE, as the last attempt would have left it. A cancel
//! from the client during a pause ends the retries with the server's words for a cancel.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use policy::blockers::{blockers_sql, from_rows, Blocker};
use policy::rules::lock_timeout::{jitter, AfterAttempt, Retrying};

use ::parse::ParsedStatement;
use policy::model::TransactionKind;
use policy::rules::lock_timeout::undone_by_rollback;
use policy::Stmt;

use crate::lock_timeout::{restore_sql, Rewritten};
use crate::messages::ready_for_query::{self, TransactionStatus};
use crate::messages::{close, error_response, query, split_message, sync, Message, MAX_MESSAGE_LEN};
use crate::tracker::{Expect, OnError, Owner, Segment};

use super::hidden::FAIL_AS_CANCELLED;
use super::{Session, SessionError};

/// SQLSTATE lock_not_available: what a lock wait that reached lock_timeout raises.
const LOCK_NOT_AVAILABLE: &str = "55P03";

const SAVEPOINT: &str = "SAVEPOINT __safe_migrations_retry";
const RELEASE: &str = "RELEASE SAVEPOINT __safe_migrations_retry";
const UNDO: [&str; 2] = [
    "ROLLBACK TO SAVEPOINT __safe_migrations_retry",
    "RELEASE SAVEPOINT __safe_migrations_retry",
];
/// Fails the client's transaction as the last attempt would have, once the proxy has
/// asked about the blockers (which an aborted transaction could not).
const FAIL_AS_LOCK_TIMEOUT: &str = "/* safe_migrations proxy: the last attempt's error */ \
     DO $$BEGIN RAISE EXCEPTION USING ERRCODE = 'lock_not_available', \
     MESSAGE = 'canceling statement due to lock timeout'; END$$";

/// An Execute that is run again if its lock wait gives up: the first statement of its
/// batch, its portal bound earlier in the batch, nothing but the Sync after it (a message
/// in between releases its answer to the client as it comes: `Session::release_retry`).
pub(super) struct RetryExecute {
    pub(super) retrying: Retrying,
    pub(super) bind: Message,
    pub(super) execute: Message,
    pub(super) portal: String,
    /// Run under a hidden savepoint in the client's transaction block.
    pub(super) in_block: bool,
    pub(super) started: Instant,
    pub(super) cancels_seen: u64,
}

/// How a statement is run again.
enum Again<'a> {
    /// The client's Query of one statement.
    Query(&'a Message, &'a Retrying),
    /// The client's Query of several statements, with the cap written into it: run again
    /// whole (`string_retried_at`).
    String {
        message: &'a Message,
        segments: &'a [Segment],
        parsed: &'a [ParsedStatement],
        retrying: &'a [Option<Retrying>],
    },
    /// The client's Bind and Execute, in a batch of the proxy's.
    Execute(&'a RetryExecute),
}

impl Again<'_> {
    /// How the statement that gave up in `answer` is retried, if it is.
    fn plan(&self, answer: &Bytes, in_block: bool) -> Option<Retrying> {
        match self {
            Again::Query(_, retrying) => Some((*retrying).clone()),
            Again::Execute(retry) => Some(retry.retrying.clone()),
            Again::String { parsed, retrying, .. } => {
                // Each statement before the failed one answered with a CommandComplete.
                let failed = messages(answer)
                    .iter()
                    .take_while(|message| message.tag != b'E')
                    .filter(|message| message.tag == b'C')
                    .count();
                string_retried_at(parsed, failed, in_block)
                    .then(|| retrying.get(failed).cloned().flatten())
                    .flatten()
            }
        }
    }
}

/// May a Query of several statements be sent with its answer held back, to be sent again
/// when a statement of it gives up waiting for its lock? Only when every statement is
/// undone by a rollback whole (`undone_by_rollback`: none returns rows or copies data, so
/// the held answer is a few small messages) or, outside a transaction block, opens or
/// commits one. Inside the client's block the string runs under the proxy's savepoint, so
/// it may hold no transaction control and no SET TRANSACTION (refused in a subtransaction).
pub(super) fn string_may_be_retried(parsed: &[ParsedStatement], in_block: bool) -> bool {
    parsed.iter().all(|parsed| match &parsed.statement.stmt {
        Stmt::Transaction(TransactionKind::Begin | TransactionKind::Commit) => !in_block,
        Stmt::Set(set) if in_block => !set.name.as_deref().unwrap_or_default().starts_with("transaction"),
        stmt => undone_by_rollback(stmt),
    })
}

/// May a Query of several statements whose statement `failed` gave up waiting for its
/// lock be sent again whole? The server rolled back what the statements before it did
/// (the string is one transaction, or runs under the proxy's savepoint in the client's
/// block), so that is the statement retried, if the ones before it do the same the second
/// time: each undone by a rollback whole (`undone_by_rollback`), and no transaction
/// control among them but a BEGIN that opened the block (outside one). Inside a block the
/// string may hold none at all: a RELEASE or COMMIT after the failed statement would end
/// the proxy's savepoint once the retry succeeds.
fn string_retried_at(parsed: &[ParsedStatement], failed: usize, in_block: bool) -> bool {
    let before_ok = parsed.iter().take(failed).all(|parsed| match &parsed.statement.stmt {
        Stmt::Transaction(TransactionKind::Begin) => !in_block,
        stmt => undone_by_rollback(stmt),
    });
    let control_after = parsed
        .iter()
        .skip(failed)
        .any(|parsed| matches!(parsed.statement.stmt, Stmt::Transaction(_)));
    failed < parsed.len() && before_ok && !(in_block && control_after)
}

impl Session {
    /// Run the client's Query `message` (one capped statement, outside a transaction
    /// block or inside one that has not failed) with `retrying`'s attempts: the answer
    /// for the client, ReadyForQuery last.
    pub(super) async fn run_with_retries(
        &mut self,
        message: &Message,
        retrying: &Retrying,
    ) -> Result<Bytes, SessionError> {
        self.run_query_with_retries(Again::Query(message, retrying)).await
    }

    /// Run the client's Query of several statements, the cap written in (`rewritten`),
    /// with retries of a statement that gave up waiting for its lock (see
    /// `string_retried_at`); its answer to the client, as the server gave it otherwise.
    pub(super) async fn run_string_with_retries(
        &mut self,
        rewritten: Rewritten,
        parsed: &[ParsedStatement],
        retrying: &[Option<Retrying>],
    ) -> Result<(), SessionError> {
        let message = query::build(&rewritten.sql);
        let again = Again::String {
            message: &message,
            segments: &rewritten.segments,
            parsed,
            retrying,
        };
        let answer = self.run_query_with_retries(again).await?;
        self.to_client.extend_from_slice(&answer);
        Ok(())
    }

    async fn run_query_with_retries(&mut self, again: Again<'_>) -> Result<Bytes, SessionError> {
        let in_block = self.tracker.status == TransactionStatus::InBlock;
        let started = Instant::now();
        let cancels_seen = self.cancels_so_far();
        let answer = match self.attempt_query(&again, in_block).await? {
            Ok(answer) => answer,
            Err(answer) => return Ok(answer),
        };
        self.retry_after(answer, in_block, again, started, cancels_seen).await
    }

    /// The client's Sync after an Execute that may be run again (`RetryExecute`): its
    /// answer and the Sync's, held back until no attempt is left to make, then sent on.
    pub(super) async fn sync_with_retries(&mut self, sync: Message, retry: RetryExecute) -> Result<(), SessionError> {
        self.send(&sync, Owner::Client, Expect::Sync);
        self.tracker.set_capturing(false);
        self.relay_server_until(|tracker| !tracker.capture_pending()).await?;
        let answer = self.tracker.take_captured();
        let answer = self
            .retry_after(
                answer,
                retry.in_block,
                Again::Execute(&retry),
                retry.started,
                retry.cancels_seen,
            )
            .await?;
        self.to_client.extend_from_slice(&answer);
        Ok(())
    }

    /// An Execute's answer is held back for a retry, and a client message other than its
    /// Sync came: the answer goes to the client as it is, and it is not run again.
    pub(super) fn release_retry(&mut self) {
        if self.retry_execute.take().is_some() {
            self.tracker.release_capture(&mut self.to_client);
        }
    }

    /// After the first attempt's `answer`: attempts again while it gave up waiting for its
    /// lock and the policy says to, and the answer for the client.
    async fn retry_after(
        &mut self,
        mut answer: Bytes,
        in_block: bool,
        again: Again<'_>,
        started: Instant,
        mut cancels_seen: u64,
    ) -> Result<Bytes, SessionError> {
        let mut attempt = 1;
        loop {
            let Some(error) = first_error(&answer).filter(gave_up_waiting) else {
                return Ok(answer);
            };
            let Some(retrying) = again.plan(&answer, in_block) else {
                return Ok(answer);
            };
            // A block the string opened (its BEGIN) is failed now: rolled back, and failed
            // again if the statement fails for good.
            let opened_block = !in_block && self.tracker.status == TransactionStatus::Failed;
            let undone = if in_block {
                self.undo_attempt().await?
            } else if opened_block {
                self.hidden_results(&["ROLLBACK".to_string()], true).await?;
                self.tracker.status == TransactionStatus::Idle
            } else {
                true
            };
            if !undone {
                // The transaction could not be brought back: the attempt's error stands.
                return Ok(answer);
            }
            let blockers = self.blockers(&retrying.locks).await?;
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match retrying.after_attempt(attempt, elapsed, &blockers, jitter(self.backend_pid())) {
                AfterAttempt::Pause { pause_ms, log } => {
                    crate::metrics::LOCK_RETRIES.add();
                    tracing::warn!(role = %self.role, database = %self.database, "{log}");
                    // The attempt's answer is dropped, but not another session's NOTIFY.
                    for message in messages(&answer).into_iter().filter(|message| message.tag == b'A') {
                        self.to_client.extend_from_slice(&message.bytes);
                    }
                    if !self.pause(pause_ms, cancels_seen).await? {
                        let cancelled = error_response::error_bytes("57014", "canceling statement due to user request");
                        if in_block || opened_block {
                            self.fail_transaction(FAIL_AS_CANCELLED, opened_block).await?;
                        }
                        return Ok(self.answer(&with_error(&answer, cancelled)));
                    }
                    self.transaction.locks_taken_again(&retrying.statement, Instant::now());
                    cancels_seen = self.cancels_so_far();
                    attempt += 1;
                    answer = match again {
                        Again::Execute(retry) => self.attempt_execute(retry).await?,
                        _ => match self.attempt_query(&again, in_block).await? {
                            Ok(answer) => answer,
                            Err(answer) => return Ok(answer),
                        },
                    };
                }
                AfterAttempt::Fail { message, detail, hint } => {
                    crate::metrics::LOCK_TIMEOUT_FAILURES.add();
                    tracing::warn!(role = %self.role, database = %self.database, "{message}. {detail}");
                    let error = error_response::with_report(&error, &message, &detail, &hint).unwrap_or(error);
                    if in_block || opened_block {
                        self.fail_transaction(FAIL_AS_LOCK_TIMEOUT, opened_block).await?;
                    }
                    return Ok(self.answer(&with_error(&answer, error.bytes)));
                }
            }
        }
    }

    /// One attempt of a Query: sent as the client sent it, under a hidden savepoint in a
    /// transaction block (released when it did not fail), its whole answer held back. Err
    /// with the client's answer when the savepoint could not be made.
    async fn attempt_query(&mut self, again: &Again<'_>, in_block: bool) -> Result<Result<Bytes, Bytes>, SessionError> {
        let (message, segments) = match again {
            Again::Query(message, _) => (*message, Vec::new()),
            Again::String { message, segments, .. } => (*message, segments.to_vec()),
            Again::Execute(_) => unreachable!("an Execute is attempted by attempt_execute"),
        };
        if in_block {
            if let Err(error) = self.hidden_statement(SAVEPOINT).await? {
                // It met the client's cancel (or worse): the client's answer, not run.
                self.aborted_by_hidden_work = None;
                return Ok(Err(self.answer(&[error])));
            }
        }
        self.to_server.extend_from_slice(&message.bytes);
        self.tracker
            .push_captured_segments(Expect::Query, segments, &mut self.to_client);
        self.relay_server_until(|tracker| !tracker.capture_pending()).await?;
        let answer = self.tracker.take_captured();
        if in_block && first_error(&answer).is_none() && self.tracker.status == TransactionStatus::InBlock {
            if let Err(error) = self.hidden_statement(RELEASE).await? {
                // A late cancel, say: the statement's work is in the aborted savepoint, and
                // the client's transaction failed with that error.
                self.aborted_by_hidden_work = None;
                return Ok(Err(self.answer(&with_error(&answer, error))));
            }
        }
        Ok(Ok(answer))
    }

    /// One more attempt of an Execute, in a batch of the proxy's: (in a block: a savepoint)
    /// the portal closed and bound again with the client's Bind, the client's Execute, (in
    /// a block: the savepoint released and the client's lock_timeout put back), a Sync. The
    /// Execute's answer and the Sync's are held back.
    async fn attempt_execute(&mut self, retry: &RetryExecute) -> Result<Bytes, SessionError> {
        let batch = self.new_unclaimed_batch();
        // Every answer of the batch held back, an error of the proxy's statements in it too.
        self.tracker.set_capturing(true);
        if retry.in_block {
            self.send_hidden_statement(batch, 0, SAVEPOINT, OnError::Client);
        }
        let rebind = Self::hidden(batch, 1, false, OnError::Client);
        self.send(&close::build_portal(&retry.portal), rebind, Expect::Close);
        self.send(&retry.bind, rebind, Expect::Bind);
        self.send(&retry.execute, Owner::Client, Expect::Execute);
        if retry.in_block {
            self.send_after_execute_in_block();
        }
        self.send(&sync::build(), Owner::Client, Expect::Sync);
        self.tracker.set_capturing(false);
        self.relay_server_until(|tracker| !tracker.capture_pending()).await?;
        Ok(self.tracker.take_captured())
    }

    /// In a transaction block, the hidden savepoint in front of an Execute that may be run
    /// again (in the client's batch, right before it).
    pub(super) fn send_savepoint_before_execute(&mut self) {
        let batch = self.new_unclaimed_batch();
        self.send_hidden_statement(batch, 0, SAVEPOINT, OnError::Client);
    }

    /// After such an Execute: the savepoint released, the client's lock_timeout put back
    /// (both skipped by the server when the Execute failed).
    pub(super) fn send_after_execute_in_block(&mut self) {
        let batch = self.new_unclaimed_batch();
        self.send_hidden_statement(batch, 0, RELEASE, OnError::ClientUnlessAborted);
        self.send_hidden_statement(batch, 1, &restore_sql(true), OnError::ClientUnlessAborted);
    }

    /// Roll the attempt's savepoint back and release it: true when the transaction is as
    /// it was before the attempt.
    async fn undo_attempt(&mut self) -> Result<bool, SessionError> {
        let undo: Vec<String> = UNDO.iter().map(|sql| sql.to_string()).collect();
        let undone = self.hidden_results(&undo, true).await?;
        Ok(undone
            .iter()
            .all(|result| result.as_ref().is_some_and(|result| !result.failed))
            && self.tracker.status == TransactionStatus::InBlock)
    }

    /// Fail the client's transaction block with a hidden statement that raises an error
    /// (kept from the client: it gets the error of its own statement); `reopen`: the
    /// block was rolled back, and is begun again first.
    async fn fail_transaction(&mut self, sql: &str, reopen: bool) -> Result<(), SessionError> {
        if reopen {
            self.hidden_results(&["BEGIN".to_string()], false).await?;
        }
        self.hidden_results(&[sql.to_string()], false).await?;
        // That was the point: the transaction's failure is the client's statement's.
        self.aborted_by_hidden_work = None;
        Ok(())
    }

    /// The sessions holding or queueing for a lock that conflicts with `locks`, as this
    /// session's role may see them (none when the question fails).
    async fn blockers(
        &mut self,
        locks: &[(policy::QualifiedName, policy::model::LockLevel)],
    ) -> Result<Vec<Blocker>, SessionError> {
        if locks.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.hidden_queries(&[blockers_sql(locks)]).await?;
        Ok(rows
            .into_iter()
            .next()
            .flatten()
            .map(|rows| from_rows(&rows))
            .unwrap_or_default())
    }

    /// Wait `pause_ms`: false when the client's cancel came first (or had come since
    /// `cancels_seen`).
    async fn pause(&mut self, pause_ms: u64, cancels_seen: u64) -> Result<bool, SessionError> {
        self.flush().await?;
        let sleep = tokio::time::sleep(Duration::from_millis(pause_ms));
        let Some(registration) = &self.cancels else {
            sleep.await;
            return Ok(true);
        };
        let signal = registration.signal.clone();
        Ok(tokio::select! {
            _ = sleep => true,
            _ = signal.after(cancels_seen) => false,
        })
    }

    pub(super) fn cancels_so_far(&self) -> u64 {
        self.cancels
            .as_ref()
            .map_or(0, |registration| registration.signal.count())
    }

    /// The server's process id (BackendKeyData), for the jitter.
    fn backend_pid(&self) -> u32 {
        self.lock_hold
            .backend_key
            .as_ref()
            .and_then(|key| key.get(..4))
            .map_or(0, |pid| u32::from_be_bytes([pid[0], pid[1], pid[2], pid[3]]))
    }

    /// `parts` (whole messages) and a ReadyForQuery with the session's status now.
    fn answer(&self, parts: &[Bytes]) -> Bytes {
        let mut out = BytesMut::new();
        for part in parts {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&ready_for_query::build(self.tracker.status).bytes);
        out.freeze()
    }
}

/// The messages of a captured answer.
fn messages(answer: &Bytes) -> Vec<Message> {
    let mut buf = BytesMut::from(&answer[..]);
    let mut out = Vec::new();
    while let Ok(Some(message)) = split_message(&mut buf, MAX_MESSAGE_LEN) {
        out.push(message);
    }
    out
}

/// The answer with `error` in place of its first error (or after it all, when it had
/// none), without its ReadyForQuery: everything else (notices, the results of the
/// statements before, a ParameterStatus) as the server sent it, in order.
fn with_error(answer: &Bytes, error: Bytes) -> Vec<Bytes> {
    let mut error = Some(error);
    let mut parts: Vec<Bytes> = Vec::new();
    for message in messages(answer) {
        match message.tag {
            b'Z' => {}
            b'E' => parts.extend(error.take()),
            _ => parts.push(message.bytes),
        }
    }
    parts.extend(error);
    parts
}

fn first_error(answer: &Bytes) -> Option<Message> {
    messages(answer).into_iter().find(|message| message.tag == b'E')
}

fn gave_up_waiting(error: &Message) -> bool {
    error_response::sqlstate(error).as_deref() == Some(LOCK_NOT_AVAILABLE)
}

/// The answer without its final ReadyForQuery (a hidden statement after it sends one).
pub(super) fn without_ready(answer: Bytes) -> Bytes {
    let ends_ready = answer.len() >= 6
        && answer[answer.len() - 6] == b'Z'
        && answer[answer.len() - 5..answer.len() - 1] == [0, 0, 0, 5];
    if ends_ready {
        answer.slice(..answer.len() - 6)
    } else {
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Vec<ParsedStatement> {
        ::parse::parse_sql(sql).expect("parses")
    }

    #[test]
    fn only_strings_of_small_answers_and_no_block_changes_under_the_savepoint_are_held_back() {
        assert!(string_may_be_retried(
            &parsed("BEGIN; CREATE TABLE n (id int); ALTER TABLE t ADD c int; COMMIT"),
            false
        ));
        assert!(string_may_be_retried(
            &parsed("SET search_path = s; ALTER TABLE t ADD c int"),
            true
        ));
        for (sql, in_block) in [
            // Rows or COPY: too much to hold back, or a COPY that waits for the client.
            ("ALTER TABLE t ADD c int; SELECT * FROM t", false),
            ("ALTER TABLE t ADD c int; COPY t FROM STDIN", false),
            // In the client's block: what would end or split the proxy's savepoint.
            ("ALTER TABLE t ADD c int; COMMIT; BEGIN", true),
            ("ALTER TABLE t ADD c int; RELEASE SAVEPOINT a", true),
            ("ALTER TABLE t ADD c int; SAVEPOINT b", true),
            (
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; ALTER TABLE t ADD c int",
                true,
            ),
        ] {
            assert!(!string_may_be_retried(&parsed(sql), in_block), "{sql}");
        }
    }

    #[test]
    fn a_string_is_retried_whole_only_when_a_rollback_undid_all_before_the_failed_statement() {
        let ddl = parsed("BEGIN; CREATE TABLE n (id int); ALTER TABLE t ADD c int; COMMIT");
        assert!(string_retried_at(&ddl, 2, false));
        // In the client's block: no BEGIN, and no transaction control after it either.
        assert!(!string_retried_at(&ddl, 2, true));
        let in_block = parsed("CREATE TABLE n (id int); ALTER TABLE t ADD c int");
        assert!(string_retried_at(&in_block, 1, true));
        for sql in [
            "SELECT nextval('s'); ALTER TABLE t ADD c int",
            "INSERT INTO n VALUES (1); ALTER TABLE t ADD c int",
            "CALL p(); ALTER TABLE t ADD c int",
            "COMMIT; ALTER TABLE t ADD c int",
            "SAVEPOINT a; ALTER TABLE t ADD c int",
        ] {
            assert!(!string_retried_at(&parsed(sql), 1, false), "{sql}");
        }
        // An answer that names no statement of the string (a count past its end).
        assert!(!string_retried_at(&in_block, 2, false));
    }

    #[test]
    fn an_answer_splits_into_its_messages_and_loses_only_its_ready_for_query() {
        let mut answer = BytesMut::new();
        answer.extend_from_slice(&Message::build(b'N', b"SNOTICE\0\0").bytes);
        answer.extend_from_slice(&error_response::error_bytes(
            LOCK_NOT_AVAILABLE,
            "canceling statement due to lock timeout",
        ));
        answer.extend_from_slice(&ready_for_query::build(TransactionStatus::Idle).bytes);
        let answer = answer.freeze();
        let parts = messages(&answer);
        assert_eq!(parts.iter().map(|m| m.tag).collect::<Vec<_>>(), b"NEZ");
        assert!(first_error(&answer).is_some_and(|error| gave_up_waiting(&error)));
        let without = without_ready(answer.clone());
        assert_eq!(without.len(), answer.len() - 6);
        assert_eq!(without_ready(without.clone()), without);
    }
}
