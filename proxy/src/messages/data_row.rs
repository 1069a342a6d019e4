//! DataRow ('D'): one row of a result, each column text or NULL.

use super::{BodyReader, FrameError, Message};

pub fn columns(message: &Message) -> Result<Vec<Option<String>>, FrameError> {
    let mut reader = BodyReader::new(message.body());
    let count = reader.i16()?;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let len = reader.i32()?;
        if len < 0 {
            out.push(None);
        } else {
            let bytes = reader.bytes(len as usize)?;
            out.push(Some(String::from_utf8_lossy(bytes).into_owned()));
        }
    }
    Ok(out)
}
