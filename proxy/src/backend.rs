//! The server side: connecting to the upstream (TCP, then TLS as configured) and
//! forwarding cancel requests on a connection of their own.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::messages::startup::ssl_request;
use super::tls::{server_name, Stream, UpstreamTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Upstream {
    /// host:port as given.
    pub address: String,
    host: String,
    mode: UpstreamTls,
    connector: Option<tokio_rustls::TlsConnector>,
    /// The sessions that hear of their clients' cancels.
    pub cancels: super::cancels::Cancels,
}

impl Upstream {
    pub fn new(address: &str, mode: UpstreamTls, connector: Option<tokio_rustls::TlsConnector>) -> Upstream {
        let host = address
            .rsplit_once(':')
            .map(|(host, _)| host)
            .unwrap_or(address)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Upstream {
            address: address.to_string(),
            host,
            mode,
            connector,
            cancels: super::cancels::Cancels::default(),
        }
    }

    /// A new connection to the server, encrypted as configured. The error says why in
    /// words fit for the client.
    pub async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| format!("timed out connecting to the upstream server {}", self.address))?
            .map_err(|err| format!("cannot connect to the upstream server {}: {err}", self.address))?;
        let _ = tcp.set_nodelay(true);
        let Some(connector) = &self.connector else {
            return Ok(Box::new(tcp));
        };
        let mut tcp = tcp;
        tcp.write_all(&ssl_request())
            .await
            .map_err(|err| format!("upstream {}: {err}", self.address))?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer)
            .await
            .map_err(|err| format!("upstream {} closed during SSL negotiation: {err}", self.address))?;
        match (answer[0], self.mode) {
            (b'S', _) => {
                let name = server_name(&self.host)?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|err| format!("TLS to the upstream server {} failed: {err}", self.address))?;
                Ok(Box::new(tls))
            }
            (b'N', UpstreamTls::Prefer) => Ok(Box::new(tcp)),
            (b'N', _) => Err(format!(
                "the upstream server {} does not support TLS (--upstream-tls requires it)",
                self.address
            )),
            (other, _) => Err(format!(
                "the upstream server {} answered SSLRequest with {other:#04x}",
                self.address
            )),
        }
    }

    /// Forward a CancelRequest packet unchanged: the client's key is the server's.
    pub async fn cancel(&self, packet: &[u8]) -> Result<(), String> {
        let mut stream = self.connect().await?;
        stream.write_all(packet).await.map_err(|err| err.to_string())?;
        stream.flush().await.map_err(|err| err.to_string())?;
        // The server closes the connection once it has read the request.
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
        Ok(())
    }
}
