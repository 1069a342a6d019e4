//! The extended-query path: a Parse decided, the prepared statements and portals
//! remembered with their caps, and Bind, Describe, Execute, Close and Sync relayed.

use std::time::Instant;

use policy::model::TransactionKind;
use policy::report::Report;
use policy::rules::lock_timeout::Retrying;
use policy::transaction::{HeldLock, PendingRename};
use policy::unchecked;
use policy::{QualifiedName, Statement, Stmt};

use crate::guard::{unchecked, Refusal, Unchecked};
use crate::lock_timeout::{restore_sql, set_cap_sql};
use crate::messages::parse::Parse;
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::{bind, close, describe, execute, Message};
use crate::tracker::{Expect, OnError, Owner};
use ::parse::ParsedStatement;

use super::retries::RetryExecute;
use super::{Session, SessionError};

/// What the session knows about a prepared statement or portal of a guarded role.
#[derive(Debug, Clone, Default)]
pub(super) struct Prepared {
    pub(super) cap: Option<u64>,
    pub(super) created: Vec<QualifiedName>,
    /// Locks on existing tables the statement takes (held once it runs, until the
    /// transaction ends).
    pub(super) locks: Vec<HeldLock>,
    /// A SAVEPOINT, RELEASE or ROLLBACK TO: the subtransactions it moves when it runs.
    pub(super) savepoint: Option<TransactionKind>,
    /// A data-modifying statement: executed under locks taken since it was judged (a
    /// statement prepared before the DDL, or a pipeline that parses everything before
    /// executing), it is judged again.
    pub(super) recheck: Option<Recheck>,
    /// A routine it runs takes some of `locks` (see `Verdict::locks_in_routines`).
    pub(super) locks_in_routines: bool,
    /// How it is run again when its lock wait gives up (one statement only).
    pub(super) retrying: Option<Retrying>,
    /// BEGIN, COMMIT, ROLLBACK or PREPARE TRANSACTION: where a batch's transaction block
    /// starts or ends before the server's ReadyForQuery says so (`Session::status_now`),
    /// and a COMMIT judges the renames before it (rule rename_table).
    pub(super) control: Option<TransactionKind>,
    /// A CREATE VIEW, DROP, rename or move: what it changes in the renames its
    /// transaction must cover with a view by its commit (rule rename_table), followed
    /// when it runs.
    pub(super) renames: Option<Statement>,
    /// The renames it leaves without a view (`Transaction::unmet_added_by`): a rename or
    /// move, a routine that makes one, a view dropped or renamed away.
    pub(super) unmet_renames: Vec<(PendingRename, bool)>,
}

