//! Scheduled deletion and deletion protection.
//!
//! A key is deleted in two steps. `ScheduleKeyDeletion` (the key must be Disabled, or
//! PendingImport) starts a pending window of 7 to 366 days: the key is `PendingDeletion` and
//! refuses every use; `CancelKeyDeletion` brings it back, Disabled (PendingImport when it
//! has no material), until the date. When the window ends, the clock job ([`crate::jobs`])
//! destroys it: its record, every token and its versions in one transaction, then its
//! aliases and import parameters, and the members forget its unwrapped keys. From then on nothing in the store can decrypt what
//! the key encrypted (the README says what a copy of the store made before can still do).
//!
//! Deletion protection, per key (`SetDeletionProtection`) or for the whole instance
//! ([`set_blocked`]), refuses to schedule a deletion; it does not stop one already
//! scheduled (cancel it).

use super::record::{
    change_key, describe, ORIGIN_EXTERNAL, STATE_DISABLED, STATE_ENABLED, STATE_PENDING_DELETION,
    STATE_PENDING_IMPORT,
};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::store::named::Space;
use crate::store::records::KeyRecord;

/// Shortest and longest pending window, in days.
pub const MIN_WINDOW_DAYS: u32 = 7;
pub const MAX_WINDOW_DAYS: u32 = 366;
/// The instance setting that blocks scheduling any deletion.
const DELETION_BLOCKED: &str = "key_deletion_blocked";
const MAX_PROTECTION_DESCRIPTION: usize = 1024;

/// Whether the instance-wide switch blocks every deletion.
pub fn blocked(app: &Appliance) -> Result<bool, KmsError> {
    Ok(app
        .store
        .get_named(Space::Settings, DELETION_BLOCKED)?
        .is_some_and(|v| v.first() == Some(&1)))
}

/// Turns the instance-wide switch on or off.
pub fn set_blocked(app: &Appliance, blocked: bool) -> Result<bool, KmsError> {
    app.instance()?;
    app.store.put_named(
        Space::Settings,
        DELETION_BLOCKED,
        vec![u8::from(blocked)],
        false,
    )?;
    tracing::info!(blocked, "instance-wide key deletion protection changed");
    Ok(blocked)
}

/// Schedules the deletion of a key in `window_days` days.
pub fn schedule(app: &Appliance, key_id: &str, window_days: u32) -> Result<KeyRecord, KmsError> {
    if !(MIN_WINDOW_DAYS..=MAX_WINDOW_DAYS).contains(&window_days) {
        return Err(KmsError::invalid(format!(
            "PendingWindowInDays must be {MIN_WINDOW_DAYS} to {MAX_WINDOW_DAYS}; got {window_days}"
        )));
    }
    describe(app, key_id)?;
    if blocked(app)? {
        return Err(KmsError::new(
            ErrorCode::DeletionProtected,
            "instance-wide deletion protection is on: no key deletion can be scheduled \
             (hkms instance key-deletion allow)",
        ));
    }
    let record = change_key(app, key_id, |k| {
        if k.deletion_protection {
            return Err(KmsError::new(
                ErrorCode::DeletionProtected,
                format!(
                    "key {key_id} has deletion protection ({}); turn it off first",
                    if k.deletion_protection_description.is_empty() {
                        "no reason given"
                    } else {
                        &k.deletion_protection_description
                    }
                ),
            ));
        }
        if k.internal {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!("key {key_id} is an internal key that hkmsd itself uses"),
            ));
        }
        match k.key_state.as_str() {
            STATE_DISABLED | STATE_PENDING_IMPORT => {}
            STATE_ENABLED => {
                return Err(KmsError::new(
                    ErrorCode::InvalidState,
                    format!("key {key_id} is Enabled: disable it first (hkms key disable)"),
                ))
            }
            other => {
                return Err(KmsError::new(
                    ErrorCode::InvalidState,
                    format!("key {key_id} is {other}: its deletion is scheduled already"),
                ))
            }
        }
        Ok(KeyRecord {
            key_state: STATE_PENDING_DELETION.to_owned(),
            deletion_unix: crate::clock::now_unix() + i64::from(window_days) * 86_400,
            ..k.clone()
        })
    })?;
    tracing::warn!(key_id = %key_id, deletion_date = %crate::clock::rfc3339(record.deletion_unix), "key deletion scheduled");
    Ok(record)
}

