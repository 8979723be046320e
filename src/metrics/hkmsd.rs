//! hkmsd's metrics and health: the registry (requests, HSM members, credential expiry,
//! audit trail) and the readiness checks (store, HSM members, audit trail).

use super::http::{Check, Site};
use crate::appliance::Appliance;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// hkmsd's endpoint.
#[derive(Debug)]
pub struct DaemonSite {
    app: Arc<Appliance>,
    registry: Registry,
}

impl DaemonSite {
    pub fn new(app: Arc<Appliance>) -> DaemonSite {
        let mut registry = Registry::default();
        super::requests::register(&mut registry);
        super::expiry::register(&mut registry);
        registry.register_collector(Box::new(super::hsm::HsmCollector(app.pool.clone())));
        registry.register_collector(Box::new(super::audit::AuditCollector(app.audit.clone())));
        DaemonSite { app, registry }
    }

    /// The checks of `/health/ready`.
    pub fn checks(&self) -> Vec<Check> {
        let app = &self.app;
        let store = match app.store.instance() {
            Ok(Some(_)) => Ok("open".to_owned()),
            Ok(None) => Ok("open (instance not initialised)".to_owned()),
            Err(e) => Err(format!("store not readable: {e}")),
        };
        let members = app.pool.members();
        let up = members.iter().filter(|m| m.accepts_requests()).count();
        let hsm = if up > 0 {
            Ok(format!("{up} of {} members up", members.len()))
        } else if members.is_empty() {
            Err("no HSM member is configured".to_owned())
        } else {
            Err(format!(
                "no HSM member is up (0 of {}): {}",
                members.len(),
                members
                    .iter()
                    .map(|m| format!("{} {}", m.name, m.snapshot().state))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        let s = app.audit.status();
        let audit = match (s.enabled, s.writable) {
            (false, _) => Ok("disabled".to_owned()),
            (true, true) => Ok("writable".to_owned()),
            (true, false) => Err(format!(
                "the audit trail is not writable: {}",
                s.error.unwrap_or_else(|| "no reason given".into())
            )),
        };
        vec![("store", store), ("hsm", hsm), ("audit", audit)]
    }
}

impl Site for DaemonSite {
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
        Box::pin(async move { self.checks() })
    }
}

/// Binds hkmsd's endpoint when `[observability]` asks for one (call before lock-down).
pub fn bind(config: &crate::config::Config) -> Result<Option<std::net::TcpListener>, String> {
    match config.observability.address()? {
        Some(addr) => super::http::bind(addr).map(Some),
        None => Ok(None),
    }
}

/// Starts, on the serving runtime, the endpoint (when bound) and the credential expiry
/// scan. Both end with the runtime.
pub fn start(app: Arc<Appliance>, listener: Option<std::net::TcpListener>, scan_every: Duration) {
    tokio::spawn(super::expiry::run_forever(app.clone(), scan_every));
    if let Some(l) = listener {
        tokio::spawn(super::http::serve(l, Arc::new(DaemonSite::new(app))));
    }
}
