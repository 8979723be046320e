//! hkms-gateway configuration: a TOML file (commented example: `scripts/hkms-gateway.example.toml`).
//!
//! The gateway holds no key and no access-control state: its configuration names hkmsd's
//! socket (or TCP endpoint with the gateway's client certificate), the TLS certificate and
//! key files, the endpoints it listens on, the QPS caps, and the deadlines and connection
//! limits that keep slow or abusive clients from holding the gateway.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Highest QPS of cryptographic operations over the Internet endpoint, whatever the tier.
pub const INTERNET_CRYPTO_QPS_MAX: f64 = 1000.0;
/// Highest QPS of secret reads when the shared-gateway mode is on.
pub const SHARED_SECRET_QPS_MAX: f64 = 450.0;

/// Whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub hkmsd: HkmsdConfig,
    pub tls: TlsConfig,
    /// The private endpoint (on by default).
    pub private: EndpointConfig,
    /// The Internet endpoint: it answers only while the instance owner has enabled it
    /// (`hkms instance internet enable`); hkmsd refuses its requests otherwise.
    #[serde(default)]
    pub internet: Option<EndpointConfig>,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// Process hardening: service user for a root start, seccomp and memory-lock modes.
    #[serde(default)]
    pub hardening: crate::hardening::GatewayHardeningConfig,
    /// Async worker threads (`[runtime]`).
    #[serde(default)]
    pub runtime: crate::runtime::RuntimeConfig,
    /// The metrics and health endpoint (`[observability]`); off without the table.
    #[serde(default)]
    pub observability: Option<crate::metrics::config::GatewayObservability>,
}

/// How to reach hkmsd: its Unix socket on the same host, or its TCP listener on another
/// host with mutual TLS. Exactly one of `socket` and `endpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HkmsdConfig {
    /// hkmsd's Unix socket (same host). hkmsd must list the gateway's uid in
    /// `[access] gateway_uids`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// hkmsd's TCP listener on another host, `https://host:port` (hkmsd `[listen] tcp`).
    /// Needs `client_cert`, `client_key` and `ca`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// PEM gateway client certificate and its intermediate (`hkms ca issue-gateway-client`);
    /// hkmsd accepts it when it chains to its `[listen] gateway_ca`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (mode 0600).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// PEM CA bundle that hkmsd's server certificate chains to (`hkms ca export`).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// gRPC connections opened to hkmsd; the relay streams of client connections (one
    /// each) are spread over them.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Seconds a forwarded request may take before the caller gets 503.
    #[serde(default = "default_forward_timeout")]
    pub timeout_secs: u64,
}

/// Where the gateway reaches hkmsd, from [`HkmsdConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HkmsdTarget {
    Socket(PathBuf),
    Tls {
        target: crate::tls::TlsTarget,
        files: crate::client::TlsClientFiles,
    },
}

impl HkmsdConfig {
    /// The checked target.
    pub fn target(&self) -> Result<HkmsdTarget, String> {
        let tls_files = [&self.client_cert, &self.client_key, &self.ca];
        match (&self.socket, &self.endpoint) {
            (Some(socket), None) => {
                if tls_files.iter().any(|f| f.is_some()) {
                    return Err(
                        "hkmsd.client_cert, client_key and ca apply only with hkmsd.endpoint"
                            .into(),
                    );
                }
                Ok(HkmsdTarget::Socket(socket.clone()))
            }
            (None, Some(endpoint)) => {
                let target = crate::tls::TlsTarget::parse(endpoint)
                    .map_err(|e| format!("hkmsd.endpoint: {e}"))?;
                match (&self.client_cert, &self.client_key, &self.ca) {
                    (Some(cert), Some(key), Some(ca)) => Ok(HkmsdTarget::Tls {
                        target,
                        files: crate::client::TlsClientFiles {
                            ca: ca.clone(),
                            cert: cert.clone(),
                            key: key.clone(),
                        },
                    }),
                    _ => Err("hkmsd.endpoint needs hkmsd.client_cert, client_key and ca".into()),
                }
            }
            _ => Err("set exactly one of hkmsd.socket and hkmsd.endpoint".into()),
        }
    }
}

