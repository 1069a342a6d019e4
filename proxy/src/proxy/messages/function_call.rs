//! FunctionCall ('F'): the legacy fast-path call of a function by OID.

use super::{BodyReader, FrameError, Message};

/// pg_proc OID of set_config(text, text, boolean).
pub const SET_CONFIG_OID: i32 = 2078;

pub fn function_oid(message: &Message) -> Result<i32, FrameError> {
    BodyReader::new(message.body()).i32()
}
