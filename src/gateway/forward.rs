//! The gateway's client of hkmsd's `ApplicationService`, over hkmsd's Unix socket on the
//! same host, or over its TCP listener with mutual TLS (the gateway's client certificate of
//! the instance CA; hkmsd's certificate checked against the instance CA bundle).
//!
//! Connections are opened lazily and re-opened by tonic when hkmsd restarts, so the gateway
//! can start before hkmsd and survives its restarts. Requests are spread round-robin over a
//! few HTTP/2 connections.

use crate::gateway::config::{HkmsdConfig, HkmsdTarget};
use crate::proto::application_service_client::ApplicationServiceClient;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// hkmsd is not reachable or did not answer in time.
    #[error("hkmsd unavailable: {0}")]
    Unavailable(String),
    /// hkmsd refused the relay itself (e.g. this gateway's uid is not in `gateway_uids`).
    #[error("hkmsd refused the relayed request: {0}")]
    Refused(String),
}

/// Round-robin clients of hkmsd.
#[derive(Debug)]
pub struct Forwarder {
    clients: Vec<ApplicationServiceClient<Channel>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl Forwarder {
    /// Prepares the connections (opened at the first request).
    pub fn new(cfg: &HkmsdConfig) -> Result<Forwarder, String> {
        let target = cfg.target()?;
        let mut clients = Vec::with_capacity(cfg.connections);
        for _ in 0..cfg.connections {
            let channel = match &target {
                HkmsdTarget::Socket(path) => {
                    let path = path.clone();
                    // The URI is required by the API but unused: the connector dials the
                    // socket.
                    Endpoint::try_from("http://hkmsd.local")
                        .map_err(|e| e.to_string())?
                        .connect_timeout(Duration::from_secs(5))
                        .connect_with_connector_lazy(tower::service_fn(move |_| {
                            let path = path.clone();
                            async move {
                                let stream = tokio::net::UnixStream::connect(path).await?;
                                Ok::<_, std::io::Error>(TokioIo::new(stream))
                            }
                        }))
                }
                HkmsdTarget::Tls { target, files } => {
                    crate::client::tls_channel(target, files, Duration::from_secs(5))?
                }
            };
            clients.push(ApplicationServiceClient::new(channel));
        }
        Ok(Forwarder {
            clients,
            next: AtomicUsize::new(0),
            timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }

    /// Forwards one request and returns hkmsd's answer for the caller.
    pub async fn call(
        &self,
        req: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, ForwardError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut client = self.clients[i].clone();
        match tokio::time::timeout(self.timeout, client.call(req)).await {
            Err(_) => Err(ForwardError::Unavailable("no answer in time".into())),
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => match s.code() {
                tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded => {
                    Err(ForwardError::Unavailable(s.message().to_owned()))
                }
                _ => Err(ForwardError::Refused(format!(
                    "{:?}: {}",
                    s.code(),
                    s.message()
                ))),
            },
        }
    }
}