fn default_connections() -> usize {
    4
}
fn default_forward_timeout() -> u64 {
    30
}

/// The server certificate and its protocol settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the gateway certificate, then the intermediate CA that issued it.
    pub certificate: PathBuf,
    /// PEM private key of the certificate (mode 0600, readable by the gateway only).
    pub private_key: PathBuf,
    /// Also offer TLS 1.3. Off by default: the endpoint speaks TLS 1.2 only.
    #[serde(default)]
    pub enable_tls13: bool,
    /// Seconds between checks of the certificate files; a changed pair is loaded and used
    /// for new handshakes (SIGHUP does the same at once). 0 disables the check.
    #[serde(default = "default_reload_check")]
    pub reload_check_secs: u64,
}

fn default_reload_check() -> u64 {
    5
}

/// One listening endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Address and port, e.g. "0.0.0.0:443" or "[::]:443".
    pub listen: SocketAddr,
}

/// Request rate caps. Over a cap the caller gets HTTP 429 `Rejected.Throttling`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// The instance tier: requests per second over the private endpoint (e.g. 1000, 2000,
    /// 4000, 8000). Fractions are allowed.
    #[serde(default = "default_tier_qps")]
    pub tier_qps: f64,
    /// Cryptographic operations per second over the Internet endpoint; at most 1000.
    #[serde(default = "default_internet_qps")]
    pub internet_crypto_qps: f64,
    /// Shared-gateway mode: secret reads (GetSecretValue) on the private endpoint are capped
    /// at `secret_qps` too (on the Internet endpoint they always are).
    #[serde(default)]
    pub shared_gateway: bool,
    /// Secret reads per second over the Internet endpoint, and over the private endpoint in
    /// shared-gateway mode; at most 450.
    #[serde(default = "default_secret_qps")]
    pub secret_qps: f64,
    /// Unauthenticated requests per second from one source address (an IPv4 address or an
    /// IPv6 /64): requests without the signature headers, and signed-looking requests that
    /// hkmsd refused as unauthenticated. They never spend the caps above.
    #[serde(default = "default_unsigned_per_source")]
    pub unsigned_qps_per_source: f64,
    /// Requests per second without the signature headers, from all sources together.
    #[serde(default = "default_unsigned_total")]
    pub unsigned_qps_total: f64,
}

fn default_tier_qps() -> f64 {
    1000.0
}
fn default_internet_qps() -> f64 {
    INTERNET_CRYPTO_QPS_MAX
}
fn default_secret_qps() -> f64 {
    SHARED_SECRET_QPS_MAX
}
fn default_unsigned_per_source() -> f64 {
    5.0
}
fn default_unsigned_total() -> f64 {
    100.0
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            tier_qps: default_tier_qps(),
            internet_crypto_qps: default_internet_qps(),
            shared_gateway: false,
            secret_qps: default_secret_qps(),
            unsigned_qps_per_source: default_unsigned_per_source(),
            unsigned_qps_total: default_unsigned_total(),
        }
    }
}

/// HTTP connection settings: deadlines on what clients send and read, and connection limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a TLS handshake may take.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// Milliseconds from the first byte of a request (for a new connection, from the end of
    /// the handshake) to the end of its headers.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Milliseconds from the end of a request's headers to the end of its body; past it the
    /// client gets 408 `RequestTimeout` and the connection is closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Milliseconds a write to a client may make no progress before the connection is
    /// closed (a client that does not read its answer).
    #[serde(default = "default_send_timeout_ms")]
    pub send_timeout_ms: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Most connections open at once per endpoint; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once per endpoint from one source (an IPv4 address or an
    /// IPv6 /64); more are closed as soon as they are accepted.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Lingering close after an answer given before the request body was read (413): most
    /// bytes read and discarded while waiting for the client to finish sending.
    #[serde(default = "default_linger_max_bytes")]
    pub linger_max_bytes: u64,
    /// Lingering close: most milliseconds spent waiting for the client to finish sending.
    #[serde(default = "default_linger_timeout_ms")]
    pub linger_timeout_ms: u64,
    /// The setting of earlier releases, which bounded both the time to send a request's
    /// headers and idle keep-alive time: still read, as `header_timeout_ms` and
    /// `idle_timeout_secs` of the same length, when those are left out.
    #[serde(default)]
    pub header_timeout_secs: Option<u64>,
}

