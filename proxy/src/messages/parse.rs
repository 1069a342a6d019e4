//! Parse ('P'): a statement's name and text.

use super::{BodyReader, FrameError, Message};

pub struct Parse<'a> {
    pub name: &'a str,
    pub query: &'a str,
}

impl<'a> Parse<'a> {
    pub fn decode(message: &'a Message) -> Result<Parse<'a>, FrameError> {
        let mut reader = BodyReader::new(message.body());
        let name = reader.cstring()?;
        let query = reader.cstring()?;
        Ok(Parse { name, query })
    }
}

/// Parse `query` as prepared statement `name`, without parameter types.
pub fn build(name: &str, query: &str) -> Message {
    let mut body = Vec::new();
    super::put_cstring(&mut body, name);
    super::put_cstring(&mut body, query);
    body.extend_from_slice(&0i16.to_be_bytes());
    Message::build(b'P', &body)
}
