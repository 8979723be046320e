//! HTTP/1.1 over TLS: accepts connections, frames KMS instance API requests and relays
//! them to hkmsd.
//!
//! Per request, in order: body at most 3 MB (413, decided from `content-length` before
//! reading when it is given), path `/` (404 otherwise), the QPS caps (429
//! `Rejected.Throttling`), then the whole request goes to hkmsd with the endpoint it came
//! in on and the client's address. Everything else (API version, signature, date, digest,
//! ClientKey, authorisation, the operation) is hkmsd's. Every failure has a protobuf `Error`
//! body, and every answer an `x-kms-requestid` header. Connections are kept alive.

use crate::authn::signed::MAX_BODY;
use crate::gateway::forward::{ForwardError, Forwarder};
use crate::gateway::throttle::{Endpoint, Throttle};
use crate::gateway::tls::Certs;
use crate::instance_api as api;
use crate::proto::{ApplicationCallRequest, HttpHeader};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prost::Message;
use std::convert::Infallible;
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
    pub header_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
}

const PROTOBUF: &str = "application/x-protobuf";

/// A protobuf `Error` answer made by the gateway itself.
pub fn error_response(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = api::Error {
        status_code: status.into(),
        error_code: code.into(),
        error_message: message.into(),
        request_id: request_id.clone(),
    }
    .encode_to_vec();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-kms-requestid", v);
    }
    r
}

fn too_large() -> Response<Full<Bytes>> {
    error_response(
        413,
        "InvalidParameter",
        "The request body is larger than 3 MB.",
    )
}

/// IPv4-mapped IPv6 addresses are reported as IPv4.
fn client_ip(addr: SocketAddr) -> IpAddr {
    crate::access::network::canonical(addr.ip())
}

/// Handles one request.
pub async fn handle(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Ok(too_large());
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Ok(too_large());
            }
            tracing::debug!("request body not read: {e}");
            return Ok(error_response(
                400,
                "InvalidParameter",
                "The specified parameter is not valid.",
            ));
        }
    };
    // Refusals below come after the body is read, so the connection stays usable.
    if parts.uri.path() != "/" {
        return Ok(error_response(
            404,
            "InvalidParameter",
            "The specified parameter is not valid.",
        ));
    }
    let api_name = parts
        .headers
        .get("x-kms-apiname")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_owned();
    if !gw.throttle.admit(endpoint, &api_name) {
        tracing::debug!(endpoint = endpoint.as_str(), api = %api_name, "throttled");
        return Ok(error_response(
            429,
            "Rejected.Throttling",
            "QPS Limit Exceeded",
        ));
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
    let r = match gw.forwarder.call(call).await {
        Ok(r) => r,
        Err(ForwardError::Unavailable(m)) => {
            tracing::warn!("hkmsd unavailable: {m}");
            return Ok(error_response(
                503,
                "ServiceUnavailableTemporary",
                "Service Unavailable Temporary.",
            ));
        }
        Err(e @ ForwardError::Refused(_)) => {
            tracing::error!("{e}");
            return Ok(error_response(500, "InternalFailure", "Internal Failure"));
        }
    };
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
    h.entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(PROTOBUF));
    Ok(resp)
}

/// Serves one endpoint until `stop` turns true; then lets open requests finish.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    endpoint: Endpoint,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(gw.max_connections));
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
        let gw = gw.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let acceptor = gw.certs.current();
            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                return;
            };
            let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, tcp) else {
                return;
            };
            match tokio::time::timeout(gw.handshake_timeout, Pin::new(&mut tls).accept()).await {
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
            let service = {
                let gw = gw.clone();
                hyper::service::service_fn(move |req| handle(gw.clone(), endpoint, peer, req))
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(gw.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
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
