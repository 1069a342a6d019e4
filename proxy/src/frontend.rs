//! The client side of the startup phase: SSLRequest (TLS when configured, else 'N'),
//! GSSENCRequest ('N'), then a StartupMessage or a CancelRequest.

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::messages::startup::{read_startup, Startup, StartupPacket};
use super::messages::FrameError;
use super::tls::Stream;

pub enum Hello {
    Startup {
        stream: Box<dyn Stream>,
        startup: Startup,
        tls: bool,
    },
    Cancel(Bytes),
    /// The client went away before saying anything useful.
    Closed,
}

/// Negotiate encryption and read the client's first real packet.
pub async fn negotiate(tcp: TcpStream, acceptor: Option<&tokio_rustls::TlsAcceptor>) -> Result<Hello, FrameError> {
    let mut stream: Box<dyn Stream> = Box::new(tcp);
    let mut tls = false;
    // SSLRequest and GSSENCRequest each at most once, then the real packet.
    for _ in 0..3 {
        let Some(packet) = read_startup(&mut stream).await? else {
            return Ok(Hello::Closed);
        };
        match packet {
            StartupPacket::Ssl => match acceptor {
                Some(acceptor) if !tls => {
                    stream.write_all(b"S").await?;
                    stream.flush().await?;
                    stream = Box::new(acceptor.accept(stream).await?);
                    tls = true;
                }
                _ => {
                    stream.write_all(b"N").await?;
                    stream.flush().await?;
                }
            },
            StartupPacket::GssEnc => {
                stream.write_all(b"N").await?;
                stream.flush().await?;
            }
            StartupPacket::Cancel(packet) => return Ok(Hello::Cancel(packet)),
            StartupPacket::Startup(startup) => return Ok(Hello::Startup { stream, startup, tls }),
        }
    }
    Err(FrameError::Malformed("too many encryption requests".into()))
}
