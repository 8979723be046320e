//! The gRPC side of the trail: a tower layer around every gRPC service of hkmsd (outside
//! the authentication interceptor, so refused peers are recorded too). Each call runs in
//! an audit [`Scope`]; its record is written, and durable, before the response leaves. If
//! it cannot be written, the caller gets `AuditUnavailable` instead of the response. With
//! the trail off (`[audit] enabled = false`) calls are only counted in hkmsd's request
//! metrics, as [`finish`] counts them with the trail on.
//!
//! Calls of the relay service are not recorded here: each request they relay is recorded
//! by the fronts ([`crate::front::Fronts::serve`]), with the application as its principal.

use super::scope::{finish, Scope};
use crate::appliance::Appliance;
use crate::error::ERROR_CODE_METADATA;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::http;

/// The path prefix of the relay service's calls.
const RELAY_SERVICE: &str = "/hkms.v1.ApplicationService/";
/// The response header that names a gRPC call's audit record.
pub const REQUEST_ID_HEADER: &str = "x-hkms-request-id";

/// Records every gRPC call in the trail.
#[derive(Debug, Clone)]
pub struct AuditLayer(pub Arc<Appliance>);

impl<S> tower::Layer<S> for AuditLayer {
    type Service = Audited<S>;

    fn layer(&self, inner: S) -> Audited<S> {
        Audited {
            inner,
            app: self.0.clone(),
        }
    }
}

/// A service whose calls are recorded.
#[derive(Debug, Clone)]
pub struct Audited<S> {
    inner: S,
    app: Arc<Appliance>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for Audited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        if path.starts_with(RELAY_SERVICE) {
            let fut = self.inner.call(req);
            return Box::pin(async move { Ok(fut.await?.map(tonic::body::Body::new)) });
        }
        if !self.app.audit.enabled() {
            // Nothing to record: the call is only counted in hkmsd's metrics.
            let started = std::time::Instant::now();
            let fut = self.inner.call(req);
            return Box::pin(async move {
                let response = fut.await?.map(tonic::body::Body::new);
                let result = result_of(&response);
                crate::metrics::observe_request("grpc", &path, &result, started.elapsed());
                Ok(response)
            });
        }
        let scope = Scope::new("grpc", &path);
        // The interceptor runs inside `call`: it notes the caller it authenticates.
        let fut = scope.run_sync(|| self.inner.call(req));
        let app = self.app.clone();
        Box::pin(async move {
            let mut response = scope.run(fut).await?.map(tonic::body::Body::new);
            let result = result_of(&response);
            let request_id = uuid::Uuid::new_v4().to_string();
            match finish(&app, &scope, &request_id, &result).await {
                Ok(()) => {
                    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                        response.headers_mut().insert(REQUEST_ID_HEADER, v);
                    }
                    Ok(response)
                }
                Err(e) => {
                    tracing::error!("gRPC call refused: {e}");
                    Ok(tonic::Status::from(e).into_http())
                }
            }
        })
    }
}

/// `OK`, the call's stable error code, or `grpc-<code>` for a failure without one.
fn result_of<B>(response: &http::Response<B>) -> String {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(code) = header(ERROR_CODE_METADATA) {
        return code;
    }
    match header("grpc-status") {
        Some(s) if s != "0" => format!("grpc-{s}"),
        _ => "OK".to_owned(),
    }
}
