//! Key specs and usages offered by the appliance.

use crate::error::{ErrorCode, KmsError};

/// The elliptic curves of EC keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    /// secp256k1.
    P256K,
}

/// The hash of an HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacHash {
    Sha256,
    Sha384,
    Sha512,
}

impl MacHash {
    /// Length of the key hkms generates (the hash's output length) and of the MAC, bytes.
    pub fn key_len(self) -> usize {
        match self {
            MacHash::Sha256 => 32,
            MacHash::Sha384 => 48,
            MacHash::Sha512 => 64,
        }
    }

    /// The MAC algorithm's name (`GenerateMac`).
    pub fn algorithm(self) -> &'static str {
        match self {
            MacHash::Sha256 => "HMAC_SHA_256",
            MacHash::Sha384 => "HMAC_SHA_384",
            MacHash::Sha512 => "HMAC_SHA_512",
        }
    }
}

/// A customer master key's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Aes256,
    Aes128,
    /// RSA with this modulus length, bits.
    Rsa(u32),
    Ec(Curve),
    Hmac(MacHash),
}

/// Every private key of a key version is kept only wrapped under the domain key, so that
/// any member can serve it: a post-quantum spec needs a device that generates such keys and
/// also wraps them (Kryoptic 1.5 generates them, but answers CKR_FUNCTION_NOT_SUPPORTED to
/// wrapping them; tests/kryoptic_pqc.rs).
const ML_DSA_NEEDS: &str = "CKM_ML_DSA_KEY_PAIR_GEN and CKM_ML_DSA (PKCS#11 3.2) and ML-DSA \
     private keys that the HSM can wrap under the domain key (CKM_AES_KEY_WRAP_PAD)";
const ML_KEM_NEEDS: &str = "CKM_ML_KEM_KEY_PAIR_GEN and CKM_ML_KEM (PKCS#11 3.2) and ML-KEM \
     private keys that the HSM can wrap under the domain key (CKM_AES_KEY_WRAP_PAD)";

/// Specs named by the product that no member of this build can serve, with what they need.
const NOT_OFFERED: &[(&str, &str)] = &[
    (
        "EC_SM2",
        "an SM2 key-pair and signature mechanism (vendor-defined in PKCS#11)",
    ),
    (
        "Aliyun_SM4",
        "an SM4 key and cipher mechanism (vendor-defined in PKCS#11)",
    ),
    ("ML_DSA_44", ML_DSA_NEEDS),
    ("ML_DSA_65", ML_DSA_NEEDS),
    ("ML_DSA_87", ML_DSA_NEEDS),
    ("ML_KEM_768", ML_KEM_NEEDS),
    ("ML_KEM_1024", ML_KEM_NEEDS),
];

