//! The checks' fixed vocabulary (ids and titles), the outcome of a check and the report's
//! schema name. Every other file of the module reads these; this one reads none of them.

use serde::Serialize;

/// The report's schema name and version.
pub const SCHEMA: &str = "hkms-certify/1";

/// Every check, in run and report order: id and title. The ids are a fixed vocabulary
/// (HSM profiles name them in `[certify.expected_skip]`).
pub const CHECKS: &[(&str, &str)] = &[
    ("token.info", "Token and library information"),
    (
        "token.mechanisms",
        "Mechanisms hkms needs, with the right flags",
    ),
    ("login.user", "User login"),
    (
        "login.bad_pin",
        "A wrong PIN is refused with CKR_PIN_INCORRECT",
    ),
    ("session.limit", "Sessions open at once"),
    (
        "aes.generate",
        "AES-256 key generation (sensitive, non-extractable)",
    ),
    ("aes.gcm", "AES-GCM with a caller IV and AAD"),
    ("aes.gcm.bad_tag", "AES-GCM refuses a bad tag"),
    ("aes.cbc", "AES-CBC without padding"),
    ("aes.cbc_pad", "AES-CBC with PKCS#7 padding"),
    ("aes.ecb", "AES-ECB (token binding values)"),
    ("aes.key_wrap_pad", "AES key wrap with padding (RFC 5649)"),
    (
        "domain.transfer",
        "Domain key copied to a second token (wrap-with-trusted)",
    ),
    (
        "unwrap.template",
        "The domain key's unwrap template is enforced",
    ),
    (
        "wrap.template",
        "The domain key's wrap template is enforced",
    ),
    (
        "sensitive.unreadable",
        "A sensitive key's value cannot be read",
    ),
    (
        "nonextractable.unwrappable",
        "A non-extractable key cannot be wrapped",
    ),
    ("rsa.generate", "RSA 2048 and 3072 key pair generation"),
    ("rsa.pkcs1", "RSA PKCS#1 v1.5 signatures"),
    ("rsa.pss", "RSA-PSS signatures"),
    ("rsa.oaep.sha1", "RSA-OAEP decryption, SHA-1"),
    ("rsa.oaep.sha256", "RSA-OAEP decryption, SHA-256"),
    ("ec.generate.p256", "EC P-256 key pair generation"),
    ("ec.generate.p384", "EC P-384 key pair generation"),
    ("ec.generate.secp256k1", "EC secp256k1 key pair generation"),
    ("ecdsa", "ECDSA signatures"),
    ("hmac.sha256", "HMAC-SHA-256"),
    ("hmac.sha384", "HMAC-SHA-384"),
    ("hmac.sha512", "HMAC-SHA-512"),
    ("random", "Random number generator"),
    ("concurrency.sessions", "Several threads, one session each"),
    (
        "recovery.sessions_closed",
        "hkms's pool recovers after its sessions are closed",
    ),
    ("recovery.relogin", "hkms's pool recovers after a logout"),
    ("throughput", "Operations per second per mechanism"),
    ("mldsa.44", "ML-DSA-44 signatures"),
    ("mldsa.65", "ML-DSA-65 signatures"),
    ("mldsa.87", "ML-DSA-87 signatures"),
    ("mlkem.768", "ML-KEM-768 encapsulation"),
    ("mlkem.1024", "ML-KEM-1024 encapsulation"),
    ("cleanup", "The token holds what it held before the run"),
];

/// The title of check `id`.
pub fn title(id: &str) -> &'static str {
    CHECKS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

/// pass, fail or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}
