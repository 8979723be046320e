//! The command line of `hkms key`: its subcommands and options (clap), and the parsing of
//! their values (days, tags). [`super::key`] runs them.

use super::data_io::{open, Open};
use crate::proto::Tag;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Seconds in a day.
pub const DAY_SECONDS: u64 = 86_400;

/// Shortest and longest automatic rotation interval, in days.
pub const ROTATION_DAYS: std::ops::RangeInclusive<u64> = 7..=365;

/// The key a command acts on: given as the argument or with `--key-id` (either one).
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct KeyRef {
    /// Key id or alias (`alias/<name>`).
    #[arg(value_name = "KEY_ID")]
    key: Option<String>,
    /// Key id or alias (`alias/<name>`); the same as giving KEY_ID.
    #[arg(long = "key-id", value_name = "KEY_ID")]
    key_id: Option<String>,
}

impl KeyRef {
    /// The key id or alias given.
    pub fn id(&self) -> String {
        self.key_id
            .as_ref()
            .or(self.key.as_ref())
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key (material made inside an HSM, or imported with --origin EXTERNAL).
    ///
    /// Material generated inside an HSM never leaves it in plaintext. With --origin EXTERNAL
    /// the key has no material until you import your own (see `hkms key import --help`).
    #[command(after_long_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Show a key: its state and what to do about it, versions, rotation, protection, tags.
    ///
    /// Also its origin, material expiry (EXTERNAL keys) and the date a pending deletion
    /// destroys it.
    Describe(KeyRef),
    /// List key ids, a page at a time, optionally filtered.
    ///
    /// Keys are listed in key id order; with filters, only the keys matching every filter
    /// given.
    List(ListArgs),
    /// Allow a Disabled key to be used again (state Enabled).
    Enable(KeyRef),
    /// Refuse every use of a key until it is enabled again (state Disabled).
    ///
    /// A key must be Disabled before its deletion can be scheduled.
    Disable(KeyRef),
    /// Replace a key's description.
    UpdateDescription {
        #[command(flatten)]
        key: KeyRef,
        /// The new description (free text; empty clears it).
        #[arg(long)]
        description: String,
    },
    /// Rotate a key now: a new version becomes primary.
    ///
    /// The new version is generated inside an HSM and encrypts new data from then on. Older
    /// versions still decrypt what they encrypted.
    CreateVersion(KeyRef),
    /// List a key's versions, oldest first; '*' marks the primary version.
    Versions(KeyRef),
    /// Show one version of a key.
    Version {
        #[command(flatten)]
        key: KeyRef,
        /// The version id (from `hkms key versions`).
        #[arg(long)]
        version_id: String,
    },
    /// Automatic rotation: a new primary version every N days (set, show).
    ///
    /// hkmsd makes the versions on its own (`hkms jobs list` shows when).
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// Schedule a key's deletion after a pending window (7 to 366 days, default 30).
    ///
    /// The key must be Disabled (or PendingImport) and without deletion protection, and the
    /// instance must allow key deletion (`hkms instance key-deletion`). The key turns
    /// PendingDeletion: every use is refused, and at the end of the pending window its
    /// tokens are deleted, every version with it: this appliance can decrypt nothing it
    /// encrypted any more. A copy of the store made before then still holds them (see
    /// "Key lifecycle" in the README). Until the date `hkms key cancel-deletion` brings it
    /// back. Secrets the key protects cannot be read meanwhile, and are lost with it: a
    /// warning names them.
    ///
    /// Example: hkms key schedule-deletion --key-id <KeyId> --pending-window-days 7
    ScheduleDeletion {
        #[command(flatten)]
        key: KeyRef,
        /// Days before the material is destroyed: 7 to 366.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(7..=366))]
        pending_window_days: u32,
    },
    /// Cancel a scheduled deletion; the key returns to Disabled.
    ///
    /// An EXTERNAL key without material returns to PendingImport. Enable the key
    /// (`hkms key enable`) to use it again.
    CancelDeletion(KeyRef),
    /// Deletion protection (on, off): while on, the key's deletion cannot be scheduled.
    #[command(subcommand)]
    Protection(ProtectionCommand),
    /// Write the files needed to import material into an EXTERNAL key (BYOK step 2).
    ///
    /// An HSM makes a wrapping key pair; hkmsd keeps its private half (wrapped under the
    /// domain key, so any member can use it). Its public key and the import token that
    /// names it are written to --output-dir, with the parameters. They are valid for 24
    /// hours.
    #[command(after_long_help = BYOK_FLOW)]
    ImportParams(ImportParamsArgs),
    /// Import your key material into an EXTERNAL key (BYOK step 3).
    ///
    /// The material file is read and wrapped here, on this machine, with the public key
    /// written by `import-params` (RSA-OAEP with the algorithm it names); only the wrapped
    /// material and the import token are sent to hkmsd. A PendingImport key turns Enabled.
    #[command(after_long_help = BYOK_FLOW)]
    Import(ImportArgs),
    /// Delete an EXTERNAL key's material now; the key turns PendingImport.
    ///
    /// What the key encrypted stays unreadable until the same material is imported again
    /// (`hkms key import --help`).
    DeleteMaterial(KeyRef),
    /// Set tags on a key; a tag with the same key is replaced.
    ///
    /// At most 20 tags per key.
    ///
    /// Example: hkms key tag --key-id <KeyId> team=payments env=prod
    Tag {
        /// Key id or alias (`alias/<name>`).
        #[arg(long)]
        key_id: String,
        /// Tags as KEY=VALUE: a key of 1 to 128 characters not starting with "acs:" or
        /// "hkms:", a value of 0 to 256 characters.
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<Tag>,
    },
    /// Remove tags from a key, by tag key.
    ///
    /// Example: hkms key untag --key-id <KeyId> env
    Untag {
        /// Key id or alias (`alias/<name>`).
        #[arg(long)]
        key_id: String,
        /// The keys of the tags to remove.
        #[arg(required = true, value_name = "TAG_KEY")]
        tag_keys: Vec<String>,
    },
    /// Show a key's tags.
    Tags(KeyRef),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The kind of key: AES for `hkms encrypt`, RSA and EC for signatures (RSA also for
    /// public-key encryption), HMAC for MACs. `hkms hsm status` shows which specs each HSM
    /// member offers. Other names (EC_SM2, Aliyun_SM4, ML_DSA_65, ...) go to hkmsd, which
    /// refuses them with UnsupportedKeySpec and the mechanisms they would need.
    #[arg(long, default_value = "Aliyun_AES_256", value_parser = key_specs())]
    pub key_spec: String,
    /// What the key is for, fixed at creation. Default: ENCRYPT/DECRYPT for AES and RSA
    /// keys, SIGN/VERIFY for EC keys, GENERATE/VERIFY_MAC for HMAC keys.
    #[arg(long, value_parser = key_usages())]
    pub key_usage: Option<String>,
    /// Free text shown by `key describe`.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Aliyun_KMS: material generated inside an HSM. EXTERNAL (AES keys only): no material
    /// until you import your own (the key starts PendingImport; see `hkms key import --help`).
    #[arg(long, default_value = "Aliyun_KMS", value_parser = ["Aliyun_KMS", "EXTERNAL"])]
    pub origin: String,
    /// Turn automatic rotation on, with this interval: days followed by "d", 7d to 365d
    /// (e.g. 90d). Not for EXTERNAL keys. Default: no automatic rotation.
    #[arg(long, value_name = "DAYS", value_parser = parse_rotation_interval)]
    pub rotation_interval: Option<u64>,
    /// A tag KEY=VALUE; repeat for more (at most 20).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    /// Turn deletion protection on from the start (`hkms key protection off` lifts it).
    #[arg(long, visible_alias = "deletion-protection")]
    pub protection: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Page to show, from 1.
    #[arg(long, default_value_t = 1)]
    pub page_number: u32,
    /// Keys per page, 1 to 100.
    #[arg(long, default_value_t = 10)]
    pub page_size: u32,
    /// Only keys in this state.
    #[arg(long, value_parser = ["Enabled", "Disabled", "PendingDeletion", "PendingImport"])]
    pub state: Option<String>,
    /// Only keys of this spec.
    #[arg(long, value_parser = key_specs())]
    pub spec: Option<String>,
    /// Only keys with this usage.
    #[arg(long, value_parser = key_usages())]
    pub usage: Option<String>,
    /// Only keys of this origin.
    #[arg(long, value_parser = ["Aliyun_KMS", "EXTERNAL"])]
    pub origin: Option<String>,
    /// Only keys carrying this tag (KEY= matches any value); repeat to require several.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Turn automatic rotation on with --interval, or off with --disable.
    ///
    /// Not for EXTERNAL keys. `hkms key rotation show` tells when the next version comes.
    #[command(after_long_help = ROTATION_EXAMPLES)]
    Set {
        #[command(flatten)]
        key: KeyRef,
        /// Days between versions, followed by "d": 7d to 365d (e.g. 90d).
        #[arg(long, value_name = "DAYS", value_parser = parse_rotation_interval,
              required_unless_present = "disable", conflicts_with = "disable")]
        interval: Option<u64>,
        /// Turn automatic rotation off (existing versions stay).
        #[arg(long)]
        disable: bool,
    },
    /// Show whether a key rotates automatically, how often, and when next.
    Show(KeyRef),
}