impl KeySpec {
    pub const ALL: [KeySpec; 11] = [
        KeySpec::Aes256,
        KeySpec::Aes128,
        KeySpec::Rsa(2048),
        KeySpec::Rsa(3072),
        KeySpec::Rsa(4096),
        KeySpec::Ec(Curve::P256),
        KeySpec::Ec(Curve::P384),
        KeySpec::Ec(Curve::P256K),
        KeySpec::Hmac(MacHash::Sha256),
        KeySpec::Hmac(MacHash::Sha384),
        KeySpec::Hmac(MacHash::Sha512),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Aes256 => "Aliyun_AES_256",
            KeySpec::Aes128 => "Aliyun_AES_128",
            KeySpec::Rsa(3072) => "RSA_3072",
            KeySpec::Rsa(4096) => "RSA_4096",
            KeySpec::Rsa(_) => "RSA_2048",
            KeySpec::Ec(Curve::P256) => "EC_P256",
            KeySpec::Ec(Curve::P384) => "EC_P384",
            KeySpec::Ec(Curve::P256K) => "EC_P256K",
            KeySpec::Hmac(h) => match h {
                MacHash::Sha256 => "HMAC_SHA_256",
                MacHash::Sha384 => "HMAC_SHA_384",
                MacHash::Sha512 => "HMAC_SHA_512",
            },
        }
    }

    /// AES key length in bits; 0 for other specs.
    pub fn bits(self) -> u32 {
        match self {
            KeySpec::Aes256 => 256,
            KeySpec::Aes128 => 128,
            _ => 0,
        }
    }

    /// Whether this is an AES key (Encrypt, Decrypt, data keys, ReEncrypt).
    pub fn is_symmetric(self) -> bool {
        matches!(self, KeySpec::Aes256 | KeySpec::Aes128)
    }

    /// The usages a key of this spec may have; the first is the default.
    pub fn usages(self) -> &'static [Usage] {
        match self {
            KeySpec::Aes256 | KeySpec::Aes128 => &[Usage::EncryptDecrypt],
            KeySpec::Rsa(_) => &[Usage::EncryptDecrypt, Usage::SignVerify],
            KeySpec::Ec(_) => &[Usage::SignVerify],
            KeySpec::Hmac(_) => &[Usage::Mac],
        }
    }

    /// Parses a spec name; empty means the default, `Aliyun_AES_256`. A spec the product
    /// names but no member can serve is refused with the mechanisms it would need.
    pub fn parse(s: &str) -> Result<KeySpec, KmsError> {
        if s.is_empty() {
            return Ok(KeySpec::Aes256);
        }
        if let Some(spec) = KeySpec::ALL.into_iter().find(|k| k.as_str() == s) {
            return Ok(spec);
        }
        if let Some((_, needs)) = NOT_OFFERED.iter().find(|(name, _)| *name == s) {
            return Err(KmsError::new(
                ErrorCode::UnsupportedKeySpec,
                format!("key spec {s} needs {needs}, which no HSM member of this instance offers"),
            ));
        }
        Err(KmsError::new(
            ErrorCode::UnsupportedKeySpec,
            format!(
                "key spec {s:?} is not supported; use one of: {}",
                KeySpec::ALL.map(KeySpec::as_str).join(", ")
            ),
        ))
    }

    /// The spec of a stored key record (written by this build, so it parses).
    pub fn of(key: &crate::store::records::KeyRecord) -> Result<KeySpec, KmsError> {
        KeySpec::parse(&key.key_spec).map_err(|e| {
            KmsError::new(
                ErrorCode::Internal,
                format!("key {} has an unknown spec: {}", key.key_id, e.message),
            )
        })
    }
}

/// What a key is for; fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    EncryptDecrypt,
    SignVerify,
    Mac,
}

/// The usage of symmetric keys.
pub const USAGE_ENCRYPT_DECRYPT: &str = "ENCRYPT/DECRYPT";

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::EncryptDecrypt => USAGE_ENCRYPT_DECRYPT,
            Usage::SignVerify => "SIGN/VERIFY",
            Usage::Mac => "GENERATE/VERIFY_MAC",
        }
    }

    /// The usage of a stored key record.
    pub fn of(key: &crate::store::records::KeyRecord) -> Usage {
        match key.key_usage.as_str() {
            "SIGN/VERIFY" => Usage::SignVerify,
            "GENERATE/VERIFY_MAC" => Usage::Mac,
            _ => Usage::EncryptDecrypt,
        }
    }
}

