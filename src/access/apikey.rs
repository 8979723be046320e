//! API keys: the second kind of credential an AAP can hold, beside ClientKeys. An API key is
//! a SecretId (public, `AKID` + 32 letters and digits) and a SecretKey (32 letters and
//! digits from an HSM's random generator) that Tencent Cloud API 3.0 clients sign requests
//! with (TC3-HMAC-SHA256, [`crate::front::tencent::auth`]).
//!
//! Verifying such a signature needs the SecretKey itself, so hkmsd keeps it, but only sealed:
//! AES-GCM inside an HSM under the **credential key**, an internal AES-256 key that hkmsd
//! creates the first time an API key is made and that no application can name or be granted.
//! The sealed SecretKey is an hkms ciphertext with the SecretId as its associated data, so it
//! opens only as that SecretId's key; the store alone reveals nothing. The SecretKey is
//! returned once, when it is created.
//!
//! Validity, expiry warnings and deletion follow ClientKeys: 1..1825 days (365 by default),
//! a warning in the log during the last 30 days, refused after `not_after`, and an AAP keeps
//! its name until its API keys are deleted.

use super::clientkey;
use super::manage::{self, Change, Managed};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::keys::{self, NewKey};
use crate::proto::{ApiKey, ApiKeySummary, ApplicationAccessPoint};
use crate::store::access::{self as records, AccessStore};
use crate::store::named::Space;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Every SecretId starts with this.
pub const SECRET_ID_PREFIX: &str = "AKID";
/// Letters and digits after the prefix of a SecretId, and in a SecretKey.
const ID_CHARS: usize = 32;
const SECRET_KEY_CHARS: usize = 32;
/// Longest validity: five years.
pub const MAX_VALIDITY_DAYS: u32 = 1825;
const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// The instance setting that names the credential key.
const CREDENTIAL_KEY_SETTING: &str = "credential_key";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Maps random bytes to letters and digits without bias (bytes of 248 and above, which
/// would favour the first characters, are skipped); `None` when `bytes` run out first.
fn alphanumeric(bytes: &[u8], len: usize) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    for b in bytes.iter().filter(|b| **b < 248) {
        if out.len() == len {
            break;
        }
        out.push(ALPHANUMERIC[usize::from(*b) % ALPHANUMERIC.len()] as char);
    }
    (out.len() == len).then_some(out)
}

/// The associated data a SecretKey is sealed with: it opens only as the key of this
/// SecretId and this AAP (a sealed SecretKey copied to another record does not open).
fn sealing_aad(secret_id: &str, aap: &str) -> Vec<u8> {
    format!("hkms api key {secret_id} of aap {aap}").into_bytes()
}

/// When each API key's coming expiry was last logged (once a day per key is enough).
static EXPIRY_WARNED: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

/// Logs, at most once a day per key, that an API key expires within 30 days.
pub fn warn_if_expiring(key: &ApiKey, now: i64) {
    let (days_left, state) = clientkey::standing(key.not_before, key.not_after, 0, now);
    if state != "ExpiringSoon" {
        return;
    }
    let mut warned = EXPIRY_WARNED.lock().unwrap_or_else(|p| p.into_inner());
    let last = warned
        .get_or_insert_with(HashMap::new)
        .entry(key.secret_id.clone())
        .or_insert(i64::MIN);
    if now.saturating_sub(*last) >= 86_400 {
        *last = now;
        tracing::warn!(secret_id = %key.secret_id, aap = %key.aap_name, days_left,
            "API key expires soon; create a new one (hkms api-key create) and delete this one");
    }
}

/// The credential key's id, created (an internal AES-256 key) the first time it is needed.
async fn credential_key(app: &Appliance) -> Result<String, KmsError> {
    if let Some(id) = app
        .store
        .get_named(Space::Settings, CREDENTIAL_KEY_SETTING)?
    {
        return String::from_utf8(id).map_err(|_| {
            KmsError::new(
                ErrorCode::StoreError,
                "the credential key setting is corrupt",
            )
        });
    }
    let key = keys::create(
        app,
        "Aliyun_AES_256",
        "ENCRYPT/DECRYPT",
        NewKey {
            description: "hkms: seals the SecretKeys of API keys".into(),
            internal: true,
            ..Default::default()
        },
    )
    .await?;
    match app.store.put_named(
        Space::Settings,
        CREDENTIAL_KEY_SETTING,
        key.key_id.clone().into_bytes(),
        true,
    ) {
        Ok(()) => {
            tracing::info!(key_id = %key.key_id, "credential key created");
            Ok(key.key_id)
        }
        // Another request made one first: use that one. The key made here stays unused.
        Err(crate::store::StoreError::Exists(_)) => Box::pin(credential_key(app)).await,
        Err(e) => Err(e.into()),
    }
}

