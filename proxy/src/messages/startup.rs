//! The untyped packets a client sends first: StartupMessage (protocol 3.0 / 3.2),
//! SSLRequest, GSSENCRequest and CancelRequest. Each is an i32 length and an i32 code.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BodyReader, FrameError};

/// Postgres refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: usize = 10_000;
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    Ssl,
    GssEnc,
    /// The whole packet, forwarded as is (3.2 allows keys longer than 4 bytes).
    Cancel(Bytes),
    Startup(Startup),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// Major << 16 | minor: 196608 for 3.0, 196610 for 3.2.
    pub protocol: i32,
    pub parameters: Vec<(String, String)>,
    /// The original packet, forwarded unchanged.
    pub bytes: Bytes,
}

impl Startup {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Read one startup-phase packet; `None` when the client closed without sending one.
pub async fn read_startup<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<StartupPacket>, FrameError> {
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let len = i32::from_be_bytes(len_bytes);
    if len < 8 || len as usize > MAX_STARTUP_LEN {
        return Err(FrameError::Malformed(format!("invalid startup packet length {len}")));
    }
    let mut packet = vec![0u8; len as usize];
    packet[..4].copy_from_slice(&len_bytes);
    reader.read_exact(&mut packet[4..]).await?;
    decode_startup(Bytes::from(packet)).map(Some)
}

/// Decode a whole startup-phase packet (length included).
pub fn decode_startup(packet: Bytes) -> Result<StartupPacket, FrameError> {
    let mut reader = BodyReader::new(&packet[4..]);
    let code = reader.i32()?;
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::Ssl),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEnc),
        CANCEL_REQUEST_CODE => Ok(StartupPacket::Cancel(packet)),
        protocol if protocol >> 16 == 3 => {
            let mut parameters = Vec::new();
            loop {
                let name = reader.cstring()?;
                if name.is_empty() {
                    break;
                }
                let value = reader.cstring()?;
                parameters.push((name.to_string(), value.to_string()));
            }
            Ok(StartupPacket::Startup(Startup {
                protocol,
                parameters,
                bytes: packet,
            }))
        }
        other => Err(FrameError::Malformed(format!(
            "unsupported frontend protocol {}.{}",
            other >> 16,
            other & 0xffff
        ))),
    }
}

/// An SSLRequest packet, as the proxy sends it to the upstream.
pub fn ssl_request() -> [u8; 8] {
    let mut packet = [0u8; 8];
    packet[..4].copy_from_slice(&8i32.to_be_bytes());
    packet[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut out = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    #[tokio::test]
    async fn startup_message_3_0_and_3_2_with_parameters() {
        for protocol in [196_608, 196_610] {
            let bytes = packet(protocol, b"user\0migrator\0database\0app\0\0");
            let Some(StartupPacket::Startup(startup)) = read_startup(&mut &bytes[..]).await.unwrap() else {
                panic!("not a startup message");
            };
            assert_eq!(startup.protocol, protocol);
            assert_eq!(startup.parameter("user"), Some("migrator"));
            assert_eq!(startup.parameter("database"), Some("app"));
            assert_eq!(&startup.bytes[..], &bytes[..]);
        }
    }

    #[tokio::test]
    async fn requests_and_cancel() {
        let ssl = ssl_request();
        assert_eq!(read_startup(&mut &ssl[..]).await.unwrap(), Some(StartupPacket::Ssl));
        let gss = packet(GSSENC_REQUEST_CODE, b"");
        assert_eq!(read_startup(&mut &gss[..]).await.unwrap(), Some(StartupPacket::GssEnc));
        let cancel = packet(CANCEL_REQUEST_CODE, &[0, 0, 0, 42, 1, 2, 3, 4]);
        assert!(matches!(
            read_startup(&mut &cancel[..]).await.unwrap(),
            Some(StartupPacket::Cancel(bytes)) if bytes[..] == cancel[..]
        ));
    }

    #[tokio::test]
    async fn bad_packets_are_errors() {
        assert!(read_startup(&mut &[0u8, 0, 0, 2][..]).await.is_err());
        assert!(read_startup(&mut &[0x7fu8, 0, 0, 0][..]).await.is_err());
        assert!(read_startup(&mut &packet(196_608, b"user\0migrator")[..])
            .await
            .is_err());
        assert!(read_startup(&mut &packet(2 << 16, b"")[..]).await.is_err());
        assert_eq!(read_startup(&mut &[][..]).await.unwrap(), None);
    }
}
