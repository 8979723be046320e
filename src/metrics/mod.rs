//! Prometheus metrics and the health endpoints of hkmsd and hkms-gateway.
//!
//! - [`observe_request`]: hkmsd's count and latency of every request (called once per
//!   request by the code that answers it);
//! - [`hsm`]: HSM members, read from the pool at scrape time;
//! - [`expiry`]: the periodic credential expiry scan and its gauge;
//! - [`audit`]: the audit trail's state at scrape time;
//! - [`gateway`]: hkms-gateway's requests, caps, connections and upstream failures;
//! - [`http`]: the plain-HTTP endpoint (`/metrics`, `/health/live`, `/health/ready`),
//!   configured by `[observability]` ([`config`]);
//! - [`labels`]: label values bounded whatever clients send.
//!
//! Names follow Prometheus conventions: the `hkms_` prefix, base units (seconds, bytes),
//! `_total` on counters.

pub mod audit;
pub mod config;
pub mod expiry;
pub mod gateway;
pub mod histogram;
pub mod hkmsd;
pub mod hsm;
pub mod http;
pub mod labels;
pub mod requests;

pub use requests::observe_request;
