//! Customer master keys: creation inside an HSM, metadata, lifecycle.

pub mod alias;
pub mod spec;
pub mod token;

use crate::appliance::{now_rfc3339, Appliance};
use crate::error::{ErrorCode, KmsError};
use crate::store::records::{KeyRecord, KeyTokenRecord};
use spec::KeySpec;

pub const STATE_ENABLED: &str = "Enabled";
pub const STATE_DISABLED: &str = "Disabled";
pub const STATE_PENDING_DELETION: &str = "PendingDeletion";
pub const STATE_PENDING_IMPORT: &str = "PendingImport";

/// Material generated inside an HSM.
pub const ORIGIN_KMS: &str = "Aliyun_KMS";
/// Material imported by its owner.
pub const ORIGIN_EXTERNAL: &str = "EXTERNAL";

/// Largest description accepted.
const MAX_DESCRIPTION: usize = 8192;
/// Largest page of ListKeys.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks that a key id is a well-formed id before it reaches the store.
pub fn parse_key_id(key_id: &str) -> Result<uuid::Uuid, KmsError> {
    if key_id.is_empty() {
        return Err(KmsError::invalid("KeyId is required"));
    }
    uuid::Uuid::try_parse(key_id).map_err(|_| KmsError::key_not_found(key_id))
}

/// Creates a key: its first version is generated inside an HSM member and stored only as a
/// token wrapped under the domain key.
///
/// An `internal` key is one hkmsd keeps for its own use (the instance CA's intermediate
/// key): operators manage it, but no application can name, list, use or be granted it.
pub async fn create(
    app: &Appliance,
    key_spec: &str,
    key_usage: &str,
    description: &str,
    internal: bool,
) -> Result<KeyRecord, KmsError> {
    let spec = KeySpec::parse(key_spec)?;
    let usage = spec::parse_usage(key_usage)?;
    if description.len() > MAX_DESCRIPTION {
        return Err(KmsError::invalid(format!(
            "Description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    let instance = app.instance()?;
    let key_id = uuid::Uuid::new_v4().to_string();
    let version_id = uuid::Uuid::new_v4().to_string();
    let created = now_rfc3339();
    let token = {
        let (key_id, version_id, created) = (key_id.clone(), version_id.clone(), created.clone());
        let dk_id = instance.domain_key_id.clone();
        app.pool
            .run(move |m, s| {
                token::generate(m, s, &key_id, &version_id, spec.bits(), &dk_id, &created)
            })
            .await?
    };
    let record = KeyRecord {
        key_id: key_id.clone(),
        description: description.to_owned(),
        key_spec: spec.as_str().to_owned(),
        key_usage: usage.to_owned(),
        key_state: STATE_ENABLED.to_owned(),
        creation_date: created,
        primary_key_version: version_id.clone(),
        key_versions: vec![version_id],
        internal,
        ..Default::default()
    };
    app.store.create_key(&record, &token)?;
    tracing::info!(key_id = %key_id, spec = spec.as_str(), internal, "key created");
    Ok(record)
}

/// A key's record.
pub fn describe(app: &Appliance, key_id: &str) -> Result<KeyRecord, KmsError> {
    parse_key_id(key_id)?;
    app.instance()?;
    app.store
        .key(key_id)?
        .ok_or_else(|| KmsError::key_not_found(key_id))
}

/// One page of key ids (1-based page numbers), and the total count.
pub fn list(
    app: &Appliance,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<String>, u32, u32, u64), KmsError> {
    app.instance()?;
    let page_number = if page_number == 0 { 1 } else { page_number };
    let page_size = if page_size == 0 { 10 } else { page_size };
    if page_size > MAX_PAGE_SIZE {
        return Err(KmsError::invalid(format!(
            "PageSize must be 1..{MAX_PAGE_SIZE}"
        )));
    }
    let offset = (page_number as usize - 1).saturating_mul(page_size as usize);
    let (ids, total) = app.store.list_keys(offset, page_size as usize)?;
    Ok((ids, page_number, page_size, total))
}

/// Enables or disables a key. Disabled keys refuse every cryptographic operation.
pub fn set_enabled(app: &Appliance, key_id: &str, enabled: bool) -> Result<KeyRecord, KmsError> {
    describe(app, key_id)?;
    let state = if enabled {
        STATE_ENABLED
    } else {
        STATE_DISABLED
    };
    let record = app
        .store
        .update_key(key_id, &|k| k.key_state = state.to_owned())
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => KmsError::key_not_found(key_id),
            other => other.into(),
        })?;
    tracing::info!(key_id = %key_id, state, "key state changed");
    Ok(record)
}

/// A key version found by its id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub key_id: String,
    /// The version id in its canonical form (lowercase, hyphenated).
    pub key_version_id: String,
}

/// The key a version id belongs to; `None` when no stored version has that id (a malformed
/// id included, so callers treat both alike). The transfer SDK's Decrypt names only the
/// version (`x-kms-migrationkeyversionid`).
pub fn find_version(app: &Appliance, key_version_id: &str) -> Result<Option<VersionRef>, KmsError> {
    app.instance()?;
    let Ok(id) = uuid::Uuid::try_parse(key_version_id.trim()) else {
        return Ok(None);
    };
    let key_version_id = id.to_string();
    Ok(app
        .store
        .key_of_version(&key_version_id)?
        .map(|key_id| VersionRef {
            key_id,
            key_version_id,
        }))
}

/// Marks a key internal (one-way): from then on no application can name, use or be granted
/// it. For keys made for hkmsd's own use before internal keys existed.
pub fn mark_internal(app: &Appliance, key_id: &str) -> Result<KeyRecord, KmsError> {
    describe(app, key_id)?;
    let record = app
        .store
        .update_key(key_id, &|k| k.internal = true)
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => KmsError::key_not_found(key_id),
            other => other.into(),
        })?;
    tracing::info!(key_id = %key_id, "key marked internal");
    Ok(record)
}

