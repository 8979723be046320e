//! Keys whose material arrives from outside (bring your own key).
//!
//! 1. `CreateKey` with origin `EXTERNAL`: a key with a version id and no material
//!    (`PendingImport`).
//! 2. `GetParametersForImport`: an HSM member generates an RSA wrapping pair; its private
//!    half is stored only wrapped under the domain key (so any member can use it) beside
//!    the import token that names it, valid 24 hours; the public half goes to the owner.
//! 3. The owner encrypts the raw material with the public key (RSAES-OAEP), on their own
//!    machine (`hkms key import` does it with OpenSSL).
//! 4. `ImportKeyMaterial`: inside an HSM, the wrapping key unwraps the material; it becomes
//!    the version's token ([`token::from_material`]) and its check value is computed there
//!    too. The material never exists in hkmsd's memory in plaintext. The import token is a
//!    random 128-bit name of the stored parameters, bound to one key.
//! 5. Material may expire (the clock job deletes it) or be deleted (`DeleteKeyMaterial`):
//!    the key is `PendingImport` and its ciphertexts are unreadable until the *same*
//!    material is imported again, which the check value decides; other material is refused
//!    (`MaterialNotMatch`).

use super::record::{
    describe, not_usable, ORIGIN_EXTERNAL, STATE_ENABLED, STATE_PENDING_DELETION,
    STATE_PENDING_IMPORT,
};
use super::token;
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::hsm::crypto::{self as hsm_crypto, ImportWrapping};
use crate::hsm::profile::OaepHash;
use crate::store::named::Space;
use crate::store::records::KeyRecord;
use crate::store::records::{ImportParamsRecord, KeyTokenRecord};
use crate::store::{StoreError, TokenChange};
use prost::Message;
use std::sync::Arc;

/// How long import parameters stay valid.
pub const PARAMS_LIFETIME_SECONDS: i64 = 24 * 3600;

/// What `GetParametersForImport` returns.
#[derive(Debug)]
pub struct Params {
    pub import_token: Vec<u8>,
    pub record: ImportParamsRecord,
}

/// The wrapping algorithm by its API name, after checking that every member can do it.
fn wrapping(app: &Appliance, name: &str) -> Result<(&'static str, ImportWrapping), KmsError> {
    let unsupported = |why: String| KmsError::new(ErrorCode::UnsupportedAlgorithm, why);
    let (name, wrapping) = match name {
        "" | "RSAES_OAEP_SHA_1" => ("RSAES_OAEP_SHA_1", ImportWrapping::OaepSha1),
        "RSAES_OAEP_SHA_256" => ("RSAES_OAEP_SHA_256", ImportWrapping::OaepSha256),
        "RSA_AES_KEY_WRAP_SHA_1" => ("RSA_AES_KEY_WRAP_SHA_1", ImportWrapping::RsaAesSha1),
        "RSA_AES_KEY_WRAP_SHA_256" => ("RSA_AES_KEY_WRAP_SHA_256", ImportWrapping::RsaAesSha256),
        "RSAES_PKCS1_V1_5" => {
            return Err(unsupported(
                "RSAES_PKCS1_V1_5 is refused: PKCS#1 v1.5 decryption is open to padding-oracle \
                 attacks; use RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_1"
                    .into(),
            ))
        }
        other => {
            return Err(KmsError::invalid(format!(
                "WrappingAlgorithm {other:?} is not valid; use RSAES_OAEP_SHA_1, \
                 RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256"
            )))
        }
    };
    let rsa_aes = matches!(
        wrapping,
        ImportWrapping::RsaAesSha1 | ImportWrapping::RsaAesSha256
    );
    let sha256 = matches!(
        wrapping,
        ImportWrapping::OaepSha256 | ImportWrapping::RsaAesSha256
    );
    let mut needed = vec![
        (cryptoki_sys::CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP", name),
        (
            cryptoki_sys::CKM_AES_CBC_ENCRYPT_DATA,
            "CKM_AES_CBC_ENCRYPT_DATA",
            "deriving the AES-CBC key of imported material",
        ),
    ];
    if rsa_aes {
        needed.push((
            cryptoki_sys::CKM_AES_KEY_WRAP_PAD,
            "CKM_AES_KEY_WRAP_PAD",
            "the AES half of RSA-AES key wrap",
        ));
    }
    for m in app.pool.members() {
        for (ckm, label, what) in &needed {
            if m.has_mechanism(*ckm) == Some(false) {
                return Err(unsupported(format!(
                    "HSM member {} lacks {label}, which {what} needs",
                    m.name
                )));
            }
        }
        if sha256 && !m.quirks().oaep_allows(OaepHash::Sha256) {
            return Err(unsupported(format!(
                "HSM member {} ({} profile) does RSA-OAEP with {} only, so it cannot unwrap \
                 {name}; use the SHA_1 variant",
                m.name,
                m.profile_name(),
                m.quirks().oaep_hash_names()
            )));
        }
    }
    Ok((name, wrapping))
}

fn wrapping_by_name(name: &str) -> Result<ImportWrapping, KmsError> {
    match name {
        "RSAES_OAEP_SHA_1" => Ok(ImportWrapping::OaepSha1),
        "RSAES_OAEP_SHA_256" => Ok(ImportWrapping::OaepSha256),
        "RSA_AES_KEY_WRAP_SHA_1" => Ok(ImportWrapping::RsaAesSha1),
        "RSA_AES_KEY_WRAP_SHA_256" => Ok(ImportWrapping::RsaAesSha256),
        other => Err(KmsError::new(
            ErrorCode::Internal,
            format!("stored import parameters name unknown algorithm {other:?}"),
        )),
    }
}

fn wrapping_key_bits(spec: &str) -> Result<(&'static str, u32), KmsError> {
    match spec {
        "" | "RSA_2048" => Ok(("RSA_2048", 2048)),
        "RSA_3072" => Ok(("RSA_3072", 3072)),
        "RSA_4096" => Ok(("RSA_4096", 4096)),
        other => Err(KmsError::invalid(format!(
            "WrappingKeySpec {other:?} is not valid; use RSA_2048, RSA_3072 or RSA_4096"
        ))),
    }
}

fn require_external(key: &KeyRecord) -> Result<(), KmsError> {
    if key.origin != ORIGIN_EXTERNAL {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            format!(
                "key {} was generated inside the HSMs; only keys created with origin EXTERNAL \
                 take imported material",
                key.key_id
            ),
        ));
    }
    if key.key_state == STATE_PENDING_DELETION {
        return Err(not_usable(key));
    }
    Ok(())
}

