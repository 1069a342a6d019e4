//! The lock_timeout cap around a guarded statement: set before it (session-wide, with
//! SET LOCAL, or written into the Query), and the client's value put back after it.

use policy::settings::parse_duration_ms;

use crate::lock_timeout::{rewrite, session_restore_sql, set_session_cap_sql};
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::{query, sync, Message};
use crate::tracker::{Expect, OnError, Owner};
use ::parse::ParsedStatement;
use policy::rules::lock_timeout::Retrying;

use super::extended::Prepared;
use super::retries::without_ready;
use super::{Rows, Session, SessionError};

/// How a capped Query's cap is taken off again.
enum CapRestore {
    /// Set session-wide (outside a transaction block).
    Session(Restore),
    /// Set with SET LOCAL: this statement puts the client's value back.
    Local(String),
}

/// How to put the client's lock_timeout back after a session-wide cap.
#[derive(Debug, Clone)]
pub(super) struct Restore {
    sql: String,
    /// lock_timeout as the cap left it (as SHOW writes it): a value still equal to it
    /// later is still the cap, not something the client set since.
    capped: String,
}

impl Restore {
    /// From the answer of `set_session_cap_sql`.
    fn after(rows: &[Vec<Option<String>>]) -> Restore {
        Restore {
            sql: session_restore_sql(rows),
            capped: rows
                .first()
                .and_then(|row| row.get(2))
                .cloned()
                .flatten()
                .unwrap_or_default(),
        }
    }
}

impl Session {
    /// A Query of one capped statement goes to the server exactly as the client sent it:
    /// in a string of its own it keeps its transaction structure (a statement that refuses
    /// transaction blocks still runs) and its text (positions, current_query()). The cap
    /// is set by hidden statements in round trips of their own first, and put back by one
    /// right after it.
    /// - Outside a transaction block: session-wide, computed by the server in one round
    ///   trip; no transaction of the client's is open for it to touch.
    /// - Inside one: `SHOW`, then `SET LOCAL` (neither takes a snapshot, so a repeatable
    ///   read transaction's snapshot is still taken by the client's own statement), only
    ///   when the client's lock_timeout is above the cap; undone by the transaction's end.
    /// - In a failed transaction nothing runs: the statement goes alone and gets the
    ///   server's 25P02.
    ///
    /// If setting the cap fails (a cancel, a terminated backend), the client's statement
    /// is not sent: the server's error and ReadyForQuery are the client's answer.
    ///
    /// With `retrying`, an attempt whose lock wait gave up is run again (`retries`): the
    /// client gets the last attempt's answer.
    pub(super) async fn send_capped_alone(
        &mut self,
        message: Message,
        cap: u64,
        retrying: Option<Retrying>,
    ) -> Result<(), SessionError> {
        let restore = match self.tracker.status {
            TransactionStatus::Idle => match self.set_cap_hidden(&set_session_cap_sql(cap)).await? {
                Some(rows) => Some(CapRestore::Session(Restore::after(&rows))),
                None => return Ok(()),
            },
            TransactionStatus::InBlock => {
                let shown = match self.hidden_statement("SHOW lock_timeout").await? {
                    Ok(rows) => rows.into_iter().next().and_then(|row| row.into_iter().next().flatten()),
                    Err(error) => {
                        self.answer_with_server_error(error);
                        return Ok(());
                    }
                };
                let shown = shown.unwrap_or_default();
                let shown_ms = parse_duration_ms(&shown).unwrap_or(0);
                if shown_ms != 0 && shown_ms <= cap {
                    None
                } else {
                    if self
                        .set_cap_hidden(&format!("SET LOCAL lock_timeout = {cap}"))
                        .await?
                        .is_none()
                    {
                        return Ok(());
                    }
                    Some(CapRestore::Local(format!(
                        "SET LOCAL lock_timeout = '{}'",
                        shown.replace('\'', "''")
                    )))
                }
            }
            _ => {
                self.send(&message, Owner::Client, Expect::Query);
                return Ok(());
            }
        };
        // The restore's ReadyForQuery ends the client's exchange, so nothing of it can
        // come after.
        match (retrying, &restore) {
            (Some(retrying), _) => {
                let answer = self.run_with_retries(&message, &retrying).await?;
                match restore {
                    Some(_) => self.to_client.extend_from_slice(&without_ready(answer)),
                    None => self.to_client.extend_from_slice(&answer),
                }
            }
            (None, Some(_)) => {
                self.to_server.extend_from_slice(&message.bytes);
                self.tracker.push_query_holding_ready(&mut self.to_client);
            }
            (None, None) => self.send(&message, Owner::Client, Expect::Query),
        }
        let Some(restore) = restore else {
            return Ok(());
        };
        let batch = self.new_batch();
        match restore {
            // Outside a block its failure (a late cancel) is not the client's statement's:
            // kept from the client, and the restore made again (`settle_restore`).
            CapRestore::Session(restore) => {
                let owner = Self::hidden(batch, 0, true, OnError::Keep);
                self.send(&query::build(&restore.sql), owner, Expect::Query);
                self.restore_in_flight.push((batch, restore));
            }
            // Inside one it aborts the client's transaction: the client sees why.
            CapRestore::Local(sql) => {
                self.unclaimed.push(batch);
                let owner = Self::hidden(batch, 0, true, OnError::ClientUnlessAborted);
                self.send(&query::build(&sql), owner, Expect::Query);
            }
        }
        Ok(())
    }

