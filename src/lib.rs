//! hkms: a key management service that keeps every key inside hardware security modules.
//!
//! Layers, from the wire inwards:
//! - [`front`]: the external APIs the gateway relays (KMS instance API, Tencent Cloud API
//!   3.0), each an authenticator, a codec and an error table;
//! - [`service`]: gRPC handlers (thin);
//! - [`ops`]: the operations layer every front and service calls: authorise, then run;
//! - [`audit`]: the tamper-evident record of every request, written before it is answered;
//! - [`keys`], [`crypto`]: key lifecycle and cryptographic operations;
//! - [`secrets`]: versioned secrets sealed under customer master keys;
//! - [`hsm`]: PKCS#11 members, sessions, the pool and every mechanism used;
//! - [`store`]: persisted records (only wrapped key material);
//! - [`authn`], [`access`]: who is calling, and what they may do;
//! - [`tls`]: the TLS settings every endpoint and client shares;
//! - [`gateway`]: hkms-gateway, the HTTPS endpoint of the external APIs (no keys, no HSM);
//! - [`metrics`]: Prometheus metrics and the health endpoints of both processes;
//! - [`certify`]: `hkms certify`, the checks an HSM must pass to serve hkms.
#![deny(unsafe_code)]

pub mod access;
pub mod appliance;
pub mod audit;
pub mod authn;
pub mod certify;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod front;
pub mod gateway;
pub mod hardening;
pub mod hsm;
pub mod jobs;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod quiet_unix;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod store;
pub mod tls;

/// The gRPC API, generated from `proto/hkms/v1`.
pub mod proto {
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("hkms.v1");
}

/// The KMS instance API messages (`proto/kms_instance/api.proto`), as the official SDKs send them.
pub mod instance_api {
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("kms_instance.v1");
}