/// Makes import parameters for an EXTERNAL key.
pub async fn get_parameters(
    app: &Appliance,
    key_id: &str,
    algorithm: &str,
    key_spec: &str,
) -> Result<Params, KmsError> {
    let key = describe(app, key_id)?;
    require_external(&key)?;
    let (algorithm, _) = wrapping(app, algorithm)?;
    let (spec, bits) = wrapping_key_bits(key_spec)?;
    let instance = app.instance()?;
    let (wrapped_private_key, public_key) = app
        .pool
        .run(move |m, s| {
            let dk = m.domain_key()?;
            let pair = hsm_crypto::generate_wrapping_pair(s, bits).map_err(|e| m.err(e))?;
            let wrapped = hsm_crypto::wrap_private_key(s, dk, pair.private);
            let _ = s.destroy_object(pair.private);
            let _ = s.destroy_object(pair.public);
            Ok((wrapped.map_err(|e| m.err(e))?, pair.public_der))
        })
        .await?;
    let mut id = [0u8; 16];
    crate::crypto::primitives::random(&mut id)
        .map_err(|e| KmsError::new(ErrorCode::Internal, e))?;
    let token_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let record = ImportParamsRecord {
        key_id: key.key_id.clone(),
        wrapping_algorithm: algorithm.to_owned(),
        wrapping_key_spec: spec.to_owned(),
        expire_unix: crate::clock::now_unix() + PARAMS_LIFETIME_SECONDS,
        wrapped_private_key,
        domain_key_id: instance.domain_key_id,
        public_key,
    };
    app.store
        .put_named(Space::ImportParams, &token_id, record.encode_to_vec(), true)?;
    tracing::info!(key_id = %key.key_id, algorithm, spec, "import parameters issued");
    Ok(Params {
        import_token: token_id.into_bytes(),
        record,
    })
}

