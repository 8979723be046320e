//! hkmsd's optional TCP listener (`[listen] tcp`), with mutual TLS.
//!
//! TLS is terminated here with OpenSSL rather than by tonic, because the set of accepted
//! client certificates changes at run time: every registered ClientKey is a self-signed
//! certificate. The handshake requires a client certificate and proves that the peer holds
//! its private key (CertificateVerify); the verify callback therefore accepts any
//! certificate, and who the peer is gets decided right after the handshake:
//!
//! - a certificate that chains to `[listen] gateway_ca` for TLS client use and carries the
//!   gateway marker (subject OU [`GATEWAY_CLIENT_OU`], as `hkms ca issue-gateway-client`
//!   writes it) is a gateway on another host: it may relay signed application requests,
//!   exactly like a local gateway uid, and nothing else;
//! - otherwise the certificate must be, byte for byte, the certificate of a registered
//!   ClientKey: the connection acts as that ClientKey's application, with the TCP peer's
//!   address as the source address that network rules see.
//!
//! Any other peer is disconnected after the handshake. On every call
//! [`super::peer::PeerAuth`] checks again that the ClientKey still exists, still holds that
//! certificate, is within its validity and is not past its retirement ([`remote_caller`]). Operators never use TCP.
//!
//! Protocol: TLS 1.2 and 1.3 only, ECDHE (X25519, P-256, P-384) with AEAD ciphers only, no
//! renegotiation, no session resumption (every connection proves its key anew).

use super::endpoint::EndpointKind;
use super::Caller;
use crate::access::clientkey;
use crate::error::{ErrorCode, KmsError};
use crate::proto::ClientKey;
use crate::store::access as records;
use crate::store::{AccessStore, Store};
use crate::tls::{GROUPS, TLS12_CIPHERS};
use openssl::nid::Nid;
use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod, SslOptions, SslRef, SslSessionCacheMode,
    SslVerifyMode, SslVersion,
};
use openssl::stack::{Stack, StackRef};
use openssl::x509::store::{X509Store, X509StoreBuilder, X509StoreRef};
use openssl::x509::{X509PurposeId, X509Ref, X509StoreContext, X509};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The subject organizational unit that marks a gateway client certificate of the instance
/// CA (together with the clientAuth extended key usage).
pub const GATEWAY_CLIENT_OU: &str = "hkms gateway client";
/// ALPN protocol of gRPC.
const ALPN_H2: &[u8] = b"\x02h2";
/// Time a peer has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

/// The TCP listener's TLS settings that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TCP listener TLS setup failed ({code}): {message}")]
pub struct TlsSetupError {
    /// Stable code: `CertificateUnreadable`, `PrivateKeyUnreadable`, `KeyMismatch`,
    /// `GatewayCaUnreadable`, `TlsSettings`.
    pub code: &'static str,
    pub message: String,
}

fn setup_err(code: &'static str, what: &Path, e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError {
        code,
        message: format!("{}: {e}", what.display()),
    }
}

fn settings(e: openssl::error::ErrorStack) -> TlsSetupError {
    TlsSetupError {
        code: "TlsSettings",
        message: e.to_string(),
    }
}

/// The server side of the listener: hkmsd's certificate, a client certificate required.
pub fn acceptor(cert: &Path, key: &Path) -> Result<SslAcceptor, TlsSetupError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(settings)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(settings)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(settings)?;
    b.set_cipher_list(TLS12_CIPHERS).map_err(settings)?;
    b.set_groups_list(GROUPS).map_err(settings)?;
    b.set_options(
        SslOptions::NO_RENEGOTIATION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_COMPRESSION
            | SslOptions::NO_TICKET,
    );
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    // Any certificate passes the TLS layer (ClientKeys are self-signed); the handshake still
    // proves possession of its key, and the peer's identity is decided afterwards.
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true,
    );
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(ALPN_H2, client).ok_or(AlpnError::NOACK)
    });
    b.set_certificate_chain_file(cert)
        .map_err(|e| setup_err("CertificateUnreadable", cert, e))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| setup_err("PrivateKeyUnreadable", key, e))?;
    b.check_private_key()
        .map_err(|e| setup_err("KeyMismatch", key, e))?;
    Ok(b.build())
}

/// The trust store for gateway client certificates: every certificate of the PEM bundle,
/// checked for TLS client use.
pub fn gateway_trust(bundle: &Path) -> Result<X509Store, TlsSetupError> {
    let unreadable = |e: &dyn std::fmt::Display| setup_err("GatewayCaUnreadable", bundle, e);
    let pem = std::fs::read(bundle).map_err(|e| unreadable(&e))?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in the bundle"));
    }
    let mut b = X509StoreBuilder::new().map_err(settings)?;
    for c in certs {
        b.add_cert(c).map_err(settings)?;
    }
    b.set_purpose(X509PurposeId::SSL_CLIENT).map_err(settings)?;
    Ok(b.build())
}

