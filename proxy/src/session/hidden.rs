//! Hidden statements: the proxy's own queries on the client's session, whose answers
//! the client never sees, and the server's messages relayed while the proxy waits for
//! them.

use bytes::Bytes;

use crate::catalog::{Estimate, Question};
use crate::messages::error_response;
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::{bind, close, execute, parse, sync, Frame, FrameError};
use crate::tracker::{Expect, HiddenResult, OnError, Owner, Tracker};

use super::{Rows, Session, SessionError, WHOLE_UP_TO};

/// The savepoints the proxy's EXPLAIN and size questions run under in a block.
const EXPLAIN_SAVEPOINT: &str = "__safe_migrations_explain";
const SIZE_SAVEPOINT: &str = "__safe_migrations_size";

/// Fails the client's transaction as a cancelled statement would have.
pub(super) const FAIL_AS_CANCELLED: &str = "/* safe_migrations proxy: the cancelled statement's error */ \
     DO $$BEGIN RAISE EXCEPTION USING ERRCODE = 'query_canceled', \
     MESSAGE = 'canceling statement due to user request'; END$$";

impl Session {
    /// Run hidden queries on the session; each answer is None when its query failed or
    /// the server could not run it now (aborted transaction, COPY, discarding to Sync).
    pub(super) async fn hidden_queries(&mut self, sqls: &[String]) -> Result<Vec<Option<Rows>>, SessionError> {
        Ok(self
            .hidden_results(sqls, false)
            .await?
            .into_iter()
            .map(|result| result.filter(|result| !result.failed).map(|result| result.rows))
            .collect())
    }

    /// Run one hidden statement and wait for it: its rows, or the server's ErrorResponse.
    pub(super) async fn hidden_statement(&mut self, sql: &str) -> Result<Result<Rows, Bytes>, SessionError> {
        let result = self.hidden_results(&[sql.to_string()], false).await?.pop().flatten();
        Ok(match result {
            Some(HiddenResult { error: Some(error), .. }) => Err(error),
            Some(result) if !result.failed => Ok(result.rows),
            _ => Err(error_response::error_bytes(
                error_response::PROTOCOL_VIOLATION,
                "safe_migrations proxy: the server did not run the proxy's lock_timeout statement",
            )),
        })
    }

    /// The rows of EXPLAIN for `question` (a `Question::RowsChanged`), leaving no trace on
    /// the session: asked only with nothing of the client's in flight (an error would
    /// otherwise be the client's). Outside a transaction block, EXPLAIN of the statement
    /// itself, in a transaction of its own. Inside the client's block, under a savepoint
    /// rolled back at once (so that no error and no lock of the proxy's outlives it): the
    /// statement is only parsed (analysed, as the server will analyse it: a statement
    /// that fails there gets no estimate, and its own error when it runs), and EXPLAIN is
    /// of its read-only stand-in, since EXPLAIN of a write takes a command id of the
    /// transaction, which the client sees in cmin and cmax. A statement a routine runs is
    /// always asked about by its stand-in, and not parsed first: its text may name the
    /// routine's variables and parameters, which the server knows only while the routine
    /// runs (the rows a write changes do not depend on the values it sets). None when it
    /// failed or could not be asked.
    pub(super) async fn explain(&mut self, question: &Question) -> Result<Option<Rows>, SessionError> {
        if !self.tracker.idle() {
            return Ok(None);
        }
        match self.tracker.status {
            TransactionStatus::Failed => Ok(None),
            TransactionStatus::Idle => {
                let Question::RowsChanged(estimate) = question else {
                    return Ok(None);
                };
                let stand_in;
                let statement = if estimate.nested {
                    let Some(text) = ::parse::probe::rows_changed_probe(&estimate.statement) else {
                        return Ok(None);
                    };
                    stand_in = text;
                    &stand_in
                } else {
                    &estimate.statement
                };
                let result = self.explain_text(statement, estimate).await?;
                if let Some(error) = result
                    .as_ref()
                    .and_then(|result| result.error.clone())
                    .filter(cancelled)
                {
                    // The client's cancel met the proxy's question: it was meant for the
                    // client's statement, which is answered with it and not sent.
                    self.aborted_by_hidden_work = Some(error);
                    return Ok(None);
                }
                Ok(result.filter(|result| !result.failed).map(|result| result.rows))
            }
            TransactionStatus::InBlock => {
                let Question::RowsChanged(estimate) = question else {
                    return Ok(None);
                };
                let Some(stand_in) = ::parse::probe::rows_changed_probe(&estimate.statement) else {
                    return Ok(None);
                };
                let Some(aborted_before) = self.question_savepoint(EXPLAIN_SAVEPOINT).await? else {
                    return Ok(None);
                };
                let types = estimate
                    .executed
                    .as_ref()
                    .map_or(&[][..], |executed| &executed.parameter_types[..]);
                let mut failure = if estimate.nested {
                    None
                } else {
                    self.hidden_parse(&estimate.statement, types).await?
                };
                let mut rows = None;
                if failure.is_none() {
                    let result = self.explain_text(&stand_in, estimate).await?;
                    failure = result.as_ref().and_then(|result| result.error.clone());
                    rows = result.filter(|result| !result.failed).map(|result| result.rows);
                }
                if !self
                    .end_question_savepoint(EXPLAIN_SAVEPOINT, failure, aborted_before)
                    .await?
                {
                    return Ok(None);
                }
                Ok(rows)
            }
        }
    }