/// Cancels a scheduled deletion: the key is Disabled again, or PendingImport when it has no
/// material. Refused once the date has passed (the next job run destroys the key).
pub fn cancel(app: &Appliance, key_id: &str) -> Result<KeyRecord, KmsError> {
    let record = change_key(app, key_id, |k| {
        if k.key_state != STATE_PENDING_DELETION {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!("key {key_id} is {}, not PendingDeletion", k.key_state),
            ));
        }
        if crate::clock::now_unix() >= k.deletion_unix {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!(
                    "the deletion date of key {key_id} ({}) has passed; it is being destroyed",
                    crate::clock::rfc3339(k.deletion_unix)
                ),
            ));
        }
        let has_material = k.origin != ORIGIN_EXTERNAL || k.material_present;
        Ok(KeyRecord {
            key_state: if has_material {
                STATE_DISABLED
            } else {
                STATE_PENDING_IMPORT
            }
            .to_owned(),
            deletion_unix: 0,
            ..k.clone()
        })
    })?;
    tracing::info!(key_id = %key_id, state = %record.key_state, "key deletion cancelled");
    Ok(record)
}

/// Turns a key's deletion protection on or off.
pub fn set_protection(
    app: &Appliance,
    key_id: &str,
    enable: bool,
    description: &str,
) -> Result<KeyRecord, KmsError> {
    if description.len() > MAX_PROTECTION_DESCRIPTION {
        return Err(KmsError::invalid(format!(
            "DeletionProtectionDescription is longer than {MAX_PROTECTION_DESCRIPTION} bytes"
        )));
    }
    let record = change_key(app, key_id, |k| {
        Ok(KeyRecord {
            deletion_protection: enable,
            deletion_protection_description: if enable {
                description.to_owned()
            } else {
                String::new()
            },
            ..k.clone()
        })
    })?;
    tracing::info!(key_id = %key_id, enable, "key deletion protection changed");
    Ok(record)
}

/// Destroys a key whose pending window ended at `due`; `false` when there is nothing to do
/// (deleted already, cancelled, or rescheduled). The record, every token and the version
/// index go in one transaction; its aliases and import parameters are then removed by
/// [`sweep`], which ends every job run.
pub async fn destroy_due(app: &Appliance, key_id: &str, due: i64) -> Result<bool, KmsError> {
    let key = match app.store.key(key_id)? {
        Some(k) => k,
        None => return Ok(false),
    };
    if key.key_state != STATE_PENDING_DELETION
        || key.deletion_unix != due
        || crate::clock::now_unix() < due
    {
        return Ok(false);
    }
    if !app.store.delete_key(&key)? {
        return Ok(false);
    }
    tracing::warn!(key_id = %key_id, versions = key.key_versions.len(), "key destroyed: its tokens are deleted and nothing it encrypted can be decrypted");
    app.pool.forget_versions(&key.key_versions).await;
    Ok(true)
}

/// Removes aliases and import parameters whose key no longer exists.
pub fn sweep(app: &Appliance) -> Result<(), KmsError> {
    for alias in super::alias::list(app, "")? {
        if app.store.key(&alias.key_id)?.is_none() {
            match super::alias::delete(app, &alias.alias_name) {
                Err(e) if e.code != ErrorCode::ResourceNotFound => return Err(e),
                _ => {
                    tracing::info!(alias = %alias.alias_name, key_id = %alias.key_id, "alias of a destroyed key removed")
                }
            }
        }
    }
    super::import::forget_params(app, super::import::Stale::OfMissingKeys)?;
    Ok(())
}
