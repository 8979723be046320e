//! Cryptographic operations on customer master keys. Every primitive runs inside an HSM
//! member; plaintext data keys and ReEncrypt intermediates exist only in hkmsd memory and are
//! wiped after use.

pub mod algorithm;
pub mod asymmetric;
pub mod ciphertext;
pub mod envelope;
pub mod instance;
pub mod key_pair;
pub mod mac;
pub mod primitives;
pub mod signing;
pub mod tc3;

use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::hsm::crypto as hsm_crypto;
use crate::keys;
use crate::keys::token;
use algorithm::Algorithm;
use ciphertext::{Cipher, Header};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest data key / random output.
pub const MAX_RANDOM: usize = 1024;

/// Result of an encryption.
#[derive(Debug)]
pub struct Sealed {
    pub key_id: String,
    pub key_version_id: String,
    pub blob: Vec<u8>,
}

/// Result of a decryption.
#[derive(Debug)]
pub struct Opened {
    pub key_id: String,
    pub key_version_id: String,
    pub plaintext: Zeroizing<Vec<u8>>,
}

pub(crate) fn check_aad(app: &Appliance, aad: &[u8]) -> Result<(), KmsError> {
    if aad.len() > app.limits.max_aad_bytes {
        return Err(KmsError::invalid(format!(
            "AAD is longer than {} bytes",
            app.limits.max_aad_bytes
        )));
    }
    Ok(())
}

fn fresh_iv<const N: usize>() -> Result<[u8; N], KmsError> {
    // Random IVs from the host CSPRNG: one fewer HSM round trip per request. For AES-GCM
    // (96 bits) the collision bound holds well past the number of messages one key version
    // should seal; AES-CBC needs an unpredictable IV, which this is.
    let mut iv = [0u8; N];
    primitives::random(&mut iv).map_err(|e| KmsError::new(crate::error::ErrorCode::Internal, e))?;
    Ok(iv)
}

/// Encrypts with the key's primary version (AES-GCM).
pub async fn encrypt(
    app: &Appliance,
    key_id: &str,
    plaintext: Zeroizing<Vec<u8>>,
    aad: &[u8],
) -> Result<Sealed, KmsError> {
    encrypt_with(app, key_id, Algorithm::Gcm, plaintext, aad).await
}

/// Encrypts with the key's primary version and `alg` (AdvanceEncrypt). AES-CBC takes no
/// AAD; without padding the plaintext must be whole 16-byte blocks (at least one).
pub async fn encrypt_with(
    app: &Appliance,
    key_id: &str,
    alg: Algorithm,
    plaintext: Zeroizing<Vec<u8>>,
    aad: &[u8],
) -> Result<Sealed, KmsError> {
    if plaintext.len() > app.limits.max_plaintext_bytes {
        return Err(KmsError::invalid(format!(
            "Plaintext is longer than {} bytes",
            app.limits.max_plaintext_bytes
        )));
    }
    check_aad(app, aad)?;
    alg.check_aad(aad)?;
    alg.check_plaintext(&plaintext)?;
    let (key, tok) = keys::usable_token(app, key_id, None).await?;
    seal(app, key.key_id, tok, alg, Arc::new(plaintext), aad).await
}

async fn seal(
    app: &Appliance,
    key_id: String,
    tok: crate::store::records::KeyTokenRecord,
    alg: Algorithm,
    plaintext: Arc<Zeroizing<Vec<u8>>>,
    aad: &[u8],
) -> Result<Sealed, KmsError> {
    let bad_id = |_| KmsError::new(crate::error::ErrorCode::Internal, "stored id is not a UUID");
    let header = Header {
        format_version: ciphertext::FORMAT_VERSION,
        key_id: uuid::Uuid::try_parse(&key_id).map_err(bad_id)?,
        key_version_id: uuid::Uuid::try_parse(&tok.key_version_id).map_err(bad_id)?,
        cipher: match alg {
            Algorithm::Gcm => Cipher::Gcm { iv: fresh_iv()? },
            Algorithm::Cbc { pkcs7 } => Cipher::Cbc {
                pkcs7,
                iv: fresh_iv()?,
            },
        },
    };
    let encoded = header.encode();
    // Used by AES-GCM only (AES-CBC has no AAD: checked above).
    let full_aad = ciphertext::gcm_aad(&encoded, aad);
    let cipher = header.cipher;
    let key_version_id = tok.key_version_id.clone();
    let tok = Arc::new(tok);
    let body = app
        .pool
        .run(move |m, s| {
            let keys = token::handle(m, &tok)?;
            match cipher {
                Cipher::Gcm { iv } => {
                    hsm_crypto::gcm_encrypt(s, keys.gcm, &iv, &full_aad, &plaintext)
                }
                Cipher::Cbc { pkcs7, iv } => {
                    hsm_crypto::cbc_encrypt(s, keys.cbc, &iv, pkcs7, &plaintext)
                }
            }
            .map_err(|e| m.err(e))
        })
        .await?;
    let mut blob = encoded;
    blob.extend_from_slice(&body);
    Ok(Sealed {
        key_id,
        key_version_id,
        blob,
    })
}

