//! Encryption with the KMS instance API's plain conventions (Encrypt, Decrypt,
//! GenerateDataKey): the ciphertext is bare (AES-GCM ciphertext || tag, or AES-CBC
//! ciphertext), the IV travels beside it, and the key's *initial* version is used, so the
//! caller keeps KeyId, Iv, Algorithm, PaddingMode and Aad and sends them back to decrypt.
//! AES-GCM authenticates the caller's AAD only. A Decrypt of the transfer SDK names the key
//! version instead of the key ([`decrypt`]), since its ciphertexts carry the version
//! that Encrypt reported. The self-describing form (AdvanceEncrypt) is
//! [`super::encrypt_with`].

pub use super::algorithm::Algorithm;
use super::{check_aad, Opened};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::hsm::crypto::{self as hsm_crypto, CBC_IV_LEN, GCM_IV_LEN, GCM_TAG_LEN};
use crate::hsm::HsmError;
use crate::keys;
use crate::keys::token;
use crate::store::records::{KeyRecord, KeyTokenRecord};
use std::sync::Arc;
use zeroize::Zeroizing;

/// A bare ciphertext and what the caller needs to decrypt it.
#[derive(Debug)]
pub struct Bare {
    pub key_id: String,
    pub key_version_id: String,
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The key (id, or alias resolved beforehand) and the token of its initial version.
async fn initial_token(
    app: &Appliance,
    key_id: &str,
) -> Result<(KeyRecord, KeyTokenRecord), KmsError> {
    let key = keys::describe(app, key_id)?;
    let initial = key
        .key_versions
        .first()
        .cloned()
        .unwrap_or_else(|| key.primary_key_version.clone());
    keys::usable_token_of(app, key, Some(&initial)).await
}

/// The IV to encrypt with: a fresh random one, or the caller's. A caller's AES-GCM IV is
/// refused unless `allow_caller_gcm_iv` is set: a repeated GCM IV under one key reveals the
/// XOR of two plaintexts and lets the repeater forge tags.
fn iv_for(alg: Algorithm, given: &[u8], allow_caller_gcm_iv: bool) -> Result<Vec<u8>, KmsError> {
    if !given.is_empty() && alg == Algorithm::Gcm && !allow_caller_gcm_iv {
        return Err(KmsError::invalid(
            "Iv cannot be chosen for AES_GCM: hkms generates a fresh one for every \
             encryption and returns it (hkmsd's [limits] allow_caller_gcm_iv setting \
             accepts it for old clients)",
        ));
    }
    if given.is_empty() {
        let mut iv = vec![0u8; alg.iv_len()];
        super::primitives::random(&mut iv)
            .map_err(|e| KmsError::new(crate::error::ErrorCode::Internal, e))?;
        return Ok(iv);
    }
    if given.len() != alg.iv_len() {
        return Err(KmsError::invalid(format!(
            "Iv must be {} bytes for {}",
            alg.iv_len(),
            alg.name()
        )));
    }
    Ok(given.to_vec())
}

/// Encrypts with the key's initial version; the IV is the caller's or a fresh random one.
pub async fn encrypt(
    app: &Appliance,
    key_id: &str,
    alg: Algorithm,
    iv: &[u8],
    aad: &[u8],
    plaintext: Arc<Zeroizing<Vec<u8>>>,
) -> Result<Bare, KmsError> {
    if plaintext.len() > app.limits.max_plaintext_bytes {
        return Err(KmsError::invalid(format!(
            "Plaintext is longer than {} bytes",
            app.limits.max_plaintext_bytes
        )));
    }
    check_aad(app, aad)?;
    alg.check_aad(aad)?;
    alg.check_plaintext(&plaintext)?;
    let iv = iv_for(alg, iv, app.limits.allow_caller_gcm_iv)?;
    let (key, tok) = initial_token(app, key_id).await?;
    let key_version_id = tok.key_version_id.clone();
    let tok = Arc::new(tok);
    let (aad, iv_in) = (aad.to_vec(), iv.clone());
    let ciphertext = app
        .pool
        .run(move |m, s| {
            let keys = token::handle(m, &tok)?;
            match alg {
                Algorithm::Gcm => {
                    let iv: [u8; GCM_IV_LEN] = iv_in.as_slice().try_into().expect("checked");
                    hsm_crypto::gcm_encrypt(s, keys.gcm, &iv, &aad, &plaintext)
                }
                Algorithm::Cbc { pkcs7 } => {
                    let iv: [u8; CBC_IV_LEN] = iv_in.as_slice().try_into().expect("checked");
                    hsm_crypto::cbc_encrypt(s, keys.cbc, &iv, pkcs7, &plaintext)
                }
            }
            .map_err(|e| m.err(e))
        })
        .await?;
    Ok(Bare {
        key_id: key.key_id,
        key_version_id,
        iv,
        ciphertext,
    })
}

/// Decrypts a bare ciphertext of `version`, or of the key's initial version when `None`
/// (the instance API's convention). The transfer SDK's Decrypt names the version (in
/// `x-kms-migrationkeyversionid`) that its Encrypt reported.
#[allow(clippy::too_many_arguments)]
pub async fn decrypt(
    app: &Appliance,
    key_id: &str,
    version: Option<&str>,
    alg: Algorithm,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Opened, KmsError> {
    check_bare(app, alg, iv, aad, ciphertext)?;
    let (key, tok) = match version {
        None => initial_token(app, key_id).await?,
        Some(v) => keys::usable_token(app, key_id, Some(v)).await?,
    };
    open_bare(app, key, tok, alg, iv, aad, ciphertext).await
}

/// The checks of a bare ciphertext's parameters that need no key.
fn check_bare(
    app: &Appliance,
    alg: Algorithm,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<(), KmsError> {
    check_aad(app, aad)?;
    alg.check_aad(aad)?;
    if iv.len() != alg.iv_len() {
        return Err(KmsError::invalid(format!(
            "Iv is required: {} bytes for {}",
            alg.iv_len(),
            alg.name()
        )));
    }
    let well_formed = match alg {
        Algorithm::Gcm => ciphertext.len() >= GCM_TAG_LEN,
        Algorithm::Cbc { .. } => !ciphertext.is_empty() && ciphertext.len().is_multiple_of(16),
    };
    if !well_formed {
        return Err(KmsError::invalid_ciphertext());
    }
    Ok(())
}

/// Decrypts with `tok` (parameters checked by [`check_bare`]).
async fn open_bare(
    app: &Appliance,
    key: KeyRecord,
    tok: KeyTokenRecord,
    alg: Algorithm,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Opened, KmsError> {
    let key_version_id = tok.key_version_id.clone();
    let tok = Arc::new(tok);
    let (aad, iv, body) = (aad.to_vec(), iv.to_vec(), ciphertext.to_vec());
    let legacy_gcm_ok = app.limits.legacy_gcm_decrypt;
    let plaintext = app
        .pool
        .run(move |m, s| {
            let keys = token::handle(m, &tok)?;
            let rejected = |e| m.data_err(e);
            match alg {
                Algorithm::Gcm => {
                    let iv: [u8; GCM_IV_LEN] = iv.as_slice().try_into().expect("checked");
                    match hsm_crypto::gcm_decrypt(s, keys.gcm, &iv, &aad, &body).map_err(rejected) {
                        // A bare ciphertext does not say which key wrote it: one written
                        // before mode keys existed fails the GCM key's tag check and is tried
                        // under the version's legacy material. The tag decides, so the wrong
                        // key never yields a plaintext.
                        Err(HsmError::DataRejected { .. })
                            if keys.legacy.is_some() && legacy_gcm_ok =>
                        {
                            let legacy = keys.legacy.expect("checked");
                            hsm_crypto::gcm_decrypt(s, legacy, &iv, &aad, &body).map_err(rejected)
                        }
                        other => other,
                    }
                }
                Algorithm::Cbc { pkcs7 } => {
                    let iv: [u8; CBC_IV_LEN] = iv.as_slice().try_into().expect("checked");
                    hsm_crypto::cbc_decrypt(s, keys.cbc, &iv, pkcs7, &body).map_err(rejected)
                }
            }
        })
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

/// A data key from the HSM's generator, and the same key encrypted (AES-GCM, initial
/// version, bare).
pub async fn generate_data_key(
    app: &Appliance,
    key_id: &str,
    len: usize,
    aad: &[u8],
) -> Result<(Bare, Zeroizing<Vec<u8>>), KmsError> {
    check_aad(app, aad)?;
    initial_token(app, key_id).await?;
    let data_key = Arc::new(super::random(app, len).await?);
    let bare = encrypt(app, key_id, Algorithm::Gcm, &[], aad, data_key.clone()).await?;
    let data_key = Arc::try_unwrap(data_key).unwrap_or_else(|a| Zeroizing::new(a.to_vec()));
    Ok((bare, data_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_and_paddings_parse() {
        assert_eq!(Algorithm::parse("", "").unwrap(), Algorithm::Gcm);
        assert_eq!(
            Algorithm::parse("AES_CBC", "").unwrap(),
            Algorithm::Cbc { pkcs7: true }
        );
        let nopad = Algorithm::parse("AES_CBC", "NO_PADDING").unwrap();
        assert_eq!(nopad.padding_name(), "NO_PADDING");
        assert!(Algorithm::parse("AES_ECB", "").is_err());
        assert!(Algorithm::parse("AES_GCM", "PKCS7_PADDING").is_err());
        assert!(Algorithm::parse("AES_CBC", "ZERO").is_err());
        assert!(nopad.check_aad(b"x").is_err());
        assert!(iv_for(Algorithm::Gcm, &[1; 16], true).is_err());
        assert_eq!(iv_for(nopad, &[], false).unwrap().len(), 16);
        assert_eq!(iv_for(nopad, &[3; 16], false).unwrap(), [3; 16]);
    }

    #[test]
    fn caller_gcm_ivs_are_refused_unless_allowed() {
        let e = iv_for(Algorithm::Gcm, &[1; 12], false).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::InvalidParameter);
        assert_eq!(iv_for(Algorithm::Gcm, &[1; 12], true).unwrap(), [1; 12]);
        assert_eq!(iv_for(Algorithm::Gcm, &[], false).unwrap().len(), 12);
    }
}