#[derive(Debug, Subcommand)]
pub enum ProtectionCommand {
    /// Turn deletion protection on: `hkms key schedule-deletion` is refused.
    On {
        #[command(flatten)]
        key: KeyRef,
        /// Why the key is protected (shown by `hkms key describe`).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Turn deletion protection off.
    Off(KeyRef),
}

const CREATE_EXAMPLES: &str = "\
Examples:
  hkms key create --description \"orders database\" --rotation-interval 90d
  hkms key create --origin EXTERNAL --tag team=payments --protection
  hkms key create --key-spec RSA_2048 --key-usage SIGN/VERIFY      # sign, verify
  hkms key create --key-spec RSA_3072 --key-usage ENCRYPT/DECRYPT  # asymmetric-encrypt
  hkms key create --key-spec EC_P256                               # sign, verify
  hkms key create --key-spec HMAC_SHA_256                          # generate-mac";

const ROTATION_EXAMPLES: &str = "\
Examples:
  hkms key rotation set --key-id <KeyId> --interval 90d
  hkms key rotation set --key-id <KeyId> --disable";

/// The key specs, with what each is for (shown by `--help`).
fn key_specs() -> Open {
    open(&[
        (
            "Aliyun_AES_256",
            "AES-256: encrypt, decrypt, data keys (the default)",
        ),
        ("Aliyun_AES_128", "AES-128: the same, with a 128-bit key"),
        (
            "RSA_2048",
            "RSA, 2048-bit: SIGN/VERIFY (PSS, PKCS#1 v1.5) or ENCRYPT/DECRYPT (RSA-OAEP)",
        ),
        ("RSA_3072", "RSA, 3072-bit: the same, stronger and slower"),
        ("RSA_4096", "RSA, 4096-bit: the same, slower still"),
        (
            "EC_P256",
            "ECDSA on NIST P-256 (ES256), SIGN/VERIFY: small, fast signatures",
        ),
        ("EC_P384", "ECDSA on NIST P-384 (ES384), SIGN/VERIFY"),
        (
            "EC_P256K",
            "ECDSA on secp256k1 (Bitcoin, Ethereum), SIGN/VERIFY",
        ),
        ("HMAC_SHA_256", "HMAC-SHA-256, GENERATE/VERIFY_MAC"),
        ("HMAC_SHA_384", "HMAC-SHA-384, GENERATE/VERIFY_MAC"),
        ("HMAC_SHA_512", "HMAC-SHA-512, GENERATE/VERIFY_MAC"),
    ])
}

/// The key usages, with the commands each allows.
fn key_usages() -> PossibleValuesParser {
    PossibleValuesParser::new([
        PossibleValue::new("ENCRYPT/DECRYPT").help(
            "AES keys: encrypt, decrypt, generate-data-key[-pair], re-encrypt. RSA keys: \
             asymmetric-encrypt, asymmetric-decrypt",
        ),
        PossibleValue::new("SIGN/VERIFY").help("RSA and EC keys: sign, verify"),
        PossibleValue::new("GENERATE/VERIFY_MAC").help("HMAC keys: generate-mac, verify-mac"),
    ])
}

/// Days written as `<N>d` (`90d`), as a number of days.
pub fn parse_days(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a number of days like 90d");
    let digits = s.trim().strip_suffix('d').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// A rotation interval `<N>d`, 7d to 365d, in seconds (as the API takes it).
pub fn parse_rotation_interval(s: &str) -> Result<u64, String> {
    let days = parse_days(s)?;
    if !ROTATION_DAYS.contains(&days) {
        return Err(format!(
            "a rotation interval is {}d to {}d, not {days}d",
            ROTATION_DAYS.start(),
            ROTATION_DAYS.end()
        ));
    }
    Ok(days * DAY_SECONDS)
}

/// A tag `KEY=VALUE` (split at the first '='; the value may be empty, the key may not).
pub fn parse_tag(s: &str) -> Result<Tag, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not a tag KEY=VALUE (no '=')"))?;
    if key.is_empty() {
        return Err(format!("{s:?} has an empty tag key"));
    }
    Ok(Tag {
        tag_key: key.to_owned(),
        tag_value: value.to_owned(),
    })
}

/// The bring-your-own-key steps, at the end of `import-params --help` and `import --help`.
pub const BYOK_FLOW: &str = "\
Bring your own key (BYOK), step by step:

