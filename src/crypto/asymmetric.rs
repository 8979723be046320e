//! Operations with RSA and EC keys: Sign, Verify, GetPublicKey, AsymmetricEncrypt and
//! AsymmetricDecrypt.
//!
//! Private keys are used only inside HSM members, on members whose mechanisms include the
//! algorithm. Public keys are public: Verify and AsymmetricEncrypt use them on the host, but
//! only after a member has checked the version's token binding, which commits to the public
//! key (a public key swapped in the store is refused; see [`crate::keys::single_token`]).

use super::signing::{OaepAlgorithm, SignAlgorithm};
use super::Opened;
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::hsm::capability::Need;
use crate::hsm::crypto::asymmetric as pkc;
use crate::hsm::pool::Cost;
use crate::hsm::HsmError;
use crate::keys::spec::{KeySpec, Purpose, Usage};
use crate::keys::{self, single_token, VersionChoice};
use crate::store::records::{KeyRecord, KeyTokenRecord};
use openssl::pkey::{PKey, Public};
use std::sync::Arc;

/// A signature made inside an HSM.
#[derive(Debug)]
pub struct Signature {
    pub key_id: String,
    pub key_version_id: String,
    pub algorithm: &'static str,
    pub signature: Vec<u8>,
}

/// The answer of Verify and VerifyMac.
#[derive(Debug)]
pub struct Verified {
    pub key_id: String,
    pub key_version_id: String,
    pub value: bool,
}

/// The public key of a key version.
#[derive(Debug)]
pub struct PublicKey {
    pub key_id: String,
    pub key_version_id: String,
    pub key_spec: String,
    pub key_usage: String,
    /// SubjectPublicKeyInfo, DER.
    pub der: Vec<u8>,
    /// SubjectPublicKeyInfo, PEM.
    pub pem: String,
}

/// An AsymmetricEncrypt result.
#[derive(Debug)]
pub struct PkEncrypted {
    pub key_id: String,
    pub key_version_id: String,
    pub algorithm: &'static str,
    pub ciphertext: Vec<u8>,
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    KmsError::new(ErrorCode::Internal, e.to_string())
}

/// Checks a message against the size limit of signed and MAC'd messages.
pub(super) fn check_message(app: &Appliance, message: &[u8]) -> Result<(), KmsError> {
    if message.len() > app.limits.max_plaintext_bytes {
        return Err(KmsError::invalid(format!(
            "Message is longer than {} bytes",
            app.limits.max_plaintext_bytes
        )));
    }
    Ok(())
}

