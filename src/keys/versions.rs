//! Key versions and rotation.
//!
//! A key has one or more versions, oldest first in [`KeyRecord::key_versions`]. The newest is
//! the primary version: it encrypts. Every version keeps decrypting what it encrypted until
//! the key is deleted. A rotation makes a new version inside an HSM (three fresh AES keys,
//! see [`super::token`]) and makes it primary; nothing is re-encrypted (ReEncrypt moves a
//! ciphertext to the primary version on request).
//!
//! Automatic rotation: the record keeps the next rotation time; the clock job
//! ([`crate::jobs`]) rotates a due key by writing the new version and the following rotation
//! time in one compare-and-swap on the record it read, so a due rotation happens once even
//! when a run is interrupted or two run at once. A key that is not Enabled is not rotated
//! until it is enabled again.

use super::record::{
    change_key, describe, not_usable, page, page_slice, ORIGIN_EXTERNAL, STATE_ENABLED,
};
use super::spec::{KeySpec, Usage};
use super::{single_token, token};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::hsm::capability::Need;
use crate::hsm::pool::Cost;
use crate::proto::KeyVersion;
use crate::store::records::KeyRecord;
use crate::store::records::KeyTokenRecord;
use crate::store::TokenChange;

const DAY: u64 = 86_400;
/// Shortest automatic rotation interval.
pub const MIN_INTERVAL: u64 = 7 * DAY;
/// Longest automatic rotation interval, and the default.
pub const MAX_INTERVAL: u64 = 365 * DAY;

/// Checks an automatic rotation interval in seconds; 0 means the default, 365 days.
pub fn check_interval(seconds: u64) -> Result<u64, KmsError> {
    if seconds == 0 {
        return Ok(MAX_INTERVAL);
    }
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&seconds) {
        return Err(KmsError::invalid(format!(
            "RotationInterval must be 7 to 365 days ({MIN_INTERVAL} to {MAX_INTERVAL} seconds); \
             got {seconds} seconds"
        )));
    }
    Ok(seconds)
}

fn refuse_external(key: &KeyRecord) -> Result<(), KmsError> {
    if key.origin == ORIGIN_EXTERNAL {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            format!(
                "key {} holds imported material, which cannot rotate: create a new EXTERNAL \
                 key and import the new material there",
                key.key_id
            ),
        ));
    }
    Ok(())
}

/// Why a key cannot get a new version, if it cannot.
fn check_rotatable(key: &KeyRecord) -> Result<(), KmsError> {
    refuse_external(key)?;
    if key.key_state != STATE_ENABLED {
        return Err(not_usable(key));
    }
    Ok(())
}

/// Makes a new version of `key_id` and makes it primary (manual rotation). With `due`, only
/// if the key's next automatic rotation is still `due` (the clock job); returns `None` when
/// it is not, because another run rotated it or the policy changed.
async fn rotate(
    app: &Appliance,
    key_id: &str,
    due: Option<i64>,
) -> Result<Option<KeyVersion>, KmsError> {
    for _ in 0..8 {
        let key = describe(app, key_id)?;
        if let Some(due) = due {
            // Turned off, rotated by another run, or disabled since it was found due.
            if !rotation_may_run(&key) || key.next_rotation_unix != due {
                return Ok(None);
            }
        }
        check_rotatable(&key)?;
        let spec = super::spec::KeySpec::of(&key)?;
        let usage = super::spec::Usage::of(&key);
        let version_id = uuid::Uuid::new_v4().to_string();
        let now = crate::clock::now_unix();
        let created = crate::clock::rfc3339(now);
        let tok = generate_token(app, spec, usage, &key.key_id, &version_id, &created).await?;
        let mut new = key.clone();
        new.key_versions.push(version_id.clone());
        new.primary_key_version = version_id.clone();
        new.last_rotation_date = created.clone();
        if new.automatic_rotation {
            new.next_rotation_unix = now + new.rotation_interval_seconds as i64;
        }
        if app
            .store
            .commit_key_change(&key, &new, TokenChange::Put(&tok))?
        {
            tracing::info!(key_id = %key_id, key_version_id = %version_id, automatic = due.is_some(), "key rotated");
            return Ok(Some(KeyVersion {
                key_id: key.key_id,
                key_version_id: version_id,
                creation_date: created,
                primary: true,
            }));
        }
        // The record changed meanwhile: decide again on the new one (the generated keys
        // were never stored, so nothing is left behind).
    }
    Err(crate::store::StoreError::Conflict.into())
}

/// Manual rotation: a new primary version.
pub async fn create_version(app: &Appliance, key_id: &str) -> Result<KeyVersion, KmsError> {
    rotate(app, key_id, None)
        .await?
        .ok_or_else(|| KmsError::new(ErrorCode::Internal, "rotation made no version"))
}

