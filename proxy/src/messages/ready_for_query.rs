//! ReadyForQuery ('Z'): the server's transaction status after a query or a Sync.

use super::{BodyReader, FrameError, Message};

pub use policy::TransactionStatus;

/// The status byte on the wire.
pub fn byte(status: TransactionStatus) -> u8 {
    match status {
        TransactionStatus::Idle => b'I',
        TransactionStatus::InBlock => b'T',
        TransactionStatus::Failed => b'E',
    }
}

/// The status of a ReadyForQuery.
pub fn status(message: &Message) -> Result<TransactionStatus, FrameError> {
    match BodyReader::new(message.body()).u8()? {
        b'I' => Ok(TransactionStatus::Idle),
        b'T' => Ok(TransactionStatus::InBlock),
        b'E' => Ok(TransactionStatus::Failed),
        other => Err(FrameError::Malformed(format!(
            "invalid transaction status '{}'",
            super::printable(other)
        ))),
    }
}

/// A ReadyForQuery with `status`.
pub fn build(status: TransactionStatus) -> Message {
    Message::build(b'Z', &[byte(status)])
}
