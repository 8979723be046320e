//! TLS settings every TLS endpoint and client of hkms shares: the gateway's HTTPS
//! endpoints ([`crate::gateway::tls`]), hkmsd's mutual-TLS listener
//! ([`crate::authn::tls`]) and the clients of that listener ([`crate::client`]), and the
//! address form of the listener. One place, so no endpoint offers a weaker suite than the
//! others.

/// TLS 1.2 suites offered: ECDHE with AEAD only, strongest first.
pub const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
/// Key exchange groups: elliptic curves only.
pub const GROUPS: &str = "X25519:P-256:P-384";

/// hkmsd's TCP address, from `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    pub host: String,
    pub port: u16,
}

impl TlsTarget {
    /// Parses `https://host:port` (IPv6 literals in brackets); the port is required.
    pub fn parse(endpoint: &str) -> Result<TlsTarget, String> {
        let bad = || format!("{endpoint:?} is not https://host:port");
        let uri: tonic::transport::Uri = endpoint.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") || !matches!(uri.path(), "" | "/") {
            return Err(bad());
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let port = uri.port_u16().ok_or_else(bad)?;
        Ok(TlsTarget {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_endpoints_are_https_with_host_and_port() {
        assert_eq!(
            TlsTarget::parse("https://kms.example:7443").unwrap(),
            TlsTarget {
                host: "kms.example".into(),
                port: 7443
            }
        );
        assert_eq!(TlsTarget::parse("https://[::1]:7443/").unwrap().host, "::1");
        for bad in [
            "http://kms.example:7443",
            "https://kms.example",
            "https://kms.example:7443/path",
            "kms.example:7443",
        ] {
            assert!(TlsTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
