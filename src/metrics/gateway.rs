//! hkms-gateway's metrics and health: requests by API, endpoint and HTTP status, their
//! latency, throttling refusals, open connections and failures to reach hkmsd. Readiness:
//! the gateway listens (it answers at all) and hkmsd is reachable.

use super::http::{Check, Site};
use crate::gateway::config::HkmsdTarget;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    endpoint: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    endpoint: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    kind: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(super::requests::REQUEST_BUCKETS)
}

#[derive(Debug)]
struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<ApiLabels, Histogram, fn() -> Histogram>,
    throttled: Family<ThrottleLabels, Counter>,
    open: Family<EndpointLabels, Gauge>,
    accepted: Family<EndpointLabels, Counter>,
    upstream: Family<UpstreamLabels, Counter>,
}

static METRICS: LazyLock<GatewayMetrics> = LazyLock::new(|| GatewayMetrics {
    requests: Family::default(),
    duration: Family::new_with_constructor(request_histogram),
    throttled: Family::default(),
    open: Family::default(),
    accepted: Family::default(),
    upstream: Family::default(),
});

/// Counts one answered request: its API (`instance` or `tencent`), the endpoint it came in
/// on, the HTTP status and the time from its headers to the answer.
pub fn observe_request(api: &'static str, endpoint: &'static str, status: u16, took: Duration) {
    METRICS
        .requests
        .get_or_create(&RequestLabels {
            api,
            endpoint,
            status,
        })
        .inc();
    METRICS
        .duration
        .get_or_create(&ApiLabels { api })
        .observe(took.as_secs_f64());
}

/// Counts a refusal by a cap: `reason` is the cap ([`crate::gateway::throttle::Throttled::cap`])
/// or `connections_per_source`.
pub fn throttled(endpoint: &'static str, reason: &'static str) {
    METRICS
        .throttled
        .get_or_create(&ThrottleLabels { endpoint, reason })
        .inc();
}

/// A failure to relay a request to hkmsd: `unavailable` or `refused`.
pub fn upstream_error(kind: &'static str) {
    METRICS
        .upstream
        .get_or_create(&UpstreamLabels { kind })
        .inc();
}

/// Counts an accepted connection as open until the returned guard is dropped.
pub fn connection_opened(endpoint: &'static str) -> OpenConnection {
    METRICS
        .accepted
        .get_or_create(&EndpointLabels { endpoint })
        .inc();
    let gauge = METRICS
        .open
        .get_or_create(&EndpointLabels { endpoint })
        .clone();
    gauge.inc();
    OpenConnection(gauge)
}

/// An open client connection (see [`connection_opened`]).
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The gateway's endpoint.
#[derive(Debug)]
pub struct GatewaySite {
    registry: Registry,
    hkmsd: HkmsdTarget,
}

impl GatewaySite {
    pub fn new(hkmsd: HkmsdTarget) -> GatewaySite {
        let m = &*METRICS;
        let mut registry = Registry::default();
        registry.register(
            "hkms_gateway_requests",
            "Requests answered by the gateway, by API, endpoint and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "hkms_gateway_request_duration_seconds",
            "Time from a request's headers until its answer was ready, by API",
            m.duration.clone(),
        );
        registry.register(
            "hkms_gateway_throttled",
            "Requests (or connections) refused by a cap, by endpoint and cap",
            m.throttled.clone(),
        );
        registry.register(
            "hkms_gateway_connections_open",
            "Client connections open now, by endpoint",
            m.open.clone(),
        );
        registry.register(
            "hkms_gateway_connections",
            "Client connections accepted, by endpoint",
            m.accepted.clone(),
        );
        registry.register(
            "hkms_gateway_upstream_errors",
            "Requests that could not be relayed to hkmsd (unavailable or refused)",
            m.upstream.clone(),
        );
        // Zero rather than absent before the first refusal, so rates start at once.
        for kind in ["unavailable", "refused"] {
            let _ = m.upstream.get_or_create(&UpstreamLabels { kind });
        }
        GatewaySite { registry, hkmsd }
    }

    /// Whether hkmsd accepts a connection (its socket, or its TCP port).
    async fn hkmsd_reachable(&self) -> Result<String, String> {
        let within = Duration::from_secs(2);
        match &self.hkmsd {
            HkmsdTarget::Socket(path) => {
                match tokio::time::timeout(within, tokio::net::UnixStream::connect(path)).await {
                    Ok(Ok(_)) => Ok(format!("{} accepts connections", path.display())),
                    Ok(Err(e)) => Err(format!("hkmsd unreachable at {}: {e}", path.display())),
                    Err(_) => Err(format!(
                        "hkmsd at {} did not accept in time",
                        path.display()
                    )),
                }
            }
            HkmsdTarget::Tls { target, .. } => {
                let addr = (target.host.as_str(), target.port);
                match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Ok(format!(
                        "{}:{} accepts connections",
                        target.host, target.port
                    )),
                    Ok(Err(e)) => Err(format!(
                        "hkmsd unreachable at {}:{}: {e}",
                        target.host, target.port
                    )),
                    Err(_) => Err(format!(
                        "hkmsd at {}:{} did not accept in time",
                        target.host, target.port
                    )),
                }
            }
        }
    }
}

impl Site for GatewaySite {
    fn metrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!("metrics not encoded: {e}");
        }
        out
    }

    fn ready(&self) -> Pin<Box<dyn Future<Output = Vec<Check>> + Send + '_>> {
        Box::pin(async move {
            vec![
                ("listening", Ok("serving".to_owned())),
                ("hkmsd", self.hkmsd_reachable().await),
            ]
        })
    }
}
