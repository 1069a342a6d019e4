//! PostgreSQL wire messages, one file per message the proxy reads or builds.
//!
//! Framing is the proxy's own: a typed message is its type byte, an i32 length that
//! counts itself, and the body. [`Message`] keeps the original bytes so that every
//! message the proxy does not change is forwarded exactly as it arrived.

pub mod authentication;
pub mod bind;
pub mod close;
pub mod data_row;
pub mod describe;
pub mod error_response;
pub mod execute;
pub mod function_call;
pub mod parse;
pub mod query;
pub mod ready_for_query;
pub mod startup;
pub mod sync;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest typed message accepted from either side (the server's own limit for a
/// Query or CopyData is 1 GiB). Memory is reserved only as bytes arrive.
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// Bytes moved at a time when a large message's body is passed on.
const CHUNK: usize = 64 * 1024;

/// What [`MessageReader::next_frame`] read: a whole message, or the head of one too
/// large to hold, whose body the caller passes on or skips piece by piece.
#[derive(Debug)]
pub enum Frame {
    Whole(Message),
    Large(Large),
}

/// A message whose header has been read and whose body has not.
#[derive(Debug)]
pub struct Large {
    pub tag: u8,
    /// The type byte and the length, as they arrived.
    pub header: [u8; 5],
    /// Body bytes still in the stream (or the reader's buffer).
    remaining: usize,
}

impl Large {
    /// The whole message's length on the wire.
    pub fn wire_len(&self) -> usize {
        self.remaining + 5
    }
}

/// Why passing a large message's body on failed: reading it, or writing it.
#[derive(Debug)]
pub enum PassError {
    Read(FrameError),
    Write(std::io::Error),
}

/// One typed message, with its original bytes (type byte, length, body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Message {
    /// The body, after the type byte and the length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }

    /// A message from its type byte and body.
    pub fn build(tag: u8, body: &[u8]) -> Message {
        let mut bytes = BytesMut::with_capacity(body.len() + 5);
        bytes.extend_from_slice(&[tag]);
        bytes.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        bytes.extend_from_slice(body);
        Message {
            tag,
            bytes: bytes.freeze(),
        }
    }
}

/// Why a session's byte stream cannot be read as messages.
#[derive(Debug)]
pub enum FrameError {
    Io(std::io::Error),
    /// The peer sent something that is not a well-formed message.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(err) => write!(f, "{err}"),
            FrameError::Malformed(what) => f.write_str(what),
        }
    }
}

impl From<std::io::Error> for FrameError {
    fn from(err: std::io::Error) -> Self {
        FrameError::Io(err)
    }
}

/// Splits a byte stream into typed messages. Cancel-safe: a partial message stays in
/// the buffer, so `next` can sit in a `select!`.
pub struct MessageReader<R> {
    inner: R,
    buf: BytesMut,
    max_len: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(inner: R) -> Self {
        MessageReader {
            inner,
            buf: BytesMut::with_capacity(8 * 1024),
            max_len: MAX_MESSAGE_LEN,
        }
    }

    #[cfg(test)]
    pub fn with_max_len(inner: R, max_len: usize) -> Self {
        MessageReader {
            max_len,
            ..MessageReader::new(inner)
        }
    }

    /// Read and drop whatever the peer sends until it closes the stream (or fails): a
    /// socket closed with unread input resets the connection, and a reset may destroy
    /// what was last written to the peer before it arrives.
    pub async fn discard_until_closed(&mut self) {
        use tokio::io::AsyncReadExt;
        self.buf.clear();
        let mut sink = [0u8; 8 * 1024];
        while matches!(self.inner.read(&mut sink).await, Ok(n) if n > 0) {}
    }