    /// The rows of `question` (a `Question::EmptyRelation`), leaving no lock behind: asked
    /// only with nothing of the client's in flight (what runs before it may fill the
    /// table), and not for a named prepared statement (it may run later, the table
    /// filled by then). Outside a transaction block in a transaction of its own; inside
    /// the client's, under a savepoint rolled back at once, which releases the
    /// AccessShareLock its size needs (as the extension unlocks at once). None when it
    /// failed or could not be asked: the rules then apply.
    pub(super) async fn empty_relation(&mut self, question: &Question) -> Result<Option<Rows>, SessionError> {
        if !self.tracker.idle() || self.judging_named_parse {
            return Ok(None);
        }
        match self.tracker.status {
            TransactionStatus::Failed => Ok(None),
            TransactionStatus::Idle => Ok(self.hidden_queries(&[question.sql()]).await?.pop().flatten()),
            TransactionStatus::InBlock => {
                let Some(aborted_before) = self.question_savepoint(SIZE_SAVEPOINT).await? else {
                    return Ok(None);
                };
                let result = self.hidden_results(&[question.sql()], false).await?.pop().flatten();
                let failure = result.as_ref().and_then(|result| result.error.clone());
                if !self
                    .end_question_savepoint(SIZE_SAVEPOINT, failure, aborted_before)
                    .await?
                {
                    return Ok(None);
                }
                Ok(result.filter(|result| !result.failed).map(|result| result.rows))
            }
        }
    }

    /// Make the savepoint a question of the proxy's runs under inside the client's
    /// transaction block (so that no error and no lock of the proxy's outlives it): the
    /// abort the proxy's work caused before, put aside meanwhile; None when it could not
    /// be made.
    async fn question_savepoint(&mut self, name: &str) -> Result<Option<Option<Bytes>>, SessionError> {
        let aborted_before = self.aborted_by_hidden_work.take();
        let saved = self.hidden_queries(&[format!("SAVEPOINT {name}")]).await?;
        if saved.first().is_some_and(Option::is_some) {
            return Ok(Some(aborted_before));
        }
        if self.aborted_by_hidden_work.is_none() {
            self.aborted_by_hidden_work = aborted_before;
        }
        Ok(None)
    }

