//! Which message each server response answers, for a guarded session.
//!
//! The proxy adds hidden messages of its own to a session (catalog questions, the
//! lock_timeout cap, the statement that aborts a transaction after a refusal) and
//! puts its own reports in the client's stream. The tracker keeps, in send order, what
//! every message sent to the server will produce, so each server response is either
//! forwarded to the client or swallowed, and the proxy's reports appear exactly where
//! the refused message's response would have been.
//!
//! After an ErrorResponse to an extended-protocol message the server discards
//! everything until Sync; the tracker drops those entries the same way. During COPY
//! FROM STDIN the server ignores Sync; so does the tracker.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::messages::ready_for_query::TransactionStatus;
use super::messages::{data_row, error_response, printable, ready_for_query, BodyReader, FrameError, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Parse,
    Bind,
    Close,
    DescribeStatement,
    DescribePortal,
    Execute,
    Sync,
    /// A simple Query or a FunctionCall: everything up to ReadyForQuery.
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Client,
    /// A proxy message: responses are swallowed, rows and error kept under (batch, index).
    Hidden {
        batch: u64,
        index: usize,
        /// Forward its ReadyForQuery (it stands in for a client Query).
        forward_ready: bool,
        on_error: OnError,
    },
}

/// Who an ErrorResponse to a hidden message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// A question the proxy asked: the error is its answer, kept from the client.
    Keep,
    /// The cap set in front of a client statement: the server will not run the client's
    /// statement after it, so the error is the client's (a failed statement must never
    /// look like a success).
    Client,
    /// The cap restored after a client statement: the client's, unless the transaction
    /// was already aborted (25P02), which only the client's own failed statement did, and
    /// the client has seen that error.
    ClientUnlessAborted,
}

/// SQLSTATE in_failed_sql_transaction.
const IN_FAILED_TRANSACTION: &str = "25P02";

impl OnError {
    fn shows(self, error: &Message) -> bool {
        match self {
            OnError::Keep => false,
            OnError::Client => true,
            OnError::ClientUnlessAborted => error_response::sqlstate(error).as_deref() != Some(IN_FAILED_TRANSACTION),
        }
    }
}

/// One statement's share of a client Query the proxy rewrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// A statement the proxy inserted: its results are swallowed.
    pub swallow: bool,
    /// Characters the proxy inserted before this statement (error positions move back).
    pub shift: usize,
}

#[derive(Debug)]
struct Pending {
    owner: Owner,
    expect: Expect,
    segments: Vec<Segment>,
    segment: usize,
    /// A client Query whose ReadyForQuery is kept back: a hidden Query sent right after
    /// it answers for it (see `push_query_holding_ready`).
    hold_ready: bool,
    /// A client message whose answer is held back (see `push_captured_segments`).
    capture: bool,
}

#[derive(Debug)]
enum Entry {
    Pending(Pending),
    /// Bytes of the proxy's own (reports) to send when everything before has been answered.
    Synthetic(Bytes),
}

#[derive(Debug, Default)]
pub struct HiddenResult {
    pub rows: Vec<Vec<Option<String>>>,
    pub failed: bool,
    /// The server's ErrorResponse, when it answered with one (not when it skipped the message).
    pub error: Option<Bytes>,
    /// For a hidden Sync or Query: the transaction status its ReadyForQuery reported.
    pub status: Option<TransactionStatus>,
}

#[derive(Debug)]
pub struct Tracker {
    queue: VecDeque<Entry>,
    /// The server discards messages until Sync and no Sync is queued yet.
    skipping: bool,
    /// COPY FROM STDIN is in progress: the server ignores Sync.
    pub copy_in: bool,
    /// Extended-protocol messages were sent since the last Sync.
    in_batch: bool,
    /// The last ReadyForQuery status.
    pub status: TransactionStatus,
    /// Where the client's executed BEGIN, COMMIT, ROLLBACK or PREPARE TRANSACTION take the
    /// transaction before their ReadyForQuery comes (drivers send BEGIN in the batch of a
    /// transaction's first statement); forgotten once every message is answered.
    pub heading: Option<TransactionStatus>,
    pub timezone: Option<String>,
    /// The session's standard_conforming_strings, as the server last reported it.
    pub standard_conforming_strings: bool,
    /// The session's is_superuser, as the server last reported it (SET ROLE changes it).
    pub superuser: Option<bool>,
    results: HashMap<(u64, usize), HiddenResult>,
    /// The answers of captured client messages so far.
    captured: BytesMut,
    /// Messages pushed now are captured (`set_capturing`).
    capturing: bool,
}

