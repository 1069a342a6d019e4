//! One client session: startup and auth relayed, the role's policy read from the
//! server, then either a byte-for-byte passthrough (mode off) or the guarded state
//! machine between the client's messages and the server's.
//!
//! This file holds the `Session`, its construction (`run`), the passthrough, the guarded
//! serve loop and the dispatch of the client's messages. The rest, one concern a file:
//! `startup` relays authentication and reads the role's policy, `simple` the Query (and
//! FunctionCall) path, `extended` the extended protocol (Parse ... Sync), `large` the
//! messages too long to hold whole, `judge` the decision on a statement, `hidden` the
//! proxy's own queries whose answers the client never sees, `caps` the lock_timeout cap
//! set around statements and restored, `retries` a statement whose lock wait gave up run
//! again, `refusal` the refusals and the errors answered as
//! the server would, `reports` the proxy's warnings and notices.

mod caps;
mod extended;
mod hidden;
mod judge;
mod large;
mod lock_hold;
mod refusal;
mod reports;
mod retries;
mod simple;
mod startup;

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use policy::{Mode, Settings, Transaction};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::clean_verdicts::CleanVerdicts;
use super::config::Config;
use super::messages::error_response::{self, fatal};
use super::messages::startup::Startup;
use super::messages::{Frame, FrameError, Message, MessageReader};
use super::passthrough::{self, BusyPoll};
use super::tls::Stream;
use super::tracker::{Expect, Owner, Tracker};
use caps::Restore;
use extended::Prepared;
use startup::{relay_auth, startup_names_policy};

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

pub struct Session {
    role: String,
    /// The database the client asked for (startup packet; for log lines).
    database: String,
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
    /// The message being judged is a Parse of a named statement, which may run long
    /// after (`empty_relation`).
    judging_named_parse: bool,
    /// The renames of a transaction whose executed COMMIT or ROLLBACK is not answered yet.
    renames_set_aside: Vec<policy::transaction::PendingRename>,
    server_version_num: Option<u32>,
    next_batch: u64,
    /// Statements that passed unchanged, to skip parsing and deciding them again.
    clean: CleanVerdicts,
    /// The longest statement (Query, Parse ...) the session reads whole to decide.
    max_statement_bytes: usize,
    /// The server, for the proxy's own CancelRequest (rule lock_held_too_long).
    upstream: super::backend::Upstream,
    lock_hold: lock_hold::LockHold,
    /// The client's cancels, heard while the proxy holds its statement (a retry's pause).
    cancels: Option<crate::cancels::Registration>,
    /// The batch's last Bind of a statement that may be run again, until the Sync: what
    /// its Execute binds the portal with again.
    last_bind: Option<extended::LastBind>,
    /// An Execute whose answer is held back until its Sync, to run it again if its lock
    /// wait gives up.
    retry_execute: Option<retries::RetryExecute>,
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
    // As the server reads it: the database defaults to the user name.
    let database = startup
        .parameter("database")
        .filter(|database| !database.is_empty())
        .map_or_else(|| role.clone(), str::to_string);
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
            crate::metrics::UPSTREAM_CONNECT_ERRORS.add();
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
    let Some((ready, backend_key)) = relay_auth(&mut client_rd, &mut client_wr, &mut server_rd, &mut server_wr).await?
    else {
        return Ok(());
    };
    let status = super::messages::ready_for_query::status(&ready).map_err(SessionError::Server)?;
    let mut session = Session {
        role,
        database,
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
        judging_named_parse: false,
        renames_set_aside: Vec::new(),
        server_version_num: None,
        next_batch: 0,
        clean: CleanVerdicts::default(),
        max_statement_bytes,
        upstream: upstream.clone(),
        cancels: backend_key.clone().map(|key| upstream.cancels.register(key)),
        last_bind: None,
        retry_execute: None,
        lock_hold: lock_hold::LockHold {
            backend_key,
            ..Default::default()
        },
    };
    session.read_policy(config).await?;
    session.to_client.extend_from_slice(&ready.bytes);
    session.flush().await?;
    if session.settings.mode == Mode::Off {
        crate::metrics::UNGUARDED_SESSIONS.add();
        return session.passthrough(busy_poll).await;
    }
    crate::metrics::GUARDED_SESSIONS.add();
    tracing::debug!(role = %session.role, mode = session.settings.mode.name(), "guarded session");
    session.serve().await
}

async fn write(writer: &mut Writer, bytes: &[u8]) -> Result<(), FrameError> {
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

impl Session {
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
            self.lock_hold_settle();
            let lock_hold_deadline = self.lock_hold_deadline();
            tokio::select! {
                _ = tokio::time::sleep_until(lock_hold_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if lock_hold_deadline.is_some() => {
                    if !self.lock_hold_expired().await? {
                        return Ok(());
                    }
                }
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
                                let message = self.lock_hold_rewrite(message);
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

    /// Handle one client message; false when the session ends.
    async fn on_client(&mut self, message: Message) -> Result<bool, SessionError> {
        if message.tag != b'S' {
            self.release_retry();
        }
        if self.discard_until_sync {
            match message.tag {
                b'S' => self.discard_until_sync = false,
                b'X' => {}
                _ => return Ok(true),
            }
        }
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
            b'B' => self.bind(message).await?,
            b'E' => self.execute(message)?,
            b'D' => self.describe(message)?,
            b'C' => self.close(message)?,
            b'S' => self.sync(message).await?,
            b'F' => self.function_call(message).await?,
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

    fn send(&mut self, message: &Message, owner: Owner, expect: Expect) {
        self.to_server.extend_from_slice(&message.bytes);
        self.tracker.push(owner, expect, &mut self.to_client);
    }
}

/// A leg as a stream again, after `Stream::into_tcp`.
fn boxed(stream: Result<tokio::net::TcpStream, Box<dyn Stream>>) -> Box<dyn Stream> {
    match stream {
        Ok(tcp) => Box::new(tcp),
        Err(other) => other,
    }
}
