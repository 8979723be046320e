//! The metrics and health endpoint of hkmsd and of the gateway: plain HTTP/1.1, meant for
//! loopback (a scraper or a health checker on the host, or a reverse proxy in front).
//!
//! `GET /metrics` (Prometheus text format 0.0.4), `GET /health/live` (200 while the process
//! serves), `GET /health/ready` (200 or 503, a JSON body naming each check and the ones that
//! failed). HEAD as GET without a body; other methods 405; other paths 404. At most
//! [`MAX_CONNECTIONS`] connections at once, each with a header deadline.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request headers, and to be answered.
const DEADLINE: Duration = Duration::from_secs(10);

/// The result of one readiness check: `Ok(detail)` or `Err(why not)`.
pub type Check = (&'static str, Result<String, String>);

/// What a process serves on its endpoint.
pub trait Site: Send + Sync + 'static {
    /// The metrics, in the Prometheus text format.
    fn metrics(&self) -> String;
    /// The readiness checks, all of which must pass.
    fn ready(&self) -> Pin<Box<dyn Future<Output = Vec<Check>> + Send + '_>>;
}

/// Binds the endpoint (before lock-down: afterwards no socket can be created).
pub fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} ([observability] listen): {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr} ([observability] listen): {e}"))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(listen = %addr, "the metrics and health endpoint is not on loopback: \
            anyone who reaches it reads the metrics (no authentication)");
    }
    Ok(l)
}

/// The readiness answer: its status and JSON body.
pub fn readiness(checks: &[Check]) -> (StatusCode, String) {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    let details: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|(n, r)| {
            let v = match r {
                Ok(d) => serde_json::json!({"ok": true, "detail": d}),
                Err(e) => serde_json::json!({"ok": false, "detail": e}),
            };
            ((*n).to_owned(), v)
        })
        .collect();
    let ready = failed.is_empty();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "failed": failed,
        "checks": details,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{body}\n"))
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Answers one request.
pub async fn respond(site: &dyn Site, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = match path {
        "/metrics" => answer(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            site.metrics(),
        ),
        "/health/live" => answer(StatusCode::OK, JSON, "{\"status\":\"live\"}\n".into()),
        "/health/ready" => {
            let checks = site.ready().await;
            let (status, body) = readiness(&checks);
            answer(status, JSON, body)
        }
        _ => answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /metrics, /health/live, /health/ready\n".into(),
        ),
    };
    if method == Method::HEAD {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

/// Serves the endpoint until the task is dropped.
pub async fn serve(listener: std::net::TcpListener, site: Arc<dyn Site>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics and health endpoint not served: {e}");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "metrics and health endpoint: /metrics, /health/live, /health/ready");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(respond(&*site, req.method(), req.uri().path()).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(DEADLINE)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), service);
            // A connection lives at most a few deadlines: a scraper reconnects.
            let _ = tokio::time::timeout(DEADLINE * 6, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    struct Fixed(bool);

    impl Site for Fixed {
        fn metrics(&self) -> String {
            "# TYPE x gauge\nx 1\n".into()
        }
        fn ready(&self) -> Pin<Box<dyn Future<Output = Vec<Check>> + Send + '_>> {
            let ok = self.0;
            Box::pin(async move {
                vec![
                    ("store", Ok("open".into())),
                    (
                        "hsm",
                        if ok {
                            Ok("1 of 1 up".into())
                        } else {
                            Err("0 of 1 up".into())
                        },
                    ),
                ]
            })
        }
    }

    async fn get(site: &dyn Site, method: Method, path: &str) -> (StatusCode, String, String) {
        let r = respond(site, &method, path).await;
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn paths_methods_and_readiness() {
        let up = Fixed(true);
        let (s, ct, body) = get(&up, Method::GET, "/metrics").await;
        assert_eq!(
            (s, body.as_str()),
            (StatusCode::OK, "# TYPE x gauge\nx 1\n")
        );
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(
            get(&up, Method::GET, "/health/live").await.0,
            StatusCode::OK
        );
        let (s, _, body) = get(&up, Method::GET, "/health/ready").await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "ready");
        let (s, ct, body) = get(&Fixed(false), Method::GET, "/health/ready").await;
        assert_eq!((s, ct.as_str()), (StatusCode::SERVICE_UNAVAILABLE, JSON));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["failed"], serde_json::json!(["hsm"]));
        assert_eq!(v["checks"]["hsm"]["detail"], "0 of 1 up");
        assert_eq!(v["checks"]["store"]["ok"], true);
        let (s, _, body) = get(&up, Method::HEAD, "/metrics").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(
            get(&up, Method::POST, "/metrics").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(get(&up, Method::GET, "/").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get(&up, Method::GET, "/metrics/x").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
