//! Key specs and usages offered by the appliance.

use crate::error::KmsError;

/// A customer master key's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Aes256,
    Aes128,
}

impl KeySpec {
    pub const ALL: [KeySpec; 2] = [KeySpec::Aes256, KeySpec::Aes128];

    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Aes256 => "Aliyun_AES_256",
            KeySpec::Aes128 => "Aliyun_AES_128",
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            KeySpec::Aes256 => 256,
            KeySpec::Aes128 => 128,
        }
    }

    /// Parses a spec name; empty means the default, `Aliyun_AES_256`.
    pub fn parse(s: &str) -> Result<KeySpec, KmsError> {
        if s.is_empty() {
            return Ok(KeySpec::Aes256);
        }
        KeySpec::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                KmsError::new(
                    crate::error::ErrorCode::UnsupportedKeySpec,
                    format!(
                        "key spec {s:?} is not supported; use one of: {}",
                        KeySpec::ALL.map(KeySpec::as_str).join(", ")
                    ),
                )
            })
    }
}

/// The only usage of symmetric keys.
pub const USAGE_ENCRYPT_DECRYPT: &str = "ENCRYPT/DECRYPT";

/// Parses a key usage; empty means `ENCRYPT/DECRYPT`.
pub fn parse_usage(s: &str) -> Result<&'static str, KmsError> {
    match s {
        "" | USAGE_ENCRYPT_DECRYPT => Ok(USAGE_ENCRYPT_DECRYPT),
        other => Err(KmsError::invalid(format!(
            "key usage {other:?} is not supported for symmetric keys; use ENCRYPT/DECRYPT"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_unknown_ones_are_refused() {
        assert_eq!(KeySpec::parse("").unwrap(), KeySpec::Aes256);
        assert_eq!(KeySpec::parse("Aliyun_AES_128").unwrap().bits(), 128);
        let e = KeySpec::parse("RSA_2048").unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::UnsupportedKeySpec);
        assert!(parse_usage("SIGN/VERIFY").is_err());
    }
}