/// The automatic rotation of a key that was due at `due` (Unix seconds); `false` when there
/// was nothing to do any more.
pub async fn rotate_due(app: &Appliance, key_id: &str, due: i64) -> Result<bool, KmsError> {
    Ok(rotate(app, key_id, Some(due)).await?.is_some())
}

/// Turns automatic rotation on (every `interval` seconds, counted from now) or off.
pub fn update_rotation_policy(
    app: &Appliance,
    key_id: &str,
    enable: bool,
    interval: u64,
) -> Result<KeyRecord, KmsError> {
    let interval = if enable { check_interval(interval)? } else { 0 };
    let record = change_key(app, key_id, |k| {
        let mut new = k.clone();
        if enable {
            refuse_external(k)?;
            new.automatic_rotation = true;
            new.rotation_interval_seconds = interval;
            new.next_rotation_unix = crate::clock::now_unix() + interval as i64;
        } else {
            new.automatic_rotation = false;
            new.next_rotation_unix = 0;
        }
        Ok(new)
    })?;
    tracing::info!(key_id = %key_id, enable, interval, "rotation policy updated");
    Ok(record)
}

/// The creation date of a version: its token's, or the key's when the token is gone (an
/// imported key whose material was deleted).
fn version_of(app: &Appliance, key: &KeyRecord, version: &str) -> Result<KeyVersion, KmsError> {
    let created = match app.store.key_token(&key.key_id, version)? {
        Some(t) => t.creation_date,
        None => key.creation_date.clone(),
    };
    Ok(KeyVersion {
        key_id: key.key_id.clone(),
        key_version_id: version.to_owned(),
        creation_date: created,
        primary: version == key.primary_key_version,
    })
}

/// One page of a key's versions, oldest first, and their number.
pub fn list(
    app: &Appliance,
    key_id: &str,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<KeyVersion>, u32, u32, u64), KmsError> {
    let key = describe(app, key_id)?;
    let (page_number, page_size) = page(page_number, page_size)?;
    let versions = page_slice(&key.key_versions, page_number, page_size)
        .into_iter()
        .map(|v| version_of(app, &key, v))
        .collect::<Result<_, _>>()?;
    Ok((
        versions,
        page_number,
        page_size,
        key.key_versions.len() as u64,
    ))
}

/// One version of a key.
pub fn describe_version(
    app: &Appliance,
    key_id: &str,
    key_version_id: &str,
) -> Result<KeyVersion, KmsError> {
    let key = describe(app, key_id)?;
    let wanted = uuid::Uuid::try_parse(key_version_id.trim())
        .map(|u| u.to_string())
        .unwrap_or_default();
    if !key.key_versions.contains(&wanted) {
        return Err(KmsError::new(
            ErrorCode::ResourceNotFound,
            format!("key {key_id} has no version {key_version_id:?}"),
        ));
    }
    version_of(app, &key, &wanted)
}

/// Whether a key is in a state where automatic rotation may run.
pub fn rotation_may_run(key: &KeyRecord) -> bool {
    key.automatic_rotation && key.key_state == STATE_ENABLED && key.origin != ORIGIN_EXTERNAL
}

/// How long generating one key pair may take (RSA-4096 on a slow device); other calls keep
/// the pool's call deadline.
const KEY_PAIR_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Generates the token of a new version of a key of `spec` and `usage`, inside a member that
/// offers the spec's mechanisms.
pub(super) async fn generate_token(
    app: &Appliance,
    spec: KeySpec,
    usage: Usage,
    key_id: &str,
    version_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, KmsError> {
    let dk_id = app.instance()?.domain_key_id;
    let (key_id, version_id, created) =
        (key_id.to_owned(), version_id.to_owned(), created.to_owned());
    let needs = [Need::Spec(spec.as_str())];
    // No member able to make the spec: the spec is what is unsupported.
    let spec_error = |e: crate::hsm::HsmError| match e {
        crate::hsm::HsmError::Unsupported { .. } => {
            KmsError::new(ErrorCode::UnsupportedKeySpec, e.to_string())
        }
        other => other.into(),
    };
    let token = if spec.is_symmetric() {
        app.pool
            .run_needing(&needs, Cost::Light, move |m, s| {
                token::generate(m, s, &key_id, &version_id, spec.bits(), &dk_id, &created)
            })
            .await
            .map_err(spec_error)?
    } else {
        app.pool
            .run_needing(&needs, Cost::Generation(KEY_PAIR_DEADLINE), move |m, s| {
                single_token::generate(m, s, &key_id, &version_id, spec, usage, &dk_id, &created)
            })
            .await
            .map_err(spec_error)?
    };
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_seven_to_365_days() {
        assert_eq!(check_interval(0).unwrap(), 365 * DAY);
        assert_eq!(check_interval(7 * DAY).unwrap(), 7 * DAY);
        assert_eq!(check_interval(365 * DAY).unwrap(), 365 * DAY);
        assert!(check_interval(7 * DAY - 1).is_err());
        assert!(check_interval(365 * DAY + 1).is_err());
    }
}
