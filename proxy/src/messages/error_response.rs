//! ErrorResponse ('E') and NoticeResponse ('N'): built with pgwire's message types from
//! the policy's reports, so the proxy sends exactly the fields the extension sends.

use bytes::BytesMut;
use pgwire::messages::response::{ErrorResponse, NoticeResponse};
use pgwire::messages::Message as _;
use policy::report::{Level, Report};

use super::{BodyReader, FrameError, Message};

/// SQLSTATE for a protocol violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE when the upstream server cannot be reached.
pub const CONNECTION_FAILURE: &str = "08006";
/// SQLSTATE for a refused policy change.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE for a refused authentication exchange.
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// SQLSTATE syntax_error.
pub const SYNTAX_ERROR: &str = "42601";

/// The fields of a report: S and V (level), C, M, D, H.
fn report_fields(report: &Report) -> Vec<(u8, String)> {
    let mut fields = vec![
        (b'S', report.level.name().to_string()),
        (b'V', report.level.name().to_string()),
        (b'C', report.sqlstate.to_string()),
        (b'M', report.message.clone()),
    ];
    if let Some(detail) = &report.detail {
        fields.push((b'D', detail.clone()));
    }
    if let Some(hint) = &report.hint {
        fields.push((b'H', hint.clone()));
    }
    fields
}

/// The wire bytes of a report: an ErrorResponse for ERROR, a NoticeResponse otherwise.
pub fn encode_report(report: &Report, out: &mut BytesMut) {
    let fields = report_fields(report);
    // Encoding only fails for messages over pgwire's size limit; reports are small.
    let _ = if report.level == Level::Error {
        ErrorResponse::new(fields).encode(out)
    } else {
        NoticeResponse::new(fields).encode(out)
    };
}

/// A FATAL error from the proxy itself (the session ends after it).
pub fn fatal(sqlstate: &str, message: &str) -> BytesMut {
    proxy_error("FATAL", sqlstate, message)
}

/// The bytes of an ERROR from the proxy itself.
pub fn error_bytes(sqlstate: &str, message: &str) -> bytes::Bytes {
    proxy_error("ERROR", sqlstate, message).freeze()
}

/// An ErrorResponse of the proxy's own: severity, SQLSTATE and message.
fn proxy_error(severity: &str, sqlstate: &str, message: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', sqlstate.to_string()),
        (b'M', message.to_string()),
    ];
    let _ = ErrorResponse::new(fields).encode(&mut out);
    out
}

/// An ERROR report from the proxy (not about a rule).
pub fn error_report(sqlstate: &'static str, message: String, detail: Option<String>, hint: Option<String>) -> Report {
    Report {
        level: Level::Error,
        sqlstate,
        message,
        detail,
        hint,
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
pub fn fields(message: &Message) -> Result<Vec<(u8, String)>, FrameError> {
    let mut reader = BodyReader::new(message.body());
    let mut out = Vec::new();
    loop {
        let code = reader.u8()?;
        if code == 0 {
            return Ok(out);
        }
        out.push((code, reader.cstring()?.to_string()));
    }
}

/// The SQLSTATE ('C') of an ErrorResponse or NoticeResponse.
pub fn sqlstate(message: &Message) -> Option<String> {
    fields(message)
        .ok()?
        .into_iter()
        .find_map(|(code, value)| (code == b'C').then_some(value))
}

/// The server's error with the guard's message, detail and hint in place of its own;
/// every other field (severity, SQLSTATE, position, where, file and line) as it sent it.
/// None when its fields do not read.
pub fn with_report(error: &Message, message: &str, detail: &str, hint: &str) -> Option<Message> {
    let mut fields: Vec<(u8, String)> = fields(error)
        .ok()?
        .into_iter()
        .filter(|(code, _)| !matches!(code, b'D' | b'H'))
        .map(|(code, value)| {
            if code == b'M' {
                (code, message.to_string())
            } else {
                (code, value)
            }
        })
        .collect();
    fields.push((b'D', detail.to_string()));
    fields.push((b'H', hint.to_string()));
    let mut out = BytesMut::new();
    ErrorResponse::new(fields).encode(&mut out).ok()?;
    Some(Message {
        tag: b'E',
        bytes: out.freeze(),
    })
}

/// The same error or notice with its statement position ('P', 1-based characters) moved
/// back by `shift` characters: the proxy inserted that much text before the statement.
/// Everything else, field order included, stays as the server sent it.
pub fn shift_position(message: &Message, shift: usize) -> Message {
    if shift == 0 {
        return message.clone();
    }
    let Ok(mut fields) = fields(message) else {
        return message.clone();
    };
    let mut changed = false;
    for (code, value) in &mut fields {
        if *code == b'P' {
            if let Ok(position) = value.parse::<usize>() {
                *value = position.saturating_sub(shift).max(1).to_string();
                changed = true;
            }
        }
    }
    if !changed {
        return message.clone();
    }
    let mut out = BytesMut::new();
    let _ = if message.tag == b'N' {
        NoticeResponse::new(fields).encode(&mut out)
    } else {
        ErrorResponse::new(fields).encode(&mut out)
    };
    Message {
        tag: message.tag,
        bytes: out.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_exactly_their_fields() {
        let report = Report {
            level: Level::Error,
            sqlstate: "SM001",
            message: "m".into(),
            detail: Some("d".into()),
            hint: Some("h".into()),
        };
        let mut out = BytesMut::new();
        encode_report(&report, &mut out);
        let message = Message {
            tag: out[0],
            bytes: out.freeze(),
        };
        assert_eq!(message.tag, b'E');
        let got = fields(&message).unwrap();
        let want: Vec<(u8, String)> = [
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "SM001"),
            (b'M', "m"),
            (b'D', "d"),
            (b'H', "h"),
        ]
        .into_iter()
        .map(|(c, v)| (c, v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn warnings_are_notices() {
        let report = Report {
            level: Level::Warning,
            sqlstate: "SM002",
            message: "m".into(),
            detail: None,
            hint: None,
        };
        let mut out = BytesMut::new();
        encode_report(&report, &mut out);
        assert_eq!(out[0], b'N');
    }

    #[test]
    fn positions_shift_back() {
        let mut body = Vec::new();
        for (code, value) in [(b'S', "ERROR"), (b'P', "120")] {
            body.push(code);
            super::super::put_cstring(&mut body, value);
        }
        body.push(0);
        for tag in [b'E', b'N'] {
            let shifted = shift_position(&Message::build(tag, &body), 100);
            assert_eq!(shifted.tag, tag);
            assert_eq!(shifted.bytes[0], tag);
            assert!(fields(&shifted).unwrap().contains(&(b'P', "20".to_string())));
        }
    }
}
