//! TLS on both legs: to the client with a configured certificate, to the upstream
//! with libpq's sslmode vocabulary (disable, prefer, require, verify-full).

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

/// A byte stream, plain or TLS, on either leg.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The plain TCP stream this is, or the stream back if it is something else (TLS).
    fn into_tcp(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn Stream>>;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {
    fn into_tcp(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn Stream>> {
        use std::any::{Any, TypeId};
        if TypeId::of::<T>() != TypeId::of::<tokio::net::TcpStream>() {
            return Err(self);
        }
        let any: Box<dyn Any> = self;
        Ok(*any.downcast().expect("T is TcpStream: checked above"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamTls {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without verifying its certificate.
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, the certificate verified against the CA file or the system roots, and the
    /// host name checked.
    VerifyFull,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The acceptor for clients that send SSLRequest.
pub fn client_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|err| format!("cannot read --tls-cert {}: {err}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("cannot read --tls-cert {}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {} holds no certificate", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|err| format!("cannot read --tls-key {}: {err}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| format!("--tls-cert/--tls-key: {err}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The connector to the upstream for `mode` (None for `disable`).
pub fn upstream_connector(mode: UpstreamTls, ca: Option<&Path>) -> Result<Option<tokio_rustls::TlsConnector>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?;
    let config = match mode {
        UpstreamTls::Disable => return Ok(None),
        UpstreamTls::Prefer | UpstreamTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
        UpstreamTls::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match ca {
                Some(path) => {
                    for cert in CertificateDer::pem_file_iter(path)
                        .map_err(|err| format!("cannot read --upstream-ca {}: {err}", path.display()))?
                    {
                        let cert =
                            cert.map_err(|err| format!("cannot read --upstream-ca {}: {err}", path.display()))?;
                        roots
                            .add(cert)
                            .map_err(|err| format!("--upstream-ca {}: {err}", path.display()))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    let (added, _) = roots.add_parsable_certificates(found.certs);
                    if added == 0 {
                        return Err(
                            "--upstream-tls verify-full: no system root certificates found; give --upstream-ca".into(),
                        );
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|err| format!("invalid upstream host name {host}: {err}"))
}

/// sslmode=require: encrypt, trust any certificate (as libpq does without a root file).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
