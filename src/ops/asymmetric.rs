//! Asymmetric keys and MAC keys: signatures, public keys, RSA-OAEP, HMAC. Authorise, then
//! run ([`crate::crypto::asymmetric`], [`crate::crypto::mac`]).
//!
//! `operation` names what the caller asked for, so a policy grants it by that name (the
//! instance API's Hmac and gRPC's GenerateMac are both MACs, but separate grants).
//!
//! The instance API's Sign and Verify use the key's initial version, unless the transfer
//! SDK names a version by its id alone ([`sign_initial`], [`verify_initial`]).

use super::Ctx;
use crate::crypto::asymmetric::{self, PkEncrypted, PublicKey, Signature, Verified};
use crate::crypto::mac::{self, Mac};
use crate::crypto::Opened;
use crate::error::KmsError;
use crate::keys::VersionChoice;

/// Signs `message` (RAW) or its digest (DIGEST) with `key_ref`.
pub async fn sign(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
) -> Result<Signature, KmsError> {
    let key_id = ctx.key("Sign", key_ref)?;
    asymmetric::sign(ctx.app, &key_id, version, algorithm, message_type, message).await
}

/// Sign for the instance API: with the key's initial version, or with the version
/// `version_id` names (which names the key too: `key_ref` may then be empty).
pub async fn sign_initial(
    ctx: Ctx<'_>,
    key_ref: &str,
    version_id: Option<&str>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
) -> Result<Signature, KmsError> {
    let (key_id, version) = ctx.key_and_version("Sign", key_ref, version_id)?;
    let version = initial_or(&version);
    asymmetric::sign(ctx.app, &key_id, version, algorithm, message_type, message).await
}

/// Verify for the instance API, with the version [`sign_initial`] would use.
pub async fn verify_initial(
    ctx: Ctx<'_>,
    key_ref: &str,
    version_id: Option<&str>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<Verified, KmsError> {
    let (key_id, version) = ctx.key_and_version("Verify", key_ref, version_id)?;
    let version = initial_or(&version);
    asymmetric::verify(
        ctx.app,
        &key_id,
        version,
        algorithm,
        message_type,
        message,
        signature,
    )
    .await
}

/// The version named, or the key's initial version.
fn initial_or(named: &Option<String>) -> VersionChoice<'_> {
    named
        .as_deref()
        .map_or(VersionChoice::Initial, VersionChoice::Id)
}

/// Verifies a signature with the key's public key.
pub async fn verify(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<Verified, KmsError> {
    let key_id = ctx.key("Verify", key_ref)?;
    asymmetric::verify(
        ctx.app,
        &key_id,
        version,
        algorithm,
        message_type,
        message,
        signature,
    )
    .await
}

/// The public key of an asymmetric key version.
pub async fn public_key(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
) -> Result<PublicKey, KmsError> {
    let key_id = ctx.key("GetPublicKey", key_ref)?;
    asymmetric::public_key(ctx.app, &key_id, version).await
}

/// RSA-OAEP encryption with the key's public key.
pub async fn encrypt(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    plaintext: &[u8],
) -> Result<PkEncrypted, KmsError> {
    let key_id = ctx.key("AsymmetricEncrypt", key_ref)?;
    asymmetric::encrypt(ctx.app, &key_id, version, algorithm, plaintext).await
}

/// RSA decryption inside an HSM.
pub async fn decrypt(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    ciphertext: &[u8],
) -> Result<Opened, KmsError> {
    let key_id = ctx.key("AsymmetricDecrypt", key_ref)?;
    asymmetric::decrypt(ctx.app, &key_id, version, algorithm, ciphertext).await
}

/// A MAC of `message`; `operation` is GenerateMac (gRPC) or Hmac (the instance API).
pub async fn mac(
    ctx: Ctx<'_>,
    operation: &str,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message: &[u8],
) -> Result<Mac, KmsError> {
    let key_id = ctx.key(operation, key_ref)?;
    mac::generate(ctx.app, &key_id, version, algorithm, message).await
}

/// Checks a MAC of `message`.
pub async fn verify_mac(
    ctx: Ctx<'_>,
    key_ref: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message: &[u8],
    expected: &[u8],
) -> Result<Verified, KmsError> {
    let key_id = ctx.key("VerifyMac", key_ref)?;
    mac::verify(ctx.app, &key_id, version, algorithm, message, expected).await
}
