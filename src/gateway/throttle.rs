//! QPS caps: token buckets, checked before a request is forwarded.
//!
//! - private endpoint: every request counts against the instance tier (`tier_qps`);
//! - Internet endpoint: cryptographic operations count against `internet_crypto_qps`
//!   (at most 1,000 whatever the tier), secret reads (`GetSecretValue`) against
//!   `secret_qps` (at most 450): the Internet endpoint serves secrets as the shared
//!   gateway does, in either mode;
//! - shared-gateway mode: secret reads on the private endpoint also count against
//!   `secret_qps`.
//!
//! The operation is read from `x-kms-apiname` before the request is authenticated: a caller
//! that lies about it only spends its own share of a cap.
//!
//! Unauthenticated traffic never spends these caps. The gateway cannot verify signatures
//! (hkmsd does), but a request without the signature headers (`Authorization: Bearer ...`
//! and `x-kms-acccesskeyid`) can never be served: such *unsigned* requests are charged to
//! their source's budget (`unsigned_qps_per_source`, see [`SourceBudgets`]) and to a
//! gateway-wide budget of their own (`unsigned_qps_total`), never to the caps above. Within
//! budget they go on to hkmsd, which answers with the protocol's authentication error;
//! over it they get 429 `Rejected.Throttling` from the gateway. A request that carries the
//! headers but that hkmsd refuses as unauthenticated (a forged or unknown signature) is
//! charged to its source's budget after hkmsd's answer, and a source whose budget is
//! overdrawn has its signed-looking requests refused until it has paid back: so a flood of
//! forged signatures from one source spends the instance cap only at that source's budget
//! rate (plus one request per connection in flight).