    /// Run the hidden statement that sets the cap: its rows, or None when it failed, after
    /// giving the client the server's error in place of its statement's answer.
    async fn set_cap_hidden(&mut self, sql: &str) -> Result<Option<Rows>, SessionError> {
        match self.hidden_statement(sql).await? {
            Ok(rows) => Ok(Some(rows)),
            Err(error) => {
                self.answer_with_server_error(error);
                Ok(None)
            }
        }
    }

    pub(super) fn send_rewritten(&mut self, sql: &str, parsed: &[ParsedStatement], caps: &[Option<u64>]) {
        let starts: Vec<usize> = parsed.iter().map(|statement| statement.offset).collect();
        let rewritten = rewrite(sql, &starts, caps);
        self.to_server.extend_from_slice(&query::build(&rewritten.sql).bytes);
        self.tracker
            .push_segments(Owner::Client, Expect::Query, rewritten.segments, &mut self.to_client);
    }

    /// A statement that cannot run in a transaction block (CONCURRENTLY forms, VACUUM,
    /// REINDEX or CLUSTER of a partitioned table, ALTER SUBSCRIPTION ... REFRESH ...) must
    /// be the first Execute of its batch: a hidden Execute in front of it would make the
    /// batch a pipeline, where the server refuses it. So when a capped statement's Parse or
    /// Bind starts a batch outside a transaction block, the cap is set session-wide in a
    /// hidden batch of its own just before (waited for: if it fails, the Execute gets the
    /// hidden cap in front of it and fails rather than run uncapped), serves the batch's
    /// first Execute, and is restored after the client's Sync.
    pub(super) async fn cap_batch_for(&mut self, prepared: &Prepared) -> Result<(), SessionError> {
        let Some(cap) = prepared.cap else { return Ok(()) };
        if self.restore_after_sync.is_some() || !self.tracker.quiet() || self.tracker.status != TransactionStatus::Idle
        {
            return Ok(());
        }
        if let Ok(rows) = self.hidden_statement(&set_session_cap_sql(cap)).await? {
            self.restore_after_sync = Some(Restore::after(&rows));
        }
        Ok(())
    }

    /// Put the client's lock_timeout back in a hidden batch of its own.
    pub(super) fn send_restore(&mut self, restore: Restore) -> u64 {
        let batch = self.new_batch();
        self.send_hidden_statement(batch, 0, &restore.sql, OnError::Keep);
        let owner = Self::hidden(batch, 1, false, OnError::Keep);
        self.send(&sync::build(), owner, Expect::Sync);
        self.restore_in_flight.push((batch, restore));
        batch
    }

    /// Before the client's next statement: a restore that did not stick is made again
    /// once the session is outside a transaction block, if lock_timeout is still the cap.
    pub(super) async fn settle_restore(&mut self) -> Result<(), SessionError> {
        let mut index = 0;
        while index < self.restore_in_flight.len() {
            let batch = self.restore_in_flight[index].0;
            if self.tracker.batch_pending(batch) {
                index += 1;
                continue;
            }
            let (_, restore) = self.restore_in_flight.remove(index);
            // A hidden batch (Parse ... Sync) or a hidden Query.
            let first = self.tracker.take_result(batch, 0);
            let sync = self.tracker.take_result(batch, 1);
            let ran = first.as_ref().is_some_and(|result| !result.failed);
            let status_after = sync
                .and_then(|result| result.status)
                .or(first.and_then(|result| result.status));
            if !ran || status_after != Some(TransactionStatus::Idle) {
                self.restore_due = Some(restore);
            }
        }
        if !self.tracker.idle() || self.tracker.status != TransactionStatus::Idle {
            return Ok(());
        }
        let Some(restore) = self.restore_due.take() else {
            return Ok(());
        };
        match self.hidden_statement("SHOW lock_timeout").await? {
            Ok(rows) => {
                let now = rows.into_iter().next().and_then(|row| row.into_iter().next().flatten());
                if now.as_deref() == Some(restore.capped.as_str()) {
                    // Waited for: the client's next statement may need a quiet session.
                    let batch = self.send_restore(restore);
                    self.wait_for_batch(batch).await?;
                }
            }
            Err(_) => self.restore_due = Some(restore),
        }
        Ok(())
    }
}