    /// The next message; `None` when the peer closed the stream between messages.
    pub async fn next(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            if let Some(message) = split_message(&mut self.buf, self.max_len)? {
                return Ok(Some(message));
            }
            if !self.read_more(wanted_bytes(&self.buf).clamp(1, 64 * 1024)).await? {
                return Ok(None);
            }
        }
    }

    /// The next message, or only the header of one longer than `whole_up_to` bytes:
    /// memory stays bounded whatever the peer announces. Cancel-safe like `next`.
    pub async fn next_frame(&mut self, whole_up_to: usize) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(frame) = self.buffered_frame(whole_up_to)? {
                return Ok(Some(frame));
            }
            let wanted = wanted_bytes(&self.buf).min(whole_up_to.saturating_add(1));
            if !self.read_more(wanted.clamp(1, CHUNK)).await? {
                return Ok(None);
            }
        }
    }

    /// Read more into the buffer (room for at least `reserve` bytes); false when the peer
    /// closed between messages, an error when it closed in the middle of one.
    async fn read_more(&mut self, reserve: usize) -> Result<bool, FrameError> {
        self.buf.reserve(reserve);
        if self.inner.read_buf(&mut self.buf).await? > 0 {
            Ok(true)
        } else if self.buf.is_empty() {
            Ok(false)
        } else {
            Err(FrameError::Malformed(
                "connection closed in the middle of a message".into(),
            ))
        }
    }

    /// `next_frame` from what has already been read; never waits for the peer.
    pub fn buffered_frame(&mut self, whole_up_to: usize) -> Result<Option<Frame>, FrameError> {
        let Some(len) = announced_len(&self.buf, self.max_len)? else {
            return Ok(None);
        };
        if len > whole_up_to {
            let mut header = [0u8; 5];
            header.copy_from_slice(&self.buf[..5]);
            self.buf.advance(5);
            return Ok(Some(Frame::Large(Large {
                tag: header[0],
                header,
                remaining: len - 4,
            })));
        }
        Ok(split_message(&mut self.buf, self.max_len)?.map(Frame::Whole))
    }

    /// The rest of `large`, read whole after all (the caller needs its body).
    pub async fn read_rest(&mut self, large: Large) -> Result<Message, FrameError> {
        let mut bytes = BytesMut::with_capacity(large.wire_len());
        bytes.extend_from_slice(&large.header);
        self.fill(large.remaining).await?;
        bytes.extend_from_slice(&self.buf.split_to(large.remaining));
        Ok(Message {
            tag: large.tag,
            bytes: bytes.freeze(),
        })
    }

    /// The first `n` bytes of `large`'s body (fewer if the body is shorter), read into
    /// the buffer but not taken: for the names at the start of a Bind or Parse.
    pub async fn peek_body(&mut self, large: &Large, n: usize) -> Result<&[u8], FrameError> {
        let n = n.min(large.remaining);
        self.fill(n).await?;
        Ok(&self.buf[..n])
    }

    /// Pass `large`'s body to `writer` a chunk at a time, or drop it (`None`).
    pub async fn pass_body<W: AsyncWrite + Unpin>(
        &mut self,
        large: Large,
        mut writer: Option<&mut W>,
    ) -> Result<(), PassError> {
        let mut remaining = large.remaining;
        while remaining > 0 {
            if self.buf.is_empty() {
                self.fill(1).await.map_err(PassError::Read)?;
            }
            let piece = self.buf.split_to(remaining.min(self.buf.len()));
            remaining -= piece.len();
            if let Some(writer) = writer.as_deref_mut() {
                writer.write_all(&piece).await.map_err(PassError::Write)?;
            }
        }
        if let Some(writer) = writer {
            writer.flush().await.map_err(PassError::Write)?;
        }
        Ok(())
    }

    /// Read until at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), FrameError> {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).min(CHUNK));
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(FrameError::Malformed(
                    "connection closed in the middle of a message".into(),
                ));
            }
        }
        Ok(())
    }

    /// Bytes read past the last message, and the stream: for switching to raw copying.
    pub fn into_parts(self) -> (Bytes, R) {
        (self.buf.freeze(), self.inner)
    }
}

/// How many more bytes the message at the front of `buf` needs.
fn wanted_bytes(buf: &BytesMut) -> usize {
    if buf.len() < 5 {
        return 5 - buf.len();
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]).max(0) as usize;
    (len + 1).saturating_sub(buf.len())
}

/// The length the message at the front of `buf` announces (counting itself), once its
/// header is there; an error for an impossible or oversized length.
fn announced_len(buf: &BytesMut, max_len: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::Malformed(format!(
            "invalid length {len} for message type '{}'",
            printable(tag)
        )));
    }
    let len = len as usize;
    if len > max_len {
        return Err(FrameError::Malformed(format!(
            "message type '{}' of {len} bytes exceeds the limit of {max_len} bytes",
            printable(tag)
        )));
    }
    Ok(Some(len))
}

/// Take one complete message off the front of `buf`, if there is one.
pub fn split_message(buf: &mut BytesMut, max_len: usize) -> Result<Option<Message>, FrameError> {
    let Some(len) = announced_len(buf, max_len)? else {
        return Ok(None);
    };
    if buf.len() < len + 1 {
        return Ok(None);
    }
    let tag = buf[0];
    let bytes = buf.split_to(len + 1).freeze();
    Ok(Some(Message { tag, bytes }))
}

/// A type byte for an error message.
pub fn printable(tag: u8) -> char {
    if tag.is_ascii_graphic() {
        tag as char
    } else {
        '?'
    }
}

/// Reads the fields of a message body; every read checks the bounds.
pub struct BodyReader<'a> {
    body: &'a [u8],
}

impl<'a> BodyReader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        BodyReader { body }
    }

    pub fn cstring(&mut self) -> Result<&'a str, FrameError> {
        let end = self
            .body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| FrameError::Malformed("string without terminator".into()))?;
        let text = std::str::from_utf8(&self.body[..end])
            .map_err(|_| FrameError::Malformed("string is not valid UTF-8".into()))?;
        self.body = &self.body[end + 1..];
        Ok(text)
    }

    pub fn i32(&mut self) -> Result<i32, FrameError> {
        if self.body.len() < 4 {
            return Err(FrameError::Malformed("message too short".into()));
        }
        Ok(self.body.get_i32())
    }

    pub fn i16(&mut self) -> Result<i16, FrameError> {
        if self.body.len() < 2 {
            return Err(FrameError::Malformed("message too short".into()));
        }
        Ok(self.body.get_i16())
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        if self.body.is_empty() {
            return Err(FrameError::Malformed("message too short".into()));
        }
        Ok(self.body.get_u8())
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.body.len() < n {
            return Err(FrameError::Malformed("message too short".into()));
        }
        let (head, tail) = self.body.split_at(n);
        self.body = tail;
        Ok(head)
    }
}