fn default_handshake_timeout() -> u64 {
    10
}
fn default_header_timeout_ms() -> u64 {
    5_000
}
fn default_body_timeout_ms() -> u64 {
    10_000
}
fn default_send_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_source() -> usize {
    128
}
fn default_linger_max_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_linger_timeout_ms() -> u64 {
    5_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            handshake_timeout_secs: default_handshake_timeout(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            send_timeout_ms: default_send_timeout_ms(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            linger_max_bytes: default_linger_max_bytes(),
            linger_timeout_ms: default_linger_timeout_ms(),
            header_timeout_secs: None,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("linger_timeout_ms", self.linger_timeout_ms),
        ] {
            if v == 0 {
                return Err(format!("http.{name} must be positive"));
            }
        }
        if self.max_connections == 0 {
            return Err("http.max_connections must be positive".into());
        }
        if self.max_connections_per_source == 0
            || self.max_connections_per_source > self.max_connections
        {
            return Err("http.max_connections_per_source must be 1..max_connections".into());
        }
        Ok(())
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl GatewayConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        GatewayConfig::parse(&text).map_err(|(parse, message)| {
            if parse {
                ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                }
            } else {
                ConfigError::Invalid {
                    path: path.to_owned(),
                    message,
                }
            }
        })
    }

    /// Parses and checks configuration text; the flag tells a syntax error from a bad value.
    pub fn parse(text: &str) -> Result<GatewayConfig, (bool, String)> {
        let mut c: GatewayConfig = toml::from_str(text).map_err(|e| (true, e.to_string()))?;
        if let Some(secs) = c.http.header_timeout_secs {
            // An earlier release's configuration: its one timeout, unless the new settings
            // are named too.
            let raw: toml::Value = toml::from_str(text).map_err(|e| (true, e.to_string()))?;
            let named = |key: &str| raw.get("http").and_then(|h| h.get(key)).is_some();
            if !named("header_timeout_ms") {
                c.http.header_timeout_ms = secs.saturating_mul(1000);
            }
            if !named("idle_timeout_secs") {
                c.http.idle_timeout_secs = secs;
            }
        }
        c.validate().map_err(|m| (false, m))?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        let t = &self.throttle;
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("throttle.{name} must be a positive number"))
            }
        };
        positive("tier_qps", t.tier_qps)?;
        positive("internet_crypto_qps", t.internet_crypto_qps)?;
        positive("secret_qps", t.secret_qps)?;
        positive("unsigned_qps_per_source", t.unsigned_qps_per_source)?;
        positive("unsigned_qps_total", t.unsigned_qps_total)?;
        if t.internet_crypto_qps > INTERNET_CRYPTO_QPS_MAX {
            return Err(format!(
                "throttle.internet_crypto_qps is at most {INTERNET_CRYPTO_QPS_MAX}"
            ));
        }
        if t.secret_qps > SHARED_SECRET_QPS_MAX {
            return Err(format!(
                "throttle.secret_qps is at most {SHARED_SECRET_QPS_MAX}"
            ));
        }
        self.hkmsd.target()?;
        if self.hkmsd.connections == 0 || self.hkmsd.connections > 64 {
            return Err("hkmsd.connections must be 1..64".into());
        }
        if let Some(i) = &self.internet {
            if i.listen == self.private.listen {
                return Err("internet.listen must differ from private.listen".into());
            }
        }
        self.http.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [hkmsd]
        socket = "/run/hkms/hkmsd.sock"
        [tls]
        certificate = "/etc/hkms/gateway/gateway.pem"
        private_key = "/etc/hkms/gateway/gateway.key"
        [private]
        listen = "127.0.0.1:8443"
    "#;

    #[test]
    fn example_config_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/hkms-gateway.example.toml"
        ))
        .unwrap();
        let c = GatewayConfig::parse(&text).unwrap();
        assert!(!c.tls.enable_tls13);
        assert!(c.internet.is_some());
        assert_eq!(c.throttle.internet_crypto_qps, 1000.0);
    }

    #[test]
    fn defaults_are_tls12_and_documented_caps() {
        let c = GatewayConfig::parse(BASE).unwrap();
        assert!(!c.tls.enable_tls13);
        assert!(c.internet.is_none());
        assert_eq!(c.throttle.tier_qps, 1000.0);
        assert!(!c.throttle.shared_gateway);
        assert_eq!(c.throttle.secret_qps, 450.0);
        assert_eq!(c.throttle.unsigned_qps_per_source, 5.0);
        assert_eq!(c.http.header_timeout_ms, 5_000);
        assert_eq!(c.http.body_timeout_ms, 10_000);
        assert_eq!(c.http.max_connections_per_source, 128);
    }

    #[test]
    fn connection_limits_and_deadlines_are_checked() {
        for extra in [
            "[http]\nbody_timeout_ms = 0\n",
            "[http]\nmax_connections = 8\nmax_connections_per_source = 9\n",
            "[http]\nmax_connections_per_source = 0\n",
            "[throttle]\nunsigned_qps_per_source = 0\n",
        ] {
            let e = GatewayConfig::parse(&format!("{BASE}{extra}")).unwrap_err();
            assert!(!e.0, "{extra}: {}", e.1);
        }
    }

    #[test]
    fn an_earlier_releases_header_timeout_still_loads() {
        let c = GatewayConfig::parse(&format!("{BASE}[http]\nheader_timeout_secs = 60\n")).unwrap();
        assert_eq!(c.http.header_timeout_ms, 60_000);
        assert_eq!(c.http.idle_timeout_secs, 60);
        let c = GatewayConfig::parse(&format!(
            "{BASE}[http]\nheader_timeout_secs = 60\nheader_timeout_ms = 2000\n"
        ))
        .unwrap();
        assert_eq!(c.http.header_timeout_ms, 2000);
        assert_eq!(c.http.idle_timeout_secs, 60);
    }

    #[test]
    fn hkmsd_is_reached_by_socket_or_by_mutual_tls() {
        let tail =
            "[tls]\ncertificate = '/c'\nprivate_key = '/k'\n[private]\nlisten = '127.0.0.1:8443'\n";
        let parse = |hkmsd: &str| GatewayConfig::parse(&format!("[hkmsd]\n{hkmsd}{tail}"));
        let c = parse("endpoint = 'https://hkmsd.internal:7443'\nclient_cert = '/gc.pem'\nclient_key = '/gc.key'\nca = '/ca.pem'\n").unwrap();
        match c.hkmsd.target().unwrap() {
            HkmsdTarget::Tls { target, files } => {
                assert_eq!(
                    (target.host.as_str(), target.port),
                    ("hkmsd.internal", 7443)
                );
                assert_eq!(files.ca, PathBuf::from("/ca.pem"));
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "socket = '/s'\nendpoint = 'https://h:1'\n",
            "endpoint = 'https://h:1'\nclient_cert = '/c'\nclient_key = '/k'\n",
            "endpoint = 'http://h:1'\nclient_cert = '/c'\nclient_key = '/k'\nca = '/ca'\n",
            "socket = '/s'\nca = '/ca'\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.0, "{bad}: {}", e.1);
        }
    }

    #[test]
    fn caps_above_the_product_limits_are_refused() {
        for extra in [
            "[throttle]\ninternet_crypto_qps = 1001\n",
            "[throttle]\nsecret_qps = 451\n",
            "[throttle]\ntier_qps = 0\n",
            "[internet]\nlisten = \"127.0.0.1:8443\"\n",
        ] {
            let e = GatewayConfig::parse(&format!("{BASE}{extra}")).unwrap_err();
            assert!(!e.0, "{extra}: {}", e.1);
        }
        assert!(
            GatewayConfig::parse(&format!("{BASE}bogus = 1\n"))
                .unwrap_err()
                .0
        );
    }
}