impl Tracker {
    pub fn new(status: TransactionStatus) -> Tracker {
        Tracker {
            queue: VecDeque::new(),
            skipping: false,
            copy_in: false,
            in_batch: false,
            status,
            heading: None,
            timezone: None,
            standard_conforming_strings: true,
            superuser: None,
            results: HashMap::new(),
            captured: BytesMut::new(),
            capturing: false,
        }
    }

    /// No half-sent batch (everything sent so far ends with a Sync or is a simple
    /// Query): hidden messages may come as a batch with their own Sync.
    pub fn quiet(&self) -> bool {
        !self.in_batch && !self.skipping && !self.copy_in
    }

    /// Everything sent has been answered: the last ReadyForQuery's status is the present one.
    pub fn idle(&self) -> bool {
        self.queue.is_empty() && self.quiet()
    }

    /// Would the server run a message sent now (not discarding until Sync, not in COPY)?
    pub fn server_listening(&self) -> bool {
        !self.skipping && !self.copy_in
    }

    /// Record a message sent to the server.
    pub fn push(&mut self, owner: Owner, expect: Expect, out: &mut BytesMut) {
        self.push_segments(owner, expect, Vec::new(), out);
    }

    pub fn push_segments(&mut self, owner: Owner, expect: Expect, segments: Vec<Segment>, out: &mut BytesMut) {
        if expect == Expect::Sync {
            if self.copy_in {
                return;
            }
            self.skipping = false;
            self.in_batch = false;
        } else if expect != Expect::Query {
            self.in_batch = true;
            if self.skipping {
                self.discarded(owner);
                return;
            }
        }
        if let Owner::Hidden { batch, index, .. } = owner {
            self.results.entry((batch, index)).or_default();
        }
        self.queue.push_back(Entry::Pending(Pending {
            owner,
            expect,
            segments,
            segment: 0,
            hold_ready: false,
            capture: self.capturing,
        }));
        self.emit_synthetic(out);
    }

    /// Record a client Query whose ReadyForQuery the client gets from the hidden Query
    /// the caller sends right after it (pushed with `forward_ready`): whatever that one
    /// says, an error included, comes before the client's exchange ends, never after.
    pub fn push_query_holding_ready(&mut self, out: &mut BytesMut) {
        self.push(Owner::Client, Expect::Query, out);
        if let Some(Entry::Pending(pending)) = self.queue.back_mut() {
            pending.hold_ready = true;
        }
    }

    /// Record a client message (a Query, an Execute, a Sync) whose answer is held back
    /// rather than sent to the client: the proxy decides what the client sees of it
    /// (`take_captured`), as for a statement it runs again when its lock wait gave up.
    /// Only for statements that return no rows, whose answers are a few small messages.
    /// `segments`: of a Query the proxy rewrote (see `push_segments`).
    pub fn push_captured_segments(&mut self, expect: Expect, segments: Vec<Segment>, out: &mut BytesMut) {
        let capturing = std::mem::replace(&mut self.capturing, true);
        self.push_segments(Owner::Client, expect, segments, out);
        self.capturing = capturing;
    }

    /// Capture the answers of every message pushed from now on (the proxy's own too: an
    /// error of theirs shown to the client comes in its place among the captured), until
    /// `set_capturing(false)` or `release_capture`.
    pub fn set_capturing(&mut self, capturing: bool) {
        self.capturing = capturing;
    }

    /// Send what was captured on to the client after all, and the rest of the captured
    /// messages' answers as they come.
    pub fn release_capture(&mut self, out: &mut BytesMut) {
        self.capturing = false;
        for entry in &mut self.queue {
            if let Entry::Pending(pending) = entry {
                pending.capture = false;
            }
        }
        out.extend_from_slice(&self.captured.split());
    }

