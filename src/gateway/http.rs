//! HTTP/1.1 over TLS: accepts connections, frames application requests (KMS instance API
//! or Tencent Cloud API 3.0) and relays them to hkmsd.
//!
//! Per connection: at most `max_connections` per endpoint (more wait to be accepted) and
//! `max_connections_per_source` per source (more are closed at once), the handshake, header,
//! idle and send deadlines of [`crate::gateway::conn`].
//!
//! Per request, in order: body at most 3 MB (413, decided from `content-length` before
//! reading when it is given, then a lingering close), the body within `body_timeout` (408
//! `RequestTimeout`, then the connection is closed), path `/` (404 otherwise), the QPS caps
//! and the budgets of unauthenticated requests (429 `Rejected.Throttling`, see
//! [`crate::gateway::throttle`]), then the whole request goes to hkmsd with the endpoint it
//! came in on and the client's address. Everything else (API version, signature, date,
//! digest, credential, authorisation, the operation) is hkmsd's. The gateway's own refusals
//! use the envelope of the request's API ([`crate::gateway::wire`]: a protobuf `Error` and
//! an `x-kms-requestid` header, or Tencent's JSON error with HTTP 200). Connections are kept
//! alive.

use crate::front::instance::auth::MAX_BODY;
use crate::front::Api;
use crate::gateway::config::GatewayConfig;
use crate::gateway::conn::{source_of, ConnClock, Guarded, Linger, SourceConns};
use crate::gateway::forward::{ConnRelay, ForwardError, Forwarder};
use crate::gateway::throttle::{self, Endpoint, Throttle, Throttled};
use crate::gateway::tls::Certs;
use crate::gateway::wire;
use crate::instance_api as api;
use crate::proto::{ApplicationCallRequest, HttpHeader};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// What every connection handler shares.
#[derive(Debug)]
pub struct Gateway {
    pub certs: Arc<Certs>,
    pub forwarder: Forwarder,
    pub throttle: Throttle,
    pub limits: Limits,
}

/// Deadlines and connection limits (`[http]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub linger: Linger,
}

impl Gateway {
    /// The gateway of a checked configuration.
    pub fn new(certs: Arc<Certs>, config: &GatewayConfig) -> Result<Gateway, String> {
        let h = &config.http;
        Ok(Gateway {
            certs,
            forwarder: Forwarder::new(&config.hkmsd)?,
            throttle: Throttle::new(&config.throttle),
            limits: Limits {
                handshake_timeout: Duration::from_secs(h.handshake_timeout_secs),
                header_timeout: Duration::from_millis(h.header_timeout_ms),
                body_timeout: Duration::from_millis(h.body_timeout_ms),
                send_timeout: Duration::from_millis(h.send_timeout_ms),
                idle_timeout: Duration::from_secs(h.idle_timeout_secs),
                max_connections: h.max_connections,
                max_connections_per_source: h.max_connections_per_source,
                linger: Linger {
                    max_bytes: h.linger_max_bytes,
                    timeout: Duration::from_millis(h.linger_timeout_ms),
                },
            },
        })
    }
}

/// A KMS instance API `Error` answer made by the gateway itself.
pub fn error_response(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    wire::refusal(Api::Instance, status, code, message)
}

/// A refusal after which the connection is closed.
fn closing(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 413, before the body is read: the connection is closed with a lingering close, so that
/// a client that writes its whole body before reading gets this answer.
fn too_large(api: Api, clock: &ConnClock) -> Response<Full<Bytes>> {
    clock.linger_on_close();
    closing(wire::refusal(
        api,
        413,
        "InvalidParameter",
        "The request body is larger than 3 MB.",
    ))
}

/// IPv4-mapped IPv6 addresses are reported as IPv4.
fn client_ip(addr: SocketAddr) -> IpAddr {
    crate::access::network::canonical(addr.ip())
}

/// What one client connection keeps between its requests.
#[derive(Debug)]
pub struct ConnState {
    endpoint: Endpoint,
    peer: SocketAddr,
    clock: Arc<ConnClock>,
    /// The connection's relay stream to hkmsd. HTTP/1.1 serves a connection's requests
    /// one after the other, so this lock is never contended.
    relay: tokio::sync::Mutex<ConnRelay>,
}

/// Handles one request.
pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let clock = &conn.clock;
    clock.request_started();
    let started = std::time::Instant::now();
    let api = Api::of(|name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default())
    });
    let mut relay = conn.relay.lock().await;
    let r = respond(&gw, conn.endpoint, conn.peer, clock, &mut relay, req).await;
    clock.request_done();
    crate::metrics::gateway::observe_request(
        api.as_str(),
        conn.endpoint.as_str(),
        r.status().as_u16(),
        started.elapsed(),
    );
    Ok(r)
}

