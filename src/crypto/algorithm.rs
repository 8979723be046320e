//! The symmetric algorithms a caller may choose (the instance API's `Algorithm` and
//! `PaddingMode`): AES-GCM, or AES-CBC with or without PKCS#7 padding. Both ciphertext
//! forms use them: the self-describing one ([`super::ciphertext`]) and the bare one
//! ([`super::instance`]).

use crate::error::KmsError;
use crate::hsm::crypto::{CBC_IV_LEN, GCM_IV_LEN};

/// A symmetric algorithm of the instance API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `AES_GCM` (12-byte IV, 16-byte tag appended).
    Gcm,
    /// `AES_CBC` (16-byte IV) with `PKCS7_PADDING` or `NO_PADDING`.
    Cbc { pkcs7: bool },
}

impl Algorithm {
    /// Parses `Algorithm` and `PaddingMode`; empty values take the defaults (`AES_GCM`,
    /// `PKCS7_PADDING`).
    pub fn parse(algorithm: &str, padding: &str) -> Result<Algorithm, KmsError> {
        match algorithm {
            "" | "AES_GCM" => {
                if !padding.is_empty() {
                    return Err(KmsError::invalid("PaddingMode is not used with AES_GCM"));
                }
                Ok(Algorithm::Gcm)
            }
            "AES_CBC" => match padding {
                "" | "PKCS7_PADDING" => Ok(Algorithm::Cbc { pkcs7: true }),
                "NO_PADDING" => Ok(Algorithm::Cbc { pkcs7: false }),
                other => Err(KmsError::invalid(format!(
                    "PaddingMode {other:?} is not supported; use PKCS7_PADDING or NO_PADDING"
                ))),
            },
            other => Err(KmsError::invalid(format!(
                "Algorithm {other:?} is not supported; use AES_GCM or AES_CBC"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gcm => "AES_GCM",
            Algorithm::Cbc { .. } => "AES_CBC",
        }
    }

    /// The PaddingMode to report (empty for GCM).
    pub fn padding_name(self) -> &'static str {
        match self {
            Algorithm::Gcm => "",
            Algorithm::Cbc { pkcs7: true } => "PKCS7_PADDING",
            Algorithm::Cbc { pkcs7: false } => "NO_PADDING",
        }
    }

    /// Length of the IV.
    pub(crate) fn iv_len(self) -> usize {
        match self {
            Algorithm::Gcm => GCM_IV_LEN,
            Algorithm::Cbc { .. } => CBC_IV_LEN,
        }
    }

    /// Refuses, for NO_PADDING, a plaintext that is not whole 16-byte blocks (at least one).
    pub(crate) fn check_plaintext(self, plaintext: &[u8]) -> Result<(), KmsError> {
        if self == (Algorithm::Cbc { pkcs7: false })
            && (plaintext.is_empty() || !plaintext.len().is_multiple_of(16))
        {
            return Err(KmsError::invalid(
                "with NO_PADDING the plaintext must be a non-empty multiple of 16 bytes",
            ));
        }
        Ok(())
    }

    /// Refuses AAD for AES-CBC, which cannot authenticate it.
    pub(crate) fn check_aad(self, aad: &[u8]) -> Result<(), KmsError> {
        if matches!(self, Algorithm::Cbc { .. }) && !aad.is_empty() {
            return Err(KmsError::invalid(
                "Aad is authenticated only by AES_GCM; AES_CBC cannot take it",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_no_padding_needs_whole_blocks() {
        let nopad = Algorithm::Cbc { pkcs7: false };
        for bad in [0usize, 1, 15, 17] {
            let e = nopad.check_plaintext(&vec![0; bad]).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::InvalidParameter, "{bad}");
        }
        for good in [16usize, 32, 4096] {
            nopad.check_plaintext(&vec![0; good]).unwrap();
        }
        for alg in [Algorithm::Gcm, Algorithm::Cbc { pkcs7: true }] {
            for len in [0usize, 1, 17] {
                alg.check_plaintext(&vec![0; len]).unwrap();
            }
        }
    }
}
