//! Symmetric cryptography: Encrypt, Decrypt, GenerateDataKey, ReEncrypt, GenerateRandom.

use super::super::errors::TcError;
use super::super::json::fields;
use super::super::json::Fields;
use super::wire;
use crate::ops::{self, Ctx};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Longest plaintext of Encrypt, bytes (before base64).
const MAX_PLAINTEXT: usize = 4096;
/// Most bytes of GenerateRandom and GenerateDataKey.
const MAX_BYTES: u32 = 1024;

const NO_PUBLIC_KEY: &str = "plaintexts are returned base64-encoded over TLS only; leave \
                             EncryptionPublicKey and EncryptionAlgorithm out";

fn ciphertext_blob(field: &str, value: &str) -> Result<Vec<u8>, TcError> {
    let blob = wire::b64(
        field,
        wire::required(field, value)?,
        "InvalidParameterValue.InvalidCiphertext",
    )?;
    if blob.is_empty() {
        return Err(TcError::new(
            "InvalidParameterValue.InvalidCiphertext",
            format!("{field} is empty"),
        ));
    }
    Ok(blob)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct Encrypt {
    key_id: String,
    plaintext: String,
    encryption_context: Option<String>,
}

pub(super) async fn encrypt(ctx: Ctx<'_>, r: Encrypt) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let plaintext = Zeroizing::new(wire::b64(
        "Plaintext",
        &r.plaintext,
        "InvalidParameterValue.InvalidPlaintext",
    )?);
    if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
        return Err(TcError::new(
            "InvalidParameterValue.InvalidPlaintext",
            format!(
                "Plaintext must be 1 to {MAX_PLAINTEXT} bytes; got {}",
                plaintext.len()
            ),
        ));
    }
    let aad = wire::encryption_context("EncryptionContext", r.encryption_context.as_deref())?;
    let sealed = ops::crypto::encrypt(ctx, key_id, plaintext, &aad).await?;
    Ok(fields(json!({
        "CiphertextBlob": wire::b64_encode(&sealed.blob),
        "KeyId": sealed.key_id,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct Decrypt {
    ciphertext_blob: String,
    encryption_context: Option<String>,
    encryption_public_key: Option<String>,
    encryption_algorithm: Option<String>,
}

pub(super) async fn decrypt(ctx: Ctx<'_>, r: Decrypt) -> Result<Fields, TcError> {
    wire::refuse_set(
        "EncryptionPublicKey",
        &r.encryption_public_key,
        NO_PUBLIC_KEY,
    )?;
    wire::refuse_set(
        "EncryptionAlgorithm",
        &r.encryption_algorithm,
        NO_PUBLIC_KEY,
    )?;
    let blob = ciphertext_blob("CiphertextBlob", &r.ciphertext_blob)?;
    let aad = wire::encryption_context("EncryptionContext", r.encryption_context.as_deref())?;
    let opened = ops::crypto::decrypt(ctx, &blob, &aad).await?;
    Ok(fields(json!({
        "KeyId": opened.key_id,
        "Plaintext": wire::b64_encode(&opened.plaintext),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GenerateDataKey {
    key_id: String,
    key_spec: Option<String>,
    number_of_bytes: Option<u32>,
    encryption_context: Option<String>,
    encryption_public_key: Option<String>,
    encryption_algorithm: Option<String>,
    is_hosted_by_kms: Option<u32>,
    data_key_name: Option<String>,
    description: Option<String>,
    hsm_cluster_id: Option<String>,
    tags: Option<Value>,
}

pub(super) async fn generate_data_key(ctx: Ctx<'_>, r: GenerateDataKey) -> Result<Fields, TcError> {
    wire::refuse_set(
        "EncryptionPublicKey",
        &r.encryption_public_key,
        NO_PUBLIC_KEY,
    )?;
    wire::refuse_set(
        "EncryptionAlgorithm",
        &r.encryption_algorithm,
        NO_PUBLIC_KEY,
    )?;
    const NOT_HOSTED: &str = "data keys hosted by KMS are not offered; keep the CiphertextBlob";
    if r.is_hosted_by_kms.unwrap_or(0) != 0 {
        return Err(TcError::new(
            "UnsupportedOperation",
            format!("IsHostedByKms is not supported by this appliance: {NOT_HOSTED}"),
        ));
    }
    wire::refuse_set("DataKeyName", &r.data_key_name, NOT_HOSTED)?;
    wire::refuse_set("Description", &r.description, NOT_HOSTED)?;
    wire::refuse_set("Tags", &r.tags, NOT_HOSTED)?;
    wire::no_hsm_cluster(&r.hsm_cluster_id)?;
    let key_id = wire::required("KeyId", &r.key_id)?;
    let key_spec = r.key_spec.unwrap_or_default();
    let number_of_bytes = r.number_of_bytes.unwrap_or(0);
    match (key_spec.as_str(), r.number_of_bytes) {
        ("", None) => {
            return Err(TcError::new(
                "MissingParameter",
                "give KeySpec (AES_128, AES_256) or NumberOfBytes (1 to 1024)",
            ))
        }
        (_, Some(n)) if n == 0 || n > MAX_BYTES => {
            return Err(TcError::invalid(format!(
                "NumberOfBytes must be 1 to {MAX_BYTES}; got {n}"
            )))
        }
        ("" | "AES_128" | "AES_256", _) => {}
        (other, None) => {
            return Err(TcError::invalid(format!(
                "KeySpec {other:?} is not valid; use AES_128 or AES_256"
            )))
        }
        // NumberOfBytes wins over KeySpec, as Tencent documents it.
        (_, Some(_)) => {}
    }
    let aad = wire::encryption_context("EncryptionContext", r.encryption_context.as_deref())?;
    let spec = if number_of_bytes != 0 { "" } else { &key_spec };
    let (sealed, data_key) =
        ops::crypto::generate_data_key(ctx, "GenerateDataKey", key_id, spec, number_of_bytes, &aad)
            .await?;
    Ok(fields(json!({
        "KeyId": sealed.key_id,
        "Plaintext": wire::b64_encode(&data_key),
        "CiphertextBlob": wire::b64_encode(&sealed.blob),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ReEncrypt {
    ciphertext_blob: String,
    destination_key_id: Option<String>,
    source_encryption_context: Option<String>,
    destination_encryption_context: Option<String>,
}

/// ReEncrypt always makes a new ciphertext (under the destination key's primary version),
/// so ReEncrypted is always true. Without DestinationKeyId the key the ciphertext names
/// encrypts again.
pub(super) async fn re_encrypt(ctx: Ctx<'_>, r: ReEncrypt) -> Result<Fields, TcError> {
    let blob = ciphertext_blob("CiphertextBlob", &r.ciphertext_blob)?;
    let source_aad = wire::encryption_context(
        "SourceEncryptionContext",
        r.source_encryption_context.as_deref(),
    )?;
    let destination_aad = wire::encryption_context(
        "DestinationEncryptionContext",
        r.destination_encryption_context.as_deref(),
    )?;
    let destination = match r.destination_key_id.filter(|d| !d.is_empty()) {
        Some(d) => d,
        None => ctx.blob_key("ReEncrypt", &blob)?,
    };
    let (opened, sealed) =
        ops::crypto::re_encrypt(ctx, &blob, &source_aad, &destination, &destination_aad).await?;
    Ok(fields(json!({
        "CiphertextBlob": wire::b64_encode(&sealed.blob),
        "KeyId": sealed.key_id,
        "SourceKeyId": opened.key_id,
        "ReEncrypted": true,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GenerateRandom {
    number_of_bytes: u32,
}

pub(super) async fn random(ctx: Ctx<'_>, r: GenerateRandom) -> Result<Fields, TcError> {
    if r.number_of_bytes == 0 || r.number_of_bytes > MAX_BYTES {
        return Err(TcError::invalid(format!(
            "NumberOfBytes must be 1 to {MAX_BYTES}; got {}",
            r.number_of_bytes
        )));
    }
    let bytes = ops::crypto::random(ctx, r.number_of_bytes as usize).await?;
    Ok(fields(json!({ "Plaintext": wire::b64_encode(&bytes) })))
}
