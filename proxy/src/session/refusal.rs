//! Refusals and errors: what the client is told in the server's place when the proxy
//! refuses a session or a statement, or when the server's own error is the answer.

use bytes::{Bytes, BytesMut};
use policy::report::Report;
use policy::Stmt;

use crate::guard::Refusal;
use crate::messages::error_response::{self, fatal};
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::{parse, query, ready_for_query, FrameError, Message};
use crate::tracker::{Expect, OnError};
use ::parse::ParsedStatement;

use super::{Session, SessionError};

impl Session {
    pub(super) fn refuse_session(&mut self, why: &str) -> SessionError {
        let why = format!("safe_migrations proxy: {why}");
        self.to_client
            .extend_from_slice(&fatal(error_response::INVALID_AUTHORIZATION, &why));
        SessionError::Refused(why)
    }

    /// Tell the client why its session ends, and end it.
    pub(super) async fn protocol_violation(&mut self, err: SessionError) -> SessionError {
        if let SessionError::Client(FrameError::Io(_)) = err {
            return err;
        }
        let message = format!("safe_migrations proxy: closing the session: {err}");
        self.to_client
            .extend_from_slice(&fatal(error_response::PROTOCOL_VIOLATION, &message));
        let _ = self.flush().await;
        err
    }

    /// A refused Query (or FunctionCall): nothing of it runs. The reports go out in its
    /// place, then a hidden statement that fails on the server stands in for it, so the
    /// server's transaction is aborted exactly when the client's would have been, and
    /// its ReadyForQuery (with the server's real status) ends the exchange.
    ///
    /// A refused COMMIT ends its transaction block, rolled back (a hidden ROLLBACK after
    /// the failed statement), as a commit the server fails ends it.
    pub(super) fn refuse_query(&mut self, reports: Vec<Report>, refusal: Refusal) {
        self.log_refusal(&refusal);
        let sqlstate = reports.last().map_or("SM000", |report| report.sqlstate);
        self.send_reports(&reports);
        let batch = self.new_unclaimed_batch();
        let ends = refusal.ends_transaction && self.status_now() != TransactionStatus::Idle;
        let owner = Self::hidden(batch, 0, !ends, OnError::Keep);
        self.send(&query::build(&abort_sql(sqlstate)), owner, Expect::Query);
        if ends {
            let owner = Self::hidden(batch, 1, true, OnError::Keep);
            self.send(&query::build("ROLLBACK"), owner, Expect::Query);
        }
    }

    /// A refused Parse: the reports, then a hidden Parse that fails on the server (so it
    /// discards up to Sync and aborts the transaction as the client expects), and the
    /// client's own messages dropped until its Sync, whose ReadyForQuery is forwarded.
    pub(super) fn refuse_extended(&mut self, reports: Vec<Report>, refusal: Refusal, server_error: Option<Bytes>) {
        match server_error {
            Some(error) => self.tracker.push_synthetic(error, &mut self.to_client),
            None => {
                self.log_refusal(&refusal);
                self.send_reports(&reports);
            }
        }
        let batch = self.new_unclaimed_batch();
        if refusal.ends_transaction && self.status_now() != TransactionStatus::Idle {
            // A refused COMMIT ends its block, rolled back, as a failed commit does.
            self.send_hidden_statement(batch, 0, "ROLLBACK", OnError::Keep);
        } else {
            let owner = Self::hidden(batch, 0, false, OnError::Keep);
            self.send(
                &parse::build(
                    "__safe_migrations_refused",
                    "SELECT pg_catalog.safe_migrations_statement_refused_by_proxy()",
                ),
                owner,
                Expect::Parse,
            );
        }
        self.discard_until_sync = true;
    }

    /// The acknowledgements among `reports`, which go to the client now, for the
    /// statements of `sql`: each logged once (a statement judged again at its Execute
    /// reports only what its Parse did not) and counted.
    pub(super) fn log_acknowledgements(&self, reports: &[Report], sql: &str) {
        for (rule, reason) in reports.iter().filter_map(policy::report::acknowledgement) {
            crate::metrics::acknowledged(rule);
            tracing::info!(
                role = %self.role,
                database = %self.database,
                rule = %rule,
                reason = %reason,
                statement = %policy::sql::first_line(sql),
                "finding acknowledged"
            );
        }
    }