/// The public key of a version, after a member that can do `capability` has checked the
/// token's binding (cached per member after the first check).
async fn checked_public_key(
    app: &Appliance,
    key: &KeyRecord,
    spec: KeySpec,
    token: KeyTokenRecord,
    needs: &[Need<'_>],
) -> Result<PKey<Public>, KmsError> {
    let usage = Usage::of(key);
    let token = Arc::new(token);
    {
        let token = token.clone();
        app.pool
            .run_needing(needs, Cost::Light, move |m, _| {
                single_token::handle(m, &token, spec, usage).map(|_| ())
            })
            .await?;
    }
    PKey::public_key_from_der(&token.public_key).map_err(|e| {
        KmsError::new(
            ErrorCode::Internal,
            format!("stored public key of {}: {e}", token.key_version_id),
        )
    })
}

/// Where a signature runs: an RSA signature takes a CPU for most of a millisecond on a
/// software token, so it takes a blocking thread (several run at once); an ECDSA signature
/// takes tens of microseconds, less than handing it to another thread and back.
fn signing_cost(spec: KeySpec) -> Cost {
    match spec {
        KeySpec::Rsa(_) => Cost::Heavy,
        _ => Cost::Light,
    }
}

/// Signs a message (hashed here) or a digest with a SIGN/VERIFY key, inside a member that
/// offers the algorithm.
pub async fn sign(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
) -> Result<Signature, KmsError> {
    check_message(app, message)?;
    let (key, spec, token) = keys::usable_version(app, key_id, version, Purpose::Signing, "Sign")?;
    let alg = SignAlgorithm::parse(algorithm, spec)?;
    let input = Arc::new(alg.hsm_input(&alg.digest(message_type, message)?));
    let key_version_id = token.key_version_id.clone();
    let token = Arc::new(token);
    let raw = app
        .pool
        .run_needing(
            &[Need::Spec(spec.as_str()), Need::Algorithm(alg.name)],
            signing_cost(spec),
            move |m, s| {
                let private = single_token::handle(m, &token, spec, Usage::SignVerify)?;
                pkc::sign(s, private, alg.scheme, &input).map_err(|e| m.err(e))
            },
        )
        .await?;
    Ok(Signature {
        key_id: key.key_id,
        key_version_id,
        algorithm: alg.name,
        signature: alg.encode(raw, spec)?,
    })
}

/// Verifies a signature with the version's public key. A wrong or malformed signature is
/// `value: false`, never an error.
pub async fn verify(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message_type: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<Verified, KmsError> {
    check_message(app, message)?;
    let (key, spec, token) =
        keys::usable_version(app, key_id, version, Purpose::Signing, "Verify")?;
    let alg = SignAlgorithm::parse(algorithm, spec)?;
    let digest = alg.digest(message_type, message)?;
    let key_version_id = token.key_version_id.clone();
    let needs = [Need::Spec(spec.as_str())];
    let public = checked_public_key(app, &key, spec, token, &needs).await?;
    Ok(Verified {
        key_id: key.key_id,
        key_version_id,
        value: alg.verify(&public, &digest, signature),
    })
}

/// The public key of an RSA or EC key version.
pub async fn public_key(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
) -> Result<PublicKey, KmsError> {
    let (key, spec, token) =
        keys::usable_version(app, key_id, version, Purpose::PublicKey, "GetPublicKey")?;
    let key_version_id = token.key_version_id.clone();
    let needs = [Need::Spec(spec.as_str())];
    let public = checked_public_key(app, &key, spec, token, &needs).await?;
    Ok(PublicKey {
        key_id: key.key_id,
        key_version_id,
        key_spec: key.key_spec,
        key_usage: key.key_usage,
        der: public.public_key_to_der().map_err(internal)?,
        pem: String::from_utf8(public.public_key_to_pem().map_err(internal)?).map_err(internal)?,
    })
}

/// The RSA ENCRYPT/DECRYPT key, spec, token and OAEP algorithm of an AsymmetricEncrypt or
/// AsymmetricDecrypt.
fn oaep_key(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    operation: &str,
) -> Result<(KeyRecord, KeySpec, KeyTokenRecord, OaepAlgorithm), KmsError> {
    let (key, spec, token) = keys::usable_version(
        app,
        key_id,
        version,
        Purpose::PublicKeyEncryption,
        operation,
    )?;
    Ok((key, spec, token, OaepAlgorithm::parse(algorithm)?))
}

/// Encrypts with an RSA ENCRYPT/DECRYPT key's public key (RSA-OAEP). Refused when no member
/// could decrypt the result.
pub async fn encrypt(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    plaintext: &[u8],
) -> Result<PkEncrypted, KmsError> {
    let (key, spec, token, alg) = oaep_key(app, key_id, version, algorithm, "AsymmetricEncrypt")?;
    let key_version_id = token.key_version_id.clone();
    let needs = [Need::Spec(spec.as_str()), Need::Algorithm(alg.name)];
    let public = checked_public_key(app, &key, spec, token, &needs).await?;
    let max = alg.max_plaintext(public.size());
    if plaintext.len() > max {
        return Err(KmsError::invalid(format!(
            "Plaintext is longer than {max} bytes, the most {} can encrypt with a {} key",
            alg.name,
            spec.as_str()
        )));
    }
    Ok(PkEncrypted {
        key_id: key.key_id,
        key_version_id,
        algorithm: alg.name,
        ciphertext: alg.encrypt(&public, plaintext)?,
    })
}

/// Decrypts an RSA-OAEP ciphertext inside a member that offers the algorithm.
pub async fn decrypt(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    ciphertext: &[u8],
) -> Result<Opened, KmsError> {
    let (key, spec, token, alg) = oaep_key(app, key_id, version, algorithm, "AsymmetricDecrypt")?;
    let key_version_id = token.key_version_id.clone();
    let token = Arc::new(token);
    let ciphertext = ciphertext.to_vec();
    let plaintext = app
        .pool
        .run_needing(
            &[Need::Spec(spec.as_str()), Need::Algorithm(alg.name)],
            Cost::Heavy,
            move |m, s| {
                let private = single_token::handle(m, &token, spec, Usage::EncryptDecrypt)?;
                pkc::oaep_decrypt(s, private, alg.hash, &ciphertext).map_err(|e| m.data_err(e))
            },
        )
        .await
        .map_err(|e| match e {
            HsmError::DataRejected { .. } => KmsError::invalid_ciphertext(),
            other => other.into(),
        })?;
    Ok(Opened {
        key_id: key.key_id,
        key_version_id,
        plaintext,
    })
}
