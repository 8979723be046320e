//! QPS caps: token buckets, checked before a request is forwarded.
//!
//! - private endpoint: every request counts against the instance tier (`tier_qps`);
//! - Internet endpoint: cryptographic operations count against `internet_crypto_qps`
//!   (at most 1,000 whatever the tier);
//! - shared-gateway mode: secret reads (`GetSecretValue`) also count against `secret_qps`
//!   (at most 450), on either endpoint.
//!
//! The operation is read from `x-kms-apiname` before the request is authenticated: a caller
//! that lies about it only spends its own share of a cap.

use crate::gateway::config::ThrottleConfig;
use std::sync::Mutex;
use std::time::Instant;

/// Which endpoint received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Private,
    Internet,
}

impl Endpoint {
    /// The name forwarded to hkmsd.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Private => "private",
            Endpoint::Internet => "internet",
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket. The burst is one second's worth (at least one request).
    pub fn new(rate: f64) -> Bucket {
        let burst = rate.max(1.0);
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Every cap of one gateway.
#[derive(Debug)]
pub struct Throttle {
    tier: Bucket,
    internet_crypto: Bucket,
    secrets: Option<Bucket>,
}

/// Operations that read secrets (the rest are cryptographic operations).
fn is_secret_read(api_name: &str) -> bool {
    api_name == "GetSecretValue"
}

impl Throttle {
    pub fn new(cfg: &ThrottleConfig) -> Throttle {
        Throttle {
            tier: Bucket::new(cfg.tier_qps),
            internet_crypto: Bucket::new(cfg.internet_crypto_qps),
            secrets: cfg.shared_gateway.then(|| Bucket::new(cfg.secret_qps)),
        }
    }

    /// Whether a request for `api_name` on `endpoint` may go on now.
    pub fn admit(&self, endpoint: Endpoint, api_name: &str) -> bool {
        let secret = is_secret_read(api_name);
        if secret {
            if let Some(b) = &self.secrets {
                if !b.try_take() {
                    return false;
                }
            }
        }
        match endpoint {
            Endpoint::Private => self.tier.try_take(),
            Endpoint::Internet if !secret => self.internet_crypto.try_take(),
            Endpoint::Internet => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_its_rate_and_refills() {
        let b = Bucket::new(10.0);
        let t0 = Instant::now();
        let granted = (0..20).filter(|_| b.try_take_at(t0)).count();
        assert_eq!(granted, 10, "one second's burst");
        assert!(!b.try_take_at(t0 + Duration::from_millis(50)));
        assert!(b.try_take_at(t0 + Duration::from_millis(110)));
        let slow = Bucket::new(0.5);
        assert!(slow.try_take_at(t0));
        assert!(!slow.try_take_at(t0 + Duration::from_secs(1)));
        assert!(slow.try_take_at(t0 + Duration::from_millis(2100)));
    }

    #[test]
    fn caps_apply_per_endpoint_and_kind() {
        let t = Throttle::new(&ThrottleConfig {
            tier_qps: 2.0,
            internet_crypto_qps: 3.0,
            shared_gateway: true,
            secret_qps: 1.0,
        });
        assert!(t.admit(Endpoint::Private, "Encrypt"));
        assert!(t.admit(Endpoint::Private, "Encrypt"));
        assert!(!t.admit(Endpoint::Private, "Encrypt"), "tier spent");
        for _ in 0..3 {
            assert!(t.admit(Endpoint::Internet, "Decrypt"));
        }
        assert!(
            !t.admit(Endpoint::Internet, "Decrypt"),
            "internet cap spent"
        );
        assert!(t.admit(Endpoint::Internet, "GetSecretValue"));
        assert!(!t.admit(Endpoint::Internet, "GetSecretValue"), "secret cap");
    }
}