    fn log_refusal(&self, refusal: &Refusal) {
        crate::metrics::refused(&refusal.rule);
        tracing::warn!(
            role = %self.role,
            database = %self.database,
            rule = %refusal.rule,
            statement = %refusal.statement,
            "statement refused"
        );
    }

    /// The client's Query is answered by an ErrorResponse the server gave a hidden
    /// statement in its place, and a ReadyForQuery with the server's present status.
    pub(super) fn answer_with_server_error(&mut self, error: Bytes) {
        let mut bytes = BytesMut::from(&error[..]);
        bytes.extend_from_slice(&ready_for_query::build(self.tracker.status).bytes);
        self.tracker.push_synthetic(bytes.freeze(), &mut self.to_client);
    }

    /// The server's syntax error for `sql`, when the server cannot parse it: then nothing
    /// of it would run, and the client is owed that error (position and all), not a
    /// refusal. The proxy's grammar is a newer major's, which accepts syntax an older
    /// server does not.
    ///
    /// Asked with hidden Parse messages (the server's raw parser reads a Parse as it reads
    /// a Query), only when no batch of the client's is open. The first has `\n;SELECT 1`
    /// appended: always two statements, so a text the server can parse fails with "cannot
    /// insert multiple commands" (no position) before any parse analysis, which would
    /// lock the tables a statement names. Only a syntax error (with a position) asks for
    /// the exact text's error. In a transaction block a failed Parse aborts the
    /// transaction, as the client's statement would have.
    ///
    /// In a transaction block the probe would abort the transaction where the server can
    /// parse the text, so there only the exact text is parsed, and only when Parse will not
    /// analyse it: the proxy read it as statements the server does not analyse at Parse
    /// (`parsed`), or could not read it at all (None: the grammars of PostgreSQL 15 to 18
    /// differ by additions, so the server will almost always fail to read it too).
    pub(super) async fn server_syntax_error(
        &mut self,
        sql: &str,
        parsed: Option<&[ParsedStatement]>,
    ) -> Result<Option<Bytes>, SessionError> {
        if !self.tracker.idle() {
            return Ok(None);
        }
        match self.tracker.status {
            TransactionStatus::Idle => {
                if self.hidden_parse_error(&format!("{sql}\n;SELECT 1")).await?.is_none() {
                    return Ok(None);
                }
                self.hidden_parse_error(sql).await
            }
            // A failed transaction stays failed, and the server parses a Parse before it
            // looks at the transaction (so nothing is analysed): its syntax error first.
            TransactionStatus::Failed => self.hidden_parse_error(sql).await,
            TransactionStatus::InBlock
                if parsed.is_none_or(|parsed| {
                    parsed
                        .iter()
                        .all(|statement| !analysed_at_parse(&statement.statement.stmt))
                }) =>
            {
                self.hidden_parse_error(sql).await
            }
            _ => Ok(None),
        }
    }

    /// Parse `sql` under a hidden name (closed again): the server's ErrorResponse when it
    /// is a syntax error with a position.
    async fn hidden_parse_error(&mut self, sql: &str) -> Result<Option<Bytes>, SessionError> {
        let error = self.hidden_parse(sql, &[]).await?.filter(|error| !error.is_empty());
        Ok(error.filter(|error| {
            let message = Message {
                tag: b'E',
                bytes: error.clone(),
            };
            error_response::sqlstate(&message).as_deref() == Some(error_response::SYNTAX_ERROR)
                && error_response::fields(&message).is_ok_and(|fields| fields.iter().any(|(code, _)| *code == b'P'))
        }))
    }
}

/// Does the server analyse `stmt` when it is parsed (opening, and locking, the relations
/// it reads)? Plannable statements and the utility statements that hold a query do.
fn analysed_at_parse(stmt: &Stmt) -> bool {
    matches!(
        stmt,
        Stmt::Query | Stmt::CreateTableAs { .. } | Stmt::CreateView(_) | Stmt::Routine(_) | Stmt::Other { .. }
    )
}

/// A statement that fails with `sqlstate`, logged by the server as refused by the proxy.
fn abort_sql(sqlstate: &str) -> String {
    let code: String = sqlstate.chars().filter(char::is_ascii_alphanumeric).take(5).collect();
    let code = if code.len() == 5 { code } else { "SM000".to_string() };
    format!(
        "DO $safe_migrations$BEGIN RAISE EXCEPTION 'safe_migrations: statement refused by the proxy' \
         USING ERRCODE = '{code}'; END$safe_migrations$"
    )
}
