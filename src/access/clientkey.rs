//! ClientKeys: the key pair an application signs its requests with.
//!
//! The key pair is made where the CLI runs: an RSA-2048 private key and a self-signed
//! certificate. The private key goes only into the password-protected PKCS#12 of the
//! `clientKey_<KeyId>.json` file; hkmsd receives and keeps only the certificate. The
//! certificate's validity is the ClientKey's validity, and its self-signature proves that
//! whoever registered it holds the private key.
//!
//! The PKCS#12 uses the legacy profile every official SDK can read: PBE-SHA1-3DES for both
//! the key and the certificate, a SHA-1 MAC, the certificate bag before the key bag (Go's
//! `x/crypto/pkcs12` reads nothing newer and takes the blocks in that order).

use crate::error::KmsError;
use crate::proto::ClientKey;
use crate::store::{access as records, AccessStore};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Longest validity: five years (with their leap days).
pub const MAX_VALIDITY_DAYS: i64 = 5 * 365 + 2;
/// ClientKeys within this many days of expiry are reported as expiring soon.
pub const WARN_DAYS: i64 = 30;
/// Size of ClientKey RSA keys.
pub const RSA_BITS: u32 = 2048;
/// Prefix of ClientKey ids.
pub const ID_PREFIX: &str = "KAAP.";
/// Special characters a password may use.
pub const PASSWORD_SPECIALS: &str = "~!@#$%^&*?_-";

/// The registered ClientKey `id`, if it exists (for authenticating signed requests).
pub fn find(store: &dyn AccessStore, id: &str) -> Result<Option<ClientKey>, KmsError> {
    Ok(records::get::<ClientKey>(store, id)?)
}

/// Checks a ClientKey password: 8..64 characters from letters, digits and
/// `~!@#$%^&*?_-`, with at least two of those three kinds.
pub fn validate_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(8..=64).contains(&n) {
        return Err(format!(
            "the password must be 8 to 64 characters long (it has {n})"
        ));
    }
    let (mut digit, mut letter, mut special) = (false, false, false);
    for c in password.chars() {
        if c.is_ascii_digit() {
            digit = true;
        } else if c.is_ascii_alphabetic() {
            letter = true;
        } else if PASSWORD_SPECIALS.contains(c) {
            special = true;
        } else {
            return Err(format!(
                "the password may contain only letters, digits and {PASSWORD_SPECIALS}"
            ));
        }
    }
    if [digit, letter, special].iter().filter(|k| **k).count() < 2 {
        return Err(format!(
            "the password must mix at least two of: digits, letters, special characters ({PASSWORD_SPECIALS})"
        ));
    }
    Ok(())
}

/// A random password that satisfies [`validate_password`] (32 characters).
pub fn generate_password() -> Result<Zeroizing<String>, String> {
    const ALPHABET: &[u8] =
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789~!@#$%^&*?_-";
    loop {
        let mut raw = Zeroizing::new([0u8; 32]);
        crate::crypto::primitives::random(&mut raw[..])?;
        // 256 is not a multiple of the alphabet size; drop the biased tail.
        let limit = 256 - 256 % ALPHABET.len();
        let mut out = Zeroizing::new(String::with_capacity(32));
        for b in raw.iter().filter(|b| (**b as usize) < limit) {
            out.push(ALPHABET[*b as usize % ALPHABET.len()] as char);
        }
        if out.len() >= 20 && validate_password(&out).is_ok() {
            return Ok(out);
        }
    }
}

/// A new ClientKey id: `KAAP.<uuid>`.
pub fn new_id() -> String {
    format!("{ID_PREFIX}{}", uuid::Uuid::new_v4())
}

/// Whether `id` looks like a ClientKey id.
pub fn is_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|u| uuid::Uuid::try_parse(u).is_ok())
}

/// Seconds since the Unix epoch, by this machine's system clock (the CLI's time for the
/// certificates it makes). hkmsd decides on ClientKeys by its own clock,
/// [`crate::clock::now_unix`].
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_of(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, String> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| e.to_string())?;
    let d = epoch.diff(t).map_err(|e| e.to_string())?;
    Ok(d.days as i64 * 86_400 + d.secs as i64)
}

