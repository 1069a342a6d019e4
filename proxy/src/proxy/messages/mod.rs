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
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest typed message accepted from either side (the server's own limit for a
/// Query or CopyData is 1 GiB). Memory is reserved only as bytes arrive.
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

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

    /// The next message; `None` when the peer closed the stream between messages.
    pub async fn next(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            if let Some(message) = split_message(&mut self.buf, self.max_len)? {
                return Ok(Some(message));
            }
            let wanted = wanted_bytes(&self.buf);
            self.buf.reserve(wanted.clamp(1, 64 * 1024));
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Malformed(
                        "connection closed in the middle of a message".into(),
                    ))
                };
            }
        }
    }

    /// The next message if all of it has already been read; never waits for the peer.
    pub fn buffered(&mut self) -> Result<Option<Message>, FrameError> {
        split_message(&mut self.buf, self.max_len)
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

/// Take one complete message off the front of `buf`, if there is one.
pub fn split_message(buf: &mut BytesMut, max_len: usize) -> Result<Option<Message>, FrameError> {
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
    if buf.len() < len + 1 {
        return Ok(None);
    }
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

    #[test]
    fn body_reader_checks_bounds() {
        let mut reader = BodyReader::new(b"ab\0\0\0");
        assert_eq!(reader.cstring().unwrap(), "ab");
        assert!(reader.i32().is_err());
        assert!(BodyReader::new(b"no terminator").cstring().is_err());
    }
}