/// Decrypts a ciphertext made by [`encrypt`] or [`encrypt_with`] (any version of the key).
pub async fn decrypt(app: &Appliance, blob: &[u8], aad: &[u8]) -> Result<Opened, KmsError> {
    check_aad(app, aad)?;
    let parsed = ciphertext::parse(blob).map_err(|e| {
        tracing::debug!(reason = ?e, "ciphertext refused");
        KmsError::invalid_ciphertext()
    })?;
    let cipher = parsed.header.cipher;
    cipher.algorithm().check_aad(aad)?;
    let key_id = parsed.header.key_id.to_string();
    let version_id = parsed.header.key_version_id.to_string();
    let (_, tok) = keys::usable_token(app, &key_id, Some(&version_id)).await?;
    let full_aad = ciphertext::gcm_aad(parsed.header_bytes, aad);
    let body = parsed.body.to_vec();
    let legacy_format = parsed.header.format_version == ciphertext::LEGACY_FORMAT_VERSION;
    let legacy_gcm_ok = tok.legacy_cbc_key && app.limits.legacy_gcm_decrypt;
    if legacy_format && cipher.algorithm() == Algorithm::Gcm && !legacy_gcm_ok {
        // Format-1 AES-GCM blobs were written under a version's material itself, which only
        // versions created before mode keys have.
        return Err(KmsError::invalid_ciphertext());
    }
    let tok = Arc::new(tok);
    let plaintext = app
        .pool
        .run(move |m, s| {
            let keys = token::handle(m, &tok)?;
            match cipher {
                Cipher::Gcm { iv } => {
                    let key = match keys.legacy {
                        Some(legacy) if legacy_format => legacy,
                        _ => keys.gcm,
                    };
                    hsm_crypto::gcm_decrypt(s, key, &iv, &full_aad, &body)
                }
                Cipher::Cbc { pkcs7, iv } => {
                    hsm_crypto::cbc_decrypt(s, keys.cbc, &iv, pkcs7, &body)
                }
            }
            .map_err(|e| m.data_err(e))
        })
        .await
        .map_err(|e| match e {
            crate::hsm::HsmError::DataRejected { .. } => KmsError::invalid_ciphertext(),
            other => other.into(),
        })?;
    Ok(Opened {
        key_id,
        key_version_id: version_id,
        plaintext,
    })
}

/// Length of a data key from its spec or an explicit byte count.
pub fn data_key_len(key_spec: &str, number_of_bytes: u32) -> Result<usize, KmsError> {
    if number_of_bytes != 0 {
        if number_of_bytes as usize > MAX_RANDOM {
            return Err(KmsError::invalid(format!(
                "NumberOfBytes must be 1..{MAX_RANDOM}"
            )));
        }
        return Ok(number_of_bytes as usize);
    }
    match key_spec {
        "" | "AES_256" => Ok(32),
        "AES_128" => Ok(16),
        other => Err(KmsError::invalid(format!(
            "KeySpec {other:?} is not supported for data keys; use AES_256 or AES_128"
        ))),
    }
}

/// A data key from the HSM's generator, and the same key encrypted under the CMK.
pub async fn generate_data_key(
    app: &Appliance,
    key_id: &str,
    len: usize,
    aad: &[u8],
) -> Result<(Sealed, Zeroizing<Vec<u8>>), KmsError> {
    check_aad(app, aad)?;
    let (key, tok) = keys::usable_token(app, key_id, None).await?;
    let data_key = random(app, len).await?;
    let shared = Arc::new(data_key);
    let sealed = seal(app, key.key_id, tok, Algorithm::Gcm, shared.clone(), aad).await?;
    let data_key = Arc::try_unwrap(shared).unwrap_or_else(|a| Zeroizing::new(a.to_vec()));
    Ok((sealed, data_key))
}

/// Decrypts under the source key and encrypts under the destination key; the plaintext stays
/// inside hkmsd and is wiped.
pub async fn re_encrypt(
    app: &Appliance,
    blob: &[u8],
    source_aad: &[u8],
    destination_key_id: &str,
    destination_aad: &[u8],
) -> Result<(Opened, Sealed), KmsError> {
    check_aad(app, destination_aad)?;
    // Check the destination first so a refused request does no decryption.
    let (dest, dest_tok) = keys::usable_token(app, destination_key_id, None).await?;
    let mut opened = decrypt(app, blob, source_aad).await?;
    let plaintext = Arc::new(std::mem::take(&mut opened.plaintext));
    let sealed = seal(
        app,
        dest.key_id,
        dest_tok,
        Algorithm::Gcm,
        plaintext,
        destination_aad,
    )
    .await?;
    Ok((opened, sealed))
}

/// Random bytes from an HSM member's generator.
pub async fn random(app: &Appliance, len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if len == 0 || len > MAX_RANDOM {
        return Err(KmsError::invalid(format!("Length must be 1..{MAX_RANDOM}")));
    }
    app.instance()?;
    Ok(app
        .pool
        .run(move |m, s| hsm_crypto::random(s, len).map_err(|e| m.err(e)))
        .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_key_lengths() {
        assert_eq!(super::data_key_len("", 0).unwrap(), 32);
        assert_eq!(super::data_key_len("AES_128", 0).unwrap(), 16);
        assert_eq!(super::data_key_len("AES_128", 64).unwrap(), 64);
        assert!(super::data_key_len("AES_512", 0).is_err());
        assert!(super::data_key_len("", 1025).is_err());
    }
}
