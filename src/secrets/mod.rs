//! The secrets manager: versioned values kept encrypted under customer master keys.
//!
//! - [`names`]: what callers may name and send;
//! - [`stages`]: stages and versions of a record (ACSCurrent, ACSPrevious, custom);
//! - [`manage`]: metadata changes, deletion and restore, policies, listings;
//! - [`replace`]: a version's value replaced in place (Tencent SSM's UpdateSecret).
//!
//! Every version is sealed with a fresh data key that the secret's CMK protects inside an
//! HSM member ([`crate::crypto::envelope`]); the associated data binds it to the secret's
//! name, the version id and the data type.
//!
//! The functions here run an operation on a record that [`crate::ops::secrets`] has read
//! and authorised for the caller ([`crate::access::secrets`]); a caller who may not see a
//! secret learns only that the operation is forbidden, whether the secret exists or not.
//!
//! A secret is enabled, disabled ([`manage::set_enabled`]) or pending deletion. A disabled
//! secret keeps its versions, but its values are neither read nor written
//! (`SecretDisabled`) until it is enabled again; its metadata, listings, deletion and
//! restore still work, and a restored secret is as enabled or disabled as it was.

pub mod manage;
pub mod names;
pub mod replace;
pub mod stages;

use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::crypto::envelope::{self, Envelope};
use crate::error::{ErrorCode, KmsError};
use crate::keys;
use crate::proto::{SecretMetadata, Tag};
use crate::store::records::{SecretRecord, SecretVersionRecord, TagRecord};
use crate::store::{SecretChange, SecretStore, StoreError};
use names::{managed_product, DataType, CURRENT};
use zeroize::Zeroizing;

/// The secret type of every secret hkms keeps.
pub const GENERIC: &str = "Generic";
/// Secret states.
pub const STATE_NORMAL: &str = "Normal";
pub const STATE_PENDING_DELETION: &str = "PendingDeletion";
pub const STATE_DISABLED: &str = "Disabled";

/// The appliance, and the caller an operation runs for (named in the audit log; it was
/// authorised before).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub app: &'a Appliance,
    pub caller: &'a Caller,
}

/// A value read back.
pub struct Value {
    pub secret: SecretRecord,
    pub version_id: String,
    pub data_type: String,
    pub create_time: String,
    pub stages: Vec<String>,
    pub data: Zeroizing<Vec<u8>>,
}

/// What a new secret starts with.
pub struct NewSecret {
    pub name: String,
    pub data: Zeroizing<Vec<u8>>,
    pub data_type: String,
    pub version_id: String,
    pub encryption_key_id: String,
    pub description: String,
    pub tags: Vec<TagRecord>,
    pub extended_config: String,
}

/// A new version.
pub struct NewVersion {
    pub data: Zeroizing<Vec<u8>>,
    pub data_type: String,
    pub version_id: String,
    pub stages: Vec<String>,
}

/// Debug output of the structs that carry a value: everything but the value.
macro_rules! debug_without_data {
    ($t:ty, $($field:ident),+) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($field), &self.$field))+
                    .field("data", &format_args!("<{} bytes>", self.data.len()))
                    .finish()
            }
        }
    };
}
debug_without_data!(Value, secret, version_id, data_type, create_time, stages);
debug_without_data!(
    NewSecret,
    name,
    data_type,
    version_id,
    encryption_key_id,
    description,
    tags,
    extended_config
);
debug_without_data!(NewVersion, data_type, version_id, stages);

pub(crate) fn not_found(name: &str) -> KmsError {
    KmsError::new(
        ErrorCode::ResourceNotFound,
        format!("secret {name:?} does not exist"),
    )
}

/// Refuses reads and writes of a secret whose deletion is pending.
pub(crate) fn require_normal(rec: &SecretRecord) -> Result<(), KmsError> {
    if rec.planned_delete_unix != 0 {
        return Err(KmsError::new(
            ErrorCode::SecretPendingDeletion,
            format!(
                "secret {} is scheduled for deletion on {}; restore it first (RestoreSecret)",
                rec.name,
                crate::clock::rfc3339(rec.planned_delete_unix)
            ),
        ));
    }
    Ok(())
}

