//! FunctionCall ('F'): the legacy fast-path call of a function by OID.

use super::{BodyReader, FrameError, Message};

/// pg_proc OID of set_config(text, text, boolean).
pub const SET_CONFIG_OID: i32 = 2078;

pub fn function_oid(message: &Message) -> Result<i32, FrameError> {
    BodyReader::new(message.body()).i32()
}

/// Objects below this OID are built into PostgreSQL (FirstNormalObjectId).
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Is `oid` (as the message carries it, a signed 32-bit field) a function a user or an
/// extension defined?
pub fn is_user_defined(oid: i32) -> bool {
    oid as u32 >= FIRST_NORMAL_OBJECT_ID
}
