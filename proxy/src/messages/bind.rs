//! Bind ('B'): which prepared statement a portal is made from.

use super::{BodyReader, FrameError, Message};

pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
}

/// A Bind's names are within this many bytes of its start (the server truncates names
/// to 63 bytes; a client that sends longer ones still fits).
pub const NAMES_WITHIN: usize = 8 * 1024;

impl<'a> Bind<'a> {
    pub fn decode(message: &'a Message) -> Result<Bind<'a>, FrameError> {
        Bind::decode_body(message.body())
    }

    /// The names from the start of a Bind's body (the parameters after them may be
    /// missing: a large Bind passes on in pieces).
    pub fn decode_body(body: &'a [u8]) -> Result<Bind<'a>, FrameError> {
        let mut reader = BodyReader::new(body);
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
