//! hkms-gateway: the HTTPS endpoint of the external APIs (the KMS instance API, and Tencent
//! Cloud API 3.0 on the same port, told apart by their headers: [`crate::front::Api`]).
//!
//! The gateway is stateless and thin. It terminates TLS ([`tls`]), frames HTTP/1.1
//! requests with keep-alive and the 3 MB body limit ([`http`]), bounds how long clients may
//! take and how many connections one source may hold ([`conn`]), applies the QPS caps and
//! the budgets of unauthenticated requests ([`throttle`]), answers its own refusals in the
//! request's API envelope ([`wire`]), and forwards each request as received, with the
//! endpoint it arrived on and the client's address, to hkmsd's `ApplicationService` ([`forward`]). hkmsd
//! authenticates, authorises and runs it; the gateway holds no key, talks to no HSM and
//! makes no access decision.
//!
//! Requests, refusals by the caps, open connections and failures to reach hkmsd are counted
//! in [`crate::metrics::gateway`], served on the `[observability]` endpoint.
//!
//! Start-up order: load the configuration ([`config`]) and the certificate, bind every
//! listener, then serve.

pub mod config;
pub mod conn;
pub mod forward;
pub mod http;
pub mod throttle;
pub mod tls;
pub mod wire;
