//! A gRPC client for hkmsd's Unix socket (used by the CLI and the tests), and the mutual-TLS
//! connector for hkmsd's TCP listener (used by gateways on other hosts, applications that
//! call the gRPC API directly, and the tests).

use crate::proto::access_service_client::AccessServiceClient;
use crate::proto::admin_service_client::AdminServiceClient;
use crate::proto::application_service_client::ApplicationServiceClient;
use crate::proto::asymmetric_service_client::AsymmetricServiceClient;
use crate::proto::audit_service_client::AuditServiceClient;
use crate::proto::crypto_service_client::CryptoServiceClient;
use crate::proto::key_service_client::KeyServiceClient;
use crate::proto::secrets_service_client::SecretsServiceClient;
use crate::tls::{TlsTarget, GROUPS, TLS12_CIPHERS};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The files of a mutual-TLS client of hkmsd's TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientFiles {
    /// PEM CA bundle that hkmsd's server certificate chains to (the instance CA bundle).
    pub ca: PathBuf,
    /// PEM client certificate (then its intermediates, if any).
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
}

fn file_err(what: &Path) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |err| format!("{}: {err}", what.display())
}

/// A TLS 1.2+ client (ECDHE with AEAD suites) presenting `files.cert` and verifying hkmsd's
/// certificate against `files.ca` (host name included).
pub fn tls_connector(files: &TlsClientFiles) -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| e.to_string())?;
    b.set_cipher_list(TLS12_CIPHERS)
        .map_err(|e| e.to_string())?;
    b.set_groups_list(GROUPS).map_err(|e| e.to_string())?;
    b.set_alpn_protos(b"\x02h2").map_err(|e| e.to_string())?;
    b.set_ca_file(&files.ca).map_err(file_err(&files.ca))?;
    b.set_certificate_chain_file(&files.cert)
        .map_err(file_err(&files.cert))?;
    b.set_private_key_file(&files.key, SslFiletype::PEM)
        .map_err(file_err(&files.key))?;
    b.check_private_key().map_err(file_err(&files.key))?;
    Ok(b.build())
}

/// A lazily connected channel to hkmsd's TCP listener. The files are read again for every
/// new connection, so renewed certificates are used without a restart.
pub fn tls_channel(
    target: &TlsTarget,
    files: &TlsClientFiles,
    connect_timeout: Duration,
) -> Result<Channel, String> {
    // Fail early on files that cannot be used.
    tls_connector(files)?;
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    // The URI names the peer for HTTP/2; the connector below does the dialling and TLS.
    let endpoint = Endpoint::try_from(format!("http://{host}:{}", target.port))
        .map_err(|e| e.to_string())?
        .connect_timeout(connect_timeout);
    let (target, files) = (target.clone(), files.clone());
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
            let (target, files) = (target.clone(), files.clone());
            async move {
                let io = |e: String| std::io::Error::other(e);
                let connector = tls_connector(&files).map_err(io)?;
                let tcp =
                    tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
                let _ = tcp.set_nodelay(true);
                let ssl = connector
                    .configure()
                    .and_then(|c| c.into_ssl(&target.host))
                    .map_err(|e| io(e.to_string()))?;
                let mut stream =
                    tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| io(e.to_string()))?;
                std::pin::Pin::new(&mut stream)
                    .connect()
                    .await
                    .map_err(|e| io(format!("TLS handshake with hkmsd failed: {e}")))?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })),
    )
}

/// Clients of every hkmsd service over one connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub keys: KeyServiceClient<Channel>,
    pub crypto: CryptoServiceClient<Channel>,
    pub asymmetric: AsymmetricServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
    pub access: AccessServiceClient<Channel>,
    pub secrets: SecretsServiceClient<Channel>,
    pub audit: AuditServiceClient<Channel>,
    /// Relays application requests (for hkms-gateway).
    pub application: ApplicationServiceClient<Channel>,
}

impl Client {
    /// Connects to hkmsd's TCP listener (`https://host:port`) with mutual TLS. The
    /// connection is opened at the first call.
    pub fn connect_tls(endpoint: &str, files: &TlsClientFiles) -> Result<Client, String> {
        let target = TlsTarget::parse(endpoint)?;
        let channel = tls_channel(&target, files, Duration::from_secs(5))?;
        Ok(Client::from_channel(channel))
    }

    /// Clients of every service over `channel`.
    pub fn from_channel(channel: Channel) -> Client {
        Client {
            keys: KeyServiceClient::new(channel.clone()),
            crypto: CryptoServiceClient::new(channel.clone()),
            asymmetric: AsymmetricServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            access: AccessServiceClient::new(channel.clone()),
            secrets: SecretsServiceClient::new(channel.clone()),
            audit: AuditServiceClient::new(channel.clone()),
            application: ApplicationServiceClient::new(channel),
        }
    }

    /// Connects to hkmsd's Unix socket.
    pub async fn connect(socket: &Path) -> Result<Client, String> {
        let path: PathBuf = socket.to_owned();
        if !path.exists() {
            return Err(format!(
                "no hkmsd socket at {} (is hkmsd running? set --socket or HKMS_SOCKET)",
                path.display()
            ));
        }
        // The URI is required by the API but unused: the connector dials the socket.
        let channel = Endpoint::try_from("http://hkmsd.local")
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        Ok(Client::from_channel(channel))
    }
}
