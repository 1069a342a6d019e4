//! One client session: startup and auth relayed, the role's policy read from the
//! server, then either a byte-for-byte passthrough (mode off) or the guarded state
//! machine between the client's messages and the server's.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use policy::model::TransactionKind;
use policy::report::Level;
use policy::report::Report;
use policy::settings::{parse_duration_ms, SETTINGS};
use policy::{Mode, QualifiedName, Settings, Stmt, Transaction};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::catalog::{Answer, Question};
use super::clean_verdicts::{passes_unchanged, rememberable_shape, CleanVerdicts};
use super::config::Config;
use super::guard::{self, unchecked, unchecked_report, Facts, Refusal, Unchecked, Verdict};
use super::lock_timeout::{restore_sql, rewrite, session_restore_sql, set_cap_sql, set_session_cap_sql};
use super::messages::authentication::{
    auth_code, expects_client_answer, sasl_initial_response, strip_channel_binding, AUTH_SASL,
};
use super::messages::error_response::{self, encode_report, fatal};
use super::messages::function_call::{function_oid, is_user_defined, SET_CONFIG_OID};
use super::messages::parse::Parse;
use super::messages::ready_for_query::TransactionStatus;
use super::messages::startup::Startup;
use super::messages::{
    bind, close, describe, execute, parse, printable, query, ready_for_query, sync, Frame, FrameError, Large, Message,
    MessageReader, PassError,
};
use super::passthrough::{self, BusyPoll};
use super::tls::Stream;
use super::tracker::{Expect, HiddenResult, OnError, Owner, Tracker};
use ::parse::{parse_sql, reads_the_same_with_nonstandard_strings, ParsedStatement};

/// Messages up to this size are read whole. Longer CopyData, DataRow and Bind messages
/// pass through in pieces and a statement is held whole only up to the session's
/// `max_statement_bytes`: that, plus a few buffers, bounds a session's memory whatever
/// its peers send.
const WHOLE_UP_TO: usize = 1 << 20;

type Reader = MessageReader<ReadHalf<Box<dyn Stream>>>;
type Writer = WriteHalf<Box<dyn Stream>>;
type Rows = Vec<Vec<Option<String>>>;

/// Why a session ended abnormally.
#[derive(Debug)]
pub enum SessionError {
    Client(FrameError),
    Server(FrameError),
    /// The proxy refused the session (the client was told why).
    Refused(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Client(err) => write!(f, "client: {err}"),
            SessionError::Server(err) => write!(f, "server: {err}"),
            SessionError::Refused(why) => f.write_str(why),
        }
    }
}

/// What the session knows about a prepared statement or portal of a guarded role.
#[derive(Debug, Clone, Default)]
struct Prepared {
    cap: Option<u64>,
    created: Vec<QualifiedName>,
}

pub struct Session {
    role: String,
    settings: Settings,
    client_rd: Reader,
    client_wr: Writer,
    server_rd: Reader,
    server_wr: Writer,
    tracker: Tracker,
    to_client: BytesMut,
    to_server: BytesMut,
    /// The session's transaction: the relations created in it, and whether an
    /// extended-protocol batch is open (until its Sync the batch runs in one implicit
    /// transaction, so a table created earlier in the batch is new). Its status is the
    /// tracker's (the last ReadyForQuery).
    transaction: Transaction,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Prepared>,
    /// A Parse was refused: the client's messages are dropped until its Sync.
    discard_until_sync: bool,
    /// The cap was set session-wide before the batch: how to restore it after its Sync.
    restore_after_sync: Option<Restore>,
    /// Client statements run since the last Sync (Executes, and Queries or FunctionCalls
    /// sent inside the batch).
    batch_statements: usize,
    /// A restore sent after a Sync (its hidden batch), until it is known to have run: one
    /// that met a failed transaction (a BEGIN and an error in the batch) is sent again
    /// once the server can run it.
    restore_in_flight: Vec<(u64, Restore)>,
    /// A restore that did not stick (it met a failed transaction, or ran inside a block
    /// the client's batch opened, which a ROLLBACK undoes): checked again once the
    /// session is outside a transaction block.
    restore_due: Option<Restore>,
    /// Hidden batches whose results nobody reads (see `new_unclaimed_batch`).
    unclaimed: Vec<u64>,
    /// See `take_abort_by_hidden_work`.
    aborted_by_hidden_work: Option<Bytes>,
    server_version_num: Option<u32>,
    next_batch: u64,
    /// Statements that passed unchanged, to skip parsing and deciding them again.
    clean: CleanVerdicts,
    /// The longest statement (Query, Parse ...) the session reads whole to decide.
    max_statement_bytes: usize,
}

/// How a capped Query's cap is taken off again.
enum CapRestore {
    /// Set session-wide (outside a transaction block).
    Session(Restore),
    /// Set with SET LOCAL: this statement puts the client's value back.
    Local(String),
}

