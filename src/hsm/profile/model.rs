//! The typed sections of an HSM profile (`hsm-profiles/<name>.toml`). Every section and
//! field is optional, so a profile may say only what is known of its device; names the model
//! does not know are refused (a misspelt quirk must not be ignored silently).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One PKCS#11 implementation, as its profile describes it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name (the file's stem).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub vendor: String,
    /// The library's usual install path.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// Whether keys live behind a hardware boundary; `None` when the profile does not say.
    #[serde(default)]
    pub hardware: Option<bool>,
    #[serde(default)]
    pub login: Login,
    #[serde(default)]
    pub mechanisms: Mechanisms,
    #[serde(default)]
    pub quirks: Quirks,
    #[serde(default)]
    pub calls: Calls,
    #[serde(default)]
    pub seccomp: Seccomp,
    #[serde(default)]
    pub certify: Certify,
    /// Documented facts about the device that no code acts on (name → fact).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// Where the profile's facts come from (short name → document).
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

/// `[login]`: how the library logs in and what it needs around it. `None` means unknown.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The PKCS#11 user type hkms logs in as ("user").
    #[serde(default)]
    pub user_type: Option<String>,
    /// Whether a login holds for every session of the process (PKCS#11 says it does).
    #[serde(default)]
    pub login_is_per_process: Option<bool>,
    /// Most sessions the library or device allows one application to open.
    #[serde(default)]
    pub max_sessions: Option<u64>,
    /// What the PIN in a member's `pin_file` looks like, when it is not just a PIN.
    #[serde(default)]
    pub pin_format: Option<String>,
    /// Files the library reads at C_Initialize.
    #[serde(default)]
    pub config_files: Vec<String>,
    /// Environment variables the library reads (hkmsd's unit must pass them).
    #[serde(default)]
    pub env: Vec<String>,
}

/// `[mechanisms]`: what the token must offer for hkms, and what it may offer.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mechanisms {
    /// A member whose token lacks one of these is refused when it connects.
    #[serde(default)]
    pub required: Vec<String>,
    /// Mechanisms of optional capabilities (asymmetric and MAC keys).
    #[serde(default)]
    pub optional: Vec<String>,
}

/// Who chooses the IV of an AES-GCM encryption.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GcmIv {
    /// The caller's IV is used (hkms supplies a random 96-bit IV).
    Caller,
    /// The device replaces it with one it generates.
    Device,
    /// The caller's IV is used unless the device runs in its FIPS mode, which generates it.
    DeviceInFipsMode,
    #[default]
    Unknown,
}

/// What a device does with `CKA_WRAP_TEMPLATE` / `CKA_UNWRAP_TEMPLATE` on a key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSupport {
    /// Stored and enforced by C_WrapKey / C_UnwrapKey.
    Enforced,
    /// Accepted but dropped: reading it back gives nothing.
    Absent,
    /// Refused when a key is made with it: hkms makes the domain key without it.
    Rejected,
    #[default]
    Unknown,
}

/// Who may set `CKA_TRUSTED` on a key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trusted {
    /// Only the security officer (PKCS#11's rule).
    SoOnly,
    /// A role the device names otherwise (the crypto officer of a partition, say).
    Officer,
    /// No one: the device cannot mark a wrapping key trusted.
    Unsupported,
    #[default]
    Unknown,
}

/// A hash of RSA-OAEP (with MGF1 over the same hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OaepHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// A named curve of hkms's EC key specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EcCurve {
    /// NIST P-256 (secp256r1), `EC_P256`.
    P256,
    /// NIST P-384 (secp384r1), `EC_P384`.
    P384,
    /// secp256k1, `EC_P256K`.
    Secp256k1,
}

