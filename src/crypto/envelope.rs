//! Envelope encryption of stored values (secret versions): the value under AES-256-GCM with
//! a fresh data key, and the data key sealed under a CMK inside an HSM member. Both take the
//! same associated data (the value's context), so a sealed value only opens where it was
//! sealed. The plaintext data key exists only in hkmsd memory, and is wiped.

use super::{decrypt, generate_data_key};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;

/// A value sealed by [`seal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The data key, an hkms ciphertext under the CMK (it names the key version).
    pub sealed_data_key: Vec<u8>,
    pub iv: Vec<u8>,
    /// The encrypted value followed by the GCM tag.
    pub ciphertext: Vec<u8>,
}

fn internal(e: openssl::error::ErrorStack) -> KmsError {
    KmsError::new(ErrorCode::Internal, format!("AES-GCM failed: {e}"))
}

/// Seals `value` under a fresh data key that the CMK `key_id` protects.
pub async fn seal(
    app: &Appliance,
    key_id: &str,
    context: &[u8],
    value: &[u8],
) -> Result<Envelope, KmsError> {
    let (sealed, data_key) = generate_data_key(app, key_id, DATA_KEY_LEN, context).await?;
    let mut iv = vec![0u8; IV_LEN];
    super::primitives::random(&mut iv).map_err(|e| KmsError::new(ErrorCode::Internal, e))?;
    let mut tag = [0u8; TAG_LEN];
    let mut ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &data_key,
        Some(&iv),
        context,
        value,
        &mut tag,
    )
    .map_err(internal)?;
    ciphertext.extend_from_slice(&tag);
    Ok(Envelope {
        sealed_data_key: sealed.blob,
        iv,
        ciphertext,
    })
}

/// Opens an [`Envelope`] sealed under `key_id` with `context`. A data key sealed under
/// another key is refused; a disabled or deleted key answers with its own error.
pub async fn open(
    app: &Appliance,
    key_id: &str,
    context: &[u8],
    envelope: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let opened = decrypt(app, &envelope.sealed_data_key, context).await?;
    if opened.key_id != key_id || opened.plaintext.len() != DATA_KEY_LEN {
        return Err(KmsError::invalid_ciphertext());
    }
    let c = &envelope.ciphertext;
    if envelope.iv.len() != IV_LEN || c.len() < TAG_LEN {
        return Err(KmsError::invalid_ciphertext());
    }
    let (body, tag) = c.split_at(c.len() - TAG_LEN);
    decrypt_aead(
        Cipher::aes_256_gcm(),
        &opened.plaintext,
        Some(&envelope.iv),
        context,
        body,
        tag,
    )
    .map(Zeroizing::new)
    .map_err(|_| KmsError::invalid_ciphertext())
}