/// How to put the client's lock_timeout back after a session-wide cap.
#[derive(Debug, Clone)]
struct Restore {
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

/// Startup parameters that would set the policy (`-c safe_migrations.mode=off`).
pub fn startup_names_policy(startup: &Startup) -> Option<String> {
    startup.parameters.iter().find_map(|(name, value)| {
        if name.starts_with("safe_migrations.") {
            Some(name.clone())
        } else if name == "options" && value.contains("safe_migrations") {
            Some(format!("options={value}"))
        } else {
            None
        }
    })
}

/// Relay authentication; returns the server's first ReadyForQuery (not yet relayed).
async fn relay_auth(
    client_rd: &mut Reader,
    client_wr: &mut Writer,
    server_rd: &mut Reader,
    server_wr: &mut Writer,
) -> Result<Option<Message>, SessionError> {
    // The server offered channel binding and the proxy hid it.
    let mut hid_channel_binding = false;
    loop {
        let Some(message) = server_rd.next().await.map_err(SessionError::Server)? else {
            return Ok(None);
        };
        match message.tag {
            b'R' => {
                let code = auth_code(&message).map_err(SessionError::Server)?;
                let forwarded = if code == AUTH_SASL {
                    let (stripped, hid) = strip_channel_binding(&message).map_err(SessionError::Server)?;
                    hid_channel_binding = hid;
                    stripped
                } else {
                    message
                };
                write(client_wr, &forwarded.bytes).await.map_err(SessionError::Client)?;
                if expects_client_answer(code) {
                    let Some(answer) = client_rd.next().await.map_err(SessionError::Client)? else {
                        return Ok(None);
                    };
                    if code == AUTH_SASL && answer.tag == b'p' {
                        let (mechanism, flag) = sasl_initial_response(&answer).map_err(SessionError::Client)?;
                        // 'y' = "I support channel binding, the server did not offer it": the
                        // server, which does, would refuse it as a downgrade, cryptically.
                        if mechanism.ends_with("-PLUS") || (flag == Some(b'y') && hid_channel_binding) {
                            let why = "safe_migrations proxy: SCRAM channel binding cannot pass through the proxy \
                                 (TLS ends at the proxy, so the server would see a different channel); connect \
                                 with channel_binding=disable, or to a proxy leg without TLS (sslmode=disable on \
                                 a loopback address)"
                                .to_string();
                            let _ = write(client_wr, &fatal(error_response::INVALID_AUTHORIZATION, &why)).await;
                            return Err(SessionError::Refused(why));
                        }
                    }
                    write(server_wr, &answer.bytes).await.map_err(SessionError::Server)?;
                }
            }
            b'Z' => return Ok(Some(message)),
            b'E' => {
                write(client_wr, &message.bytes).await.map_err(SessionError::Client)?;
                return Ok(None);
            }
            _ => write(client_wr, &message.bytes).await.map_err(SessionError::Client)?,
        }
    }
}

async fn write(writer: &mut Writer, bytes: &[u8]) -> Result<(), FrameError> {
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Run a session after the startup packet: connect, relay auth, read the policy, serve.
pub async fn run(
    client: Box<dyn Stream>,
    startup: Startup,
    upstream: &super::backend::Upstream,
    config: &Config,
    max_statement_bytes: usize,
    busy_poll: BusyPoll,
) -> Result<(), SessionError> {
    let (client_rd, mut client_wr) = tokio::io::split(client);
    let mut client_rd = MessageReader::new(client_rd);
    let role = startup.parameter("user").unwrap_or_default().to_string();
    if let Some(what) = startup_names_policy(&startup) {
        let why = format!(
            "safe_migrations proxy: startup parameter {what} would change the safe_migrations policy; \
             an administrator sets it with ALTER ROLE ... SET or the proxy's config file"
        );
        let _ = write(&mut client_wr, &fatal(error_response::INSUFFICIENT_PRIVILEGE, &why)).await;
        return Err(SessionError::Refused(why));
    }
    let server = match upstream.connect().await {
        Ok(server) => server,
        Err(reason) => {
            let why = format!("safe_migrations proxy: {reason}");
            let _ = write(&mut client_wr, &fatal(error_response::CONNECTION_FAILURE, &why)).await;
            return Err(SessionError::Refused(why));
        }
    };
    let (server_rd, mut server_wr) = tokio::io::split(server);
    let mut server_rd = MessageReader::new(server_rd);
    write(&mut server_wr, &startup.bytes)
        .await
        .map_err(SessionError::Server)?;
    let Some(ready) = relay_auth(&mut client_rd, &mut client_wr, &mut server_rd, &mut server_wr).await? else {
        return Ok(());
    };
    let status = super::messages::ready_for_query::status(&ready).map_err(SessionError::Server)?;
    let mut session = Session {
        role,
        settings: Settings::default(),
        client_rd,
        client_wr,
        server_rd,
        server_wr,
        tracker: Tracker::new(status),
        to_client: BytesMut::new(),
        to_server: BytesMut::new(),
        transaction: Transaction::default(),
        statements: HashMap::new(),
        portals: HashMap::new(),
        discard_until_sync: false,
        restore_after_sync: None,
        batch_statements: 0,
        restore_in_flight: Vec::new(),
        restore_due: None,
        unclaimed: Vec::new(),
        aborted_by_hidden_work: None,
        server_version_num: None,
        next_batch: 0,
        clean: CleanVerdicts::default(),
        max_statement_bytes,
    };
    session.read_policy(config).await?;
    session.to_client.extend_from_slice(&ready.bytes);
    session.flush().await?;
    if session.settings.mode == Mode::Off {
        return session.passthrough(busy_poll).await;
    }
    tracing::debug!(role = %session.role, mode = session.settings.mode.name(), "guarded session");
    session.serve().await
}

impl Session {
    /// The role's policy: the server's `safe_migrations.*` values, then the file.
    async fn read_policy(&mut self, config: &Config) -> Result<(), SessionError> {
        let columns: Vec<String> = SETTINGS
            .iter()
            .map(|spec| format!("pg_catalog.current_setting('safe_migrations.{}', true)", spec.name))
            .chain([
                "pg_catalog.current_setting('server_version_num')".to_string(),
                "pg_catalog.current_setting('TimeZone')".to_string(),
                "pg_catalog.current_setting('standard_conforming_strings')".to_string(),
                "pg_catalog.current_setting('is_superuser')".to_string(),
            ])
            .collect();
        let sql = format!("SELECT {}", columns.join(", "));
        let mut results = self.hidden_queries(&[sql]).await?;
        let row =
            results.pop().flatten().and_then(|mut rows| rows.pop()).ok_or_else(|| {
                self.refuse_session("cannot read the role's safe_migrations settings from the server")
            })?;
        let mut settings = Settings::default();
        for (spec, value) in SETTINGS.iter().zip(&row) {
            if let Some(value) = value.as_deref().filter(|value| !value.trim().is_empty()) {
                if let Err(err) = settings.apply(spec.name, value) {
                    return Err(self.refuse_session(&err.to_string()));
                }
            }
        }
        self.server_version_num = row.get(SETTINGS.len()).cloned().flatten().and_then(|v| v.parse().ok());
        if self.tracker.timezone.is_none() {
            self.tracker.timezone = row.get(SETTINGS.len() + 1).cloned().flatten();
        }
        if let Some(Some(value)) = row.get(SETTINGS.len() + 2) {
            self.tracker.standard_conforming_strings = value == "on";
        }
        if self.tracker.superuser.is_none() {
            self.tracker.superuser = row
                .get(SETTINGS.len() + 3)
                .cloned()
                .flatten()
                .map(|value| value == "on");
        }
        if let Err(err) = config.apply(&self.role, &mut settings) {
            return Err(self.refuse_session(&err));
        }
        self.settings = settings;
        Ok(())
    }

    fn refuse_session(&mut self, why: &str) -> SessionError {
        let why = format!("safe_migrations proxy: {why}");
        self.to_client
            .extend_from_slice(&fatal(error_response::INVALID_AUTHORIZATION, &why));
        SessionError::Refused(why)
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        // Written from the buffers in place: they keep their capacity for the next batch.
        if !self.to_server.is_empty() {
            write(&mut self.server_wr, &self.to_server)
                .await
                .map_err(SessionError::Server)?;
            self.to_server.clear();
        }
        if !self.to_client.is_empty() {
            write(&mut self.client_wr, &self.to_client)
                .await
                .map_err(SessionError::Client)?;
            self.to_client.clear();
        }
        Ok(())
    }

    /// Mode off: no parsing at all, bytes copied both ways.
    async fn passthrough(self, busy_poll: BusyPoll) -> Result<(), SessionError> {
        let (client_rest, client_rd) = self.client_rd.into_parts();
        let (server_rest, server_rd) = self.server_rd.into_parts();
        let (client, server) = (client_rd.unsplit(self.client_wr), server_rd.unsplit(self.server_wr));
        let (client, server) = match (client.into_tcp(), server.into_tcp()) {
            (Ok(client), Ok(server)) => {
                return passthrough::tcp(&client, &server, client_rest, server_rest, busy_poll)
                    .await
                    .map_err(|failed| match failed {
                        passthrough::Failed::Client(err) => SessionError::Client(err.into()),
                        passthrough::Failed::Server(err) => SessionError::Server(err.into()),
                    });
            }
            (client, server) => (boxed(client), boxed(server)),
        };
        // TLS on a leg: the streams' own copy, one task per direction.
        let (mut client_rd, mut client_wr) = tokio::io::split(client);
        let (mut server_rd, mut server_wr) = tokio::io::split(server);
        let upstream = async {
            server_wr.write_all(&client_rest).await?;
            tokio::io::copy(&mut client_rd, &mut server_wr).await?;
            server_wr.shutdown().await
        };
        let downstream = async {
            client_wr.write_all(&server_rest).await?;
            tokio::io::copy(&mut server_rd, &mut client_wr).await?;
            client_wr.shutdown().await
        };
        let (up, down) = tokio::join!(upstream, downstream);
        up.map_err(|err| SessionError::Client(err.into()))?;
        down.map_err(|err| SessionError::Server(err.into()))?;
        Ok(())
    }

    /// The guarded state machine: one message at a time from either side. Messages that
    /// arrived together are handled together and leave in one write (a pipelined
    /// Parse/Bind/Describe/Execute/Sync, a RowDescription/DataRow/CommandComplete/
    /// ReadyForQuery answer): a write per message would cost a syscall, a packet and a
    /// wake-up of the peer each.
    async fn serve(mut self) -> Result<(), SessionError> {
        loop {
            self.flush().await?;
            tokio::select! {
                frame = self.client_rd.next_frame(WHOLE_UP_TO) => {
                    let mut next = frame;
                    loop {
                        match next {
                            Ok(Some(Frame::Whole(message))) => {
                                if !self.on_client(message).await? {
                                    self.flush().await?;
                                    return Ok(());
                                }
                            }
                            Ok(Some(Frame::Large(large))) => {
                                if let Err(err) = self.on_client_large(large).await {
                                    return Err(self.protocol_violation(err).await);
                                }
                            }
                            Ok(None) => return Ok(()),
                            Err(err) => return Err(self.protocol_violation(SessionError::Client(err)).await),
                        }
                        next = match self.client_rd.buffered_frame(WHOLE_UP_TO) {
                            Ok(None) => break,
                            more => more,
                        };
                    }
                }
                frame = self.server_rd.next_frame(WHOLE_UP_TO) => {
                    let mut next = frame;
                    loop {
                        match next {
                            Ok(Some(Frame::Whole(message))) => {
                                if let Err(err) = self.tracker.on_server(message, &mut self.to_client) {
                                    return Err(self.protocol_violation(SessionError::Server(err)).await);
                                }
                            }
                            Ok(Some(Frame::Large(large))) => {
                                if let Err(err) = self.on_server_large(large).await {
                                    return Err(self.protocol_violation(err).await);
                                }
                            }
                            Ok(None) => {
                                self.flush().await?;
                                return Ok(());
                            }
                            Err(err) => return Err(self.protocol_violation(SessionError::Server(err)).await),
                        }
                        next = match self.server_rd.buffered_frame(WHOLE_UP_TO) {
                            Ok(None) => break,
                            more => more,
                        };
                    }
                }
            }
        }
    }

    /// Tell the client why its session ends, and end it.
    async fn protocol_violation(&mut self, err: SessionError) -> SessionError {
        if let SessionError::Client(FrameError::Io(_)) = err {
            return err;
        }
        let message = format!("safe_migrations proxy: closing the session: {err}");
        self.to_client
            .extend_from_slice(&fatal(error_response::PROTOCOL_VIOLATION, &message));
        let _ = self.flush().await;
        err
    }

    fn send(&mut self, message: &Message, owner: Owner, expect: Expect) {
        self.to_server.extend_from_slice(&message.bytes);
        self.tracker.push(owner, expect, &mut self.to_client);
    }

    fn hidden(batch: u64, index: usize, forward_ready: bool, on_error: OnError) -> Owner {
        Owner::Hidden {
            batch,
            index,
            forward_ready,
            on_error,
        }
    }

    fn new_batch(&mut self) -> u64 {
        self.next_batch += 1;
        self.next_batch
    }

    /// A hidden batch whose results nobody reads: dropped once answered
    /// (`forget_answered_batches`), so a long session does not pile them up.
    fn new_unclaimed_batch(&mut self) -> u64 {
        let batch = self.new_batch();
        self.unclaimed.push(batch);
        batch
    }

    fn forget_answered_batches(&mut self) {
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

    /// Handle one client message; false when the session ends.
    async fn on_client(&mut self, message: Message) -> Result<bool, SessionError> {
        if self.discard_until_sync {
            match message.tag {
                b'S' => self.discard_until_sync = false,
                b'X' => {}
                _ => return Ok(true),
            }
        }
        let client = Owner::Client;
        if matches!(message.tag, b'Q' | b'P' | b'B' | b'F') {
            self.forget_answered_batches();
            self.settle_restore().await?;
        }
        if matches!(message.tag, b'Q' | b'F') {
            // It runs SQL of the client's (SET lock_timeout = 0 ...): a batch's session
            // cap no longer stands for the next Execute.
            self.batch_statements += 1;
        }
        if matches!(message.tag, b'P' | b'B' | b'E' | b'D' | b'C') {
            self.open_extended_batch();
        }
        match message.tag {
            b'Q' => self.simple_query(message).await?,
            b'P' => self.parse(message).await?,
            b'B' => {
                let bind = bind::Bind::decode(&message).map_err(SessionError::Client)?;
                let prepared = self.statements.get(bind.statement).cloned().unwrap_or_default();
                let portal = bind.portal.to_string();
                self.cap_batch_for(&prepared).await?;
                self.portals.insert(portal, prepared);
                self.send(&message, client, Expect::Bind);
            }
            b'E' => self.execute(message)?,
            b'D' => {
                let expect = match describe::kind(&message).map_err(SessionError::Client)? {
                    b'S' => Expect::DescribeStatement,
                    _ => Expect::DescribePortal,
                };
                self.send(&message, client, expect);
            }
            b'C' => {
                let target = close::Close::decode(&message).map_err(SessionError::Client)?;
                if target.kind == b'S' {
                    self.statements.remove(target.name);
                } else {
                    self.portals.remove(target.name);
                }
                self.send(&message, client, Expect::Close);
            }
            b'S' => {
                self.send(&message, client, Expect::Sync);
                self.transaction.set_implicit(false);
                let others_ran = std::mem::take(&mut self.batch_statements) > 1;
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
            }
            b'F' => {
                let oid = function_oid(&message).map_err(SessionError::Client)?;
                if oid == SET_CONFIG_OID {
                    let report = guard::policy_change_report("A FunctionCall of set_config");
                    self.refuse_query(
                        vec![report],
                        Refusal {
                            rule: "policy_change".into(),
                            statement: "FunctionCall set_config".into(),
                        },
                    );
                } else if is_user_defined(oid) {
                    // Built-in functions (the large-object calls libpq makes this way) run no
                    // SQL of the caller's; a user-defined one is a routine whose body the
                    // proxy does not read on this path: fail closed.
                    match unchecked_report(guard::function_call_unchecked(oid), &self.settings) {
                        Unchecked::Pass(warning) => {
                            self.send_notices(warning.into_iter().collect()).await?;
                            self.send(&message, client, Expect::Query);
                        }
                        Unchecked::Refuse(report) => self.refuse_query(
                            vec![report],
                            Refusal {
                                rule: "unparsable".into(),
                                statement: format!("FunctionCall of oid {oid}"),
                            },
                        ),
                    }
                } else {
                    self.send(&message, client, Expect::Query);
                }
            }
            b'c' | b'f' => {
                self.tracker.copy_in = false;
                self.to_server.extend_from_slice(&message.bytes);
            }
            b'X' => {
                self.to_server.extend_from_slice(&message.bytes);
                return Ok(false);
            }
            // CopyData, Flush and anything else: forwarded as is.
            _ => self.to_server.extend_from_slice(&message.bytes),
        }
        Ok(true)
    }

    /// A client message longer than `WHOLE_UP_TO`: CopyData and Bind pass on in pieces
    /// (a Bind's names are read from its start); a statement is read whole up to
    /// `max_statement_bytes` and decided as usual, and refused beyond.
    async fn on_client_large(&mut self, large: Large) -> Result<(), SessionError> {
        if self.discard_until_sync {
            return self.pass_client_body(large, false).await;
        }
        match large.tag {
            b'd' => self.pass_client_body(large, true).await,
            b'B' => {
                let prefix = self
                    .client_rd
                    .peek_body(&large, bind::NAMES_WITHIN)
                    .await
                    .map_err(SessionError::Client)?;
                let (portal, statement) = {
                    let bind = bind::Bind::decode_body(prefix).map_err(SessionError::Client)?;
                    (bind.portal.to_string(), bind.statement.to_string())
                };
                self.open_extended_batch();
                let prepared = self.statements.get(&statement).cloned().unwrap_or_default();
                self.cap_batch_for(&prepared).await?;
                self.portals.insert(portal, prepared);
                self.pass_client_body(large, true).await?;
                self.tracker.push(Owner::Client, Expect::Bind, &mut self.to_client);
                Ok(())
            }
            _ if large.wire_len() <= self.max_statement_bytes => {
                let message = self.client_rd.read_rest(large).await.map_err(SessionError::Client)?;
                self.on_client(message).await.map(|_| ())
            }
            b'Q' | b'P' => {
                let (tag, size) = (large.tag, large.wire_len());
                self.pass_client_body(large, false).await?;
                let report = too_large_report(size, self.max_statement_bytes);
                let refusal = Refusal {
                    rule: "too_large".to_string(),
                    statement: format!("a statement of {size} bytes"),
                };
                if tag == b'Q' {
                    self.forget_tables_of_ended_transaction();
                    self.refuse_query(vec![report], refusal);
                } else {
                    self.open_extended_batch();
                    self.refuse_extended(vec![report], refusal, None);
                }
                Ok(())
            }
            tag => Err(SessionError::Client(FrameError::Malformed(format!(
                "message type '{}' of {} bytes is larger than the proxy accepts ({} bytes, --max-statement-bytes)",
                printable(tag),
                large.wire_len(),
                self.max_statement_bytes
            )))),
        }
    }

    /// Pass a large client message on to the server after everything before it, or
    /// drop it.
    async fn pass_client_body(&mut self, large: Large, forward: bool) -> Result<(), SessionError> {
        let result = if forward {
            self.flush().await?;
            self.server_wr
                .write_all(&large.header)
                .await
                .map_err(|err| SessionError::Server(err.into()))?;
            self.client_rd.pass_body(large, Some(&mut self.server_wr)).await
        } else {
            self.client_rd.pass_body::<Writer>(large, None).await
        };
        result.map_err(|err| match err {
            PassError::Read(err) => SessionError::Client(err),
            PassError::Write(err) => SessionError::Server(err.into()),
        })
    }

    /// A server message longer than `WHOLE_UP_TO`: a DataRow or CopyData for the client
    /// passes on in pieces; anything else is read whole up to `max_statement_bytes`.
    async fn on_server_large(&mut self, large: Large) -> Result<(), SessionError> {
        if matches!(large.tag, b'D' | b'd') {
            let forward = self
                .tracker
                .on_server_streamed(large.tag, &mut self.to_client)
                .map_err(SessionError::Server)?;
            let result = if forward {
                self.flush().await?;
                self.client_wr
                    .write_all(&large.header)
                    .await
                    .map_err(|err| SessionError::Client(err.into()))?;
                self.server_rd.pass_body(large, Some(&mut self.client_wr)).await
            } else {
                self.server_rd.pass_body::<Writer>(large, None).await
            };
            return result.map_err(|err| match err {
                PassError::Read(err) => SessionError::Server(err),
                PassError::Write(err) => SessionError::Client(err.into()),
            });
        }
        if large.wire_len() > self.max_statement_bytes {
            return Err(SessionError::Server(FrameError::Malformed(format!(
                "message type '{}' of {} bytes is larger than the proxy accepts ({} bytes)",
                printable(large.tag),
                large.wire_len(),
                self.max_statement_bytes
            ))));
        }
        let message = self.server_rd.read_rest(large).await.map_err(SessionError::Server)?;
        self.tracker
            .on_server(message, &mut self.to_client)
            .map_err(SessionError::Server)
    }

    async fn simple_query(&mut self, message: Message) -> Result<(), SessionError> {
        self.catch_up_with_the_server().await?;
        self.settle_restore().await?;
        self.aborted_by_hidden_work = None;
        self.forget_tables_of_ended_transaction();
        let text = query::text(&message).map_err(SessionError::Client)?;
        let shape = rememberable_shape(text);
        if self.passed_before(text) || shape.as_ref().is_some_and(|shape| self.passed_before(&shape.text)) {
            self.send(&message, Owner::Client, Expect::Query);
            return Ok(());
        }
        let sql = text.to_string();
        let parsed = match self.parse_as_the_server_would(&sql) {
            Ok(parsed) => parsed,
            Err((report, allowable)) => match unchecked(report, &self.settings, allowable) {
                Unchecked::Pass(warning) => {
                    self.send_notices(warning.into_iter().collect()).await?;
                    self.send(&message, Owner::Client, Expect::Query);
                    return Ok(());
                }
                Unchecked::Refuse(report) => {
                    if let Some(error) = self.server_syntax_error(&sql, None).await? {
                        self.answer_with_server_error(error);
                        return Ok(());
                    }
                    let refusal = Refusal::new("unparsable", &sql);
                    self.refuse_query(vec![report], refusal);
                    return Ok(());
                }
            },
        };
        if self.nothing_will_run(&parsed) {
            self.send(&message, Owner::Client, Expect::Query);
            return Ok(());
        }
        let verdict = self
            .judge_remembered(&sql, shape.map(|shape| shape.text), &parsed)
            .await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.answer_with_server_error(error);
            return Ok(());
        }
        if let Some(refusal) = verdict.refusal.clone() {
            if let Some(error) = self.server_syntax_error(&sql, Some(&parsed)).await? {
                self.answer_with_server_error(error);
                return Ok(());
            }
            self.refuse_query(verdict.reports, refusal);
            return Ok(());
        }
        self.send_notices(verdict.reports).await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.answer_with_server_error(error);
            return Ok(());
        }
        self.transaction.record_created(&verdict.created);
        let caps = &verdict.caps;
        match &caps[..] {
            caps if caps.iter().all(Option::is_none) => self.send(&message, Owner::Client, Expect::Query),
            [Some(cap)] if self.tracker.idle() => self.send_capped_alone(message, *cap).await?,
            _ => self.send_rewritten(&sql, &parsed, caps),
        }
        Ok(())
    }

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
    async fn send_capped_alone(&mut self, message: Message, cap: u64) -> Result<(), SessionError> {
        let restore = match self.tracker.status {
            TransactionStatus::Idle => match self.set_cap_hidden(&set_session_cap_sql(cap)).await? {
                Some(rows) => CapRestore::Session(Restore::after(&rows)),
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
                    self.send(&message, Owner::Client, Expect::Query);
                    return Ok(());
                }
                if self
                    .set_cap_hidden(&format!("SET LOCAL lock_timeout = {cap}"))
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                CapRestore::Local(format!("SET LOCAL lock_timeout = '{}'", shown.replace('\'', "''")))
            }
            _ => {
                self.send(&message, Owner::Client, Expect::Query);
                return Ok(());
            }
        };
        // The restore's ReadyForQuery ends the client's exchange, so nothing of it can
        // come after.
        self.to_server.extend_from_slice(&message.bytes);
        self.tracker.push_query_holding_ready(&mut self.to_client);
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

    /// The client's Query is answered by an ErrorResponse the server gave a hidden
    /// statement in its place, and a ReadyForQuery with the server's present status.
    fn answer_with_server_error(&mut self, error: Bytes) {
        let mut bytes = BytesMut::from(&error[..]);
        bytes.extend_from_slice(&ready_for_query::build(self.tracker.status).bytes);
        self.tracker.push_synthetic(bytes.freeze(), &mut self.to_client);
    }

    fn send_rewritten(&mut self, sql: &str, parsed: &[ParsedStatement], caps: &[Option<u64>]) {
        let starts: Vec<usize> = parsed.iter().map(|statement| statement.offset).collect();
        let rewritten = rewrite(sql, &starts, caps);
        self.to_server.extend_from_slice(&query::build(&rewritten.sql).bytes);
        self.tracker
            .push_segments(Owner::Client, Expect::Query, rewritten.segments, &mut self.to_client);
    }

    async fn parse(&mut self, message: Message) -> Result<(), SessionError> {
        self.catch_up_with_the_server().await?;
        self.settle_restore().await?;
        self.aborted_by_hidden_work = None;
        self.forget_tables_of_ended_transaction();
        let (name, sql) = {
            let parse = Parse::decode(&message).map_err(SessionError::Client)?;
            if self.passed_before(parse.query) {
                self.remember_statement(parse.name.to_string(), Prepared::default());
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
                    let refusal = Refusal::new("unparsable", &sql);
                    let server_error = self.server_syntax_error(&sql, None).await?;
                    self.refuse_extended(vec![report], refusal, server_error);
                    return Ok(());
                }
            },
        };
        if self.nothing_will_run(&parsed) {
            self.remember_statement(name, Prepared::default());
            self.send(&message, Owner::Client, Expect::Parse);
            return Ok(());
        }
        let verdict = self.judge_remembered(&sql, None, &parsed).await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.refuse_extended(Vec::new(), Refusal::new("aborted", &sql), Some(error));
            return Ok(());
        }
        if let Some(refusal) = verdict.refusal.clone() {
            let server_error = self.server_syntax_error(&sql, Some(&parsed)).await?;
            self.refuse_extended(verdict.reports, refusal, server_error);
            return Ok(());
        }
        self.send_notices(verdict.reports).await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.refuse_extended(Vec::new(), Refusal::new("aborted", &sql), Some(error));
            return Ok(());
        }
        let prepared = Prepared {
            cap: verdict.caps.iter().flatten().copied().min(),
            created: verdict.created,
        };
        self.cap_batch_for(&prepared).await?;
        self.remember_statement(name, prepared);
        self.send(&message, Owner::Client, Expect::Parse);
        Ok(())
    }

    fn execute(&mut self, message: Message) -> Result<(), SessionError> {
        let portal = execute::portal(&message).map_err(SessionError::Client)?;
        let prepared = self.portals.get(portal).cloned().unwrap_or_default();
        self.transaction.record_created(&prepared.created);
        let first_of_batch = self.batch_statements == 0;
        self.batch_statements += 1;
        match prepared.cap {
            // Capped for the whole batch already, and nothing of the client's has run since
            // (see `cap_batch_for`).
            Some(_) if first_of_batch && self.restore_after_sync.is_some() => {
                self.send(&message, Owner::Client, Expect::Execute)
            }
            // Otherwise a hidden Execute goes first: such a statement then fails ("cannot
            // be executed within a pipeline") rather than run without the cap. If the cap
            // fails, the server skips the client's Execute: the error is the client's.
            Some(cap) if self.tracker.server_listening() => {
                let batch = self.new_unclaimed_batch();
                self.send_hidden_statement(batch, 0, &set_cap_sql(cap, true), OnError::Client);
                self.send(&message, Owner::Client, Expect::Execute);
                self.send_hidden_statement(batch, 1, &restore_sql(true), OnError::ClientUnlessAborted);
            }
            _ => self.send(&message, Owner::Client, Expect::Execute),
        }
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
                }
            }
            _ => prepared,
        };
        self.statements.insert(name, merged);
    }

    /// A statement that cannot run in a transaction block (CONCURRENTLY forms, VACUUM,
    /// REINDEX or CLUSTER of a partitioned table, ALTER SUBSCRIPTION ... REFRESH ...) must
    /// be the first Execute of its batch: a hidden Execute in front of it would make the
    /// batch a pipeline, where the server refuses it. So when a capped statement's Parse or
    /// Bind starts a batch outside a transaction block, the cap is set session-wide in a
    /// hidden batch of its own just before (waited for: if it fails, the Execute gets the
    /// hidden cap in front of it and fails rather than run uncapped), serves the batch's
    /// first Execute, and is restored after the client's Sync.
    async fn cap_batch_for(&mut self, prepared: &Prepared) -> Result<(), SessionError> {
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
    fn send_restore(&mut self, restore: Restore) -> u64 {
        let batch = self.new_batch();
        self.send_hidden_statement(batch, 0, &restore.sql, OnError::Keep);
        let owner = Self::hidden(batch, 1, false, OnError::Keep);
        self.send(&sync::build(), owner, Expect::Sync);
        self.restore_in_flight.push((batch, restore));
        batch
    }

    /// Before the client's next statement: a restore that did not stick is made again
    /// once the session is outside a transaction block, if lock_timeout is still the cap.
    async fn settle_restore(&mut self) -> Result<(), SessionError> {
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

    /// Parse/Bind/Execute and Close of one hidden statement under a proxy-owned name. The
    /// portal is closed too: an open one would be seen in pg_cursors and would stop a
    /// later COPY FREEZE ("prior transaction activity").
    fn send_hidden_statement(&mut self, batch: u64, index: usize, sql: &str, on_error: OnError) {
        let name = format!("__safe_migrations_{batch}_{index}");
        let owner = Self::hidden(batch, index, false, on_error);
        self.send(&parse::build(&name, sql), owner, Expect::Parse);
        self.send(&bind::build(&name, &name), owner, Expect::Bind);
        self.send(&execute::build(&name), owner, Expect::Execute);
        self.send(&close::build_portal(&name), owner, Expect::Close);
        self.send(&close::build_statement(&name), owner, Expect::Close);
    }

    /// Run one hidden statement and wait for it: its rows, or the server's ErrorResponse.
    async fn hidden_statement(&mut self, sql: &str) -> Result<Result<Rows, Bytes>, SessionError> {
        let result = self.hidden_results(&[sql.to_string()]).await?.pop().flatten();
        Ok(match result {
            Some(HiddenResult { error: Some(error), .. }) => Err(error),
            Some(result) if !result.failed => Ok(result.rows),
            _ => Err(error_response::error_bytes(
                error_response::PROTOCOL_VIOLATION,
                "safe_migrations proxy: the server did not run the proxy's lock_timeout statement",
            )),
        })
    }

    /// Run hidden queries on the session; each answer is None when its query failed or
    /// the server could not run it now (aborted transaction, COPY, discarding to Sync).
    async fn hidden_queries(&mut self, sqls: &[String]) -> Result<Vec<Option<Rows>>, SessionError> {
        Ok(self
            .hidden_results(sqls)
            .await?
            .into_iter()
            .map(|result| result.filter(|result| !result.failed).map(|result| result.rows))
            .collect())
    }

    /// Run hidden statements on the session and wait for their results (None where the
    /// server could not run them now: aborted transaction, COPY, discarding to Sync).
    async fn hidden_results(&mut self, sqls: &[String]) -> Result<Vec<Option<HiddenResult>>, SessionError> {
        if sqls.is_empty() || !self.tracker.server_listening() || self.tracker.status == TransactionStatus::Failed {
            return Ok((0..sqls.len()).map(|_| None).collect());
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
        }
        Ok(results)
    }

    /// The error that aborted the client's transaction block while the proxy worked on
    /// the client's message: the client's message is answered with it (it would not run
    /// now), so the client learns why, as it would have without the proxy.
    fn take_abort_by_hidden_work(&mut self) -> Option<Bytes> {
        self.aborted_by_hidden_work.take()
    }

    /// Relay the server's messages until every message of hidden batch `batch` is answered.
    async fn wait_for_batch(&mut self, batch: u64) -> Result<(), SessionError> {
        self.relay_server_until(|tracker| !tracker.batch_pending(batch)).await
    }

    /// When the client pipelined messages whose answers are still to come, relay them
    /// first, so that the transaction status (and standard_conforming_strings) the next
    /// decision reads is the present one, not the one before those messages. Only
    /// outside a batch: inside one the server answers nothing before its Sync; and not
    /// into COPY, which waits for the client.
    async fn catch_up_with_the_server(&mut self) -> Result<(), SessionError> {
        if !self.tracker.quiet() {
            return Ok(());
        }
        self.relay_server_until(|tracker| tracker.idle() || !tracker.quiet())
            .await
    }

    /// Relay the server's messages (to the client, or to the hidden statements they
    /// answer) until `done`; large rows and COPY data pass through in pieces as in `serve`.
    async fn relay_server_until(&mut self, done: impl Fn(&Tracker) -> bool) -> Result<(), SessionError> {
        while !done(&self.tracker) {
            self.flush().await?;
            match self
                .server_rd
                .next_frame(WHOLE_UP_TO)
                .await
                .map_err(SessionError::Server)?
            {
                Some(Frame::Whole(message)) => self
                    .tracker
                    .on_server(message, &mut self.to_client)
                    .map_err(SessionError::Server)?,
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

    /// Outside a transaction block, the tables created in the last one are old tables
    /// now (as the extension's relcache says): forget them before the next message.
    fn forget_tables_of_ended_transaction(&mut self) {
        self.transaction.set_status(self.tracker.status);
        self.transaction.forget_ended();
    }

    /// The first extended-protocol message after a Sync starts a new implicit transaction.
    fn open_extended_batch(&mut self) {
        self.forget_tables_of_ended_transaction();
        if !self.transaction.implicit() {
            self.batch_statements = 0;
        }
        self.transaction.set_implicit(true);
    }

    /// Do the tables in `created` still count as created in the running transaction?
    /// Inside a transaction block, and inside an extended-protocol batch (its implicit
    /// transaction lasts until Sync).
    fn created_tables_count(&self) -> bool {
        self.tracker.status.in_block() || self.transaction.implicit()
    }

    /// `sql` split and parsed as the server will read it, or why the proxy cannot.
    ///
    /// The grammar is libpg_query's; the session's `standard_conforming_strings` (which
    /// the server reports in ParameterStatus) decides what a backslash in a '...' literal
    /// does. With it off, a literal can end where the proxy's reading of it does not and
    /// hide a statement inside it. The rules, and the lexer that finds function calls,
    /// read literals as standard strings, so such a statement is judged only when both
    /// readings give the same tree; otherwise the proxy cannot check it.
    /// The error says whether `unparsable = allow` may let the text through (syntax the
    /// proxy lacks) or not (a text the server may read another way).
    fn parse_as_the_server_would(&self, sql: &str) -> Result<Vec<ParsedStatement>, (Report, bool)> {
        if self.nonstandard_backslashes(sql) && !reads_the_same_with_nonstandard_strings(sql) {
            return Err((guard::nonstandard_strings(), false));
        }
        parse_sql(sql).map_err(|err| (guard::unparsable(&err), true))
    }

    /// Could a backslash in `sql` mean something else to the server than to the proxy?
    fn nonstandard_backslashes(&self, sql: &str) -> bool {
        !self.standard_strings() && sql.contains('\\')
    }

    /// Is standard_conforming_strings surely on? The server reports a change only at
    /// the end of a batch or query, so with answers still to come it may already be off.
    fn standard_strings(&self) -> bool {
        self.tracker.standard_conforming_strings && self.tracker.idle()
    }

    /// Did `sql` pass unchanged before, under the session's present facts?
    fn passed_before(&self, sql: &str) -> bool {
        if self.nonstandard_backslashes(sql) {
            return false;
        }
        let in_transaction_block = self.tracker.status.in_block();
        // Tables created in the open transaction are a fact too: only none is remembered.
        (!self.created_tables_count() || self.transaction.created().is_empty())
            && self.clean.passed(sql, in_transaction_block, &self.tracker.timezone)
    }

    /// `judge`, remembering a verdict that lets `sql` through unchanged: by its shape
    /// (`sql` with parameters for its constants) when the shape passes too.
    async fn judge_remembered(
        &mut self,
        sql: &str,
        shape: Option<String>,
        parsed: &[ParsedStatement],
    ) -> Result<Verdict, SessionError> {
        let in_transaction_block = self.tracker.status.in_block();
        // In a failed transaction nothing is decided in full (function bodies are not read).
        // What passes for a superuser (a policy change) may not after SET ROLE: a
        // superuser's verdicts are not remembered.
        let rememberable = self.tracker.status != TransactionStatus::Failed
            && (!self.created_tables_count() || self.transaction.created().is_empty())
            && self.tracker.superuser != Some(true);
        let timezone = self.tracker.timezone.clone();
        let (verdict, asked_server) = self.judge(parsed).await?;
        if rememberable && !asked_server && passes_unchanged(&verdict) {
            match shape.filter(|shape| self.shape_passes(shape)) {
                Some(shape) => self.clean.remember(&shape, in_transaction_block, timezone),
                None => self.clean.remember(sql, in_transaction_block, timezone),
            }
        }
        Ok(verdict)
    }

    /// Does `shape` pass unchanged as it stands, parameters and all, without asking the
    /// server anything (with no tables created in the transaction: the caller's case)?
    fn shape_passes(&mut self, shape: &str) -> bool {
        if self.clean.shape_does_not_pass(shape) {
            return false;
        }
        let passes = parse_sql(shape).is_ok_and(|parsed| {
            let answers = HashMap::new();
            let transaction = Transaction::with_status(self.tracker.status);
            let facts = self.facts(&transaction, &answers);
            let (verdict, missing) = guard::judge(&parsed, &facts);
            missing.is_empty() && passes_unchanged(&verdict)
        });
        if !passes {
            self.clean.remember_shape_does_not_pass(shape);
        }
        passes
    }

    fn facts<'a>(&'a self, transaction: &'a Transaction, answers: &'a HashMap<Question, Answer>) -> Facts<'a> {
        Facts {
            settings: &self.settings,
            transaction,
            standard_strings: self.standard_strings(),
            answers,
            timezone: self.tracker.timezone.clone(),
            server_version_num: self.server_version_num,
            superuser: self.tracker.superuser,
        }
    }

    /// Decide the statements, asking the server what the rules want to know; true when
    /// it was asked.
    async fn judge(&mut self, parsed: &[ParsedStatement]) -> Result<(Verdict, bool), SessionError> {
        let mut answers: HashMap<Question, Answer> = HashMap::new();
        let mut rounds = 0;
        loop {
            // As the last ReadyForQuery left it; what an ended transaction created is old.
            let mut transaction = self.transaction.clone();
            transaction.set_status(self.tracker.status);
            transaction.forget_ended();
            let (verdict, missing) = guard::judge(parsed, &self.facts(&transaction, &answers));
            rounds += 1;
            // One round per level of function calls, and one for the questions of the last.
            if missing.is_empty() || rounds > guard::MAX_CALL_DEPTH + 2 {
                return Ok((verdict, rounds > 1));
            }
            let sqls: Vec<String> = missing.iter().map(Question::sql).collect();
            let results = self.hidden_queries(&sqls).await?;
            for (question, rows) in missing.into_iter().zip(results) {
                let answer = question.answer(rows);
                answers.insert(question, answer);
            }
        }
    }

    /// In a failed transaction the server rejects every statement but one that ends it
    /// (COMMIT, ROLLBACK [TO SAVEPOINT], PREPARE TRANSACTION) before it runs, and with it
    /// the rest of its string: a message that starts with another statement runs
    /// nothing, and gets the server's 25P02 unjudged, as with the extension (whose hook
    /// is never called then). Only when every answer is in: a status still to come could
    /// be the end of that transaction.
    fn nothing_will_run(&self, parsed: &[ParsedStatement]) -> bool {
        self.tracker.idle()
            && self.tracker.status == TransactionStatus::Failed
            && !parsed.first().is_some_and(|statement| {
                matches!(
                    statement.statement.stmt,
                    Stmt::Transaction(
                        TransactionKind::Commit
                            | TransactionKind::Rollback
                            | TransactionKind::RollbackToSavepoint
                            | TransactionKind::Prepare
                    )
                )
            })
    }

    /// Warnings and notices go out as the server sends its own: not below the session's
    /// client_min_messages (asked of the server, which does not report it, whenever
    /// there is something to send; a client sets it with SET, set_config or a function).
    async fn send_notices(&mut self, reports: Vec<Report>) -> Result<(), SessionError> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut threshold = None;
        if self.tracker.quiet() && self.tracker.status != TransactionStatus::Failed {
            if let Ok(rows) = self.hidden_statement("SHOW client_min_messages").await? {
                threshold = rows.into_iter().next().and_then(|row| row.into_iter().next().flatten());
            }
        }
        let shown: Vec<Report> = reports
            .into_iter()
            .filter(|report| {
                threshold
                    .as_deref()
                    .is_none_or(|threshold| reaches_client(report.level, threshold))
            })
            .collect();
        self.send_reports(&shown);
        Ok(())
    }

    fn send_reports(&mut self, reports: &[Report]) {
        if reports.is_empty() {
            return;
        }
        let mut bytes = BytesMut::new();
        for report in reports {
            encode_report(report, &mut bytes);
        }
        self.tracker.push_synthetic(bytes.freeze(), &mut self.to_client);
    }

    fn log_refusal(&self, refusal: &Refusal) {
        tracing::warn!(role = %self.role, rule = %refusal.rule, statement = %refusal.statement, "statement refused");
    }

    /// A refused Query (or FunctionCall): nothing of it runs. The reports go out in its
    /// place, then a hidden statement that fails on the server stands in for it, so the
    /// server's transaction is aborted exactly when the client's would have been, and
    /// its ReadyForQuery (with the server's real status) ends the exchange.
    fn refuse_query(&mut self, reports: Vec<Report>, refusal: Refusal) {
        self.log_refusal(&refusal);
        let sqlstate = reports.last().map_or("SM000", |report| report.sqlstate);
        self.send_reports(&reports);
        let batch = self.new_unclaimed_batch();
        let owner = Self::hidden(batch, 0, true, OnError::Keep);
        self.send(&query::build(&abort_sql(sqlstate)), owner, Expect::Query);
    }

    /// A refused Parse: the reports, then a hidden Parse that fails on the server (so it
    /// discards up to Sync and aborts the transaction as the client expects), and the
    /// client's own messages dropped until its Sync, whose ReadyForQuery is forwarded.
    fn refuse_extended(&mut self, reports: Vec<Report>, refusal: Refusal, server_error: Option<Bytes>) {
        match server_error {
            Some(error) => self.tracker.push_synthetic(error, &mut self.to_client),
            None => {
                self.log_refusal(&refusal);
                self.send_reports(&reports);
            }
        }
        let batch = self.new_unclaimed_batch();
        let owner = Self::hidden(batch, 0, false, OnError::Keep);
        self.send(
            &parse::build(
                "__safe_migrations_refused",
                "SELECT pg_catalog.safe_migrations_statement_refused_by_proxy()",
            ),
            owner,
            Expect::Parse,
        );
        self.discard_until_sync = true;
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
    async fn server_syntax_error(
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
        let batch = self.new_batch();
        let name = format!("__safe_migrations_{batch}_syntax");
        let owner = Self::hidden(batch, 0, false, OnError::Keep);
        self.send(&parse::build(&name, sql), owner, Expect::Parse);
        self.send(&close::build_statement(&name), owner, Expect::Close);
        let sync = Self::hidden(batch, 1, false, OnError::Keep);
        self.send(&sync::build(), sync, Expect::Sync);
        self.wait_for_batch(batch).await?;
        let _ = self.tracker.take_result(batch, 1);
        let error = self.tracker.take_result(batch, 0).and_then(|result| result.error);
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

/// Does a message of `level` reach a client whose client_min_messages is `threshold`?
/// (The server's order for clients: debug5 .. debug1, log, notice, warning, error.)
fn reaches_client(level: Level, threshold: &str) -> bool {
    let rank = |name: &str| match name.to_ascii_lowercase().as_str() {
        "notice" => 1,
        "warning" => 2,
        "error" => 3,
        _ => 0,
    };
    let level_rank = match level {
        Level::Notice => 1,
        Level::Warning => 2,
        Level::Error => 3,
    };
    level_rank >= rank(threshold)
}

/// Does the server analyse `stmt` when it is parsed (opening, and locking, the relations
/// it reads)? Plannable statements and the utility statements that hold a query do.
fn analysed_at_parse(stmt: &Stmt) -> bool {
    matches!(
        stmt,
        Stmt::Query | Stmt::CreateTableAs { .. } | Stmt::Routine(_) | Stmt::Other { .. }
    )
}

/// A guarded role's statement larger than the proxy reads to decide it.
fn too_large_report(size: usize, limit: usize) -> Report {
    error_response::error_report(
        error_response::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "safe_migrations proxy: this statement ({size} bytes) is larger than the proxy reads to check it \
             ({limit} bytes)"
        ),
        Some("The proxy decides a guarded role's statement from its whole text; nothing of it ran.".into()),
        Some("Split it into smaller statements, or start the proxy with a larger --max-statement-bytes.".into()),
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

/// A leg as a stream again, after `Stream::into_tcp`.
fn boxed(stream: Result<tokio::net::TcpStream, Box<dyn Stream>>) -> Box<dyn Stream> {
    match stream {
        Ok(tcp) => Box::new(tcp),
        Err(other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_and_warnings_reach_the_client_as_client_min_messages_says() {
        for (threshold, notice, warning) in [
            ("debug1", true, true),
            ("log", true, true),
            ("NOTICE", true, true),
            ("warning", false, true),
            ("error", false, false),
        ] {
            assert_eq!(reaches_client(Level::Notice, threshold), notice, "{threshold}");
            assert_eq!(reaches_client(Level::Warning, threshold), warning, "{threshold}");
            assert!(reaches_client(Level::Error, threshold));
        }
    }
}
