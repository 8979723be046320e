//! Secret metadata, listings, enabling and disabling, deletion and restore, and secret
//! policies. Each function runs on a record [`crate::ops::secrets`] read and authorised.

use super::{commit, require_normal, stages, Request, STATE_PENDING_DELETION};
use crate::access::secrets::parse_policy;
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::keys::page_slice;
use crate::proto::SecretVersion;
use crate::store::records::{SecretRecord, TagRecord};
use crate::store::{SecretChange, StoreError};

/// Shortest and longest recovery window, and the default, in days.
pub const MIN_RECOVERY_DAYS: u32 = 7;
pub const MAX_RECOVERY_DAYS: u32 = 30;
pub const DEFAULT_RECOVERY_DAYS: u32 = 30;

/// What ListSecrets keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub name_prefix: String,
    /// Every tag must be present; an empty value matches any value.
    pub tags: Vec<TagRecord>,
}

/// The secrets that match `filter`, in name order (the caller keeps those it may list).
pub fn matching(app: &Appliance, filter: &Filter) -> Result<Vec<SecretRecord>, KmsError> {
    Ok(app
        .store
        .secrets()?
        .into_iter()
        .filter(|s| s.name.starts_with(&filter.name_prefix))
        .filter(|s| crate::keys::tags::carries(&s.tags, &filter.tags))
        .collect())
}

/// ListSecretVersionIds: the versions oldest first (with `include_deprecated`, also those
/// that hold no stage), one page of them, and how many there are.
pub fn list_versions(
    r: Request<'_>,
    rec: &SecretRecord,
    include_deprecated: bool,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<SecretVersion>, u64, u32, u32), KmsError> {
    let (page_number, page_size) = crate::keys::page(page_number, page_size)?;
    let name = rec.name.as_str();
    let listed: Vec<(&String, Vec<String>)> = rec
        .version_ids
        .iter()
        .map(|id| (id, stages::stages_of(rec, id)))
        .filter(|(_, stages)| include_deprecated || !stages.is_empty())
        .collect();
    let total = listed.len() as u64;
    // Only the page's versions are read from the store.
    let mut page = Vec::new();
    for (id, version_stages) in page_slice(listed, page_number, page_size) {
        let v = r.app.store.secret_version(name, id)?.unwrap_or_default();
        page.push(SecretVersion {
            version_id: id.clone(),
            version_stages,
            create_time: v.create_time,
            secret_data_type: v.data_type,
        });
    }
    Ok((page, total, page_number, page_size))
}

/// UpdateSecret: the description and extended configuration.
pub fn update(
    r: Request<'_>,
    rec: SecretRecord,
    description: Option<&str>,
    extended_config: Option<&str>,
) -> Result<SecretRecord, KmsError> {
    require_normal(&rec)?;
    if let Some(d) = description {
        super::names::check_description(d)?;
    }
    if let Some(c) = extended_config {
        super::names::check_extended_config(c)?;
    }
    commit(r.app, rec, None, &|rec| {
        require_normal(rec)?;
        if let Some(d) = description {
            rec.description = d.to_owned();
        }
        if let Some(c) = extended_config {
            rec.extended_config = c.to_owned();
        }
        Ok(Vec::new())
    })
}

/// How DeleteSecret deletes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deletion {
    /// Days before the deletion is final: 7..30, 30 when 0.
    pub recovery_window_in_days: u32,
    /// Every version at once, without a recovery window.
    pub force: bool,
    /// Refuse unless the secret is disabled (Tencent SSM deletes only disabled secrets).
    pub only_disabled: bool,
}

/// Refuses a deletion of an enabled secret when `d` asks for a disabled one.
fn check_disabled(rec: &SecretRecord, d: &Deletion) -> Result<(), KmsError> {
    if d.only_disabled && !rec.disabled && rec.planned_delete_unix == 0 {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            format!(
                "secret {} is enabled: disable it first (DisableSecret), then delete it",
                rec.name
            ),
        ));
    }
    Ok(())
}

