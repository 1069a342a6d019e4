//! Sync ('S') and Flush ('H'): the ends of an extended-protocol batch.

use super::Message;

pub fn build() -> Message {
    Message::build(b'S', &[])
}

pub fn build_flush() -> Message {
    Message::build(b'H', &[])
}