/// The import parameters an import token names, if they are still valid.
fn params_of(
    app: &Appliance,
    key_id: &str,
    import_token: &[u8],
) -> Result<ImportParamsRecord, KmsError> {
    let expired = || {
        KmsError::new(
            ErrorCode::ImportTokenExpired,
            "the import token is unknown or has expired; get new parameters \
             (GetParametersForImport) and wrap the material again",
        )
    };
    let id = std::str::from_utf8(import_token).map_err(|_| expired())?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(expired());
    }
    let bytes = app
        .store
        .get_named(Space::ImportParams, id)?
        .ok_or_else(expired)?;
    let params = ImportParamsRecord::decode(bytes.as_slice())
        .map_err(|_| KmsError::from(StoreError::Corrupt("import parameters".into())))?;
    if params.expire_unix <= crate::clock::now_unix() {
        return Err(expired());
    }
    if params.key_id != key_id {
        return Err(KmsError::invalid(
            "the import token was issued for another key",
        ));
    }
    Ok(params)
}

/// What the HSM made of the imported material.
enum Unwrapped {
    Token(Box<KeyTokenRecord>, Vec<u8>),
    /// The material has another length than the key spec needs.
    WrongLength(usize),
    /// Other material than the key had.
    Mismatch,
}

/// Imports material into an EXTERNAL key: it is unwrapped, checked and turned into the
/// key's token inside an HSM member.
pub async fn import_material(
    app: &Appliance,
    key_id: &str,
    encrypted: &[u8],
    import_token: &[u8],
    expire_unix: i64,
) -> Result<KeyRecord, KmsError> {
    let key = describe(app, key_id)?;
    require_external(&key)?;
    let params = params_of(app, &key.key_id, import_token)?;
    if expire_unix != 0 && expire_unix <= crate::clock::now_unix() {
        return Err(KmsError::invalid("KeyMaterialExpireUnix is in the past"));
    }
    if encrypted.is_empty() || encrypted.len() > 1024 {
        return Err(KmsError::invalid(
            "EncryptedKeyMaterial must be the material encrypted with the wrapping public key",
        ));
    }
    let wrapping = wrapping_by_name(&params.wrapping_algorithm)?;
    let (_, modulus_bits) = wrapping_key_bits(&params.wrapping_key_spec)?;
    let bits = super::spec::KeySpec::parse(&key.key_spec)?.bits();
    let created = crate::clock::now_rfc3339();
    let outcome = {
        let (key, params, encrypted, created) = (
            Arc::new(key.clone()),
            Arc::new(params),
            encrypted.to_vec(),
            created.clone(),
        );
        app.pool
            .run(move |m, s| {
                let dk = m.domain_key()?;
                let wk = hsm_crypto::unwrap_wrapping_key(s, dk, &params.wrapped_private_key)
                    .map_err(|e| m.err(e))?;
                let material = token::with_object(s, wk, |wk| {
                    hsm_crypto::unwrap_imported_material(
                        s,
                        wk,
                        wrapping,
                        &encrypted,
                        modulus_bits as usize / 8,
                    )
                    .map_err(|e| m.data_err(e))
                })?;
                token::with_object(s, material, |material| {
                    let len = token::material_len(m, s, material)?;
                    if len * 8 != bits as usize {
                        return Ok(Unwrapped::WrongLength(len));
                    }
                    let check = match token::material_check(m, s, material, &key.key_id, bits) {
                        // Not an AES key length (the length above may be rounded up to a
                        // multiple of 8): AES refuses the key, which SoftHSM2 reports as
                        // CKR_MECHANISM_INVALID and others as CKR_KEY_SIZE_RANGE.
                        Err(e)
                            if matches!(
                                e.rv(),
                                Some(
                                    cryptoki::error::RvError::KeySizeRange
                                        | cryptoki::error::RvError::MechanismInvalid
                                )
                            ) =>
                        {
                            return Ok(Unwrapped::WrongLength(len))
                        }
                        other => other?,
                    };
                    if !key.material_check.is_empty()
                        && !openssl::memcmp::eq(&check, &key.material_check)
                    {
                        return Ok(Unwrapped::Mismatch);
                    }
                    let tok = token::from_material(
                        m,
                        s,
                        material,
                        &key.key_id,
                        &key.primary_key_version,
                        bits,
                        &params.domain_key_id,
                        &created,
                    )?;
                    Ok(Unwrapped::Token(Box::new(tok), check))
                })
            })
            .await
            .map_err(|e| match e {
                crate::hsm::HsmError::DataRejected { .. } => KmsError::invalid(
                    "EncryptedKeyMaterial cannot be unwrapped with these import parameters \
                     (another public key or wrapping algorithm, or damaged)",
                ),
                other => other.into(),
            })?
    };
    let (tok, check) = match outcome {
        Unwrapped::Token(t, c) => (t, c),
        Unwrapped::WrongLength(n) => {
            return Err(KmsError::invalid(if n * 8 == bits as usize {
                format!(
                    "the key material is not an AES key of {} bytes, as key spec {} needs",
                    bits / 8,
                    key.key_spec
                )
            } else {
                format!(
                    "the key material is {n} bytes; key spec {} needs {}",
                    key.key_spec,
                    bits / 8
                )
            }))
        }
        Unwrapped::Mismatch => {
            return Err(KmsError::new(
                ErrorCode::MaterialNotMatch,
                format!(
                    "key {key_id} had other key material; only the same material can be \
                     imported again"
                ),
            ))
        }
    };
    let mut new = key.clone();
    if new.key_state == STATE_PENDING_IMPORT {
        new.key_state = STATE_ENABLED.to_owned();
    }
    new.material_check = check;
    new.material_expire_unix = expire_unix;
    new.material_present = true;
    if !app
        .store
        .commit_key_change(&key, &new, TokenChange::Put(&tok))?
    {
        return Err(StoreError::Conflict.into());
    }
    // No cached keys to drop: removing material forgot them, and importing again is only
    // accepted for the same material.
    tracing::info!(key_id = %key_id, expires = expire_unix, "key material imported");
    Ok(new)
}