/// Refuses reads and writes of a value: of a secret whose deletion is pending, or that is
/// disabled.
pub(crate) fn require_enabled(rec: &SecretRecord) -> Result<(), KmsError> {
    require_normal(rec)?;
    if rec.disabled {
        return Err(KmsError::new(
            ErrorCode::SecretDisabled,
            format!(
                "secret {} is disabled: its values are neither read nor written until it is enabled again (EnableSecret)",
                rec.name
            ),
        ));
    }
    Ok(())
}

/// The associated data of a version: it binds the value and its data key to the secret's
/// name, the version id and the data type.
fn context(name: &str, version_id: &str, data_type: &str) -> Vec<u8> {
    let mut c = b"hkms secret v1".to_vec();
    for part in [name, version_id, data_type] {
        c.push(0);
        c.extend_from_slice(part.as_bytes());
    }
    c
}

fn version_id_or_new(version_id: &str) -> Result<String, KmsError> {
    if version_id.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    names::check_id("VersionId", version_id)?;
    Ok(version_id.to_owned())
}

pub(crate) async fn seal_version(
    app: &Appliance,
    name: &str,
    key_id: &str,
    version_id: &str,
    data_type: DataType,
    data: &[u8],
) -> Result<SecretVersionRecord, KmsError> {
    let sealed = envelope::seal(
        app,
        key_id,
        &context(name, version_id, data_type.as_str()),
        data,
    )
    .await?;
    Ok(SecretVersionRecord {
        secret_name: name.to_owned(),
        version_id: version_id.to_owned(),
        data_type: data_type.as_str().to_owned(),
        create_time: crate::clock::now_rfc3339(),
        sealed_data_key: sealed.sealed_data_key,
        iv: sealed.iv,
        ciphertext: sealed.ciphertext,
    })
}

fn version_exists(name: &str, version_id: &str) -> KmsError {
    KmsError::new(
        ErrorCode::ResourceExists,
        format!("secret {name} has a version {version_id} already"),
    )
}

/// Stores `change(rec)` in place of `rec`, with `add` as a new version; re-reads and
/// re-applies when another writer changed the secret meanwhile. A secret deleted and created
/// again meanwhile is another secret (its key and policy may differ): refused.
pub(crate) fn commit(
    app: &Appliance,
    rec: SecretRecord,
    add: Option<&SecretVersionRecord>,
    change: &dyn Fn(&mut SecretRecord) -> Result<Vec<String>, KmsError>,
) -> Result<SecretRecord, KmsError> {
    commit_to(&*app.store, rec, add, change)
}