/// A ClientKey key pair made on the operator's machine. The private key is wiped on drop
/// (OpenSSL frees it with `BN_clear_free`).
#[derive(Debug)]
pub struct KeyPair {
    pkey: PKey<Private>,
    cert: X509,
}

impl KeyPair {
    /// Generates an RSA-2048 key and a self-signed certificate valid from `not_before` to
    /// `not_after` (Unix seconds).
    pub fn generate(subject: &str, not_before: i64, not_after: i64) -> Result<KeyPair, String> {
        let err = |e: openssl::error::ErrorStack| format!("cannot make the ClientKey: {e}");
        check_validity(not_before, not_after, not_before)?;
        let pkey = PKey::from_rsa(Rsa::generate(RSA_BITS).map_err(err)?).map_err(err)?;
        let mut name = X509NameBuilder::new().map_err(err)?;
        name.append_entry_by_nid(Nid::COMMONNAME, subject)
            .map_err(err)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONALUNITNAME, "hkms ClientKey")
            .map_err(err)?;
        let name = name.build();
        let mut serial = BigNum::new().map_err(err)?;
        serial
            .rand(127, MsbOption::MAYBE_ZERO, false)
            .map_err(err)?;
        let mut b = X509::builder().map_err(err)?;
        b.set_version(2).map_err(err)?;
        let serial = serial.to_asn1_integer().map_err(err)?;
        b.set_serial_number(&serial).map_err(err)?;
        b.set_subject_name(&name).map_err(err)?;
        b.set_issuer_name(&name).map_err(err)?;
        b.set_pubkey(&pkey).map_err(err)?;
        let start = Asn1Time::from_unix(not_before as _).map_err(err)?;
        let end = Asn1Time::from_unix(not_after as _).map_err(err)?;
        b.set_not_before(&start).map_err(err)?;
        b.set_not_after(&end).map_err(err)?;
        b.sign(&pkey, MessageDigest::sha256()).map_err(err)?;
        Ok(KeyPair {
            pkey,
            cert: b.build(),
        })
    }

    /// The certificate, DER: all hkmsd receives.
    pub fn certificate_der(&self) -> Result<Vec<u8>, String> {
        self.cert.to_der().map_err(|e| e.to_string())
    }

    /// The PKCS#12 (legacy profile, see the module docs) protected by `password`.
    pub fn pkcs12(&self, password: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        validate_password(password)?;
        let p12 = Pkcs12::builder()
            .pkey(&self.pkey)
            .cert(&self.cert)
            .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .mac_md(MessageDigest::sha1())
            .build2(password)
            .map_err(|e| format!("cannot build the PKCS#12: {e}"))?;
        Ok(Zeroizing::new(p12.to_der().map_err(|e| e.to_string())?))
    }
}

fn check_validity(not_before: i64, not_after: i64, now: i64) -> Result<(), String> {
    if not_after <= not_before {
        return Err("the ClientKey must expire after it becomes valid".into());
    }
    if not_after <= now {
        return Err("the ClientKey would already be expired".into());
    }
    if (not_after - not_before) > MAX_VALIDITY_DAYS * 86_400 {
        return Err("a ClientKey may be valid for at most 5 years".into());
    }
    Ok(())
}

/// What hkmsd learns from a registered certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub not_before: i64,
    pub not_after: i64,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub sha256: String,
}

/// Checks a certificate sent to register a ClientKey: DER X.509, RSA key of at least 2048
/// bits, self-signed (proof that the sender holds the private key), validity at most 5
/// years and not already over at `now`.
pub fn check_certificate(der: &[u8], now: i64) -> Result<CertificateInfo, String> {
    let cert = X509::from_der(der).map_err(|_| "the certificate is not DER X.509".to_owned())?;
    let key = cert
        .public_key()
        .map_err(|_| "the certificate's public key cannot be read".to_owned())?;
    let rsa = key
        .rsa()
        .map_err(|_| "a ClientKey must be an RSA key".to_owned())?;
    if rsa.size() * 8 < RSA_BITS {
        return Err(format!("a ClientKey must have at least {RSA_BITS} bits"));
    }
    if !cert.verify(&key).unwrap_or(false) {
        return Err("the certificate is not self-signed by its own key".into());
    }
    let not_before = unix_of(cert.not_before())?;
    let not_after = unix_of(cert.not_after())?;
    check_validity(not_before, not_after, now)?;
    Ok(CertificateInfo {
        not_before,
        not_after,
        sha256: hex::encode(crate::crypto::primitives::sha256(der)),
    })
}

