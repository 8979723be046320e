//! Requests served by hkmsd, by front, operation and result: recorded once per request by
//! whoever answers it (the audit trail's layer), through [`observe_request`].

use super::labels;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::time::Duration;

/// Request latency buckets, seconds: 0.5 ms to 10 s.
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    front: &'static str,
    operation: &'static str,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    front: &'static str,
    operation: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

#[derive(Debug)]
struct Requests {
    total: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

static REQUESTS: LazyLock<Requests> = LazyLock::new(|| Requests {
    total: Family::default(),
    duration: Family::new_with_constructor(request_histogram),
});

/// Counts one request answered by hkmsd and its latency: `front` is `grpc`, `instance`,
/// `tencent` (or `hkmsd`), `operation` the action or gRPC method it named (names hkms does
/// not know count as `other`), `result` `OK` or the error code the caller got (codes that
/// are not short ASCII letters, digits and dots count as `other`).
pub fn observe_request(front: &str, operation: &str, result: &str, latency: Duration) {
    let front = labels::front(front);
    let operation = labels::operation(operation);
    REQUESTS
        .total
        .get_or_create(&RequestLabels {
            front,
            operation,
            result: labels::result(result),
        })
        .inc();
    REQUESTS
        .duration
        .get_or_create(&DurationLabels { front, operation })
        .observe(latency.as_secs_f64());
}

/// Registers `hkms_requests_total` and `hkms_request_duration_seconds`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "hkms_requests",
        "Requests answered by hkmsd, by front, operation and result (OK or the error code)",
        REQUESTS.total.clone(),
    );
    registry.register(
        "hkms_request_duration_seconds",
        "Time from a request's arrival until its answer was ready, by front and operation",
        REQUESTS.duration.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded() -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    fn value(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    #[test]
    fn requests_are_counted_with_bounded_labels() {
        let ok = "hkms_requests_total{front=\"tencent\",operation=\"SignByAsymmetricKey\",result=\"OK\"}";
        let denied = "hkms_requests_total{front=\"tencent\",operation=\"SignByAsymmetricKey\",result=\"AuthFailure.SignatureFailure\"}";
        let other = "hkms_requests_total{front=\"tencent\",operation=\"other\",result=\"other\"}";
        let before = encoded();
        for _ in 0..3 {
            observe_request(
                "tencent",
                "SignByAsymmetricKey",
                "OK",
                Duration::from_millis(2),
            );
        }
        observe_request(
            "tencent",
            "SignByAsymmetricKey",
            "AuthFailure.SignatureFailure",
            Duration::from_millis(1),
        );
        for i in 0..100 {
            observe_request(
                "tencent",
                &format!("Made{i}Up"),
                &format!("x y {i}"),
                Duration::ZERO,
            );
        }
        let after = encoded();
        assert_eq!(value(&after, ok) - value(&before, ok), 3.0, "{after}");
        assert_eq!(
            value(&after, denied) - value(&before, denied),
            1.0,
            "{after}"
        );
        assert_eq!(
            value(&after, other) - value(&before, other),
            100.0,
            "{after}"
        );
        assert!(!after.contains("Made"), "{after}");
        let count = "hkms_request_duration_seconds_count{front=\"tencent\",operation=\"SignByAsymmetricKey\"}";
        assert_eq!(value(&after, count) - value(&before, count), 4.0, "{after}");
        assert!(
            after.contains("# TYPE hkms_requests_total counter"),
            "{after}"
        );
        assert!(
            after.contains("# TYPE hkms_request_duration_seconds histogram"),
            "{after}"
        );
    }
}
