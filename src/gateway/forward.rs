//! The gateway's client of hkmsd's `ApplicationService`, over hkmsd's Unix socket on the
//! same host, or over its TCP listener with mutual TLS (the gateway's client certificate of
//! the instance CA; hkmsd's certificate checked against the instance CA bundle).
//!
//! Connections are opened lazily and re-opened by tonic when hkmsd restarts, so the gateway
//! can start before hkmsd and survives its restarts. Each client connection relays its
//! requests over a `Relay` stream of its own ([`ConnRelay`]), opened at its first request
//! and kept while the connection lives; the streams are spread round-robin over a few
//! HTTP/2 connections. An hkmsd that predates `Relay` gets one `Call` per request.

use crate::gateway::config::{HkmsdConfig, HkmsdTarget};
use crate::proto::application_service_client::ApplicationServiceClient;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

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
    /// Cleared when hkmsd answers `Relay` with Unimplemented (an earlier release).
    streams: AtomicBool,
}

/// The relay stream of one client connection (none until its first request).
#[derive(Debug, Default)]
pub struct ConnRelay(Option<OpenRelay>);

#[derive(Debug)]
struct OpenRelay {
    requests: mpsc::Sender<ApplicationCallRequest>,
    answers: Streaming<ApplicationCallResponse>,
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
                                let stream =
                                    crate::quiet_unix::QuietUnixStream::connect(path).await?;
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
            streams: AtomicBool::new(true),
        })
    }

    fn client(&self) -> ApplicationServiceClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[i].clone()
    }

    /// Forwards one request of a client connection over the connection's relay stream
    /// (opened now if it has none, or if hkmsd closed it) and returns hkmsd's answer, all
    /// within the forwarding timeout. The stream is held outside the connection while in
    /// use, so after a failure, a timeout or a cancelled request the connection's next
    /// request opens a new one and can never read an answer meant for another request.
    pub async fn relay(
        &self,
        conn: &mut ConnRelay,
        req: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, ForwardError> {
        if !self.streams.load(Ordering::Relaxed) {
            return self.call(req).await;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let late = || ForwardError::Unavailable("no answer in time".into());
        let mut req = req;
        // A second try only when the stream was gone before the request went out.
        for _ in 0..2 {
            let mut open = match conn.0.take().filter(|r| !r.requests.is_closed()) {
                Some(open) => open,
                None => match tokio::time::timeout_at(deadline, self.open()).await {
                    Err(_) => return Err(late()),
                    Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => {
                        tracing::info!("hkmsd does not offer relay streams: one call per request");
                        self.streams.store(false, Ordering::Relaxed);
                        return self.call(req).await;
                    }
                    Ok(Err(s)) => return Err(status_error(s)),
                    Ok(Ok(open)) => open,
                },
            };
            match tokio::time::timeout_at(deadline, open.requests.send(req)).await {
                Err(_) => return Err(late()),
                Ok(Err(mpsc::error::SendError(unsent))) => {
                    req = unsent;
                    continue;
                }
                Ok(Ok(())) => {}
            }
            return match tokio::time::timeout_at(deadline, open.answers.message()).await {
                Err(_) => Err(late()),
                Ok(Ok(Some(answer))) => {
                    conn.0 = Some(open);
                    Ok(answer)
                }
                Ok(Ok(None)) => Err(ForwardError::Unavailable("relay stream ended".into())),
                Ok(Err(s)) => Err(status_error(s)),
            };
        }
        Err(ForwardError::Unavailable("relay stream closed".into()))
    }

    /// Opens a relay stream.
    async fn open(&self) -> Result<OpenRelay, tonic::Status> {
        // One request in flight per stream: the connection sends its next request after
        // the answer to this one.
        let (requests, outbound) = mpsc::channel(1);
        let answers = self
            .client()
            .relay(ReceiverStream::new(outbound))
            .await?
            .into_inner();
        Ok(OpenRelay { requests, answers })
    }

    /// Forwards one request in a call of its own and returns hkmsd's answer.
    pub async fn call(
        &self,
        req: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, ForwardError> {
        let mut client = self.client();
        match tokio::time::timeout(self.timeout, client.call(req)).await {
            Err(_) => Err(ForwardError::Unavailable("no answer in time".into())),
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(status_error(s)),
        }
    }
}

/// A gRPC failure of the relay, as the gateway reports it.
fn status_error(s: tonic::Status) -> ForwardError {
    match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::Unknown
        | tonic::Code::Cancelled
        | tonic::Code::DeadlineExceeded => ForwardError::Unavailable(s.message().to_owned()),
        _ => ForwardError::Refused(format!("{:?}: {}", s.code(), s.message())),
    }
}