  1. Create a key without material; it starts PendingImport (every use is refused):
       hkms key create --origin EXTERNAL --description \"orders database\"

  2. Get import parameters for it, valid for 24 hours:
       hkms key import-params --key-id <KeyId> --output-dir ./byok
     This writes ./byok/publickey.pem (the wrapping public key), ./byok/importtoken.bin
     (mode 0600) and ./byok/import-params.json (key id, algorithm, expiry).

  3. Import the material: a file holding the raw key, 32 bytes for Aliyun_AES_256 or
     16 bytes for Aliyun_AES_128 (for example `openssl rand -out key.bin 32`):
       hkms key import --key-id <KeyId> --material key.bin --params-dir ./byok
     The material is encrypted on this machine with the public key (RSA-OAEP); only that
     ciphertext is sent. The key turns Enabled (a Disabled key stays Disabled).

Expiry: with --expire YYYY-MM-DD, hkmsd deletes the material at 00:00 UTC that day and
the key turns PendingImport; without it the material never expires.
`hkms key delete-material` deletes it at once, the same way.

While the key is PendingImport nothing it encrypted can be decrypted. Importing the same
material again (with fresh import parameters) restores the key and everything it
encrypted; different material is refused. hkms never gives the material back: keep a
safe copy of it.";

#[derive(Debug, Args)]
pub struct ImportParamsArgs {
    #[command(flatten)]
    pub key: KeyRef,
    /// How the material will be wrapped: RSAES_OAEP_SHA_1 (every HSM supports it),
    /// RSAES_OAEP_SHA_256, or RSA_AES_KEY_WRAP_SHA_1 / _SHA_256 (a fresh AES key under
    /// RSA-OAEP, then the material under it with AES key wrap, RFC 5649). A SHA-256 variant
    /// is refused, with the reason, when a member HSM cannot unwrap it (SoftHSM2 cannot).
    /// `hkms key import` wraps as the parameters say.
    #[arg(long, default_value = "RSAES_OAEP_SHA_1",
          value_parser = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                          "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"])]
    pub wrapping_algorithm: String,
    /// Size of the wrapping RSA key.
    #[arg(long, default_value = "RSA_2048", value_parser = ["RSA_2048", "RSA_3072", "RSA_4096"])]
    pub wrapping_key_spec: String,
    /// Directory to write the parameters to (created, mode 0700, if missing); files of
    /// earlier parameters in it are replaced.
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub key: KeyRef,
    /// File holding the raw key material: exactly 32 bytes (Aliyun_AES_256) or 16 bytes
    /// (Aliyun_AES_128) of binary, not base64 or hex. It is wrapped here; only the wrapped
    /// form is sent.
    #[arg(long, value_name = "FILE")]
    pub material: PathBuf,
    /// Directory written by `hkms key import-params` for this key.
    #[arg(long, value_name = "DIR")]
    pub params_dir: PathBuf,
    /// Day the material expires, at 00:00 UTC: hkmsd then deletes it and the key turns
    /// PendingImport. Default: never expires.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::clock::date_to_unix)]
    pub expire: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse() {
        assert_eq!(parse_days("90d"), Ok(90));
        assert_eq!(parse_days("7d"), Ok(7));
        assert_eq!(parse_days(" 365d "), Ok(365));
        assert_eq!(parse_days("0d"), Ok(0));
        for bad in [
            "90", "d", "-7d", "+7d", "9.5d", "90 d", "90D", "90days", "7w", "", "x9d",
        ] {
            assert!(parse_days(bad).is_err(), "{bad:?}");
        }
        assert!(parse_days("99999999999999999999999d").is_err());
    }

    #[test]
    fn rotation_intervals_are_7_to_365_days_in_seconds() {
        assert_eq!(parse_rotation_interval("90d"), Ok(90 * 86_400));
        assert_eq!(parse_rotation_interval("7d"), Ok(604_800));
        assert_eq!(parse_rotation_interval("365d"), Ok(31_536_000));
        let e = parse_rotation_interval("6d").unwrap_err();
        assert!(e.contains("7d to 365d"), "{e}");
        assert!(parse_rotation_interval("366d").is_err());
        assert!(parse_rotation_interval("90").is_err());
    }

    #[test]
    fn tags_parse() {
        let t = parse_tag("team=payments").unwrap();
        assert_eq!(
            (t.tag_key.as_str(), t.tag_value.as_str()),
            ("team", "payments")
        );
        let t = parse_tag("expr=a=b").unwrap();
        assert_eq!((t.tag_key.as_str(), t.tag_value.as_str()), ("expr", "a=b"));
        let t = parse_tag("env=").unwrap();
        assert_eq!((t.tag_key.as_str(), t.tag_value.as_str()), ("env", ""));
        assert!(parse_tag("team").unwrap_err().contains("no '='"));
        assert!(parse_tag("=x").unwrap_err().contains("empty tag key"));
        assert!(parse_tag("").is_err());
    }
}