/// The batch's last Bind of a statement that may be run again (none is kept for others):
/// what its Execute binds the portal with again.
#[derive(Debug, Clone)]
pub(super) struct LastBind {
    pub(super) portal: String,
    /// The prepared statement it bound (a Parse or Close of it since makes the Bind stale).
    pub(super) statement: String,
    pub(super) message: Message,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Recheck {
    sql: String,
    /// The locks its transaction held when it was judged.
    judged_under: Vec<HeldLock>,
    /// What its judgement reported then (not repeated at Execute).
    reported: Vec<Report>,
}

impl Session {
    pub(super) async fn parse(&mut self, message: Message) -> Result<(), SessionError> {
        self.catch_up_with_the_server().await?;
        self.settle_restore().await?;
        self.aborted_by_hidden_work = None;
        self.verify_routine_locks().await?;
        self.lock_hold_warn_if_due();
        self.forget_tables_of_ended_transaction();
        let (name, sql) = {
            let parse = Parse::decode(&message).map_err(SessionError::Client)?;
            self.bound_statement_changes(b'S', parse.name);
            if let Some(error) = self.take_abort_by_hidden_work() {
                // The client's cancel met the proxy's question: the client's Parse gets it.
                let refusal = Refusal::new("aborted", parse.query);
                self.refuse_extended(Vec::new(), refusal, Some(error));
                return Ok(());
            }
            // A transaction statement is followed when it runs (`Prepared::control`).
            if self.passed_before(parse.query) && !::parse::transaction_control_word(parse.query) {
                let prepared = Prepared {
                    recheck: Some(Recheck {
                        sql: parse.query.to_string(),
                        ..Recheck::default()
                    }),
                    ..Prepared::default()
                };
                self.remember_statement(parse.name.to_string(), prepared);
                self.send(&message, Owner::Client, Expect::Parse);
                return Ok(());
            }
            (parse.name.to_string(), parse.query.to_string())
        };
        let parsed = match self.parse_as_the_server_would(&sql) {
            Ok(parsed) => parsed,
            Err((report, allowable)) => match unchecked(report, &self.settings, allowable) {
                Unchecked::Pass(warning) => {
                    self.send_notices(warning.into_iter().collect()).await?;
                    self.remember_statement(name, Prepared::default());
                    self.send(&message, Owner::Client, Expect::Parse);
                    return Ok(());
                }
                Unchecked::Refuse(report) => {
                    let refusal = Refusal::new(unchecked::RULE, &sql);
                    let server_error = self.server_syntax_error(&sql, None).await?;
                    self.refuse_extended(vec![report], refusal, server_error);
                    return Ok(());
                }
            },
        };
        let control = match parsed.as_slice() {
            [only] => match &only.statement.stmt {
                Stmt::Transaction(
                    kind @ (TransactionKind::Begin
                    | TransactionKind::Commit
                    | TransactionKind::Rollback
                    | TransactionKind::Prepare),
                ) => Some(kind.clone()),
                _ => None,
            },
            _ => None,
        };
        let savepoint = match parsed.as_slice() {
            [only] => match &only.statement.stmt {
                Stmt::Transaction(
                    kind @ (TransactionKind::Savepoint(_)
                    | TransactionKind::Release(_)
                    | TransactionKind::RollbackToSavepoint(_)),
                ) => Some(kind.clone()),
                _ => None,
            },
            _ => None,
        };
        if self.nothing_will_run(&parsed) {
            let prepared = Prepared {
                control,
                ..Prepared::default()
            };
            self.remember_statement(name, prepared);
            self.send(&message, Owner::Client, Expect::Parse);
            return Ok(());
        }
        self.judging_named_parse = !name.is_empty();
        let verdict = self.judge_remembered(&sql, None, &parsed).await;
        self.judging_named_parse = false;
        let verdict = verdict?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.refuse_extended(Vec::new(), Refusal::new("aborted", &sql), Some(error));
            return Ok(());
        }
        if let Some(refusal) = verdict.refusal.clone() {
            let server_error = self.server_syntax_error(&sql, Some(&parsed)).await?;
            // The server's syntax error, if it has one, is what the client gets: nothing of
            // the statement was judged to run.
            if server_error.is_none() {
                self.log_acknowledgements(&verdict.reports, &sql);
            }
            self.refuse_extended(verdict.reports, refusal, server_error);
            return Ok(());
        }
        let reported = verdict.reports.clone();
        self.log_acknowledgements(&verdict.reports, &sql);
        self.send_notices(verdict.reports).await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.refuse_extended(Vec::new(), Refusal::new("aborted", &sql), Some(error));
            return Ok(());
        }
        let prepared = Prepared {
            cap: verdict.caps.iter().flatten().copied().min(),
            created: verdict.created,
            // A statement's own locks: those its transaction holds, less those held before.
            locks: verdict
                .transaction
                .locks()
                .iter()
                .filter(|lock| !self.transaction.locks().contains(lock))
                .cloned()
                .collect(),
            savepoint,
            // An EXECUTE is judged again as the query it ran when judged.
            recheck: (parsed
                .iter()
                .any(|parsed| matches!(parsed.statement.stmt, Stmt::Dml(_)))
                || !verdict.executed_queries.is_empty())
            .then(|| Recheck {
                sql: verdict.executed_queries.first().cloned().unwrap_or_else(|| sql.clone()),
                judged_under: verdict.transaction.locks().to_vec(),
                reported,
            }),
            locks_in_routines: verdict.locks_in_routines,
            retrying: match &verdict.retrying[..] {
                [only] => only.clone(),
                _ => None,
            },
            control,
            renames: match parsed.as_slice() {
                [only]
                    if matches!(
                        only.statement.stmt,
                        Stmt::CreateView(_) | Stmt::Drop(_) | Stmt::Rename(_) | Stmt::SetSchema(_)
                    ) =>
                {
                    Some(only.statement.clone())
                }
                _ => None,
            },
            unmet_renames: self.transaction.unmet_added_by(&verdict.transaction),
        };
        self.cap_batch_for(&prepared).await?;
        self.remember_statement(name, prepared);
        self.send(&message, Owner::Client, Expect::Parse);
        Ok(())
    }

    /// What a Parse prepares under `name`. The server refuses a Parse of a name in use
    /// (or any Parse in a failed transaction) and keeps the statement it has: a named
    /// statement already known keeps the stricter of both (the smaller cap, every table
    /// created), so a refused Parse cannot uncap the statement the server still holds. The
    /// unnamed statement is replaced by every Parse, failed or not.
    fn remember_statement(&mut self, name: String, prepared: Prepared) {
        let merged = match self.statements.get(&name) {
            Some(known) if !name.is_empty() => {
                let mut created = known.created.clone();
                created.extend(
                    prepared
                        .created
                        .iter()
                        .filter(|table| !known.created.contains(table))
                        .cloned(),
                );
                Prepared {
                    cap: match (known.cap, prepared.cap) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    created,
                    locks: known.locks.iter().chain(&prepared.locks).cloned().collect(),
                    savepoint: known.savepoint.clone(),
                    recheck: known.recheck.clone(),
                    locks_in_routines: known.locks_in_routines || prepared.locks_in_routines,
                    // The server keeps the statement it has: retried only if both agree.
                    retrying: known
                        .retrying
                        .clone()
                        .filter(|known| prepared.retrying.as_ref() == Some(known)),
                    // A name DEALLOCATE or DISCARD ALL freed is the new statement's.
                    renames: known.renames.clone().or_else(|| prepared.renames.clone()),
                    unmet_renames: known
                        .unmet_renames
                        .iter()
                        .chain(&prepared.unmet_renames)
                        .cloned()
                        .collect(),
                    control: known.control.clone().or_else(|| prepared.control.clone()),
                }
            }
            _ => prepared,
        };
        self.statements.insert(name, merged);
    }

    pub(super) async fn bind(&mut self, message: Message) -> Result<(), SessionError> {
        let bind = bind::Bind::decode(&message).map_err(SessionError::Client)?;
        if self.tracker.idle() {
            self.lock_hold_warn_if_due();
        }
        let prepared = self.statements.get(bind.statement).cloned().unwrap_or_default();
        let portal = bind.portal.to_string();
        if prepared.retrying.is_some() {
            self.last_bind = Some(LastBind {
                portal: portal.clone(),
                statement: bind.statement.to_string(),
                message: message.clone(),
            });
        }
        self.cap_batch_for(&prepared).await?;
        self.portals.insert(portal, prepared);
        self.send(&message, Owner::Client, Expect::Bind);
        Ok(())
    }

    pub(super) fn describe(&mut self, message: Message) -> Result<(), SessionError> {
        let expect = match describe::kind(&message).map_err(SessionError::Client)? {
            b'S' => Expect::DescribeStatement,
            _ => Expect::DescribePortal,
        };
        self.send(&message, Owner::Client, expect);
        Ok(())
    }

    pub(super) fn execute(&mut self, message: Message) -> Result<(), SessionError> {
        let portal = execute::portal(&message).map_err(SessionError::Client)?;
        let prepared = self.portals.get(portal).cloned().unwrap_or_default();
        if let Some(recheck) = &prepared.recheck {
            let new_lock = self.transaction.locks().iter().any(|lock| {
                !recheck
                    .judged_under
                    .iter()
                    .any(|judged| judged.table == lock.table && judged.level >= lock.level)
            });
            let writes = |parsed: &Vec<ParsedStatement>| {
                parsed
                    .iter()
                    .any(|parsed| matches!(parsed.statement.stmt, Stmt::Dml(_)))
            };
            if let Some(parsed) = new_lock
                .then(|| self.parse_as_the_server_would(&recheck.sql).ok())
                .flatten()
                .filter(writes)
            {
                let verdict = self.judge_again(&parsed);
                let reports: Vec<Report> = verdict
                    .reports
                    .into_iter()
                    .filter(|report| !recheck.reported.contains(report))
                    .collect();
                self.log_acknowledgements(&reports, &recheck.sql);
                if let Some(refusal) = verdict.refusal {
                    self.refuse_extended(reports, refusal, None);
                    return Ok(());
                }
                self.send_reports(&reports);
            }
        }
        // What the transaction holds before this statement: whether its retries would keep
        // one of those locks is decided now, not when it was prepared.
        let held_before = if prepared.retrying.is_some() {
            self.transaction.locks().to_vec()
        } else {
            Vec::new()
        };
        self.transaction.record_created(&prepared.created);
        self.transaction.record_locks(&prepared.locks);
        self.lock_hold.routine_locks_unverified |= prepared.locks_in_routines;
        if let Some(kind) = &prepared.savepoint {
            self.transaction.savepoint_ran(kind);
            if matches!(kind, TransactionKind::RollbackToSavepoint(_)) && self.status_now() == TransactionStatus::Failed
            {
                // It makes a failed block usable again.
                self.tracker.heading = Some(TransactionStatus::InBlock);
            }
        }
        match &prepared.control {
            Some(TransactionKind::Begin) if self.status_now() == TransactionStatus::Idle => {
                self.tracker.heading = Some(TransactionStatus::InBlock);
            }
            Some(TransactionKind::Begin) => {}
            // The renames are set aside until the server says the transaction ended (an
            // error before it in the batch makes the server skip it).
            Some(TransactionKind::Commit | TransactionKind::Prepare) => {
                // A failed block's COMMIT rolls back (a ROLLBACK TO SAVEPOINT executed in the
                // batch revives it: see `heading`).
                if self.status_now() != TransactionStatus::Failed && self.renames_refused() {
                    return Ok(());
                }
                self.set_renames_aside();
            }
            Some(_) => self.set_renames_aside(),
            None => {}
        }
        match prepared.renames.as_ref().map(|statement| (statement, &statement.stmt)) {
            Some((statement, Stmt::CreateView(_))) => self.transaction.follow_renames(statement, &policy::NoCatalog),
            Some((statement, _)) => self.transaction.unview_by(statement),
            None => {}
        }
        self.transaction.require_renames(&prepared.unmet_renames);
        // A rename outside a transaction block (the last answer said so, and nothing
        // since begins one) commits at the batch's end.
        let renames = prepared.unmet_renames.iter().any(|(_, made)| *made);
        if renames && self.status_now() == TransactionStatus::Idle && self.renames_refused() {
            return Ok(());
        }
        let first_of_batch = self.batch_statements == 0;
        self.batch_statements += 1;
        // Run again if its lock wait gives up: the first statement of its batch, its
        // portal bound in the batch (a later batch's portal may be gone after a failure).
        let bind = self
            .last_bind
            .as_ref()
            .filter(|bound| bound.portal == portal)
            .map(|bound| bound.message.clone());
        let retry = prepared
            .retrying
            .clone()
            .filter(|_| first_of_batch && self.tracker.server_listening())
            .zip(bind)
            .map(|(retrying, bind)| RetryExecute {
                retrying: retrying.holding(&held_before, &self.settings),
                bind,
                execute: message.clone(),
                portal: portal.to_string(),
                in_block: self.tracker.status == TransactionStatus::InBlock,
                started: Instant::now(),
                cancels_seen: self.cancels_so_far(),
            });
        match prepared.cap {
            // Capped for the whole batch already, and nothing of the client's has run since
            // (see `cap_batch_for`).
            Some(_) if first_of_batch && self.restore_after_sync.is_some() => match retry {
                Some(retry) => {
                    // Held back from here to the Sync (`sync_with_retries`).
                    self.tracker.set_capturing(true);
                    self.send(&message, Owner::Client, Expect::Execute);
                    self.retry_execute = Some(retry);
                }
                None => self.send(&message, Owner::Client, Expect::Execute),
            },
            // Otherwise a hidden Execute goes first: such a statement then fails ("cannot
            // be executed within a pipeline") rather than run without the cap. If the cap
            // fails, the server skips the client's Execute: the error is the client's.
            // In a transaction block the client opened before the batch, a statement that
            // may be run again runs under a hidden savepoint.
            Some(cap) if self.tracker.server_listening() => {
                let batch = self.new_unclaimed_batch();
                self.send_hidden_statement(batch, 0, &set_cap_sql(cap, true), OnError::Client);
                match retry.filter(|retry| retry.in_block) {
                    Some(retry) => {
                        self.tracker.set_capturing(true);
                        self.send_savepoint_before_execute();
                        self.send(&message, Owner::Client, Expect::Execute);
                        self.send_after_execute_in_block();
                        self.retry_execute = Some(retry);
                    }
                    None => {
                        self.send(&message, Owner::Client, Expect::Execute);
                        self.send_hidden_statement(batch, 1, &restore_sql(true), OnError::ClientUnlessAborted);
                    }
                }
            }
            _ => self.send(&message, Owner::Client, Expect::Execute),
        }
        Ok(())
    }

    /// An executed COMMIT or ROLLBACK ends the transaction: its renames are set aside until
    /// the server's answer says it ended (`Session::forget_tables_of_ended_transaction`).
    fn set_renames_aside(&mut self) {
        let renames = self.transaction.take_renames();
        self.renames_set_aside.extend(renames);
        self.tracker.heading = Some(TransactionStatus::Idle);
    }

    /// The renames the transaction commits now (an Execute of COMMIT, or of a rename
    /// outside a block), judged (rule rename_table): true when that refused the Execute.
    fn renames_refused(&mut self) -> bool {
        if self.transaction.renamed_without_view().is_empty() {
            return false;
        }
        let decision = policy::decide_commit(&self.transaction, &self.settings, &policy::NoCatalog);
        let reports = policy::report::reports(&decision);
        if let Some(finding) = decision.rejection() {
            let mut refusal = Refusal::new(finding.rule, "COMMIT");
            refusal.ends_transaction = self.status_now() == TransactionStatus::InBlock;
            self.refuse_extended(reports, refusal, None);
            return true;
        }
        self.send_reports(&reports);
        false
    }

    pub(super) fn close(&mut self, message: Message) -> Result<(), SessionError> {
        let target = close::Close::decode(&message).map_err(SessionError::Client)?;
        self.bound_statement_changes(target.kind, target.name);
        if target.kind == b'S' {
            self.statements.remove(target.name);
        } else {
            self.portals.remove(target.name);
        }
        self.send(&message, Owner::Client, Expect::Close);
        Ok(())
    }

    pub(super) async fn sync(&mut self, message: Message) -> Result<(), SessionError> {
        self.last_bind = None;
        let retry = self.retry_execute.take();
        self.transaction.set_implicit(false);
        if self.tracker.heading == Some(TransactionStatus::InBlock) {
            // The batch's BEGIN opened a block unless an error before it skipped it (and
            // all after it): a batch sent before the answer counts the session as outside
            // one, where a rename is judged at once.
            self.tracker.heading = Some(TransactionStatus::Idle);
        }
        let others_ran = std::mem::take(&mut self.batch_statements) > 1;
        match retry {
            Some(retry) if !others_ran => self.sync_with_retries(message, retry).await?,
            Some(_) => {
                self.tracker.release_capture(&mut self.to_client);
                self.send(&message, Owner::Client, Expect::Sync);
            }
            None => self.send(&message, Owner::Client, Expect::Sync),
        }
        if let Some(restore) = self.restore_after_sync.take() {
            if others_ran {
                // Something else of the client's ran in the batch (a SET
                // lock_timeout, say): put the value back only where it is still
                // the cap (see `settle_restore`).
                self.restore_due = Some(restore);
            } else {
                self.send_restore(restore);
            }
        }
        Ok(())
    }

    /// A Close or Parse of `name` (`kind` 'S': a statement, 'P': a portal): the batch's
    /// last Bind no longer binds what it bound (an Execute is then not run again).
    pub(super) fn bound_statement_changes(&mut self, kind: u8, name: &str) {
        let changed = self.last_bind.as_ref().is_some_and(|bound| match kind {
            b'S' => bound.statement == name,
            _ => bound.portal == name,
        });
        if changed {
            self.last_bind = None;
        }
    }

    /// The first extended-protocol message after a Sync starts a new implicit transaction.
    pub(super) fn open_extended_batch(&mut self) {
        self.forget_tables_of_ended_transaction();
        if !self.transaction.implicit() {
            self.batch_statements = 0;
        }
        self.transaction.set_implicit(true);
    }
}
