//! Data key pairs (GenerateDataKeyPair and its WithoutPlaintext variant): an RSA or EC pair
//! from an HSM's generator whose private key is returned encrypted under a symmetric
//! customer master key, and in plaintext when the caller asks for it.

use super::{ciphertext, instance};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::hsm::capability::Need;
use crate::hsm::crypto::asymmetric as pkc;
use crate::hsm::pool::Cost;
use crate::keys::spec::KeySpec;
use crate::keys::{self, single_token};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How the private key is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// hkmsd's self-describing ciphertext under the key's primary version (gRPC, and the
    /// instance API's Advance operations).
    Hkms,
    /// The instance API's plain convention: bare AES-GCM ciphertext and Iv under the key's
    /// initial version.
    InstanceBare,
}

/// A data key pair.
pub struct DataKeyPair {
    pub key_id: String,
    pub key_version_id: String,
    pub key_pair_spec: &'static str,
    pub key_format: &'static str,
    /// SubjectPublicKeyInfo in `key_format`.
    pub public_key: Vec<u8>,
    /// PKCS#8 in `key_format`.
    pub private_key: Zeroizing<Vec<u8>>,
    /// The private key encrypted under the CMK.
    pub ciphertext: Vec<u8>,
    /// The IV of `ciphertext` (also inside it for [`Sealing::Hkms`]).
    pub iv: Vec<u8>,
}

impl std::fmt::Debug for DataKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("DataKeyPair")
            .field("key_id", &self.key_id)
            .field("key_version_id", &self.key_version_id)
            .field("key_pair_spec", &self.key_pair_spec)
            .field("key_format", &self.key_format)
            .finish_non_exhaustive()
    }
}

/// How long generating one pair may take (RSA-4096 on a slow device).
const PAIR_DEADLINE: Duration = Duration::from_secs(60);

fn pair_spec(name: &str) -> Result<(KeySpec, pkc::PairSpec), KmsError> {
    let invalid = || {
        KmsError::new(
            ErrorCode::UnsupportedKeySpec,
            format!(
                "KeyPairSpec {name:?} is not valid; use RSA_2048, RSA_3072, RSA_4096, EC_P256, \
                 EC_P384 or EC_P256K"
            ),
        )
    };
    if name.is_empty() {
        return Err(invalid());
    }
    let spec = KeySpec::parse(name).map_err(|_| invalid())?;
    single_token::pair_spec(spec)
        .map(|p| (spec, p))
        .ok_or_else(invalid)
}

fn format(name: &str) -> Result<&'static str, KmsError> {
    match name {
        "" | "PEM" => Ok("PEM"),
        "DER" => Ok("DER"),
        other => Err(KmsError::invalid(format!(
            "KeyFormat {other:?} is not valid; use PEM or DER"
        ))),
    }
}

/// Generates a data key pair and encrypts its private key under `key_id`, a symmetric key.
pub async fn generate(
    app: &Appliance,
    key_id: &str,
    key_pair_spec: &str,
    key_format: &str,
    aad: &[u8],
    sealing: Sealing,
) -> Result<DataKeyPair, KmsError> {
    let (spec, pair) = pair_spec(key_pair_spec)?;
    let key_format = format(key_format)?;
    super::check_aad(app, aad)?;
    // The master key is checked before the (slow) generation.
    keys::usable_token(app, key_id, None).await?;
    let private = app
        .pool
        .run_needing(
            &[Need::Spec(spec.as_str())],
            Cost::Generation(PAIR_DEADLINE),
            move |m, s| pkc::data_key_pair(s, pair).map_err(|e| m.err(e)),
        )
        .await?;
    let internal =
        |e: openssl::error::ErrorStack| KmsError::new(ErrorCode::Internal, e.to_string());
    let (public_key, private_key) = if key_format == "PEM" {
        (
            private.public_key_to_pem().map_err(internal)?,
            Zeroizing::new(private.private_key_to_pem_pkcs8().map_err(internal)?),
        )
    } else {
        (
            private.public_key_to_der().map_err(internal)?,
            Zeroizing::new(private.private_key_to_pkcs8().map_err(internal)?),
        )
    };
    drop(private);
    let (key_id, key_version_id, ciphertext, iv) = match sealing {
        Sealing::Hkms => {
            let s = super::encrypt(app, key_id, private_key.clone(), aad).await?;
            let iv = ciphertext::parse(&s.blob)
                .map(|p| p.header.iv().to_vec())
                .map_err(|_| {
                    KmsError::new(
                        ErrorCode::Internal,
                        "a ciphertext hkmsd made does not parse",
                    )
                })?;
            (s.key_id, s.key_version_id, s.blob, iv)
        }
        Sealing::InstanceBare => {
            let plaintext = Arc::new(private_key.clone());
            let b = instance::encrypt(app, key_id, instance::Algorithm::Gcm, &[], aad, plaintext)
                .await?;
            (b.key_id, b.key_version_id, b.ciphertext, b.iv)
        }
    };
    Ok(DataKeyPair {
        key_id,
        key_version_id,
        key_pair_spec: spec.as_str(),
        key_format,
        public_key,
        private_key,
        ciphertext,
        iv,
    })
}
