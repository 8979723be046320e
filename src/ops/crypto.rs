//! Symmetric cryptography with customer master keys: authorise, then run
//! ([`crate::crypto`]).
//!
//! Besides hkmsd's own forms (AES-GCM under the primary version, self-describing
//! ciphertexts), the instance API's: Encrypt, Decrypt and GenerateDataKey follow its plain
//! conventions (bare ciphertext and Iv, the key's initial version:
//! [`crate::crypto::instance`]); the Advance operations choose the algorithm (AES-GCM or
//! AES-CBC) and make self-describing ciphertexts ([`crate::crypto::ciphertext`]); its
//! Decrypt and AdvanceDecrypt take either form.

use super::{noted, Ctx};
use crate::access::operations;
use crate::audit::scope::note_aad;
use crate::crypto::{self, ciphertext, instance};
use crate::error::KmsError;
use crate::keys::alias;
use std::sync::Arc;
use zeroize::Zeroizing;

pub use crate::crypto::algorithm::Algorithm;
pub use crate::crypto::instance::Bare;
pub use crate::crypto::{Opened, Sealed};

/// Encrypt: AES-GCM under the key's primary version; a self-describing ciphertext.
pub async fn encrypt(
    ctx: Ctx<'_>,
    key_ref: &str,
    plaintext: Zeroizing<Vec<u8>>,
    aad: &[u8],
) -> Result<Sealed, KmsError> {
    note_aad(aad);
    let key_id = ctx.key("Encrypt", key_ref)?;
    noted(crypto::encrypt(ctx.app, &key_id, plaintext, aad).await)
}

/// Decrypt a self-describing ciphertext: the key it names must be granted.
pub async fn decrypt(ctx: Ctx<'_>, blob: &[u8], aad: &[u8]) -> Result<Opened, KmsError> {
    note_aad(aad);
    ctx.blob_key("Decrypt", blob)?;
    noted(crypto::decrypt(ctx.app, blob, aad).await)
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
    note_aad(aad);
    let key_id = ctx.key(operation, key_ref)?;
    let len = crypto::data_key_len(key_spec, number_of_bytes)?;
    noted(crypto::generate_data_key(ctx.app, &key_id, len, aad).await)
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
    note_aad(source_aad);
    ctx.blob_key("ReEncrypt", blob)?;
    let destination = ctx.key("ReEncrypt", destination)?;
    noted(crypto::re_encrypt(ctx.app, blob, source_aad, &destination, destination_aad).await)
}

/// Random bytes from an HSM's generator (1..1024).
pub async fn random(ctx: Ctx<'_>, len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    ctx.authorize("GenerateRandom", Vec::new())?;
    crypto::random(ctx.app, len).await
}

/// The instance API's Encrypt: a bare ciphertext under the key's initial version, with
/// `Algorithm` and `PaddingMode` (AES_GCM by default) and the caller's Iv or a fresh one.
pub async fn encrypt_bare(
    ctx: Ctx<'_>,
    key_ref: &str,
    algorithm: &str,
    padding_mode: &str,
    iv: &[u8],
    aad: &[u8],
    plaintext: Arc<Zeroizing<Vec<u8>>>,
) -> Result<(Bare, Algorithm), KmsError> {
    note_aad(aad);
    let key_id = ctx.key("Encrypt", key_ref)?;
    let alg = Algorithm::parse(algorithm, padding_mode)?;
    let bare = noted(instance::encrypt(ctx.app, &key_id, alg, iv, aad, plaintext).await)?;
    Ok((bare, alg))
}

/// AdvanceEncrypt: a self-describing ciphertext under the key's primary version, with
/// `Algorithm` and `PaddingMode`. The IV is always hkmsd's: a request that sends one is
/// refused.
pub async fn advance_encrypt(
    ctx: Ctx<'_>,
    key_ref: &str,
    algorithm: &str,
    padding_mode: &str,
    iv: &[u8],
    plaintext: Zeroizing<Vec<u8>>,
    aad: &[u8],
) -> Result<(Sealed, Algorithm), KmsError> {
    note_aad(aad);
    let key_id = ctx.key("AdvanceEncrypt", key_ref)?;
    let alg = Algorithm::parse(algorithm, padding_mode)?;
    if !iv.is_empty() {
        return Err(KmsError::invalid(
            "AdvanceEncrypt chooses the Iv itself; do not send one.",
        ));
    }
    let sealed = noted(crypto::encrypt_with(ctx.app, &key_id, alg, plaintext, aad).await)?;
    Ok((sealed, alg))
}

/// A ciphertext as the instance API's Decrypt and AdvanceDecrypt receive it.
#[derive(Debug, Clone, Copy)]
pub struct InstanceCiphertext<'a> {
    /// KeyId: required for a bare ciphertext of the initial version, optional otherwise.
    pub key_ref: &'a str,
    pub algorithm: &'a str,
    pub padding_mode: &'a str,
    pub iv: &'a [u8],
    pub aad: &'a [u8],
    pub blob: &'a [u8],
    /// The key version the transfer SDK names (`x-kms-migrationkeyversionid`): the blob is
    /// then a bare ciphertext of that version.
    pub version_id: Option<&'a str>,
}

