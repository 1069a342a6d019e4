//! Authentication requests ('R') and the client's SASLInitialResponse ('p'): enough
//! to pass auth through and to keep SCRAM channel binding out of a passthrough.

use super::{put_cstring, BodyReader, FrameError, Message};

pub const AUTH_SASL: i32 = 10;

/// The request code of an Authentication message.
pub fn auth_code(message: &Message) -> Result<i32, FrameError> {
    BodyReader::new(message.body()).i32()
}

/// Does the client have to answer this authentication request with a message?
pub fn expects_client_answer(code: i32) -> bool {
    // cleartext, md5, GSS, GSS continue, SSPI, SASL, SASL continue
    matches!(code, 3 | 5 | 7 | 8 | 9 | 10 | 11)
}

/// AuthenticationSASL without the channel-binding mechanisms (`*-PLUS`): a proxy that
/// terminates TLS on both legs cannot prove the client's channel to the server.
/// Also says whether the server offered any (it then supports channel binding).
pub fn strip_channel_binding(message: &Message) -> Result<(Message, bool), FrameError> {
    let mut reader = BodyReader::new(message.body());
    let code = reader.i32()?;
    let mut body = code.to_be_bytes().to_vec();
    let mut stripped = false;
    loop {
        let mechanism = reader.cstring()?;
        if mechanism.is_empty() {
            break;
        }
        if mechanism.ends_with("-PLUS") {
            stripped = true;
        } else {
            put_cstring(&mut body, mechanism);
        }
    }
    body.push(0);
    Ok((Message::build(b'R', &body), stripped))
}

/// A SASLInitialResponse: the chosen mechanism and the GS2 channel-binding flag of the
/// client-first-message (`n` no support, `y` supported but not offered, `p` used).
pub fn sasl_initial_response(message: &Message) -> Result<(&str, Option<u8>), FrameError> {
    let mut reader = BodyReader::new(message.body());
    let mechanism = reader.cstring()?;
    let len = reader.i32()?;
    let flag = if len > 0 { Some(reader.u8()?) } else { None };
    Ok((mechanism, flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_mechanisms_are_removed() {
        let mut body = AUTH_SASL.to_be_bytes().to_vec();
        body.extend_from_slice(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let (stripped, any) = strip_channel_binding(&Message::build(b'R', &body)).unwrap();
        assert!(any);
        let mut want = AUTH_SASL.to_be_bytes().to_vec();
        want.extend_from_slice(b"SCRAM-SHA-256\0\0");
        assert_eq!(stripped, Message::build(b'R', &want));
    }

    #[test]
    fn the_gs2_flag_is_read() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(b"y,,n=,r");
        let message = Message::build(b'p', &body);
        assert_eq!(sasl_initial_response(&message).unwrap(), ("SCRAM-SHA-256", Some(b'y')));
    }
}
