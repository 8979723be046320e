//! `hkms certify`: runs, against any PKCS#11 module, every mechanism and behaviour hkms
//! relies on, each as a named check that passes, fails or is skipped with a reason, and
//! writes a report (`report.json`, `report.html`).
//!
//! The token is left as it was found: keys are session objects (gone when their session
//! closes); the only token objects are the domain-key copies of `domain.transfer`, named
//! after the run id `hkms-certify-<random>` and destroyed at the end whatever happened. The
//! `cleanup` check proves it by counting the objects the user sees before and after. PINs
//! are read from files and never printed or stored.
//!
//! Every value the token computes is checked independently with OpenSSL (ciphertexts,
//! signatures, MACs, wrapped keys), so a token that answers garbage fails.
//!
//! # `report.json` (schema `hkms-certify/1`)
//!
//! | field | meaning |
//! |---|---|
//! | `schema` | `"hkms-certify/1"`; a new major number for any incompatible change |
//! | `hkms_version` | version of the hkms binary that ran the checks |
//! | `run_id` | `hkms-certify-<random>`, the name of every token object the run made |
//! | `started_at`, `finished_at` | RFC 3339 UTC |
//! | `duration_ms` | wall time of the run |
//! | `module` | path of the PKCS#11 library |
//! | `library` | `C_GetInfo`: `manufacturer`, `description`, `version`, `cryptoki_version` |
//! | `token` | `C_GetTokenInfo`: `label`, `manufacturer`, `model`, `serial`, `hardware_version`, `firmware_version`, `max_sessions`, `min_pin_len`, `max_pin_len` (null when the token did not answer) |
//! | `second_token` | label given with `--second-token`, or null |
//! | `profile` | name given with `--profile`, or null; `profile_source`: the file it came from |
//! | `summary` | counts `pass`, `fail`, `skip`, `unexpected_skip` (skips a profile does not expect; 0 without a profile), and `exit_code` |
//! | `checks` | one object per check, in the fixed order of [`CHECKS`] |
//!
//! Each check: `id` (one of [`CHECKS`]), `title`, `result` (`pass` / `fail` / `skip`),
//! `reason` (what was seen, or why it failed or was skipped), `rv` (the `CKR_*` return code
//! that decided the result, or null), `figures` (measured numbers by name, the unit in the
//! name: `_ms`, `_ops_per_s`, `_bytes`...), `duration_ms`, `expected_skip` (for a skip when a
//! profile was given: true when its `[certify.expected_skip]` table names the check, else
//! false; null otherwise) and `profile_reason` (the profile's reason for an expected skip).

mod aes;
mod asym;
pub mod check;
mod context;
mod expect;
mod pqc;
pub mod report;
mod session;
mod throughput;
mod token;
mod wrap;

pub use check::{CheckResult, Verdict};
pub use context::SetupError;

use check::Recorder;
use context::Ctx;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// What to certify and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub module: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    pub so_pin_file: Option<PathBuf>,
    pub second_token: Option<String>,
    /// PIN file of the second token (default: the first token's).
    pub second_pin_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub profiles_dir: PathBuf,
    /// How long each throughput figure is measured.
    pub throughput_time: Duration,
    /// Run only these checks (ids or group prefixes); the others are skipped.
    pub only: Vec<String>,
}

/// Runs every check and returns the report (not yet written).
pub fn run(opts: Options) -> Result<report::Report, SetupError> {
    let expected = match &opts.profile {
        Some(name) => Some(expect::expected_skips(&opts.profiles_dir, name).map_err(SetupError)?),
        None => None,
    };
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let mut ctx = Ctx::new(opts)?;
    let mut rec = Recorder::new(ctx.opts.only.clone(), CHECKS.len());
    let info = token::info(&ctx);

    token::checks(&mut ctx, &mut rec);
    let logged_in = rec
        .results
        .iter()
        .any(|r| r.id == "login.user" && r.result == Outcome::Pass);
    if logged_in {
        aes::checks(&mut ctx, &mut rec);
        wrap::checks(&mut ctx, &mut rec);
        asym::checks(&mut ctx, &mut rec);
        token::random(&mut ctx, &mut rec);
        session::checks(&mut ctx, &mut rec);
        throughput::check(&mut ctx, &mut rec);
        pqc::checks(&mut ctx, &mut rec);
    } else {
        for (id, _) in CHECKS {
            if !rec.results.iter().any(|r| r.id == *id) && *id != "cleanup" {
                rec.record(
                    id,
                    Verdict::skip("the user could not log in (login.user)"),
                    0.0,
                );
            }
        }
    }
    token::cleanup(&mut ctx, &mut rec);

    let mut checks = rec.results;
    if let Some((_, table)) = &expected {
        expect::apply(&mut checks, table);
    }
    Ok(report::Report::new(
        &ctx,
        info,
        checks,
        expected.map(|(source, _)| source),
        started_at,
        started.elapsed(),
    ))
}
