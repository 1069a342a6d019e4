//! Describe ('D'): of a prepared statement ('S') or a portal ('P').

use super::{BodyReader, FrameError, Message};

pub fn kind(message: &Message) -> Result<u8, FrameError> {
    BodyReader::new(message.body()).u8()
}
