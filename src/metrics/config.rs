//! `[observability]` of hkmsd and of the gateway: where the metrics and health endpoint
//! listens, and (hkmsd) how often credentials are scanned for coming expiry.
//!
//! The endpoint is on only when the configuration file has an `[observability]` table
//! (the shipped example configurations do); `listen` then defaults to a loopback address
//! and `listen = ""` turns it off. So test instances started side by side, whose
//! configurations lack the table, never compete for the same port.

use serde::Deserialize;
use std::net::SocketAddr;

/// hkmsd's default metrics and health address.
pub const HKMSD_LISTEN: &str = "127.0.0.1:9464";
/// hkms-gateway's default metrics and health address.
pub const GATEWAY_LISTEN: &str = "127.0.0.1:9465";
/// Default interval of hkmsd's credential expiry scan: hourly.
pub const EXPIRY_SCAN_SECS: u64 = 3600;

fn hkmsd_listen() -> String {
    HKMSD_LISTEN.into()
}

fn gateway_listen() -> String {
    GATEWAY_LISTEN.into()
}

fn expiry_scan_secs() -> u64 {
    EXPIRY_SCAN_SECS
}

/// hkmsd's `[observability]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonObservability {
    /// Address of the plain-HTTP metrics and health endpoint; `""` turns it off.
    #[serde(default = "hkmsd_listen")]
    pub listen: String,
    /// Seconds between scans of ClientKeys and API keys for coming expiry (the first runs
    /// a few seconds after start).
    #[serde(default = "expiry_scan_secs")]
    pub expiry_scan_interval_secs: u64,
}

impl Default for DaemonObservability {
    fn default() -> Self {
        DaemonObservability {
            listen: String::new(),
            expiry_scan_interval_secs: EXPIRY_SCAN_SECS,
        }
    }
}

/// hkms-gateway's `[observability]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayObservability {
    /// Address of the plain-HTTP metrics and health endpoint; `""` turns it off.
    #[serde(default = "gateway_listen")]
    pub listen: String,
}

/// The address of a `listen` setting: `None` when empty (off).
pub fn address(listen: &str) -> Result<Option<SocketAddr>, String> {
    let listen = listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    listen
        .parse()
        .map(Some)
        .map_err(|_| format!("[observability] listen: {listen:?} is not an address:port"))
}

impl DaemonObservability {
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        if self.expiry_scan_interval_secs == 0 {
            return Err("[observability] expiry_scan_interval_secs must be at least 1".into());
        }
        address(&self.listen)
    }
}

impl GatewayObservability {
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        address(&self.listen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_enables_a_loopback_endpoint_by_default() {
        let d: DaemonObservability = toml::from_str("").unwrap();
        assert_eq!(d.address().unwrap(), Some(HKMSD_LISTEN.parse().unwrap()));
        assert_eq!(d.expiry_scan_interval_secs, 3600);
        let g: GatewayObservability = toml::from_str("").unwrap();
        assert_eq!(g.address().unwrap(), Some(GATEWAY_LISTEN.parse().unwrap()));
        // Without the table, nothing listens.
        assert_eq!(DaemonObservability::default().address().unwrap(), None);
        let off: GatewayObservability = toml::from_str("listen = \"\"").unwrap();
        assert_eq!(off.address().unwrap(), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        let d: DaemonObservability = toml::from_str("listen = \"localhost\"").unwrap();
        assert!(d.address().is_err());
        let d: DaemonObservability = toml::from_str("expiry_scan_interval_secs = 0").unwrap();
        assert!(d.address().is_err());
        assert!(toml::from_str::<GatewayObservability>("port = 1").is_err());
    }
}
