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
    build_typed(name, query, &[])
}

/// Parse `query` as prepared statement `name`, its parameters of these types (oids; the
/// server infers the rest). At most 65535 types are sent, all a Parse can carry.
pub fn build_typed(name: &str, query: &str, types: &[u32]) -> Message {
    let types = &types[..types.len().min(usize::from(u16::MAX))];
    let mut body = Vec::new();
    super::put_cstring(&mut body, name);
    super::put_cstring(&mut body, query);
    body.extend_from_slice(&(types.len() as u16).to_be_bytes());
    for oid in types {
        body.extend_from_slice(&oid.to_be_bytes());
    }
    Message::build(b'P', &body)
}