    /// Roll the question's savepoint back and release it; false when `failure` (the
    /// question's error) is a cancel: one (the client's, or rule lock_held_too_long's)
    /// meant for the client's statement, which aborted only the proxy's savepoint. That is
    /// undone, then the client's level of the transaction fails as the cancelled
    /// statement would have failed it (at the top level that ends the transaction's
    /// locks), and the client is answered with the cancel.
    async fn end_question_savepoint(
        &mut self,
        name: &str,
        failure: Option<Bytes>,
        aborted_before: Option<Bytes>,
    ) -> Result<bool, SessionError> {
        let undo = [
            format!("ROLLBACK TO SAVEPOINT {name}"),
            format!("RELEASE SAVEPOINT {name}"),
        ];
        if let Some(error) = failure.filter(cancelled) {
            self.hidden_results(&undo, true).await?;
            self.hidden_results(&[FAIL_AS_CANCELLED.to_string()], false).await?;
            self.aborted_by_hidden_work = Some(error);
            return Ok(false);
        }
        let undone = self.hidden_results(&undo, true).await?;
        if undone
            .iter()
            .all(|result| result.as_ref().is_some_and(|result| !result.failed))
        {
            // The savepoint took any error of the proxy's with it.
            self.aborted_by_hidden_work = None;
        }
        if self.aborted_by_hidden_work.is_none() {
            self.aborted_by_hidden_work = aborted_before;
        }
        Ok(true)
    }

    /// EXPLAIN (FORMAT JSON) of `sql` (the estimate's statement, or its stand-in). The
    /// statement is prepared under a hidden name and explained by EXPLAIN EXECUTE when it
    /// is a prepared statement's query run by an EXECUTE (with the EXECUTE's arguments, so
    /// that it is planned as the server plans it: a custom plan for those values), and
    /// when it has parameters (with NULL for each). Without values to plan for (NULLs, or
    /// an argument left out because evaluating it could do something) the plan is
    /// generic: plan_cache_mode is set for the hidden batch's transaction only, or the
    /// savepoint's, and a generic plan reads no parameter. (PostgreSQL 16's EXPLAIN
    /// (GENERIC_PLAN) plans the same way, but only from 16 on, and in the extended
    /// protocol only with a value bound for each parameter: this way serves every
    /// major.) The hidden statement is closed again whatever failed.
    async fn explain_text(&mut self, sql: &str, estimate: &Estimate) -> Result<Option<HiddenResult>, SessionError> {
        let parameters = ::parse::calls::parameter_count(sql);
        // A Bind carries at most 65535 parameters; a `$n` above that the server refuses
        // anyway (and NULLs for it would be a string as long as the number says).
        if parameters > usize::from(u16::MAX) {
            return Ok(None);
        }
        if estimate.executed.is_none() && parameters == 0 {
            let explain = crate::catalog::explain_sql(sql);
            return Ok(self.hidden_results(&[explain], false).await?.pop().flatten());
        }
        let batch = self.new_batch();
        let name = format!("__safe_migrations_{batch}_explain");
        let (execute, types, generic) = match &estimate.executed {
            Some(executed) => {
                let Some((execute, constants)) =
                    ::parse::prepared::execute_as(&executed.execute, &name, executed.evaluate_arguments == Some(true))
                else {
                    return Ok(None);
                };
                (execute, &executed.parameter_types[..], !constants)
            }
            None => (
                format!("EXECUTE {name}({})", vec!["NULL"; parameters].join(", ")),
                &[][..],
                true,
            ),
        };
        let mut index = 0;
        let mut step = || {
            index += 1;
            index - 1
        };
        let settings = generic.then(&mut step);
        if let Some(settings) = settings {
            self.send_hidden_statement(
                batch,
                settings,
                "SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)",
                OnError::Keep,
            );
        }
        let prepared = step();
        self.send(
            &parse::build_typed(&name, sql, types),
            Self::hidden(batch, prepared, false, OnError::Keep),
            Expect::Parse,
        );
        let explained = step();
        self.send_hidden_statement(
            batch,
            explained,
            &format!("EXPLAIN (FORMAT JSON) {execute}"),
            OnError::Keep,
        );
        let closing = step();
        let close = Self::hidden(batch, closing, false, OnError::Keep);
        self.send(&close::build_statement(&name), close, Expect::Close);
        let synced = step();
        self.send(
            &sync::build(),
            Self::hidden(batch, synced, false, OnError::Keep),
            Expect::Sync,
        );
        self.wait_for_batch(batch).await?;
        let results: Vec<Option<HiddenResult>> = (0..=synced)
            .map(|index| self.tracker.take_result(batch, index))
            .collect();
        let closed = results[closing]
            .as_ref()
            .is_some_and(|result| !result.failed && result.error.is_none());
        if !closed {
            // An error skipped the Close: close it on its own (closing a name that does
            // not exist is no error).
            let again = self.new_batch();
            self.send(
                &close::build_statement(&name),
                Self::hidden(again, 0, false, OnError::Keep),
                Expect::Close,
            );
            self.send(
                &sync::build(),
                Self::hidden(again, 1, false, OnError::Keep),
                Expect::Sync,
            );
            self.wait_for_batch(again).await?;
            let _ = self.tracker.take_result(again, 0);
            let _ = self.tracker.take_result(again, 1);
        }
        // An error before the EXPLAIN (the Parse's) is the answer's.
        let failed_at = results.iter().take(explained).position(|result| {
            result
                .as_ref()
                .is_some_and(|result| result.failed || result.error.is_some())
        });
        Ok(results.into_iter().nth(failed_at.unwrap_or(explained)).flatten())
    }