/// DeleteSecret: schedules the deletion after a recovery window (7..30 days, 30 when 0), or
/// deletes every version at once. Returns when the deletion becomes final (`None`: done).
pub fn delete(r: Request<'_>, rec: SecretRecord, d: Deletion) -> Result<Option<i64>, KmsError> {
    let Deletion {
        recovery_window_in_days,
        force,
        ..
    } = d;
    let name = rec.name.clone();
    let name = name.as_str();
    check_disabled(&rec, &d)?;
    if force {
        if recovery_window_in_days != 0 {
            return Err(KmsError::invalid(
                "ForceDeleteWithoutRecovery takes no RecoveryWindowInDays",
            ));
        }
        remove(r.app, &rec)?;
        tracing::warn!(caller = %r.caller, secret = name, "secret deleted without recovery");
        return Ok(None);
    }
    let days = if recovery_window_in_days == 0 {
        DEFAULT_RECOVERY_DAYS
    } else {
        recovery_window_in_days
    };
    if !(MIN_RECOVERY_DAYS..=MAX_RECOVERY_DAYS).contains(&days) {
        return Err(KmsError::invalid(format!(
            "RecoveryWindowInDays must be {MIN_RECOVERY_DAYS} to {MAX_RECOVERY_DAYS}"
        )));
    }
    let due = crate::clock::now_unix() + i64::from(days) * 86_400;
    let rec = commit(r.app, rec, None, &|rec| {
        require_normal(rec)?;
        check_disabled(rec, &d)?;
        rec.planned_delete_unix = due;
        Ok(Vec::new())
    })?;
    tracing::info!(caller = %r.caller, secret = name, days, "secret deletion scheduled");
    Ok(Some(rec.planned_delete_unix))
}

fn remove(app: &Appliance, rec: &SecretRecord) -> Result<(), KmsError> {
    match app.store.change_secret(SecretChange {
        expected: Some(rec),
        new: None,
        add: None,
        remove: &[],
    }) {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(KmsError::new(
            ErrorCode::Conflict,
            format!("secret {} changed meanwhile; try again", rec.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// RestoreSecret: cancels a pending deletion; the secret is as enabled or disabled as it
/// was before.
pub fn restore(r: Request<'_>, rec: SecretRecord) -> Result<SecretRecord, KmsError> {
    let rec = commit(r.app, rec, None, &|rec| {
        if rec.planned_delete_unix == 0 {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!("secret {} is not {STATE_PENDING_DELETION}", rec.name),
            ));
        }
        rec.planned_delete_unix = 0;
        Ok(Vec::new())
    })?;
    tracing::info!(caller = %r.caller, secret = %rec.name, "secret deletion cancelled");
    Ok(rec)
}

/// EnableSecret (`enabled`) or DisableSecret. A secret pending deletion is neither: restore
/// it first. Enabling an enabled secret (or disabling a disabled one) changes nothing.
pub fn set_enabled(
    r: Request<'_>,
    rec: SecretRecord,
    enabled: bool,
) -> Result<SecretRecord, KmsError> {
    require_normal(&rec)?;
    if rec.disabled != enabled {
        return Ok(rec);
    }
    let rec = commit(r.app, rec, None, &|rec| {
        require_normal(rec)?;
        rec.disabled = !enabled;
        Ok(Vec::new())
    })?;
    let what = if enabled { "enabled" } else { "disabled" };
    tracing::info!(caller = %r.caller, secret = %rec.name, "secret {what}");
    Ok(rec)
}

/// Deletes secret `name` if its deletion is still due at `due` (a jobs run); `Ok(false)`
/// when it was restored, deleted or changed meanwhile.
pub fn delete_due(app: &Appliance, name: &str, due: i64) -> Result<bool, KmsError> {
    let Some(rec) = app.store.secret(name)? else {
        return Ok(false);
    };
    if rec.planned_delete_unix != due || due > crate::clock::now_unix() {
        return Ok(false);
    }
    match remove(app, &rec) {
        Ok(()) => {
            tracing::info!(secret = name, "secret deleted: its recovery window ended");
            Ok(true)
        }
        // Restored or changed meanwhile: the next run decides again.
        Err(e) if e.code == ErrorCode::Conflict => Ok(false),
        Err(e) => Err(e),
    }
}

/// SetSecretPolicy (an empty document is refused: use DeleteSecretPolicy).
pub fn set_policy(r: Request<'_>, rec: SecretRecord, policy: &str) -> Result<(), KmsError> {
    let name = rec.name.clone();
    parse_policy(policy)?;
    commit(r.app, rec, None, &|rec| {
        rec.policy = policy.to_owned();
        Ok(Vec::new())
    })?;
    tracing::info!(caller = %r.caller, secret = %name, "secret policy set");
    Ok(())
}

/// DeleteSecretPolicy.
pub fn delete_policy(r: Request<'_>, rec: SecretRecord) -> Result<(), KmsError> {
    let name = rec.name.clone();
    if rec.policy.is_empty() {
        return Err(not_found_policy(&name));
    }
    commit(r.app, rec, None, &|rec| {
        rec.policy.clear();
        Ok(Vec::new())
    })?;
    tracing::info!(caller = %r.caller, secret = %name, "secret policy deleted");
    Ok(())
}

fn not_found_policy(name: &str) -> KmsError {
    KmsError::new(
        ErrorCode::ResourceNotFound,
        format!("secret {name} has no secret policy"),
    )
}