async fn respond(
    gw: &Gateway,
    endpoint: Endpoint,
    peer: SocketAddr,
    clock: &ConnClock,
    relay: &mut ConnRelay,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // By the header's presence, as hkmsd decides (a value need not be readable text).
    let api = Api::of(|name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default())
    });
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large(api, clock);
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(gw.limits.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(api, clock);
            }
            tracing::debug!("request body not read: {e}");
            return closing(wire::refusal(
                api,
                400,
                "InvalidParameter",
                "The specified parameter is not valid.",
            ));
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "request body not received in time");
            return closing(wire::refusal(
                api,
                408,
                "RequestTimeout",
                "The request body was not received in time.",
            ));
        }
    };
    // Refusals below come after the body is read, so the connection stays usable.
    if parts.uri.path() != "/" {
        return wire::refusal(
            api,
            404,
            "InvalidParameter",
            "The specified parameter is not valid.",
        );
    }
    let api_name = parts
        .headers
        .get(api.operation_header())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_owned();
    let source = source_of(peer.ip());
    let signed = throttle::is_signed(&parts.headers);
    if let Err(t) = gw.throttle.admit_from(endpoint, &api_name, source, signed) {
        tracing::debug!(endpoint = endpoint.as_str(), api = %api_name, cap = t.cap(),
            source = %source, "throttled");
        crate::metrics::gateway::throttled(endpoint.as_str(), t.cap());
        return wire::refusal(api, 429, Throttled::CODE, t.message());
    }
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| HttpHeader {
            name: n.as_str().to_owned(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let call = ApplicationCallRequest {
        endpoint: endpoint.as_str().into(),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        source_address: client_ip(peer).to_string(),
    };
    let r = match gw.forwarder.relay(relay, call).await {
        Ok(r) => r,
        Err(ForwardError::Unavailable(m)) => {
            tracing::warn!("hkmsd unavailable: {m}");
            crate::metrics::gateway::upstream_error("unavailable");
            return wire::refusal(
                api,
                503,
                "ServiceUnavailableTemporary",
                "Service Unavailable Temporary.",
            );
        }
        Err(e @ ForwardError::Refused(_)) => {
            tracing::error!("{e}");
            crate::metrics::gateway::upstream_error("refused");
            return wire::refusal(api, 500, "InternalFailure", "Internal Failure");
        }
    };
    // Unsigned requests were charged before they went out; a signed-looking one is charged
    // when hkmsd could not verify it (earlier hkmsd releases do not say: their error code
    // decides).
    let unauthenticated = match r.authenticated {
        Some(verified) => !verified,
        None => {
            r.http_status >= 400
                && api::Error::decode(r.body.as_slice())
                    .is_ok_and(|e| throttle::is_authentication_failure(&e.error_code))
        }
    };
    if signed && unauthenticated {
        gw.throttle.authentication_failed(source);
    }
    let status = u16::try_from(r.http_status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for x in r.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(x.name.as_bytes()),
            HeaderValue::from_str(&x.value),
        ) {
            h.insert(n, v);
        }
    }
    h.entry(CONTENT_TYPE).or_insert(wire::content_type(api));
    resp
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// Serves one endpoint until `stop` turns true; then lets open requests finish.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    endpoint: Endpoint,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(gw.limits.max_connections));
    let sources = SourceConns::new(gw.limits.max_connections_per_source);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let source = source_of(peer.ip());
        let Some(source_slot) = sources.try_open(source) else {
            // Closed before the handshake: no TLS work for a source over its share.
            tracing::debug!(peer = %peer, refusal = "ConnectionLimitPerSource",
                "connection closed: its source holds max_connections_per_source");
            crate::metrics::gateway::throttled(endpoint.as_str(), "connections_per_source");
            drop(tcp);
            continue;
        };
        let gw = gw.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _source_slot = source_slot;
            let _open = crate::metrics::gateway::connection_opened(endpoint.as_str());
            let _ = tcp.set_nodelay(true);
            let acceptor = gw.certs.current();
            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                return;
            };
            let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, tcp) else {
                return;
            };
            let handshake = Pin::new(&mut tls).accept();
            match tokio::time::timeout(gw.limits.handshake_timeout, handshake).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, "TLS handshake refused: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            }
            let clock = ConnClock::new(gw.limits.header_timeout, gw.limits.idle_timeout);
            let io = Guarded::new(tls, clock.clone(), gw.limits.send_timeout, gw.limits.linger);
            let state = Arc::new(ConnState {
                endpoint,
                peer,
                clock: clock.clone(),
                relay: tokio::sync::Mutex::new(ConnRelay::default()),
            });
            let service = {
                let gw = gw.clone();
                hyper::service::service_fn(move |req| -> Answer {
                    Box::pin(handle(gw.clone(), state.clone(), req))
                })
            };
            // The header and idle deadlines are the stream's (conn.rs), not hyper's.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %peer, "connection ended: {e}");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
