//! Query ('Q'): a simple-protocol query string.

use super::{BodyReader, FrameError, Message};

pub fn text(message: &Message) -> Result<&str, FrameError> {
    BodyReader::new(message.body()).cstring()
}

pub fn build(sql: &str) -> Message {
    let mut body = Vec::with_capacity(sql.len() + 1);
    super::put_cstring(&mut body, sql);
    Message::build(b'Q', &body)
}
