//! Close ('C'): a prepared statement ('S') or a portal ('P').

use super::{BodyReader, FrameError, Message};

pub struct Close<'a> {
    pub kind: u8,
    pub name: &'a str,
}

impl<'a> Close<'a> {
    pub fn decode(message: &'a Message) -> Result<Close<'a>, FrameError> {
        let mut reader = BodyReader::new(message.body());
        let kind = reader.u8()?;
        let name = reader.cstring()?;
        Ok(Close { kind, name })
    }
}

pub fn build_statement(name: &str) -> Message {
    let mut body = vec![b'S'];
    super::put_cstring(&mut body, name);
    Message::build(b'C', &body)
}