/// Whether `cert` (with the intermediates the peer sent) is a gateway client certificate:
/// it chains to `trust` for TLS client use and carries [`GATEWAY_CLIENT_OU`].
pub fn is_gateway_certificate(
    trust: &X509StoreRef,
    cert: &X509Ref,
    chain: Option<&StackRef<X509>>,
) -> bool {
    let marked = cert
        .subject_name()
        .entries_by_nid(Nid::ORGANIZATIONALUNITNAME)
        .any(|e| e.data().to_string().is_ok_and(|s| s == GATEWAY_CLIENT_OU));
    if !marked {
        return false;
    }
    let verify = || -> Result<bool, openssl::error::ErrorStack> {
        let empty = Stack::new()?;
        let chain = chain.unwrap_or(&empty);
        let mut ctx = X509StoreContext::new()?;
        ctx.init(trust, cert, chain, |c| c.verify_cert())
    };
    verify().unwrap_or(false)
}

/// Who a TCP peer proved to be during its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteIdentity {
    /// An hkms-gateway with a gateway client certificate of the instance CA.
    Gateway { subject: String },
    /// The holder of a registered ClientKey's certificate (DER, re-checked on every call).
    ClientKey {
        client_key_id: String,
        certificate: Arc<Vec<u8>>,
    },
}

/// What the TCP listener records for each connection (found in the requests' extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConnectInfo {
    /// The peer's address (IPv4-mapped IPv6 addresses as IPv4).
    pub remote: SocketAddr,
    pub identity: RemoteIdentity,
}

/// A TLS connection whose peer has been identified.
#[derive(Debug)]
pub struct RemoteStream {
    inner: tokio_openssl::SslStream<TcpStream>,
    info: RemoteConnectInfo,
}

impl tonic::transport::server::Connected for RemoteStream {
    type ConnectInfo = RemoteConnectInfo;

    fn connect_info(&self) -> RemoteConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for RemoteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RemoteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Handshakes and identification of TCP peers.
pub struct RemoteAuth {
    acceptor: SslAcceptor,
    gateway_trust: Option<X509Store>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuth")
            .field("gateways_accepted", &self.gateway_trust.is_some())
            .finish_non_exhaustive()
    }
}

impl RemoteAuth {
    /// Loads hkmsd's certificate and key and the gateway CA bundle (if any). Called before
    /// lock-down: the files are read once.
    pub fn load(
        cert: &Path,
        key: &Path,
        gateway_ca: Option<&Path>,
        store: Arc<dyn Store>,
    ) -> Result<RemoteAuth, TlsSetupError> {
        Ok(RemoteAuth {
            acceptor: acceptor(cert, key)?,
            gateway_trust: gateway_ca.map(gateway_trust).transpose()?,
            store,
        })
    }

    /// The identity behind a completed handshake, or why the peer is refused.
    pub fn identify(&self, ssl: &SslRef) -> Result<RemoteIdentity, String> {
        let cert = ssl
            .peer_certificate()
            .ok_or("the peer sent no certificate")?;
        if let Some(trust) = &self.gateway_trust {
            if is_gateway_certificate(trust, &cert, ssl.peer_cert_chain()) {
                return Ok(RemoteIdentity::Gateway {
                    subject: subject_text(&cert),
                });
            }
        }
        let der = cert.to_der().map_err(|e| e.to_string())?;
        let sha256 = hex::encode(crate::crypto::primitives::sha256(&der));
        let keys = records::list::<ClientKey>(&*self.store as &dyn AccessStore)
            .map_err(|e| format!("ClientKey lookup failed: {e}"))?;
        keys.into_iter()
            .find(|k| k.certificate_sha256 == sha256 && k.certificate == der)
            .map(|k| RemoteIdentity::ClientKey {
                client_key_id: k.client_key_id,
                certificate: Arc::new(der),
            })
            .ok_or_else(|| {
                format!(
                    "certificate sha256={sha256} is neither a registered ClientKey nor a \
                     gateway certificate of the instance CA"
                )
            })
    }

    async fn handshake(&self, tcp: TcpStream, remote: SocketAddr) -> Result<RemoteStream, String> {
        let _ = tcp.set_nodelay(true);
        let ssl = Ssl::new(self.acceptor.context()).map_err(|e| e.to_string())?;
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let identity = self.identify(stream.ssl())?;
        Ok(RemoteStream {
            inner: stream,
            info: RemoteConnectInfo {
                remote: SocketAddr::new(remote.ip().to_canonical(), remote.port()),
                identity,
            },
        })
    }
}