/// Most days the earlier ClientKeys of an AAP keep working after a change of ClientKey.
pub const MAX_OVERLAP_DAYS: i64 = 90;

/// State at `now` of a ClientKey that may be retiring (`retire_unix`, 0 = not): whole days
/// until hkmsd stops accepting it (its expiry, or its retirement when that comes first;
/// negative once past) and a label: `NotYetValid`, `Expired`, `Retired` (past its
/// retirement), `Retiring` (accepted until its retirement), `ExpiringSoon` or `Valid`.
pub fn standing(
    not_before: i64,
    not_after: i64,
    retire_unix: i64,
    now: i64,
) -> (i64, &'static str) {
    let retiring = retire_unix != 0;
    let end = if retiring {
        retire_unix.min(not_after)
    } else {
        not_after
    };
    let days_left = (end - now).div_euclid(86_400);
    let label = if now < not_before {
        "NotYetValid"
    } else if now >= not_after {
        "Expired"
    } else if retiring && now >= retire_unix {
        "Retired"
    } else if retiring {
        "Retiring"
    } else if days_left <= WARN_DAYS {
        "ExpiringSoon"
    } else {
        "Valid"
    };
    (days_left, label)
}

/// Whether a ClientKey in state `label` ([`standing`]) authenticates requests: a key not
/// yet valid, expired or retired does not.
pub fn accepted(label: &str) -> bool {
    !matches!(label, "NotYetValid" | "Expired" | "Retired")
}

/// The two files an application is configured with.
#[derive(Debug, Clone)]
pub struct Files {
    pub client_key: PathBuf,
    pub password: PathBuf,
}

/// Writes `clientKey_<id>.json` (`{"KeyId", "PrivateKeyData"}`) and
/// `clientKey_<id>_Password.txt` into `dir`, both mode 0600, refusing to overwrite.
/// `id` must be a ClientKey id (`KAAP.<uuid>`, [`is_id`]) that can be part of a file name
/// ([`crate::cli::filename::id_component`]): nothing is written otherwise.
pub fn write_files(dir: &Path, id: &str, pkcs12: &[u8], password: &str) -> Result<Files, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let id = crate::cli::filename::id_component("ClientKey id", id).map_err(|e| e.message)?;
    if !is_id(id) {
        return Err(format!(
            "hkmsd returned a ClientKey id {id:?} that is not of the form {ID_PREFIX}<uuid>; no file was written"
        ));
    }
    let files = Files {
        client_key: dir.join(format!("clientKey_{id}.json")),
        password: dir.join(format!("clientKey_{id}_Password.txt")),
    };
    let json = Zeroizing::new(
        serde_json::json!({"KeyId": id, "PrivateKeyData": B64.encode(pkcs12)}).to_string(),
    );
    for (path, data) in [
        (&files.client_key, json.as_bytes()),
        (&files.password, password.as_bytes()),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(data).and_then(|_| f.sync_all()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files)
}

