//! ReadyForQuery ('Z'): the server's transaction status after a query or a Sync.

use super::{BodyReader, FrameError, Message};

/// 'I' idle, 'T' in a transaction block, 'E' in a failed transaction block.
pub fn status(message: &Message) -> Result<u8, FrameError> {
    match BodyReader::new(message.body()).u8()? {
        status @ (b'I' | b'T' | b'E') => Ok(status),
        other => Err(FrameError::Malformed(format!(
            "invalid transaction status '{}'",
            super::printable(other)
        ))),
    }
}

/// A ReadyForQuery with `status`.
pub fn build(status: u8) -> Message {
    Message::build(b'Z', &[status])
}