fn subject_text(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let name = e.object().nid().short_name().ok()?;
            let value = e.data().to_string().ok()?;
            Some(format!("{name}={value}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Accepts TCP connections, runs their handshakes and yields the identified ones, for
/// `Server::serve_with_incoming`. Refused peers are logged and disconnected.
pub fn incoming(
    listener: TcpListener,
    auth: Arc<RemoteAuth>,
) -> tokio_stream::wrappers::ReceiverStream<Result<RemoteStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("TCP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let tx = tx.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, auth.handshake(tcp, remote));
                match outcome.await {
                    Ok(Ok(stream)) => {
                        drop(permit);
                        match &stream.info.identity {
                            RemoteIdentity::Gateway { subject } => {
                                tracing::info!(peer = %remote, subject = %subject, "gateway connected over TCP")
                            }
                            RemoteIdentity::ClientKey { client_key_id, .. } => {
                                tracing::debug!(peer = %remote, client_key = %client_key_id, "application connected over TCP")
                            }
                        }
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(reason)) => {
                        tracing::warn!(peer = %remote, "refused a TCP connection: {reason}")
                    }
                    Err(_) => tracing::info!(peer = %remote, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The caller of a request that arrived on the TCP listener, checked at `now` (Unix
/// seconds), and whether it may relay application requests.
pub fn remote_caller(
    store: &dyn AccessStore,
    info: &RemoteConnectInfo,
    now: i64,
) -> Result<(Caller, bool), KmsError> {
    match &info.identity {
        RemoteIdentity::Gateway { subject } => Ok((
            Caller::RemoteGateway {
                subject: subject.clone(),
                address: info.remote.ip(),
            },
            true,
        )),
        RemoteIdentity::ClientKey {
            client_key_id,
            certificate,
        } => {
            let refused = |why: &str| {
                tracing::warn!(peer = %info.remote, client_key = %client_key_id, "refused a TCP request: {why}");
                KmsError::new(ErrorCode::Unauthenticated, why.to_owned())
            };
            let key = records::get::<ClientKey>(store, client_key_id)?
                .filter(|k| k.certificate == **certificate)
                .ok_or_else(|| refused("the connection's ClientKey no longer exists"))?;
            match clientkey::standing(key.not_before, key.not_after, key.retire_unix, now).1 {
                "NotYetValid" => Err(refused("the ClientKey is not valid yet")),
                // Retired (its AAP changed ClientKey): refused as if it had expired.
                "Expired" | "Retired" => Err(refused("the ClientKey has expired")),
                _ => Ok((
                    Caller::Application {
                        aap: key.aap_name,
                        credential: key.client_key_id,
                        source: info.remote.ip(),
                        // hkmsd's TCP listener serves hosts of the private network; it is
                        // not the gateway's Internet endpoint.
                        endpoint: EndpointKind::Private,
                    },
                    false,
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn the_connections_client_key_is_checked_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let now = clientkey::now_unix();
        let cert = vec![1u8, 2, 3];
        let put = |not_before: i64, not_after: i64, certificate: Vec<u8>| {
            let exists = records::get::<ClientKey>(&s, "KAAP.1").unwrap().is_some();
            let k = ClientKey {
                client_key_id: "KAAP.1".into(),
                aap_name: "app".into(),
                certificate,
                not_before,
                not_after,
                ..Default::default()
            };
            records::put(&s, &k, !exists).unwrap();
        };
        let info = RemoteConnectInfo {
            remote: "10.1.2.3:5000".parse().unwrap(),
            identity: RemoteIdentity::ClientKey {
                client_key_id: "KAAP.1".into(),
                certificate: Arc::new(cert.clone()),
            },
        };
        let code = |s: &SledStore| remote_caller(s, &info, now).unwrap_err().code;
        assert_eq!(code(&s), ErrorCode::Unauthenticated, "not registered");
        put(now - 10, now + 1000, cert.clone());
        let (caller, relay) = remote_caller(&s, &info, now).unwrap();
        assert!(!relay);
        assert_eq!(
            caller,
            Caller::Application {
                aap: "app".into(),
                credential: "KAAP.1".into(),
                source: "10.1.2.3".parse().unwrap(),
                endpoint: EndpointKind::Private,
            }
        );
        put(now + 100, now + 1000, cert.clone());
        assert_eq!(code(&s), ErrorCode::Unauthenticated, "not yet valid");
        put(now - 1000, now - 10, cert.clone());
        assert_eq!(code(&s), ErrorCode::Unauthenticated, "expired");
        let retire = |retire_unix: i64| {
            let mut k = records::get::<ClientKey>(&s, "KAAP.1").unwrap().unwrap();
            k.not_after = now + 1000;
            k.retire_unix = retire_unix;
            records::put(&s, &k, false).unwrap();
        };
        retire(now + 100);
        assert!(
            remote_caller(&s, &info, now).is_ok(),
            "retiring, still accepted"
        );
        retire(now);
        assert_eq!(code(&s), ErrorCode::Unauthenticated, "retired");
        retire(0);
        assert!(remote_caller(&s, &info, now).is_ok());
        put(now - 10, now + 1000, vec![9]);
        assert_eq!(code(&s), ErrorCode::Unauthenticated, "another certificate");

        let gw = RemoteConnectInfo {
            remote: "10.1.2.4:5000".parse().unwrap(),
            identity: RemoteIdentity::Gateway {
                subject: "CN=gw".into(),
            },
        };
        let (caller, relay) = remote_caller(&s, &gw, now).unwrap();
        assert!(relay);
        assert!(matches!(caller, Caller::RemoteGateway { .. }));
    }
}