    /// Is a captured message's answer still to come?
    pub fn capture_pending(&self) -> bool {
        self.queue
            .iter()
            .any(|entry| matches!(entry, Entry::Pending(Pending { capture: true, .. })))
    }

    /// The captured answer, once complete (`capture_pending` false).
    pub fn take_captured(&mut self) -> Bytes {
        self.captured.split().freeze()
    }

    /// Queue the proxy's own bytes for the client, after everything sent before.
    pub fn push_synthetic(&mut self, bytes: Bytes, out: &mut BytesMut) {
        if self.skipping {
            return;
        }
        self.queue.push_back(Entry::Synthetic(bytes));
        self.emit_synthetic(out);
    }

    /// Is any message of hidden batch `batch` still unanswered?
    pub fn batch_pending(&self, batch: u64) -> bool {
        self.queue.iter().any(|entry| {
            matches!(entry, Entry::Pending(Pending { owner: Owner::Hidden { batch: b, .. }, .. }) if *b == batch)
        })
    }

    pub fn take_result(&mut self, batch: u64, index: usize) -> Option<HiddenResult> {
        self.results.remove(&(batch, index))
    }

    /// A hidden message's ErrorResponse: kept as its answer, and shown to the client
    /// where it stands for the client's statement.
    fn hidden_error(&mut self, owner: Owner, error: &Message, out: &mut BytesMut) {
        if let Owner::Hidden {
            batch, index, on_error, ..
        } = owner
        {
            let result = self.results.entry((batch, index)).or_default();
            result.failed = true;
            result.error = Some(error.bytes.clone());
            if on_error.shows(error) {
                out.extend_from_slice(&error.bytes);
            }
        }
    }

    fn discarded(&mut self, owner: Owner) {
        if let Owner::Hidden { batch, index, .. } = owner {
            self.results.entry((batch, index)).or_default().failed = true;
        }
    }

    fn emit_synthetic(&mut self, out: &mut BytesMut) {
        while let Some(Entry::Synthetic(bytes)) = self.queue.front() {
            out.extend_from_slice(bytes);
            self.queue.pop_front();
        }
    }

    /// Route a server DataRow or CopyData too large to hold, whose body the caller passes
    /// on without the tracker seeing it: true when it goes to the client, false when it
    /// answers a hidden statement and is dropped (those answers are a few small rows, so
    /// a large one is an error). Bytes due to the client before it go to `out`.
    pub fn on_server_streamed(&mut self, tag: u8, out: &mut BytesMut) -> Result<bool, FrameError> {
        self.emit_synthetic(out);
        if matches!(self.queue.front(), Some(Entry::Pending(Pending { capture: true, .. }))) {
            // Answers are held back only for statements that return no rows: a message too
            // large to hold cannot be put in its place, so the session ends rather than
            // send it out of order.
            return Err(FrameError::Malformed(format!(
                "a large message '{}' from the server in an answer the proxy holds back",
                printable(tag)
            )));
        }
        let Some(Entry::Pending(head)) = self.queue.front() else {
            return Ok(true);
        };
        let swallow = match head.owner {
            Owner::Client => head.segments.get(head.segment).is_some_and(|segment| segment.swallow),
            Owner::Hidden { .. } => true,
        };
        match (head.expect, tag) {
            (Expect::Query | Expect::Execute, b'd') | (Expect::Query, b'D') if !swallow => Ok(true),
            (Expect::Execute, b'D') if head.owner == Owner::Client => Ok(true),
            (expect, tag) => Err(FrameError::Malformed(format!(
                "unexpected large message '{}' from the server in answer to {expect:?}",
                printable(tag)
            ))),
        }
    }

    /// Route one server message: bytes for the client go to `out`, or to the captured
    /// answer while a captured message is the one answered.
    pub fn on_server(&mut self, message: Message, out: &mut BytesMut) -> Result<(), FrameError> {
        self.emit_synthetic(out);
        if matches!(self.queue.front(), Some(Entry::Pending(Pending { capture: true, .. }))) {
            let mut captured = std::mem::take(&mut self.captured);
            let routed = self.route(message, &mut captured);
            self.captured = captured;
            return routed;
        }
        self.route(message, out)
    }