pub fn put_cstring(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(text.as_bytes());
    buf.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], max_len: usize) -> Result<Vec<Message>, FrameError> {
        let mut reader = MessageReader::with_max_len(input, max_len);
        let mut out = Vec::new();
        while let Some(message) = reader.next().await? {
            out.push(message);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn splits_messages_and_keeps_their_original_bytes() {
        let mut input = Message::build(b'Q', b"SELECT 1\0").bytes.to_vec();
        input.extend_from_slice(&Message::build(b'S', b"").bytes);
        let messages = read_all(&input, MAX_MESSAGE_LEN).await.unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].tag, b'Q');
        assert_eq!(messages[0].body(), b"SELECT 1\0");
        assert_eq!(&messages[1].bytes[..], &[b'S', 0, 0, 0, 4]);
    }

    #[tokio::test]
    async fn a_length_below_four_is_malformed() {
        let err = read_all(&[b'Q', 0, 0, 0, 3], MAX_MESSAGE_LEN).await.unwrap_err();
        assert!(err.to_string().contains("invalid length 3"), "{err}");
        let err = read_all(&[b'Q', 0xff, 0xff, 0xff, 0xff], MAX_MESSAGE_LEN)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid length -1"), "{err}");
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_before_it_is_read() {
        let err = read_all(&[b'd', 0x7f, 0, 0, 0], 1024).await.unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[tokio::test]
    async fn a_truncated_message_is_an_error_and_a_clean_close_is_not() {
        let err = read_all(&[b'Q', 0, 0, 0, 9, b'x'], MAX_MESSAGE_LEN).await.unwrap_err();
        assert!(err.to_string().contains("middle of a message"), "{err}");
        assert!(read_all(&[], MAX_MESSAGE_LEN).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_large_message_is_passed_on_in_pieces_and_small_ones_stay_whole() {
        let big = Message::build(b'd', &vec![7u8; 300_000]);
        let mut input = Message::build(b'Q', b"SELECT 1\0").bytes.to_vec();
        input.extend_from_slice(&big.bytes);
        input.extend_from_slice(&Message::build(b'S', b"").bytes);
        let mut reader = MessageReader::new(&input[..]);
        let Some(Frame::Whole(query)) = reader.next_frame(1024).await.unwrap() else {
            panic!("a small message is whole");
        };
        assert_eq!(query.tag, b'Q');
        let Some(Frame::Large(large)) = reader.next_frame(1024).await.unwrap() else {
            panic!("a large message is streamed");
        };
        assert_eq!((large.tag, large.wire_len()), (b'd', big.bytes.len()));
        assert_eq!(reader.peek_body(&large, 3).await.unwrap(), &[7, 7, 7]);
        let mut out = large.header.to_vec();
        reader.pass_body(large, Some(&mut out)).await.unwrap();
        assert_eq!(out, big.bytes);
        let Some(Frame::Whole(sync)) = reader.next_frame(1024).await.unwrap() else {
            panic!("the next message is read as usual");
        };
        assert_eq!(sync.tag, b'S');
        assert!(reader.next_frame(1024).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_message_can_be_read_whole_or_dropped() {
        let big = Message::build(b'Q', &vec![b'x'; 5000]);
        let mut input = big.bytes.to_vec();
        input.extend_from_slice(&big.bytes);
        input.extend_from_slice(&Message::build(b'S', b"").bytes);
        let mut reader = MessageReader::new(&input[..]);
        let Some(Frame::Large(large)) = reader.next_frame(1024).await.unwrap() else {
            panic!("large");
        };
        assert_eq!(reader.read_rest(large).await.unwrap(), big);
        let Some(Frame::Large(large)) = reader.next_frame(1024).await.unwrap() else {
            panic!("large");
        };
        reader.pass_body::<Vec<u8>>(large, None).await.unwrap();
        let Some(Frame::Whole(sync)) = reader.next_frame(1024).await.unwrap() else {
            panic!("whole");
        };
        assert_eq!(sync.tag, b'S');
    }

    #[tokio::test]
    async fn a_large_message_cut_short_is_an_error() {
        let big = Message::build(b'd', &vec![1u8; 5000]);
        let mut reader = MessageReader::new(&big.bytes[..4000]);
        let Some(Frame::Large(large)) = reader.next_frame(1024).await.unwrap() else {
            panic!("large");
        };
        let mut out = Vec::new();
        assert!(matches!(
            reader.pass_body(large, Some(&mut out)).await,
            Err(PassError::Read(FrameError::Malformed(_)))
        ));
    }

    #[test]
    fn body_reader_checks_bounds() {
        let mut reader = BodyReader::new(b"ab\0\0\0");
        assert_eq!(reader.cstring().unwrap(), "ab");
        assert!(reader.i32().is_err());
        assert!(BodyReader::new(b"no terminator").cstring().is_err());
    }
}
