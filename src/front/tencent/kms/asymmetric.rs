//! Asymmetric keys: GetPublicKey, SignByAsymmetricKey, VerifyByAsymmetricKey,
//! AsymmetricRsaDecrypt. Always with the key's primary version.

use super::super::errors::TcError;
use super::super::json::fields;
use super::super::json::Fields;
use super::wire::{self, refine};
use crate::error::ErrorCode;
use crate::keys::VersionChoice;
use crate::ops::{self, Ctx};
use serde::Deserialize;
use serde_json::json;

/// Longest RAW message, bytes (before base64).
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GetPublicKey {
    key_id: String,
}

pub(super) async fn public_key(ctx: Ctx<'_>, r: GetPublicKey) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let p = ops::asymmetric::public_key(ctx, key_id, VersionChoice::Primary)
        .await
        .map_err(|e| refine(e, usage_refusal))?;
    Ok(fields(json!({
        "KeyId": p.key_id,
        "PublicKey": wire::b64_encode(&p.der),
        "PublicKeyPem": p.pem,
    })))
}

/// A key of the wrong kind for the operation.
fn usage_refusal(e: &crate::error::KmsError) -> Option<&'static str> {
    (e.code == ErrorCode::IncorrectKeyUsage).then_some("InvalidParameterValue.InvalidKeyUsage")
}

/// hkms's name of a Tencent signature algorithm. `ECC_P256_R1` is ECDSA with SHA-256 on
/// P-256; hkms's own names pass as they are.
fn sign_algorithm(name: &str) -> Result<&str, TcError> {
    match name {
        "" => Err(TcError::new(
            "MissingParameter",
            "the required parameter Algorithm is empty",
        )),
        "ECC_P256_R1" => Ok("ECDSA_SHA_256"),
        "SM2DSA" => Err(TcError::new(
            "UnsupportedOperation",
            "SM2DSA needs SM2 keys, which no HSM member of this appliance offers",
        )),
        other => Ok(other),
    }
}

/// MessageType: RAW (default) or DIGEST.
fn message_type(value: Option<&str>) -> Result<&'static str, TcError> {
    match value.unwrap_or("") {
        "" | "RAW" => Ok("RAW"),
        "DIGEST" => Ok("DIGEST"),
        other => Err(TcError::invalid(format!(
            "MessageType {other:?} is not valid; use RAW or DIGEST"
        ))),
    }
}

fn message(value: &str, message_type: &str) -> Result<Vec<u8>, TcError> {
    let m = wire::b64("Message", value, "InvalidParameterValue")?;
    if message_type == "RAW" && m.len() > MAX_MESSAGE {
        return Err(TcError::invalid(format!(
            "Message is longer than {MAX_MESSAGE} bytes; sign its digest (MessageType DIGEST)"
        )));
    }
    Ok(m)
}

/// Algorithms that do not fit the key, or that hkms does not offer.
fn sign_refusal(e: &crate::error::KmsError) -> Option<&'static str> {
    match e.code {
        ErrorCode::IncorrectKeyUsage => Some("InvalidParameterValue.InvalidKeyUsage"),
        ErrorCode::UnsupportedAlgorithm => Some("UnsupportedOperation"),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct SignByAsymmetricKey {
    algorithm: String,
    message: String,
    key_id: String,
    message_type: Option<String>,
}

pub(super) async fn sign(ctx: Ctx<'_>, r: SignByAsymmetricKey) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let algorithm = sign_algorithm(&r.algorithm)?;
    let message_type = message_type(r.message_type.as_deref())?;
    let message = message(&r.message, message_type)?;
    let s = ops::asymmetric::sign(
        ctx,
        key_id,
        VersionChoice::Primary,
        algorithm,
        message_type,
        &message,
    )
    .await
    .map_err(|e| refine(e, sign_refusal))?;
    Ok(fields(
        json!({ "Signature": wire::b64_encode(&s.signature) }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct VerifyByAsymmetricKey {
    key_id: String,
    signature_value: String,
    message: String,
    algorithm: String,
    message_type: Option<String>,
}

pub(super) async fn verify(ctx: Ctx<'_>, r: VerifyByAsymmetricKey) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let algorithm = sign_algorithm(&r.algorithm)?;
    let message_type = message_type(r.message_type.as_deref())?;
    let message = message(&r.message, message_type)?;
    let signature = wire::b64(
        "SignatureValue",
        wire::required("SignatureValue", &r.signature_value)?,
        "InvalidParameterValue",
    )?;
    let v = ops::asymmetric::verify(
        ctx,
        key_id,
        VersionChoice::Primary,
        algorithm,
        message_type,
        &message,
        &signature,
    )
    .await
    .map_err(|e| refine(e, sign_refusal))?;
    Ok(fields(json!({ "SignatureValid": v.value })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct AsymmetricRsaDecrypt {
    key_id: String,
    ciphertext: String,
    algorithm: String,
}

pub(super) async fn rsa_decrypt(ctx: Ctx<'_>, r: AsymmetricRsaDecrypt) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let algorithm =
        match wire::required("Algorithm", &r.algorithm)? {
            a @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256") => a,
            "RSAES_PKCS1_V1_5" => return Err(TcError::new(
                "UnsupportedOperation",
                "RSAES_PKCS1_V1_5 is refused: PKCS#1 v1.5 decryption is open to padding-oracle \
                 attacks; encrypt with RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
            )),
            other => {
                return Err(TcError::invalid(format!(
                    "Algorithm {other:?} is not valid; use RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1"
                )))
            }
        };
    let ciphertext = wire::b64(
        "Ciphertext",
        wire::required("Ciphertext", &r.ciphertext)?,
        "InvalidParameterValue.InvalidCiphertext",
    )?;
    let opened =
        ops::asymmetric::decrypt(ctx, key_id, VersionChoice::Primary, algorithm, &ciphertext)
            .await
            .map_err(|e| {
                refine(e, |e| match e.code {
                    ErrorCode::InvalidCiphertext => Some("FailedOperation.DecryptError"),
                    _ => usage_refusal(e),
                })
            })?;
    Ok(fields(json!({
        "KeyId": opened.key_id,
        "Plaintext": wire::b64_encode(&opened.plaintext),
    })))
}
