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
    build(b'S', name)
}

pub fn build_portal(name: &str) -> Message {
    build(b'P', name)
}

fn build(kind: u8, name: &str) -> Message {
    let mut body = vec![kind];
    super::put_cstring(&mut body, name);
    Message::build(b'C', &body)
}