/// Deletes an EXTERNAL key's material: `PendingImport` (a key pending deletion stays so).
pub async fn delete_material(app: &Appliance, key_id: &str) -> Result<KeyRecord, KmsError> {
    let key = describe(app, key_id)?;
    if key.origin != ORIGIN_EXTERNAL {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            format!(
                "key {key_id} was generated inside the HSMs; only imported material can be \
                 deleted"
            ),
        ));
    }
    remove_material(app, &key, "deleted").await
}

async fn remove_material(
    app: &Appliance,
    key: &KeyRecord,
    why: &str,
) -> Result<KeyRecord, KmsError> {
    let mut new = key.clone();
    if new.key_state != STATE_PENDING_DELETION {
        new.key_state = STATE_PENDING_IMPORT.to_owned();
    }
    new.material_expire_unix = 0;
    new.material_present = false;
    let version = key.primary_key_version.clone();
    if !app
        .store
        .commit_key_change(key, &new, TokenChange::Remove(&version))?
    {
        return Err(StoreError::Conflict.into());
    }
    app.pool
        .forget_versions(std::slice::from_ref(&version))
        .await;
    tracing::warn!(key_id = %key.key_id, state = %new.key_state, "key material {why}: nothing the key encrypted can be decrypted until the same material is imported again");
    Ok(new)
}

/// Deletes material that expired at `due`; `false` when there is nothing to do.
pub async fn expire_due(app: &Appliance, key_id: &str, due: i64) -> Result<bool, KmsError> {
    let Some(key) = app.store.key(key_id)? else {
        return Ok(false);
    };
    if key.material_expire_unix != due || due == 0 || crate::clock::now_unix() < due {
        return Ok(false);
    }
    match remove_material(app, &key, "expired").await {
        Ok(_) => Ok(true),
        Err(e) if e.code == ErrorCode::Conflict => Ok(false),
        Err(e) => Err(e),
    }
}

/// Which import parameters [`forget_params`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Past their 24 hours.
    Expired,
    /// Issued for keys that no longer exist.
    OfMissingKeys,
}

/// Removes stale import parameters; returns how many.
pub fn forget_params(app: &Appliance, which: Stale) -> Result<usize, KmsError> {
    let now = crate::clock::now_unix();
    let mut removed = 0;
    for (id, bytes) in app.store.list_named(Space::ImportParams)? {
        let stale = match ImportParamsRecord::decode(bytes.as_slice()) {
            Ok(p) => match which {
                Stale::Expired => p.expire_unix <= now,
                Stale::OfMissingKeys => app.store.key(&p.key_id)?.is_none(),
            },
            Err(_) => true,
        };
        if stale {
            match app.store.delete_named(Space::ImportParams, &id) {
                Ok(()) | Err(StoreError::NotFound(_)) => removed += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}