/// Creates an API key for `aap`: returns its record and the SecretKey, which nobody can
/// read again afterwards.
pub async fn create(
    app: &Appliance,
    aap: &str,
    validity_days: u32,
    description: &str,
) -> Result<(ApiKey, Zeroizing<String>), KmsError> {
    let days = if validity_days == 0 {
        DEFAULT_VALIDITY_DAYS
    } else {
        validity_days
    };
    if days > MAX_VALIDITY_DAYS {
        return Err(KmsError::invalid(format!(
            "an API key is valid for 1 to {MAX_VALIDITY_DAYS} days"
        )));
    }
    if description.len() > 1024 {
        return Err(KmsError::invalid("Description is longer than 1024 bytes"));
    }
    manage::get::<ApplicationAccessPoint>(&*app.store, aap)?;
    let mut id_bytes = [0u8; 64];
    crate::crypto::primitives::random(&mut id_bytes)
        .map_err(|e| KmsError::new(ErrorCode::Internal, e))?;
    let secret_id = format!(
        "{SECRET_ID_PREFIX}{}",
        alphanumeric(&id_bytes, ID_CHARS)
            .ok_or_else(|| KmsError::new(ErrorCode::Internal, "random bytes ran out"))?
            .as_str()
    );
    let random = crate::crypto::random(app, 128).await?;
    let secret_key = alphanumeric(&random, SECRET_KEY_CHARS)
        .ok_or_else(|| KmsError::new(ErrorCode::Internal, "random bytes ran out"))?;
    let key_id = credential_key(app).await?;
    let sealed = crate::crypto::encrypt(
        app,
        &key_id,
        Zeroizing::new(secret_key.as_bytes().to_vec()),
        &sealing_aad(&secret_id, aap),
    )
    .await?;
    let now = crate::clock::now_unix();
    let record = manage::create(
        &*app.store,
        ApiKey {
            secret_id,
            aap_name: aap.to_owned(),
            sealed_secret_key: sealed.blob,
            not_before: now,
            not_after: now + i64::from(days) * 86_400,
            create_time: String::new(),
            description: description.to_owned(),
        },
    )?;
    Ok((record, secret_key))
}

/// The API keys of one AAP (every AAP when `aap` is empty).
pub fn list(store: &dyn AccessStore, aap: &str) -> Result<Vec<ApiKey>, KmsError> {
    manage::api_keys(store, aap)
}

pub fn delete(store: &dyn AccessStore, secret_id: &str) -> Result<(), KmsError> {
    manage::delete::<ApiKey>(store, secret_id)
}

/// What operators see of an API key at `now` (never the SecretKey, sealed or not).
pub fn summary(k: &ApiKey, now: i64) -> ApiKeySummary {
    let (days_left, state) = clientkey::standing(k.not_before, k.not_after, 0, now);
    ApiKeySummary {
        secret_id: k.secret_id.clone(),
        aap_name: k.aap_name.clone(),
        not_before: k.not_before,
        not_after: k.not_after,
        create_time: k.create_time.clone(),
        description: k.description.clone(),
        days_left,
        state: state.into(),
    }
}

/// The API key `secret_id`, if it exists.
pub fn find(store: &dyn AccessStore, secret_id: &str) -> Result<Option<ApiKey>, KmsError> {
    Ok(records::get::<ApiKey>(store, secret_id)?)
}

/// The SecretKey of an API key, opened inside an HSM.
pub async fn secret_key(app: &Appliance, key: &ApiKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let opened = crate::crypto::decrypt(
        app,
        &key.sealed_secret_key,
        &sealing_aad(&key.secret_id, &key.aap_name),
    )
    .await?;
    Ok(opened.plaintext)
}

/// API keys are made by [`create`] and never changed.
impl Managed for ApiKey {
    fn check(&self, store: &dyn AccessStore) -> Result<(), KmsError> {
        manage::get::<ApplicationAccessPoint>(store, &self.aap_name)?;
        Ok(())
    }

    fn stamp(&mut self, now: String, change: Change) {
        if change == Change::Created {
            self.create_time = now;
        }
    }

    fn log(&self, change: Change) {
        tracing::info!(secret_id = %self.secret_id, aap = %self.aap_name, not_after = self.not_after, "API key {change}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_become_unbiased_letters_and_digits() {
        let bytes: Vec<u8> = (0..=255).collect();
        let s = alphanumeric(&bytes, 62).unwrap();
        assert_eq!(s.as_str(), std::str::from_utf8(ALPHANUMERIC).unwrap());
        // 248..=255 are skipped, so 256 bytes give 248 characters and no more.
        assert!(alphanumeric(&bytes, 249).is_none());
        assert_eq!(alphanumeric(&bytes, 248).unwrap().len(), 248);
        assert!(alphanumeric(&[255; 40], 1).is_none());
    }

    #[test]
    fn a_secret_key_opens_only_as_its_own_secret_id() {
        assert_ne!(sealing_aad("AKIDa", "app"), sealing_aad("AKIDb", "app"));
        assert_ne!(sealing_aad("AKIDa", "app"), sealing_aad("AKIDa", "other"));
    }
}
