//! ReadyForQuery ('Z'): the server's transaction status after a query or a Sync.

use super::{BodyReader, FrameError, Message};

/// The transaction status a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block (every statement but ROLLBACK fails).
    Failed,
}

impl TransactionStatus {
    /// Inside a transaction block, failed or not.
    pub fn in_block(self) -> bool {
        self != TransactionStatus::Idle
    }

    /// The status byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InBlock => b'T',
            TransactionStatus::Failed => b'E',
        }
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
    Message::build(b'Z', &[status.byte()])
}