/// Reads a ClientKey file back: its id and private key (for tests and tools that sign).
pub fn load(json: &str, password: &str) -> Result<(String, PKey<Private>, X509), String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "KeyId")]
        key_id: String,
        #[serde(rename = "PrivateKeyData")]
        private_key_data: String,
    }
    let f: File = serde_json::from_str(json).map_err(|e| format!("not a ClientKey file: {e}"))?;
    let der = Zeroizing::new(
        B64.decode(f.private_key_data.trim())
            .map_err(|e| format!("PrivateKeyData is not base64: {e}"))?,
    );
    let parsed = Pkcs12::from_der(&der)
        .and_then(|p| p.parse2(password))
        .map_err(|e| format!("cannot open the PKCS#12 (wrong password?): {e}"))?;
    match (parsed.pkey, parsed.cert) {
        (Some(k), Some(c)) => Ok((f.key_id, k, c)),
        _ => Err("the PKCS#12 lacks the key or the certificate".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        for ok in [
            "abcd1234",
            "abcdefg!",
            "1234567-",
            "Aa1~!@#$%^&*?_-",
            &"a1".repeat(32),
        ] {
            validate_password(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "abc123",         // too short
            "abcdefgh",       // letters only
            "12345678",       // digits only
            "~!@#$%^&*",      // specials only
            "abcd 1234",      // space
            "abcd1234+",      // + is not allowed
            "pässwört12",     // non-ASCII
            &"a1".repeat(33), // 66 characters
        ] {
            assert!(validate_password(bad).is_err(), "{bad:?}");
        }
        for _ in 0..20 {
            validate_password(&generate_password().unwrap()).unwrap();
        }
    }

    #[test]
    fn ids() {
        let id = new_id();
        assert!(id.starts_with("KAAP.") && is_id(&id));
        assert!(!is_id("KAAP.nope") && !is_id("key-1"));
    }

    #[test]
    fn states() {
        let day = 86_400;
        let state = |not_before, not_after, now| standing(not_before, not_after, 0, now);
        assert_eq!(state(0, 100 * day, 10 * day), (90, "Valid"));
        assert_eq!(state(0, 100 * day, 75 * day), (25, "ExpiringSoon"));
        assert_eq!(state(0, 100 * day, 100 * day), (0, "Expired"));
        assert_eq!(state(0, 100 * day, 101 * day), (-1, "Expired"));
        assert_eq!(state(5 * day, 100 * day, day), (99, "NotYetValid"));
    }

    #[test]
    fn retiring_keys_count_their_days_to_the_retirement() {
        let day = 86_400;
        let s = |retire: i64, now: i64| standing(0, 100 * day, retire, now);
        assert_eq!(s(0, 10 * day), (90, "Valid"));
        assert_eq!(s(17 * day, 10 * day), (7, "Retiring"));
        assert_eq!(s(17 * day, 17 * day - 1), (0, "Retiring"));
        assert_eq!(s(17 * day, 17 * day), (0, "Retired"));
        assert_eq!(s(17 * day, 20 * day), (-3, "Retired"));
        // Retiring after its expiry: the expiry comes first.
        assert_eq!(s(150 * day, 95 * day), (5, "Retiring"));
        assert_eq!(s(150 * day, 100 * day), (0, "Expired"));
        assert_eq!(standing(5 * day, 100 * day, 3 * day, day).1, "NotYetValid");
        for label in ["Valid", "ExpiringSoon", "Retiring"] {
            assert!(accepted(label), "{label}");
        }
        for label in ["NotYetValid", "Expired", "Retired"] {
            assert!(!accepted(label), "{label}");
        }
    }

    #[test]
    fn key_pair_certificate_and_pkcs12_round_trip() {
        let now = now_unix();
        let kp = KeyPair::generate("app", now - 60, now + 365 * 86_400).unwrap();
        let der = kp.certificate_der().unwrap();
        let info = check_certificate(&der, now).unwrap();
        assert_eq!(info.not_before, now - 60);
        assert_eq!(info.not_after, now + 365 * 86_400);
        assert_eq!(info.sha256.len(), 64);

        let p12 = kp.pkcs12("secret-123").unwrap();
        assert!(kp.pkcs12("weak").is_err());
        let dir = tempfile::tempdir().unwrap();
        let id = new_id();
        let files = write_files(dir.path(), &id, &p12, "secret-123").unwrap();
        use std::os::unix::fs::PermissionsExt;
        for p in [&files.client_key, &files.password] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
        assert!(files.client_key.ends_with(format!("clientKey_{id}.json")));
        assert!(files
            .password
            .ends_with(format!("clientKey_{id}_Password.txt")));
        assert!(
            write_files(dir.path(), &id, &p12, "secret-123").is_err(),
            "existing files are not overwritten"
        );
        let json = std::fs::read_to_string(&files.client_key).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        let (got_id, key, cert) = load(&json, "secret-123").unwrap();
        assert_eq!(got_id, id);
        assert_eq!(cert.to_der().unwrap(), der);
        assert!(key.public_eq(&cert.public_key().unwrap()));
        assert!(load(&json, "wrong-pass1").is_err());
    }

    #[test]
    fn ids_from_the_daemon_never_leave_the_output_directory() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        for id in [
            "../escaped",
            "KAAP./../../escaped",
            "KAAP.x/y",
            "/tmp/escaped",
            "KAAP.not-a-uuid",
            "KAAP.{0b5e4c1e-8d3a-4c4b-9d5e-1f2a3b4c5d6e}",
            "",
        ] {
            let e = write_files(&dir, id, b"p12", "secret-123").unwrap_err();
            assert!(e.contains("no file was written"), "{id:?}: {e}");
        }
        let written: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .chain(std::fs::read_dir(&dir).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(written, ["out"], "nothing but the output directory");
    }

    /// The PKCS#12 uses PBE-SHA1-3DES for key and certificate, a SHA-1 MAC, and puts the
    /// certificate bag first (checked on the DER: OIDs in order).
    #[test]
    fn pkcs12_uses_the_legacy_profile_with_the_certificate_first() {
        let now = now_unix();
        let kp = KeyPair::generate("app", now, now + 86_400).unwrap();
        let p12 = kp.pkcs12("secret-123").unwrap();
        let find = |oid: &[u8]| p12.windows(oid.len()).position(|w| w == oid);
        // pbeWithSHAAnd3-KeyTripleDES-CBC 1.2.840.113549.1.12.1.3
        let pbe_3des = [
            0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03,
        ];
        // PBES2 1.2.840.113549.1.5.13 must not appear.
        let pbes2 = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
        ];
        // sha1 1.3.14.3.2.26 (the MAC digest).
        let sha1 = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
        // encryptedData (cert bags are encrypted) 1.2.840.113549.1.7.6, then the shrouded key.
        let encrypted_data = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06,
        ];
        let first_3des = find(&pbe_3des).expect("3DES PBE");
        let last_3des = p12
            .windows(pbe_3des.len())
            .rposition(|w| w == pbe_3des)
            .unwrap();
        assert_ne!(
            first_3des, last_3des,
            "both the key and the certificate use 3DES"
        );
        assert!(find(&pbes2).is_none());
        assert!(find(&sha1).is_some());
        assert!(find(&encrypted_data).unwrap() < last_3des);
        // And OpenSSL reads it back with the certificate and key.
        let parsed = Pkcs12::from_der(&p12)
            .unwrap()
            .parse2("secret-123")
            .unwrap();
        assert!(parsed.cert.is_some() && parsed.pkey.is_some());
    }

    #[test]
    fn certificates_are_checked() {
        let now = now_unix();
        assert!(KeyPair::generate("a", now, now + (MAX_VALIDITY_DAYS + 1) * 86_400).is_err());
        assert!(KeyPair::generate("a", now, now - 1).is_err());
        let kp = KeyPair::generate("a", now, now + 86_400).unwrap();
        let der = kp.certificate_der().unwrap();
        // Later than its expiry it cannot be registered.
        assert!(check_certificate(&der, now + 2 * 86_400).is_err());
        assert!(check_certificate(b"junk", now).is_err());
        // A certificate signed by another key is refused.
        let other = KeyPair::generate("b", now, now + 86_400).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_pubkey(&kp.pkey).unwrap();
        b.set_subject_name(kp.cert.subject_name()).unwrap();
        b.set_issuer_name(kp.cert.subject_name()).unwrap();
        b.set_not_before(kp.cert.not_before()).unwrap();
        b.set_not_after(kp.cert.not_after()).unwrap();
        b.sign(&other.pkey, MessageDigest::sha256()).unwrap();
        let forged = b.build().to_der().unwrap();
        assert!(check_certificate(&forged, now)
            .unwrap_err()
            .contains("self-signed"));
        // An EC key is refused.
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_pubkey(&ec).unwrap();
        b.set_not_before(kp.cert.not_before()).unwrap();
        b.set_not_after(kp.cert.not_after()).unwrap();
        b.sign(&ec, MessageDigest::sha256()).unwrap();
        assert!(check_certificate(&b.build().to_der().unwrap(), now)
            .unwrap_err()
            .contains("RSA"));
    }
}