/// A key that may be used for cryptography now, with the token of the requested version
/// (the primary version when `key_version_id` is `None`), migrated to the current token
/// version if it was written before.
pub async fn usable_token(
    app: &Appliance,
    key_id: &str,
    key_version_id: Option<&str>,
) -> Result<(KeyRecord, KeyTokenRecord), KmsError> {
    let key = describe(app, key_id)?;
    if key.key_state != STATE_ENABLED {
        return Err(KmsError::new(
            ErrorCode::KeyDisabled,
            format!("key {key_id} is {}", key.key_state),
        ));
    }
    let version = key_version_id
        .unwrap_or(&key.primary_key_version)
        .to_owned();
    let token = app.store.key_token(key_id, &version)?.ok_or_else(|| {
        KmsError::new(
            ErrorCode::InvalidCiphertext,
            "the ciphertext names a key version that does not exist",
        )
    })?;
    // Callers address the HSM layer with the token's own ids from here on: they must be the
    // ids it was found under (the HSM layer checks its binding against them again).
    if token.key_id != key.key_id || token.key_version_id != version {
        return Err(KmsError::new(
            ErrorCode::TokenBinding,
            format!("the key token stored for {key_id}/{version} names another key or version"),
        ));
    }
    let token = current_token(app, &key.key_id, &version, token).await?;
    Ok((key, token))
}

/// `token`, stored under (`key_id`, `key_version_id`), in the current token version. A token
/// written before is migrated inside an HSM and replaced in the store only if nobody
/// replaced it meanwhile; otherwise the stored (already migrated) token is used, so every
/// request uses the material that is stored.
async fn current_token(
    app: &Appliance,
    key_id: &str,
    key_version_id: &str,
    token: KeyTokenRecord,
) -> Result<KeyTokenRecord, KmsError> {
    if token.token_version == token::TOKEN_VERSION {
        return Ok(token);
    }
    let old = std::sync::Arc::new(token);
    let migrated = {
        let (old, key_id, version) = (old.clone(), key_id.to_owned(), key_version_id.to_owned());
        app.pool
            .run(move |m, s| token::migrate(m, s, &old, &key_id, &version))
            .await?
    };
    if app
        .store
        .replace_key_token(key_id, key_version_id, &old, &migrated)?
    {
        tracing::info!(key_id, key_version_id, "key token migrated to version 2");
        return Ok(migrated);
    }
    app.store
        .key_token(key_id, key_version_id)?
        .filter(|t| t.token_version == token::TOKEN_VERSION)
        .ok_or_else(|| {
            KmsError::new(
                ErrorCode::Internal,
                format!("key token {key_id}/{key_version_id} changed during its migration"),
            )
        })
}

/// Migrates every token written before the current token version (at start-up, so that
/// first requests do not pay for it). A token that cannot be migrated now is logged and
/// migrated on first use.
pub async fn migrate_tokens(app: &Appliance) -> Result<usize, KmsError> {
    let mut migrated = 0;
    for (key_id, version, token) in app.store.key_tokens()? {
        if token.token_version == token::TOKEN_VERSION {
            continue;
        }
        match current_token(app, &key_id, &version, token).await {
            Ok(_) => migrated += 1,
            Err(e) => tracing::warn!(
                key_id,
                key_version_id = version,
                code = e.code.as_str(),
                "key token not migrated: {}",
                e.message
            ),
        }
    }
    Ok(migrated)
}