/// `[quirks]`: how the device departs from what PKCS#11 leads one to expect.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quirks {
    /// Who chooses AES-GCM IVs. hkms always supplies its own and refuses a result
    /// encrypted under another IV ([`crate::hsm::crypto::gcm_encrypt`]).
    #[serde(default)]
    pub gcm_iv: GcmIv,
    /// A bad GCM tag (and an unwrap under the wrong key) returns `CKR_GENERAL_ERROR`: on
    /// decrypt and unwrap it then means bad input, not a failing device. `false`: there it
    /// means a failing device (the member is taken out of rotation). Unknown (left out):
    /// treated as bad input, so that bad ciphertexts can never take members down.
    #[serde(default)]
    pub general_error_on_bad_tag: Option<bool>,
    /// The hashes RSA-OAEP works with; `None` when unknown (the mechanism list decides).
    #[serde(default)]
    pub oaep_hashes: Option<Vec<OaepHash>>,
    /// The curves of hkms's key specs that `CKM_EC_KEY_PAIR_GEN` generates keys on; `None`
    /// when unknown (the mechanism list decides). PKCS#11's mechanism information names no
    /// curves, so a device without one says so only when a key is asked for.
    #[serde(default)]
    pub ec_curves: Option<Vec<EcCurve>>,
    /// Older spelling of `oaep_hashes = ["sha1"]`.
    #[serde(default)]
    pub oaep_sha1_only: bool,
    /// Who may set `CKA_TRUSTED` (the domain key's copy needs a trusted wrapping key on the
    /// member that gives it).
    #[serde(default)]
    pub trusted: Trusted,
    #[serde(default)]
    pub unwrap_template: TemplateSupport,
    #[serde(default)]
    pub wrap_template: TemplateSupport,
}

impl Quirks {
    /// Whether `CKR_GENERAL_ERROR` on decrypt or unwrap means bad input ([`Self::general_error_on_bad_tag`]).
    pub fn general_error_is_bad_input(&self) -> bool {
        self.general_error_on_bad_tag != Some(false)
    }

    /// Whether RSA-OAEP with `hash` works on this device, as far as the profile knows.
    pub fn oaep_allows(&self, hash: OaepHash) -> bool {
        if self.oaep_sha1_only {
            return hash == OaepHash::Sha1;
        }
        self.oaep_hashes.as_ref().is_none_or(|h| h.contains(&hash))
    }

    /// Whether the device generates EC keys on `curve`, as far as the profile knows.
    pub fn ec_allows(&self, curve: EcCurve) -> bool {
        self.ec_curves.as_ref().is_none_or(|c| c.contains(&curve))
    }

    /// The OAEP hashes the profile allows, for messages ("SHA-1", "SHA-1, SHA-256"...).
    pub fn oaep_hash_names(&self) -> String {
        let all = [
            (OaepHash::Sha1, "SHA-1"),
            (OaepHash::Sha224, "SHA-224"),
            (OaepHash::Sha256, "SHA-256"),
            (OaepHash::Sha384, "SHA-384"),
            (OaepHash::Sha512, "SHA-512"),
        ];
        all.iter()
            .filter(|(h, _)| self.oaep_allows(*h))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the domain key is made with `CKA_WRAP_TEMPLATE` / `CKA_UNWRAP_TEMPLATE`
    /// (both are left out where the device refuses either).
    pub fn key_templates(&self) -> bool {
        self.unwrap_template != TemplateSupport::Rejected
            && self.wrap_template != TemplateSupport::Rejected
    }
}

/// `[calls]`: how the pool runs calls on members of this profile.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    /// The library does its work in this process on the host's CPU and answers in
    /// microseconds (a software token): calls run on the async worker that needs them,
    /// without a hand-off to a blocking thread and back. Such calls have no deadline (a
    /// call cannot be abandoned while it runs on the worker), so a library that talks to
    /// a device or a network must leave this off.
    #[serde(default)]
    pub inline: bool,
    /// The library keeps hkmsd's unwrapped working keys in this process's memory, where
    /// `CKA_PRIVATE` only makes it encrypt each key's value under another key held in the
    /// same memory and decrypt it for every operation: working keys are unwrapped as
    /// public session objects (still sensitive and never extractable; session objects are
    /// visible to no other application). Only for an in-process software token.
    #[serde(default)]
    pub public_working_keys: bool,
}

/// `[seccomp]`: system calls the library makes after hkmsd's lock-down.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    /// System call name → why the library needs it.
    #[serde(default)]
    pub allow: BTreeMap<String, String>,
}

/// `[certify]`: what `hkms certify` should expect of this device.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certify {
    /// Check id (see [`super::CHECK_IDS`]) → why the device cannot pass it.
    #[serde(default)]
    pub expected_skip: BTreeMap<String, String>,
}