/// Decrypt and AdvanceDecrypt (`operation`): a bare ciphertext of the version the request
/// names, a self-describing ciphertext, or a bare one with KeyId and Iv (the key's initial
/// version). Returns the plaintext and the algorithm it was encrypted with.
pub async fn decrypt_either(
    ctx: Ctx<'_>,
    operation: &str,
    c: InstanceCiphertext<'_>,
) -> Result<(Opened, Algorithm), KmsError> {
    note_aad(c.aad);
    let app = ctx.app;
    if let Some(version_id) = c.version_id {
        let v = ctx.version(operation, c.key_ref, version_id)?;
        let alg = Algorithm::parse(c.algorithm, c.padding_mode)?;
        let version = Some(v.key_version_id.as_str());
        let o = noted(instance::decrypt(app, &v.key_id, version, alg, c.iv, c.aad, c.blob).await)?;
        return Ok((o, alg));
    }
    if let Some(parsed) = self_describing(ctx, c.blob, c.key_ref, c.iv) {
        let key_id = parsed.header.key_id.to_string();
        let requested = if c.key_ref.is_empty() {
            key_id.as_str()
        } else {
            c.key_ref
        };
        ctx.authorize(operation, operations::key_resources(requested, &key_id))?;
        // Algorithm and PaddingMode are optional; given, they must be the blob's.
        let alg = parsed.header.cipher.algorithm();
        let other_algorithm = !c.algorithm.is_empty() && c.algorithm != alg.name();
        let other_padding = matches!(alg, Algorithm::Cbc { .. })
            && !c.padding_mode.is_empty()
            && c.padding_mode != alg.padding_name();
        if other_algorithm || other_padding {
            return Err(KmsError::invalid_ciphertext());
        }
        return Ok((noted(crypto::decrypt(app, c.blob, c.aad).await)?, alg));
    }
    if c.key_ref.is_empty() {
        return Err(KmsError::invalid(
            "KeyId is required (with Iv) for this ciphertext.",
        ));
    }
    let key_id = ctx.key(operation, c.key_ref)?;
    let alg = Algorithm::parse(c.algorithm, c.padding_mode)?;
    let o = noted(instance::decrypt(app, &key_id, None, alg, c.iv, c.aad, c.blob).await)?;
    Ok((o, alg))
}

/// The self-describing ciphertext in `blob`, when the request's KeyId and Iv (if any)
/// agree with it.
fn self_describing<'a>(
    ctx: Ctx<'_>,
    blob: &'a [u8],
    key_ref: &str,
    iv: &[u8],
) -> Option<ciphertext::Parsed<'a>> {
    let parsed = ciphertext::parse(blob).ok()?;
    let key_ok = key_ref.is_empty()
        || alias::resolve(ctx.app, key_ref).is_ok_and(|k| k == parsed.header.key_id.to_string());
    let iv_ok = iv.is_empty() || iv == parsed.header.iv();
    (key_ok && iv_ok).then_some(parsed)
}

/// The length of a data key the instance API asks for (`NumberOfBytes`, 0 for the
/// default).
fn instance_data_key_len(number_of_bytes: i32) -> Result<usize, KmsError> {
    let n = u32::try_from(number_of_bytes)
        .map_err(|_| KmsError::invalid("NumberOfBytes must be 1..1024."))?;
    crypto::data_key_len("", n)
}

/// The instance API's GenerateDataKey: AES_GCM under the key's initial version, a bare
/// ciphertext and its Iv.
pub async fn generate_data_key_bare(
    ctx: Ctx<'_>,
    key_ref: &str,
    algorithm: &str,
    number_of_bytes: i32,
    aad: &[u8],
) -> Result<(Bare, Zeroizing<Vec<u8>>), KmsError> {
    note_aad(aad);
    let key_id = ctx.key("GenerateDataKey", key_ref)?;
    if !matches!(algorithm, "" | "AES_GCM") {
        return Err(KmsError::invalid(
            "GenerateDataKey encrypts with AES_GCM only.",
        ));
    }
    let len = instance_data_key_len(number_of_bytes)?;
    noted(instance::generate_data_key(ctx.app, &key_id, len, aad).await)
}

/// AdvanceGenerateDataKey: AES_GCM under the key's primary version, a self-describing
/// ciphertext.
pub async fn advance_generate_data_key(
    ctx: Ctx<'_>,
    key_ref: &str,
    number_of_bytes: i32,
    aad: &[u8],
) -> Result<(Sealed, Zeroizing<Vec<u8>>), KmsError> {
    note_aad(aad);
    let key_id = ctx.key("AdvanceGenerateDataKey", key_ref)?;
    let len = instance_data_key_len(number_of_bytes)?;
    noted(crypto::generate_data_key(ctx.app, &key_id, len, aad).await)
}