    fn route(&mut self, message: Message, out: &mut BytesMut) -> Result<(), FrameError> {
        match message.tag {
            b'S' => {
                let mut reader = BodyReader::new(message.body());
                match (reader.cstring(), reader.cstring()) {
                    (Ok("TimeZone"), Ok(value)) => self.timezone = Some(value.to_string()),
                    (Ok("standard_conforming_strings"), Ok(value)) => self.standard_conforming_strings = value == "on",
                    (Ok("is_superuser"), Ok(value)) => self.superuser = Some(value == "on"),
                    _ => {}
                }
                out.extend_from_slice(&message.bytes);
                return Ok(());
            }
            b'A' => {
                out.extend_from_slice(&message.bytes);
                return Ok(());
            }
            _ => {}
        }
        let last_pending = self
            .queue
            .iter()
            .filter(|entry| matches!(entry, Entry::Pending(_)))
            .count()
            <= 1;
        let Some(Entry::Pending(head)) = self.queue.front_mut() else {
            // Nothing expected: the server speaks on its own (FATAL at shutdown, a notice).
            out.extend_from_slice(&message.bytes);
            return Ok(());
        };
        let tag = message.tag;
        let expect = head.expect;
        let mut drop_syncs = false;
        let swallow = match head.owner {
            Owner::Client => head.segments.get(head.segment).is_some_and(|segment| segment.swallow),
            Owner::Hidden { .. } => true,
        };
        if tag == b'N' {
            if !swallow {
                let shift = head.segments.get(head.segment).map_or(0, |segment| segment.shift);
                out.extend_from_slice(&error_response::shift_position(&message, shift).bytes);
            }
            return Ok(());
        }
        let mut complete = false;
        match (head.expect, tag) {
            (Expect::Query, b'Z') | (Expect::Sync, b'Z') => {
                self.status = ready_for_query::status(&message)?;
                if last_pending {
                    // The last answer: the status is the server's.
                    self.heading = None;
                }
                if let Owner::Hidden { batch, index, .. } = head.owner {
                    self.results.entry((batch, index)).or_default().status = Some(self.status);
                }
                complete = true;
                let forward = match head.owner {
                    Owner::Client => !head.hold_ready,
                    Owner::Hidden { forward_ready, .. } => forward_ready,
                };
                if forward {
                    out.extend_from_slice(&message.bytes);
                }
            }
            (Expect::Query, b'E') | (Expect::Sync, b'E') => {
                if let Owner::Hidden { .. } = head.owner {
                    let owner = head.owner;
                    self.hidden_error(owner, &message, out);
                } else {
                    // A statement the proxy put into the client's string fails only where
                    // the client's next statement would have (an aborted transaction, a
                    // cancel): the server skips the rest, so the error is the client's.
                    let shift = head.segments.get(head.segment).map_or(0, |segment| segment.shift);
                    out.extend_from_slice(&error_response::shift_position(&message, shift).bytes);
                }
            }
            (Expect::Query, _) => {
                if tag == b'C' {
                    head.segment += 1;
                }
                if tag == b'G' {
                    self.copy_in = true;
                }
                if !swallow {
                    out.extend_from_slice(&message.bytes);
                }
            }
            (Expect::Parse, b'1')
            | (Expect::Bind, b'2')
            | (Expect::Close, b'3')
            | (Expect::DescribeStatement | Expect::DescribePortal, b'T' | b'n')
            | (Expect::Execute, b'C' | b'I' | b's') => {
                complete = true;
                if !swallow {
                    out.extend_from_slice(&message.bytes);
                }
            }
            (Expect::DescribeStatement, b't') | (Expect::Execute, b'H' | b'W' | b'd' | b'c') => {
                if !swallow {
                    out.extend_from_slice(&message.bytes);
                }
            }
            (Expect::Execute, b'G') => {
                self.copy_in = true;
                drop_syncs = true;
                out.extend_from_slice(&message.bytes);
            }
            (Expect::Execute, b'D') => {
                if let Owner::Hidden { batch, index, .. } = head.owner {
                    let row = data_row::columns(&message)?;
                    self.results.entry((batch, index)).or_default().rows.push(row);
                } else {
                    out.extend_from_slice(&message.bytes);
                }
            }
            (_, b'E') => {
                // An extended-protocol message failed: the server discards until Sync.
                let owner = head.owner;
                self.queue.pop_front();
                match owner {
                    Owner::Client => out.extend_from_slice(&message.bytes),
                    Owner::Hidden { .. } => self.hidden_error(owner, &message, out),
                }
                self.copy_in = false;
                while let Some(entry) = self.queue.front() {
                    match entry {
                        Entry::Pending(Pending {
                            expect: Expect::Sync, ..
                        }) => break,
                        Entry::Pending(pending) => {
                            let owner = pending.owner;
                            self.queue.pop_front();
                            self.discarded(owner);
                        }
                        Entry::Synthetic(_) => {
                            self.queue.pop_front();
                        }
                    }
                }
                if self.queue.is_empty() {
                    self.skipping = true;
                }
                self.emit_synthetic(out);
                return Ok(());
            }
            (expect, tag) => {
                return Err(FrameError::Malformed(format!(
                    "unexpected message '{}' from the server in answer to {expect:?}",
                    printable(tag)
                )))
            }
        }
        if drop_syncs {
            // Syncs sent after this Execute reach a server in COPY mode, which ignores them.
            let rest: Vec<Entry> = self.queue.drain(1..).collect();
            self.queue.extend(rest.into_iter().filter(|entry| {
                !matches!(
                    entry,
                    Entry::Pending(Pending {
                        expect: Expect::Sync,
                        ..
                    })
                )
            }));
        }
        if complete {
            if matches!(expect, Expect::Execute | Expect::Query) {
                self.copy_in = false;
            }
            self.queue.pop_front();
            self.emit_synthetic(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Message {
        Message::build(tag, body)
    }

    fn hidden(batch: u64, index: usize) -> Owner {
        Owner::Hidden {
            batch,
            index,
            forward_ready: false,
            on_error: OnError::Keep,
        }
    }

    #[test]
    fn hidden_responses_are_swallowed_and_client_ones_forwarded_in_order() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        tracker.push(hidden(1, 0), Expect::Parse, &mut out);
        tracker.push(hidden(1, 0), Expect::Execute, &mut out);
        tracker.push(Owner::Client, Expect::Parse, &mut out);
        tracker.push_synthetic(Bytes::from_static(b"REPORT"), &mut out);
        tracker.push(Owner::Client, Expect::Sync, &mut out);
        tracker.on_server(msg(b'1', b""), &mut out).unwrap();
        tracker
            .on_server(msg(b'D', &[0, 1, 0, 0, 0, 1, b'x']), &mut out)
            .unwrap();
        tracker.on_server(msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
        assert!(out.is_empty());
        tracker.on_server(msg(b'1', b""), &mut out).unwrap();
        assert_eq!(&out[..], b"1\0\0\0\x04REPORT");
        out.clear();
        tracker.on_server(msg(b'Z', b"T"), &mut out).unwrap();
        assert_eq!(&out[..], b"Z\0\0\0\x05T");
        assert_eq!(tracker.status, TransactionStatus::InBlock);
        let result = tracker.take_result(1, 0).unwrap();
        assert_eq!(result.rows, vec![vec![Some("x".to_string())]]);
        assert!(tracker.quiet());
    }

    #[test]
    fn an_error_skips_to_sync_including_hidden_messages_and_reports() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        tracker.push(Owner::Client, Expect::Execute, &mut out);
        tracker.push(hidden(2, 0), Expect::Execute, &mut out);
        tracker.push_synthetic(Bytes::from_static(b"REPORT"), &mut out);
        tracker.on_server(msg(b'E', b"\0"), &mut out).unwrap();
        assert_eq!(out[0], b'E');
        assert!(tracker.take_result(2, 0).unwrap().failed);
        assert!(!tracker.server_listening());
        tracker.push(Owner::Client, Expect::Bind, &mut out);
        tracker.push(Owner::Client, Expect::Sync, &mut out);
        out.clear();
        tracker.on_server(msg(b'Z', b"I"), &mut out).unwrap();
        assert_eq!(out[0], b'Z');
        assert!(tracker.quiet());
    }

    #[test]
    fn rewritten_queries_swallow_inserted_statements_and_shift_positions() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        let segments = vec![
            Segment {
                swallow: true,
                shift: 0,
            },
            Segment {
                swallow: false,
                shift: 10,
            },
        ];
        tracker.push_segments(Owner::Client, Expect::Query, segments, &mut out);
        tracker.on_server(msg(b'T', b"x"), &mut out).unwrap();
        tracker.on_server(msg(b'D', b"x"), &mut out).unwrap();
        tracker.on_server(msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
        assert!(out.is_empty());
        tracker.on_server(msg(b'E', b"SERROR\0P15\0\0"), &mut out).unwrap();
        let forwarded = Message {
            tag: b'E',
            bytes: out.split().freeze(),
        };
        assert!(error_response::fields(&forwarded)
            .unwrap()
            .contains(&(b'P', "5".to_string())));
        tracker.on_server(msg(b'Z', b"I"), &mut out).unwrap();
        assert_eq!(out[0], b'Z');
    }

    fn error(sqlstate: &str) -> Message {
        msg(b'E', format!("SERROR\0C{sqlstate}\0Mm\0\0").as_bytes())
    }

    fn cap(batch: u64, on_error: OnError) -> Owner {
        Owner::Hidden {
            batch,
            index: 0,
            forward_ready: false,
            on_error,
        }
    }

    #[test]
    fn a_failed_cap_in_front_of_an_execute_gives_the_client_its_error() {
        let mut tracker = Tracker::new(TransactionStatus::InBlock);
        let mut out = BytesMut::new();
        tracker.push(cap(1, OnError::Client), Expect::Execute, &mut out);
        tracker.push(Owner::Client, Expect::Execute, &mut out);
        tracker.push(Owner::Client, Expect::Sync, &mut out);
        tracker.on_server(error("57014"), &mut out).unwrap();
        assert_eq!(
            error_response::sqlstate(&Message {
                tag: b'E',
                bytes: out.split().freeze()
            })
            .as_deref(),
            Some("57014")
        );
        assert!(tracker.take_result(1, 0).unwrap().error.is_some());
        tracker.on_server(msg(b'Z', b"E"), &mut out).unwrap();
        assert_eq!(&out[..], b"Z\0\0\0\x05E");
    }

    #[test]
    fn a_restore_failing_in_an_aborted_transaction_is_kept_other_failures_are_shown() {
        let mut tracker = Tracker::new(TransactionStatus::InBlock);
        let mut out = BytesMut::new();
        tracker.push(cap(1, OnError::ClientUnlessAborted), Expect::Query, &mut out);
        tracker.on_server(error("25P02"), &mut out).unwrap();
        tracker.on_server(msg(b'Z', b"E"), &mut out).unwrap();
        assert!(out.is_empty());
        tracker.push(cap(2, OnError::ClientUnlessAborted), Expect::Query, &mut out);
        tracker.on_server(error("57014"), &mut out).unwrap();
        assert_eq!(out[0], b'E');
        out.clear();
        tracker.on_server(msg(b'Z', b"E"), &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn an_inserted_statement_that_fails_gives_the_client_its_error() {
        let mut tracker = Tracker::new(TransactionStatus::Failed);
        let mut out = BytesMut::new();
        let segments = vec![
            Segment {
                swallow: true,
                shift: 0,
            },
            Segment {
                swallow: false,
                shift: 10,
            },
            Segment {
                swallow: true,
                shift: 10,
            },
        ];
        tracker.push_segments(Owner::Client, Expect::Query, segments, &mut out);
        tracker.on_server(error("25P02"), &mut out).unwrap();
        tracker.on_server(msg(b'Z', b"E"), &mut out).unwrap();
        let error = Message {
            tag: b'E',
            bytes: out.split_to(out.len() - 6).freeze(),
        };
        assert_eq!(error_response::sqlstate(&error).as_deref(), Some("25P02"));
        assert_eq!(&out[..], b"Z\0\0\0\x05E");
    }

    #[test]
    fn notices_of_the_client_statement_are_shifted_and_inserted_ones_kept() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        let segments = vec![
            Segment {
                swallow: true,
                shift: 0,
            },
            Segment {
                swallow: false,
                shift: 10,
            },
        ];
        tracker.push_segments(Owner::Client, Expect::Query, segments, &mut out);
        tracker.on_server(msg(b'N', b"SDEBUG\0P3\0\0"), &mut out).unwrap();
        tracker.on_server(msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
        assert!(out.is_empty());
        tracker.on_server(msg(b'N', b"SNOTICE\0P15\0\0"), &mut out).unwrap();
        let notice = Message {
            tag: b'N',
            bytes: out.split().freeze(),
        };
        assert!(error_response::fields(&notice)
            .unwrap()
            .contains(&(b'P', "5".to_string())));
    }

    #[test]
    fn standard_conforming_strings_follows_the_server() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        tracker
            .on_server(msg(b'S', b"standard_conforming_strings\0off\0"), &mut out)
            .unwrap();
        assert!(!tracker.standard_conforming_strings);
        tracker
            .on_server(msg(b'S', b"standard_conforming_strings\0on\0"), &mut out)
            .unwrap();
        assert!(tracker.standard_conforming_strings);
    }

    #[test]
    fn a_held_ready_for_query_comes_from_the_query_after_it_with_its_error() {
        let mut tracker = Tracker::new(TransactionStatus::InBlock);
        let mut out = BytesMut::new();
        tracker.push_query_holding_ready(&mut out);
        let restore = Owner::Hidden {
            batch: 3,
            index: 0,
            forward_ready: true,
            on_error: OnError::ClientUnlessAborted,
        };
        tracker.push(restore, Expect::Query, &mut out);
        tracker.on_server(msg(b'C', b"ALTER TABLE\0"), &mut out).unwrap();
        tracker.on_server(msg(b'Z', b"T"), &mut out).unwrap();
        assert_eq!(out[0], b'C');
        assert_eq!(out.len(), 17, "no ReadyForQuery yet");
        out.clear();
        tracker.on_server(error("57014"), &mut out).unwrap();
        tracker.on_server(msg(b'Z', b"E"), &mut out).unwrap();
        assert_eq!(out[0], b'E');
        assert_eq!(&out[out.len() - 6..], b"Z\0\0\0\x05E");
        assert_eq!(tracker.status, TransactionStatus::Failed);
    }

    #[test]
    fn a_captured_query_answer_is_held_back_whole() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        tracker.push_captured_segments(Expect::Query, Vec::new(), &mut out);
        tracker.push(hidden(4, 0), Expect::Query, &mut out);
        assert!(tracker.capture_pending());
        tracker.on_server(msg(b'N', b"SNOTICE\0\0"), &mut out).unwrap();
        tracker.on_server(error("55P03"), &mut out).unwrap();
        tracker.on_server(msg(b'Z', b"I"), &mut out).unwrap();
        assert!(out.is_empty(), "nothing reaches the client");
        assert!(!tracker.capture_pending());
        let captured = tracker.take_captured();
        assert_eq!(captured[0], b'N');
        assert_eq!(&captured[captured.len() - 6..], b"Z\0\0\0\x05I");
        assert_eq!(tracker.status, TransactionStatus::Idle);
        // What follows is routed as before.
        tracker.on_server(msg(b'Z', b"I"), &mut out).unwrap();
        assert!(tracker.take_captured().is_empty());
        assert!(tracker.take_result(4, 0).is_some());
    }

    #[test]
    fn unexpected_responses_are_errors() {
        let mut tracker = Tracker::new(TransactionStatus::Idle);
        let mut out = BytesMut::new();
        tracker.push(Owner::Client, Expect::Parse, &mut out);
        assert!(tracker.on_server(msg(b'2', b""), &mut out).is_err());
    }
}
