//! Symmetric cryptography with customer master keys: authorise, then run
//! ([`crate::crypto`]).

use super::Ctx;
use crate::crypto::{self, Opened, Sealed};
use crate::error::KmsError;
use zeroize::Zeroizing;

/// Encrypt: AES-GCM under the key's primary version; a self-describing ciphertext.
pub async fn encrypt(
    ctx: Ctx<'_>,
    key_ref: &str,
    plaintext: Zeroizing<Vec<u8>>,
    aad: &[u8],
) -> Result<Sealed, KmsError> {
    let key_id = ctx.key("Encrypt", key_ref)?;
    crypto::encrypt(ctx.app, &key_id, plaintext, aad).await
}

/// Decrypt a self-describing ciphertext: the key it names must be granted.
pub async fn decrypt(ctx: Ctx<'_>, blob: &[u8], aad: &[u8]) -> Result<Opened, KmsError> {
    ctx.blob_key("Decrypt", blob)?;
    crypto::decrypt(ctx.app, blob, aad).await
}

/// A data key of `key_spec` (`AES_128`, `AES_256`) or `number_of_bytes`, sealed under the
/// key; `operation` is GenerateDataKey or GenerateDataKeyWithoutPlaintext (the caller drops
/// the plaintext of the latter).
pub async fn generate_data_key(
    ctx: Ctx<'_>,
    operation: &str,
    key_ref: &str,
    key_spec: &str,
    number_of_bytes: u32,
    aad: &[u8],
) -> Result<(Sealed, Zeroizing<Vec<u8>>), KmsError> {
    let key_id = ctx.key(operation, key_ref)?;
    let len = crypto::data_key_len(key_spec, number_of_bytes)?;
    crypto::generate_data_key(ctx.app, &key_id, len, aad).await
}

/// Decrypts under the key the ciphertext names and encrypts under `destination`; both keys
/// must be granted ReEncrypt.
pub async fn re_encrypt(
    ctx: Ctx<'_>,
    blob: &[u8],
    source_aad: &[u8],
    destination: &str,
    destination_aad: &[u8],
) -> Result<(Opened, Sealed), KmsError> {
    ctx.blob_key("ReEncrypt", blob)?;
    let destination = ctx.key("ReEncrypt", destination)?;
    crypto::re_encrypt(ctx.app, blob, source_aad, &destination, destination_aad).await
}

/// Random bytes from an HSM's generator (1..1024).
pub async fn random(ctx: Ctx<'_>, len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    ctx.authorize("GenerateRandom", Vec::new())?;
    crypto::random(ctx.app, len).await
}
