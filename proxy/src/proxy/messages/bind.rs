//! Bind ('B'): which prepared statement a portal is made from.

use super::{BodyReader, FrameError, Message};

pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
}

impl<'a> Bind<'a> {
    pub fn decode(message: &'a Message) -> Result<Bind<'a>, FrameError> {
        let mut reader = BodyReader::new(message.body());
        let portal = reader.cstring()?;
        let statement = reader.cstring()?;
        Ok(Bind { portal, statement })
    }
}

/// Bind `portal` to `statement` with no parameters and text results.
pub fn build(portal: &str, statement: &str) -> Message {
    let mut body = Vec::new();
    super::put_cstring(&mut body, portal);
    super::put_cstring(&mut body, statement);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Message::build(b'B', &body)
}