    /// Parse (and analyse) `sql` on the server under a hidden name, its parameters of
    /// `types` (oids; the server infers the rest), closed again; nothing runs. None when it
    /// parsed, else its ErrorResponse (empty when there was none).
    pub(super) async fn hidden_parse(&mut self, sql: &str, types: &[u32]) -> Result<Option<Bytes>, SessionError> {
        let batch = self.new_batch();
        let name = format!("__safe_migrations_{batch}_parse");
        let owner = Self::hidden(batch, 0, false, OnError::Keep);
        self.send(&parse::build_typed(&name, sql, types), owner, Expect::Parse);
        self.send(&close::build_statement(&name), owner, Expect::Close);
        let sync = Self::hidden(batch, 1, false, OnError::Keep);
        self.send(&sync::build(), sync, Expect::Sync);
        self.wait_for_batch(batch).await?;
        let _ = self.tracker.take_result(batch, 1);
        Ok(match self.tracker.take_result(batch, 0) {
            Some(result) if !result.failed && result.error.is_none() => None,
            Some(result) => Some(result.error.unwrap_or_default()),
            None => Some(Bytes::new()),
        })
    }

    /// Run hidden statements on the session and wait for their results (None where the
    /// server could not run them now: aborted transaction (unless `even_if_failed`: a
    /// ROLLBACK TO SAVEPOINT), COPY, discarding to Sync).
    ///
    /// Outside a block a failed question aborts nothing, but a cancel that met it was
    /// meant for the client's statement (the client cancels what it believes runs): that
    /// statement is answered with it, as the server would have, and not sent, rather than
    /// refused for want of the answer. A cancel that no client sent (none reached the
    /// proxy for this session meanwhile) is the late second signal of one already
    /// answered (the postmaster signals a backend and then its process group, and on a
    /// loaded machine the second comes after the backend has moved on): the questions
    /// are asked once more.
    pub(super) async fn hidden_results(
        &mut self,
        sqls: &[String],
        even_if_failed: bool,
    ) -> Result<Vec<Option<HiddenResult>>, SessionError> {
        let cancels_before = self.cancels_so_far();
        let (mut results, mut quiet) = self.hidden_results_once(sqls, even_if_failed).await?;
        if quiet
            && results
                .iter()
                .flatten()
                .any(|result| result.error.as_ref().is_some_and(cancelled))
            && !self.client_cancelled_since(cancels_before).await
        {
            tracing::debug!(role = %self.role, "a cancel no client sent met the proxy's question: asked again");
            (results, quiet) = self.hidden_results_once(sqls, even_if_failed).await?;
        }
        if quiet {
            if let Some(error) = results
                .iter()
                .flatten()
                .find_map(|result| result.error.clone().filter(cancelled))
            {
                self.aborted_by_hidden_work = Some(error);
            }
        }
        Ok(results)
    }

