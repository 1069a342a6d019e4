//! Execute ('E'): run a portal.

use super::{BodyReader, FrameError, Message};

pub fn portal(message: &Message) -> Result<&str, FrameError> {
    BodyReader::new(message.body()).cstring()
}

/// Execute `portal` to completion.
pub fn build(portal: &str) -> Message {
    let mut body = Vec::new();
    super::put_cstring(&mut body, portal);
    body.extend_from_slice(&0i32.to_be_bytes());
    Message::build(b'E', &body)
}