/// [`commit`] to `store`.
pub(crate) fn commit_to<S: SecretStore + ?Sized>(
    store: &S,
    mut rec: SecretRecord,
    add: Option<&SecretVersionRecord>,
    change: &dyn Fn(&mut SecretRecord) -> Result<Vec<String>, KmsError>,
) -> Result<SecretRecord, KmsError> {
    let (created, key_id) = (rec.create_time.clone(), rec.kms_key_id.clone());
    for _ in 0..8 {
        if rec.create_time != created || rec.kms_key_id != key_id {
            return Err(KmsError::new(
                ErrorCode::Conflict,
                format!(
                    "secret {} was deleted and created again meanwhile; try again",
                    rec.name
                ),
            ));
        }
        let mut new = rec.clone();
        let remove = change(&mut new)?;
        new.update_time = crate::clock::now_rfc3339();
        let result = store.change_secret(SecretChange {
            expected: Some(&rec),
            new: Some(&new),
            add,
            remove: &remove,
        });
        match result {
            Ok(()) => return Ok(new),
            Err(StoreError::Conflict) => {
                rec = store
                    .secret(&rec.name)?
                    .ok_or_else(|| not_found(&rec.name))?;
            }
            Err(StoreError::Exists(_)) => {
                let v = add.map(|v| v.version_id.as_str()).unwrap_or_default();
                return Err(version_exists(&rec.name, v));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(KmsError::new(
        ErrorCode::Conflict,
        format!("secret {} kept changing; try again", rec.name),
    ))
}

/// Checks what a new secret starts with, before its CMK is looked at: the value, the
/// version id, the description, the extended configuration, the tags, and that a CMK is
/// named.
pub fn check_new(new: &NewSecret) -> Result<(), KmsError> {
    let data_type = DataType::parse(&new.data_type)?;
    names::check_value(&new.data, data_type)?;
    if !new.version_id.is_empty() {
        names::check_id("VersionId", &new.version_id)?;
    }
    names::check_description(&new.description)?;
    names::check_extended_config(&new.extended_config)?;
    keys::tags::check_all(&new.tags)?;
    if new.encryption_key_id.is_empty() {
        return Err(KmsError::invalid(
            "EncryptionKeyId is required: the AES key (id or alias/<name>) that protects the secret",
        ));
    }
    Ok(())
}

/// CreateSecret: the secret and its first version (ACSCurrent), under the CMK `key_id`
/// (resolved, and authorised for the caller). `new` passed [`check_new`].
pub async fn create(
    r: Request<'_>,
    new: NewSecret,
    key_id: String,
) -> Result<SecretRecord, KmsError> {
    names::check_name(&new.name)?;
    check_new(&new)?;
    let data_type = DataType::parse(&new.data_type)?;
    let version_id = version_id_or_new(&new.version_id)?;
    if keys::describe(r.app, &key_id)?.internal {
        return Err(KmsError::invalid(format!(
            "key {key_id} is internal to hkmsd and cannot protect secrets"
        )));
    }
    if r.app.store.secret(&new.name)?.is_some() {
        return Err(exists(&new.name));
    }
    let version =
        seal_version(r.app, &new.name, &key_id, &version_id, data_type, &new.data).await?;
    let now = crate::clock::now_rfc3339();
    let mut rec = SecretRecord {
        name: new.name.clone(),
        description: new.description,
        kms_key_id: key_id,
        secret_type: GENERIC.into(),
        create_time: now.clone(),
        update_time: now,
        tags: new.tags,
        extended_config: new.extended_config,
        ..Default::default()
    };
    stages::add_version(&mut rec, &version_id, &[CURRENT.to_owned()])?;
    match r.app.store.change_secret(SecretChange {
        expected: None,
        new: Some(&rec),
        add: Some(&version),
        remove: &[],
    }) {
        Ok(()) => {}
        Err(StoreError::Exists(_)) => return Err(exists(&new.name)),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(caller = %r.caller, secret = %rec.name, key_id = %rec.kms_key_id, "secret created");
    Ok(rec)
}

fn exists(name: &str) -> KmsError {
    KmsError::new(
        ErrorCode::ResourceExists,
        format!("a secret named {name:?} exists already"),
    )
}

/// GetSecretValue: by version id, by stage, or ACSCurrent.
pub async fn get_value(
    r: Request<'_>,
    rec: SecretRecord,
    stage: &str,
    version_id: &str,
) -> Result<Value, KmsError> {
    require_enabled(&rec)?;
    let name = rec.name.as_str();
    let chosen = stages::choose(&rec, stage, version_id)?;
    // Deleted or pruned since the record was read: as if it had never been there.
    let v = r
        .app
        .store
        .secret_version(name, &chosen)?
        .ok_or_else(|| not_found(name))?;
    let sealed = Envelope {
        sealed_data_key: v.sealed_data_key,
        iv: v.iv,
        ciphertext: v.ciphertext,
    };
    let data = envelope::open(
        r.app,
        &rec.kms_key_id,
        &context(name, &chosen, &v.data_type),
        &sealed,
    )
    .await
    .map_err(|e| match e.code {
        // The caller sent no ciphertext: a version that does not open was altered or moved
        // in the store.
        ErrorCode::InvalidCiphertext => {
            tracing::error!(secret = name, version_id = %chosen, "a stored secret version does not open: the store was altered");
            KmsError::new(
                ErrorCode::Internal,
                format!("version {chosen} of secret {name} cannot be decrypted"),
            )
        }
        _ => e,
    })?;
    Ok(Value {
        stages: stages::stages_of(&rec, &chosen),
        secret: rec,
        version_id: chosen,
        data_type: v.data_type,
        create_time: v.create_time,
        data,
    })
}

/// PutSecretValue: a new version, ACSCurrent unless other stages are named. Returns the
/// record and the new version's id.
pub async fn put_value(
    r: Request<'_>,
    rec: SecretRecord,
    new: NewVersion,
) -> Result<(SecretRecord, String), KmsError> {
    require_enabled(&rec)?;
    let name = rec.name.clone();
    let name = name.as_str();
    let data_type = DataType::parse(&new.data_type)?;
    names::check_value(&new.data, data_type)?;
    let version_id = version_id_or_new(&new.version_id)?;
    let wanted = stages::requested(&new.stages)?;
    if rec.version_ids.contains(&version_id) {
        return Err(version_exists(name, &version_id));
    }
    let version = seal_version(
        r.app,
        name,
        &rec.kms_key_id,
        &version_id,
        data_type,
        &new.data,
    )
    .await?;
    let rec = commit(r.app, rec, Some(&version), &|rec| {
        require_enabled(rec)?;
        if rec.version_ids.contains(&version_id) {
            return Err(version_exists(name, &version_id));
        }
        stages::add_version(rec, &version_id, &wanted)
    })?;
    tracing::info!(caller = %r.caller, secret = name, version_id = %version_id, "secret value put");
    Ok((rec, version_id))
}

/// UpdateSecretVersionStage.
pub fn update_stage(
    r: Request<'_>,
    rec: SecretRecord,
    stage: &str,
    from: &str,
    to: &str,
) -> Result<SecretRecord, KmsError> {
    require_enabled(&rec)?;
    let rec = commit(r.app, rec, None, &|rec| {
        require_enabled(rec)?;
        stages::move_stage(rec, stage, from, to)?;
        Ok(Vec::new())
    })?;
    tracing::info!(caller = %r.caller, secret = %rec.name, stage, from, to, "secret stage moved");
    Ok(rec)
}

/// The secrets the key `key_id` protects (a key scheduled for deletion warns about them).
pub fn protected_by(app: &Appliance, key_id: &str) -> Result<Vec<String>, KmsError> {
    Ok(app
        .store
        .secrets()?
        .into_iter()
        .filter(|s| s.kms_key_id == key_id)
        .map(|s| s.name)
        .collect())
}

/// The public view of a record.
pub fn metadata(rec: &SecretRecord) -> SecretMetadata {
    let pending = rec.planned_delete_unix != 0;
    SecretMetadata {
        secret_name: rec.name.clone(),
        description: rec.description.clone(),
        encryption_key_id: rec.kms_key_id.clone(),
        secret_type: rec.secret_type.clone(),
        create_time: rec.create_time.clone(),
        update_time: rec.update_time.clone(),
        secret_state: if pending {
            STATE_PENDING_DELETION
        } else if rec.disabled {
            STATE_DISABLED
        } else {
            STATE_NORMAL
        }
        .into(),
        planned_delete_time: if pending {
            crate::clock::rfc3339(rec.planned_delete_unix)
        } else {
            String::new()
        },
        tags: rec
            .tags
            .iter()
            .map(|t| Tag {
                tag_key: t.key.clone(),
                tag_value: t.value.clone(),
            })
            .collect(),
        managed_product: managed_product(&rec.name).unwrap_or_default().to_owned(),
        has_policy: !rec.policy.is_empty(),
        extended_config: rec.extended_config.clone(),
        version_count: rec.version_ids.len() as u32,
    }
}