use crate::gateway::config::ThrottleConfig;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Why a request was refused with 429 `Rejected.Throttling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// The instance tier (private endpoint) or the Internet endpoint's cap.
    Instance,
    /// The shared-gateway cap on secret reads.
    Secrets,
    /// The source's budget of unsigned or unauthenticated requests.
    Source,
    /// The gateway-wide budget of unsigned requests.
    Unsigned,
}

impl Throttled {
    /// The protocol error code of every throttling refusal.
    pub const CODE: &'static str = "Rejected.Throttling";

    /// Stable name of the cap, for logs.
    pub fn cap(self) -> &'static str {
        match self {
            Throttled::Instance => "instance",
            Throttled::Secrets => "secrets",
            Throttled::Source => "source",
            Throttled::Unsigned => "unsigned",
        }
    }

    /// The message of the `Error` body.
    pub fn message(self) -> &'static str {
        match self {
            Throttled::Instance | Throttled::Secrets => "QPS Limit Exceeded",
            Throttled::Source => {
                "QPS Limit Exceeded: too many unauthenticated requests from this address"
            }
            Throttled::Unsigned => "QPS Limit Exceeded: too many unauthenticated requests",
        }
    }
}

/// Whether a request carries the signature headers of its protocol (the instance API's
/// Bearer signature and key id, or Tencent's TC3-HMAC-SHA256 Authorization), not whether
/// the signature is valid: hkmsd decides that.
pub fn is_signed(headers: &hyper::HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .is_some_and(|s| !s.trim().is_empty());
    let key_id = headers
        .get("x-kms-acccesskeyid")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    let tc3 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("TC3-HMAC-SHA256 "));
    (bearer && key_id) || tc3
}

/// hkmsd's error codes for a request it could not authenticate, for hkmsd releases that
/// do not report `authenticated` in their answer.
pub fn is_authentication_failure(error_code: &str) -> bool {
    matches!(
        error_code,
        "InvalidApiVersion"
            | "InvalidParam"
            | "RequestTimeTooSkewed"
            | "MissingParameter"
            | "Unauthorized"
            | "SignatureNotMatch"
    )
}

/// Most sources tracked at once; beyond, new sources share one budget until idle ones
/// (whose budget is full again, so forgetting them loses nothing) are swept.
const MAX_SOURCES: usize = 65_536;

/// Token buckets per source address (see [`crate::gateway::conn::source_of`]) for requests
/// that are not, or turn out not to be, authenticated. A bucket may be overdrawn by charges
/// made after the fact, down to ten seconds' worth.
#[derive(Debug)]
pub struct SourceBudgets {
    rate: f64,
    burst: f64,
    floor: f64,
    state: Mutex<Sources>,
}

#[derive(Debug)]
struct Sources {
    buckets: HashMap<IpAddr, (f64, Instant)>,
    last_sweep: Instant,
}

/// Where sources beyond [`MAX_SOURCES`] are counted together.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

impl SourceBudgets {
    pub fn new(rate: f64) -> SourceBudgets {
        let burst = rate.max(1.0);
        SourceBudgets {
            rate,
            burst,
            floor: -(rate * 10.0).max(1.0),
            state: Mutex::new(Sources {
                buckets: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Runs `f` on the refilled token count of `source`.
    fn with<T>(&self, source: IpAddr, now: Instant, f: impl FnOnce(&mut f64) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = source;
        if !s.buckets.contains_key(&source) && s.buckets.len() >= MAX_SOURCES {
            if now.saturating_duration_since(s.last_sweep) >= Duration::from_secs(1) {
                let (rate, burst) = (self.rate, self.burst);
                s.buckets.retain(|_, (tokens, at)| {
                    *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
                });
                s.last_sweep = now;
            }
            if s.buckets.len() >= MAX_SOURCES {
                key = OVERFLOW;
            }
        }
        let b = s.buckets.entry(key).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(b.1).as_secs_f64();
        b.0 = (b.0 + elapsed * self.rate).min(self.burst);
        b.1 = now;
        f(&mut b.0)
    }

    /// Takes a token for an unsigned request, if `source` has one.
    pub fn try_take(&self, source: IpAddr) -> bool {
        self.try_take_at(source, Instant::now())
    }

    fn try_take_at(&self, source: IpAddr, now: Instant) -> bool {
        self.with(source, now, |t| {
            if *t >= 1.0 {
                *t -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Charges a request that failed authentication, overdrawing if needed.
    pub fn charge(&self, source: IpAddr) {
        self.charge_at(source, Instant::now())
    }

    fn charge_at(&self, source: IpAddr, now: Instant) {
        let floor = self.floor;
        self.with(source, now, |t| *t = (*t - 1.0).max(floor));
    }

    /// Whether `source` is overdrawn (its signed-looking requests wait until it is not).
    pub fn overdrawn(&self, source: IpAddr) -> bool {
        self.overdrawn_at(source, Instant::now())
    }

    fn overdrawn_at(&self, source: IpAddr, now: Instant) -> bool {
        self.with(source, now, |t| *t < 0.0)
    }
}

/// Every cap of one gateway.
#[derive(Debug)]
pub struct Throttle {
    tier: Bucket,
    internet_crypto: Bucket,
    secrets: Bucket,
    /// Whether secret reads on the private endpoint count against `secrets` too.
    shared_gateway: bool,
    sources: SourceBudgets,
    unsigned: Bucket,
}

/// Operations that read secrets (the rest are cryptographic operations).
fn is_secret_read(api_name: &str) -> bool {
    api_name == crate::access::endpoint::SECRET_READ
}

impl Throttle {
    pub fn new(cfg: &ThrottleConfig) -> Throttle {
        Throttle {
            tier: Bucket::new(cfg.tier_qps),
            internet_crypto: Bucket::new(cfg.internet_crypto_qps),
            secrets: Bucket::new(cfg.secret_qps),
            shared_gateway: cfg.shared_gateway,
            sources: SourceBudgets::new(cfg.unsigned_qps_per_source),
            unsigned: Bucket::new(cfg.unsigned_qps_total),
        }
    }

    /// Whether a request for `api_name` on `endpoint` from `source` may go on now;
    /// `signed`: it carries the signature headers ([`is_signed`]).
    pub fn admit_from(
        &self,
        endpoint: Endpoint,
        api_name: &str,
        source: IpAddr,
        signed: bool,
    ) -> Result<(), Throttled> {
        if !signed {
            if !self.sources.try_take(source) {
                return Err(Throttled::Source);
            }
            if !self.unsigned.try_take() {
                return Err(Throttled::Unsigned);
            }
            return Ok(());
        }
        if self.sources.overdrawn(source) {
            return Err(Throttled::Source);
        }
        self.admit(endpoint, api_name)
    }

    /// hkmsd refused a signed-looking request from `source` as unauthenticated.
    pub fn authentication_failed(&self, source: IpAddr) {
        self.sources.charge(source);
    }

    /// Whether a request for `api_name` on `endpoint` may go on now (the instance caps).
    pub fn admit(&self, endpoint: Endpoint, api_name: &str) -> Result<(), Throttled> {
        let secret = is_secret_read(api_name);
        let shared = endpoint == Endpoint::Internet || self.shared_gateway;
        if secret && shared && !self.secrets.try_take() {
            return Err(Throttled::Secrets);
        }
        let ok = match endpoint {
            Endpoint::Private => self.tier.try_take(),
            Endpoint::Internet if !secret => self.internet_crypto.try_take(),
            Endpoint::Internet => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Throttled::Instance)
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
            ..ThrottleConfig::default()
        });
        assert!(t.admit(Endpoint::Private, "Encrypt").is_ok());
        assert!(t.admit(Endpoint::Private, "Encrypt").is_ok());
        assert_eq!(
            t.admit(Endpoint::Private, "Encrypt"),
            Err(Throttled::Instance),
            "tier spent"
        );
        for _ in 0..3 {
            assert!(t.admit(Endpoint::Internet, "Decrypt").is_ok());
        }
        assert_eq!(
            t.admit(Endpoint::Internet, "Decrypt"),
            Err(Throttled::Instance),
            "internet cap spent"
        );
        assert!(t.admit(Endpoint::Internet, "GetSecretValue").is_ok());
        assert_eq!(
            t.admit(Endpoint::Internet, "GetSecretValue"),
            Err(Throttled::Secrets)
        );
    }

    #[test]
    fn secret_reads_over_the_internet_are_capped_in_either_mode() {
        let t = Throttle::new(&ThrottleConfig {
            tier_qps: 100.0,
            secret_qps: 2.0,
            shared_gateway: false,
            ..ThrottleConfig::default()
        });
        // The private endpoint of a dedicated gateway: the tier only.
        for _ in 0..5 {
            assert!(t.admit(Endpoint::Private, "GetSecretValue").is_ok());
        }
        // The Internet endpoint: the shared gateway's cap on secret reads, not the tier's
        // and not the cryptographic cap.
        assert!(t.admit(Endpoint::Internet, "GetSecretValue").is_ok());
        assert!(t.admit(Endpoint::Internet, "GetSecretValue").is_ok());
        assert_eq!(
            t.admit(Endpoint::Internet, "GetSecretValue"),
            Err(Throttled::Secrets)
        );
        assert!(t.admit(Endpoint::Internet, "Encrypt").is_ok());
        assert!(t.admit(Endpoint::Private, "GetSecretValue").is_ok());
    }

    #[test]
    fn unsigned_requests_spend_their_source_budget_not_the_tier() {
        let t = Throttle::new(&ThrottleConfig {
            tier_qps: 2.0,
            unsigned_qps_per_source: 3.0,
            unsigned_qps_total: 100.0,
            ..ThrottleConfig::default()
        });
        let flood: IpAddr = "192.0.2.2".parse().unwrap();
        let caller: IpAddr = "192.0.2.1".parse().unwrap();
        let unsigned = (0..50)
            .filter(|_| {
                t.admit_from(Endpoint::Private, "Encrypt", flood, false)
                    .is_ok()
            })
            .count();
        assert_eq!(unsigned, 3, "one second's budget of the source");
        assert_eq!(
            t.admit_from(Endpoint::Private, "Encrypt", flood, false),
            Err(Throttled::Source)
        );
        // The tier is untouched, and an exhausted (not overdrawn) source may still sign.
        assert!(t
            .admit_from(Endpoint::Private, "Encrypt", caller, true)
            .is_ok());
        assert!(t
            .admit_from(Endpoint::Private, "Encrypt", flood, true)
            .is_ok());
        assert_eq!(
            t.admit_from(Endpoint::Private, "Encrypt", caller, true),
            Err(Throttled::Instance)
        );
    }

    #[test]
    fn forged_signatures_overdraw_their_source() {
        let b = SourceBudgets::new(2.0);
        let forger: IpAddr = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            b.charge_at(forger, t0);
        }
        assert!(b.overdrawn_at(forger, t0), "2 - 5 tokens");
        assert!(!b.try_take_at(forger, t0));
        assert!(
            b.overdrawn_at(forger, t0 + Duration::from_millis(1400)),
            "-3 + 2.8"
        );
        assert!(!b.overdrawn_at(forger, t0 + Duration::from_millis(1600)));
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(!b.overdrawn_at(other, t0));
        // The debt is bounded: ten seconds' worth.
        for _ in 0..1000 {
            b.charge_at(forger, t0);
        }
        assert!(!b.overdrawn_at(forger, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn unsigned_requests_have_a_gateway_wide_budget_too() {
        let t = Throttle::new(&ThrottleConfig {
            unsigned_qps_per_source: 10.0,
            unsigned_qps_total: 4.0,
            ..ThrottleConfig::default()
        });
        let admitted = (0..20u8)
            .filter(|i| {
                let ip = IpAddr::from([192, 0, 2, *i]);
                t.admit_from(Endpoint::Private, "Encrypt", ip, false)
                    .is_ok()
            })
            .count();
        assert_eq!(admitted, 4);
    }

    #[test]
    fn signed_means_both_signature_headers() {
        let mut h = hyper::HeaderMap::new();
        assert!(!is_signed(&h));
        h.insert("authorization", "Bearer c2ln".parse().unwrap());
        assert!(!is_signed(&h), "no key id");
        h.insert("x-kms-acccesskeyid", "KAAP.x".parse().unwrap());
        assert!(is_signed(&h));
        h.insert("authorization", "Basic c2ln".parse().unwrap());
        assert!(!is_signed(&h), "not the protocol's scheme");
        assert!(is_authentication_failure("SignatureNotMatch"));
        assert!(!is_authentication_failure("InvalidParameter"));
        assert!(!is_authentication_failure("Forbidden.NoPermission"));
    }
}