    /// Did a client's cancel for this session reach the proxy since `before` (the count
    /// of them then)? The proxy counts a cancel once it has forwarded it, so the server
    /// can act on it a moment before: up to 200 ms are given for the count to move.
    /// (`&mut self`: the session is not `Sync`, and this future is held across awaits.)
    async fn client_cancelled_since(&mut self, before: u64) -> bool {
        for _ in 0..20 {
            if self.cancels_so_far() != before {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.cancels_so_far() != before
    }

    /// [`Session::hidden_results`] once; also whether it ran outside a client's batch
    /// (quiet), where a cancel that met it is the client's statement's to answer.
    async fn hidden_results_once(
        &mut self,
        sqls: &[String],
        even_if_failed: bool,
    ) -> Result<(Vec<Option<HiddenResult>>, bool), SessionError> {
        if sqls.is_empty()
            || !self.tracker.server_listening()
            || (self.tracker.status == TransactionStatus::Failed && !even_if_failed)
        {
            return Ok(((0..sqls.len()).map(|_| None).collect(), false));
        }
        let batch = self.new_batch();
        let quiet = self.tracker.quiet();
        // Inside a batch of the client's, a failed question makes the server discard the
        // client's messages up to its Sync: the error is then the client's.
        let on_error = if quiet { OnError::Keep } else { OnError::Client };
        for (index, sql) in sqls.iter().enumerate() {
            self.send_hidden_statement(batch, index, sql, on_error);
        }
        if quiet {
            let owner = Self::hidden(batch, sqls.len(), false, OnError::Keep);
            self.send(&sync::build(), owner, Expect::Sync);
        } else {
            self.to_server.extend_from_slice(&sync::build_flush().bytes);
        }
        let status_before = self.tracker.status;
        self.wait_for_batch(batch).await?;
        let _ = self.tracker.take_result(batch, sqls.len());
        let results: Vec<Option<HiddenResult>> = (0..sqls.len())
            .map(|index| self.tracker.take_result(batch, index))
            .collect();
        if status_before == TransactionStatus::InBlock && self.tracker.status == TransactionStatus::Failed {
            // A hidden statement failed in the client's transaction block (a cancel meant
            // for the client's statement, say) and aborted it.
            self.aborted_by_hidden_work = results.iter().flatten().find_map(|result| result.error.clone());
            return Ok((results, false));
        }
        Ok((results, quiet))
    }

    /// Parse/Bind/Execute and Close of one hidden statement under a proxy-owned name. The
    /// portal is closed too: an open one would be seen in pg_cursors and would stop a
    /// later COPY FREEZE ("prior transaction activity").
    pub(super) fn send_hidden_statement(&mut self, batch: u64, index: usize, sql: &str, on_error: OnError) {
        let name = format!("__safe_migrations_{batch}_{index}");
        let owner = Self::hidden(batch, index, false, on_error);
        self.send(&parse::build(&name, sql), owner, Expect::Parse);
        self.send(&bind::build(&name, &name), owner, Expect::Bind);
        self.send(&execute::build(&name), owner, Expect::Execute);
        self.send(&close::build_portal(&name), owner, Expect::Close);
        self.send(&close::build_statement(&name), owner, Expect::Close);
    }

    pub(super) fn hidden(batch: u64, index: usize, forward_ready: bool, on_error: OnError) -> Owner {
        Owner::Hidden {
            batch,
            index,
            forward_ready,
            on_error,
        }
    }

    pub(super) fn new_batch(&mut self) -> u64 {
        self.next_batch += 1;
        self.next_batch
    }

    /// A hidden batch whose results nobody reads: dropped once answered
    /// (`forget_answered_batches`), so a long session does not pile them up.
    pub(super) fn new_unclaimed_batch(&mut self) -> u64 {
        let batch = self.new_batch();
        self.unclaimed.push(batch);
        batch
    }

    pub(super) fn forget_answered_batches(&mut self) {
        let tracker = &mut self.tracker;
        self.unclaimed.retain(|&batch| {
            if tracker.batch_pending(batch) {
                return true;
            }
            for index in 0..2 {
                let _ = tracker.take_result(batch, index);
            }
            false
        });
    }

    /// The error that aborted the client's transaction block while the proxy worked on
    /// the client's message: the client's message is answered with it (it would not run
    /// now), so the client learns why, as it would have without the proxy.
    pub(super) fn take_abort_by_hidden_work(&mut self) -> Option<Bytes> {
        self.aborted_by_hidden_work.take()
    }

    /// Relay the server's messages until every message of hidden batch `batch` is answered.
    pub(super) async fn wait_for_batch(&mut self, batch: u64) -> Result<(), SessionError> {
        self.relay_server_until(|tracker| !tracker.batch_pending(batch)).await
    }

    /// When the client pipelined messages whose answers are still to come, relay them
    /// first, so that the transaction status (and standard_conforming_strings) the next
    /// decision reads is the present one, not the one before those messages. Only
    /// outside a batch: inside one the server answers nothing before its Sync; and not
    /// into COPY, which waits for the client.
    pub(super) async fn catch_up_with_the_server(&mut self) -> Result<(), SessionError> {
        if !self.tracker.quiet() {
            return Ok(());
        }
        self.relay_server_until(|tracker| tracker.idle() || !tracker.quiet())
            .await
    }

    /// Relay the server's messages (to the client, or to the hidden statements they
    /// answer) until `done`; large rows and COPY data pass through in pieces as in `serve`.
    /// Rule lock_held_too_long keeps its time meanwhile, as in `serve`: a hidden question
    /// waiting behind another session's lock is cancelled when the budget ends (its
    /// cancel then answers the client's statement), or the session is ended.
    pub(super) async fn relay_server_until(&mut self, done: impl Fn(&Tracker) -> bool) -> Result<(), SessionError> {
        while !done(&self.tracker) {
            self.flush().await?;
            let lock_hold_deadline = self.lock_hold_deadline().filter(|_| !self.lock_hold.verifying);
            let frame = tokio::select! {
                _ = tokio::time::sleep_until(lock_hold_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if lock_hold_deadline.is_some() => {
                    if !self.lock_hold_act().await? {
                        return Err(SessionError::Refused(format!(
                            "{}: the session was ended",
                            policy::rules::lock_held_too_long::RULE.id
                        )));
                    }
                    continue;
                }
                frame = self.server_rd.next_frame(WHOLE_UP_TO) => frame,
            };
            match frame.map_err(SessionError::Server)? {
                Some(Frame::Whole(message)) => {
                    let message = self.lock_hold_rewrite(message);
                    self.tracker
                        .on_server(message, &mut self.to_client)
                        .map_err(SessionError::Server)?
                }
                Some(Frame::Large(large)) => self.on_server_large(large).await?,
                None => {
                    return Err(SessionError::Server(FrameError::Malformed(
                        "the server closed the connection".into(),
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Is `error` a cancel (57014 query_canceled)?
fn cancelled(error: &Bytes) -> bool {
    let message = crate::messages::Message {
        tag: b'E',
        bytes: error.clone(),
    };
    error_response::sqlstate(&message).as_deref() == Some("57014")
}