/// Parses a key usage for a key of `spec`; empty means the spec's default.
pub fn parse_usage(spec: KeySpec, s: &str) -> Result<Usage, KmsError> {
    let allowed = spec.usages();
    if s.is_empty() {
        return Ok(allowed[0]);
    }
    allowed
        .iter()
        .copied()
        .find(|u| u.as_str() == s)
        .ok_or_else(|| {
            KmsError::invalid(format!(
                "key usage {s:?} is not valid for {} keys; use {}",
                spec.as_str(),
                allowed
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        })
}

/// What an operation needs of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Encrypt, Decrypt, data keys, ReEncrypt: an AES key.
    Symmetric,
    /// AsymmetricEncrypt and AsymmetricDecrypt: an RSA ENCRYPT/DECRYPT key.
    PublicKeyEncryption,
    /// Sign and Verify: an RSA or EC SIGN/VERIFY key.
    Signing,
    /// GenerateMac and VerifyMac: an HMAC key.
    Mac,
    /// GetPublicKey: any RSA or EC key.
    PublicKey,
}

impl Purpose {
    fn admits(self, spec: KeySpec, usage: Usage) -> bool {
        match self {
            Purpose::Symmetric => spec.is_symmetric(),
            Purpose::PublicKeyEncryption => {
                matches!(spec, KeySpec::Rsa(_)) && usage == Usage::EncryptDecrypt
            }
            Purpose::Signing => {
                matches!(spec, KeySpec::Rsa(_) | KeySpec::Ec(_)) && usage == Usage::SignVerify
            }
            Purpose::Mac => usage == Usage::Mac,
            Purpose::PublicKey => matches!(spec, KeySpec::Rsa(_) | KeySpec::Ec(_)),
        }
    }
}

/// The spec of `key` if `operation` may use it for `purpose`; otherwise `IncorrectKeyUsage`,
/// naming the operation and what the key is.
pub fn require(
    key: &crate::store::records::KeyRecord,
    purpose: Purpose,
    operation: &str,
) -> Result<KeySpec, KmsError> {
    let spec = KeySpec::of(key)?;
    let usage = Usage::of(key);
    if !purpose.admits(spec, usage) {
        return Err(KmsError::new(
            ErrorCode::IncorrectKeyUsage,
            format!(
                "{operation} cannot use key {}: it is a {} key for {}",
                key.key_id,
                spec.as_str(),
                usage.as_str()
            ),
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_unknown_ones_are_refused() {
        assert_eq!(KeySpec::parse("").unwrap(), KeySpec::Aes256);
        assert_eq!(KeySpec::parse("Aliyun_AES_128").unwrap().bits(), 128);
        for spec in KeySpec::ALL {
            assert_eq!(KeySpec::parse(spec.as_str()).unwrap(), spec);
        }
        let e = KeySpec::parse("RSA_1024").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedKeySpec);
        let e = KeySpec::parse("EC_SM2").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedKeySpec);
        assert!(e.message.contains("SM2"), "{}", e.message);
    }

    #[test]
    fn usages_follow_the_spec() {
        let aes = KeySpec::Aes256;
        assert_eq!(parse_usage(aes, "").unwrap(), Usage::EncryptDecrypt);
        assert!(parse_usage(aes, "SIGN/VERIFY").is_err());
        let rsa = KeySpec::Rsa(2048);
        assert_eq!(parse_usage(rsa, "SIGN/VERIFY").unwrap(), Usage::SignVerify);
        assert_eq!(parse_usage(rsa, "").unwrap(), Usage::EncryptDecrypt);
        let ec = KeySpec::Ec(Curve::P256K);
        assert_eq!(parse_usage(ec, "").unwrap(), Usage::SignVerify);
        assert!(parse_usage(ec, "ENCRYPT/DECRYPT").is_err());
        let mac = KeySpec::Hmac(MacHash::Sha384);
        assert_eq!(parse_usage(mac, "").unwrap(), Usage::Mac);
        assert!(parse_usage(mac, "SIGN/VERIFY").is_err());
    }

    #[test]
    fn an_rsa_encryption_key_is_not_a_symmetric_key() {
        let key = crate::store::records::KeyRecord {
            key_id: "k".into(),
            key_spec: "RSA_2048".into(),
            key_usage: USAGE_ENCRYPT_DECRYPT.into(),
            ..Default::default()
        };
        let e = require(&key, Purpose::Symmetric, "Encrypt").unwrap_err();
        assert_eq!(e.code, ErrorCode::IncorrectKeyUsage);
        assert!(require(&key, Purpose::Signing, "Sign").is_err());
        assert!(require(&key, Purpose::PublicKeyEncryption, "AsymmetricDecrypt").is_ok());
        assert!(require(&key, Purpose::PublicKey, "GetPublicKey").is_ok());
    }
}
