//! Customer master keys: creation inside an HSM, metadata, lifecycle.

pub mod alias;
pub mod deletion;
pub mod import;
mod record;
pub mod single_token;
pub mod spec;
pub mod tags;
pub mod token;
pub mod versions;

use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::store::records::{KeyRecord, KeyTokenRecord};
use spec::KeySpec;

pub use record::{
    change_key, describe, not_usable, page, page_slice, parse_key_id, MAX_PAGE_SIZE,
    ORIGIN_EXTERNAL, ORIGIN_KMS, STATE_DISABLED, STATE_ENABLED, STATE_PENDING_DELETION,
    STATE_PENDING_IMPORT,
};

/// Largest description accepted.
const MAX_DESCRIPTION: usize = 8192;
/// What a new key is made with, beside its spec and usage.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub description: String,
    /// A key hkmsd keeps for its own use (the instance CA's intermediate key): operators
    /// manage it, but no application can name, list, use or be granted it.
    pub internal: bool,
    /// `EXTERNAL`: no material until it is imported (state `PendingImport`).
    pub external: bool,
    /// Automatic rotation interval in seconds; `None`: no automatic rotation.
    pub rotation_interval: Option<u64>,
    pub tags: Vec<crate::store::records::TagRecord>,
    pub deletion_protection: bool,
}

/// Parses an origin; empty means `Aliyun_KMS`. Returns whether it is `EXTERNAL`.
pub fn parse_origin(origin: &str) -> Result<bool, KmsError> {
    match origin {
        "" | ORIGIN_KMS => Ok(false),
        ORIGIN_EXTERNAL => Ok(true),
        other => Err(KmsError::invalid(format!(
            "Origin {other:?} is not valid; use {ORIGIN_KMS} or {ORIGIN_EXTERNAL}"
        ))),
    }
}

fn check_description(description: &str) -> Result<(), KmsError> {
    if description.len() > MAX_DESCRIPTION {
        return Err(KmsError::invalid(format!(
            "Description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    Ok(())
}

/// Creates a key. Its first version is generated inside an HSM member and stored only as a
/// token wrapped under the domain key; an `EXTERNAL` key gets its version id now and its
/// material when it is imported.
pub async fn create(
    app: &Appliance,
    key_spec: &str,
    key_usage: &str,
    new: NewKey,
) -> Result<KeyRecord, KmsError> {
    let spec = KeySpec::parse(key_spec)?;
    let usage = spec::parse_usage(spec, key_usage)?;
    check_description(&new.description)?;
    tags::check_all(&new.tags)?;
    let mut new = new;
    new.tags.sort_by(|a, b| a.key.cmp(&b.key));
    if new.external && !spec.is_symmetric() {
        return Err(KmsError::new(
            ErrorCode::UnsupportedKeySpec,
            format!(
                "only AES keys take imported material; {} keys are generated inside the HSMs",
                spec.as_str()
            ),
        ));
    }
    if new.external && new.rotation_interval.is_some() {
        return Err(KmsError::invalid(
            "keys with imported material cannot rotate automatically; import into a new key \
             instead",
        ));
    }
    let rotation = new
        .rotation_interval
        .map(versions::check_interval)
        .transpose()?;
    app.instance()?;
    let key_id = uuid::Uuid::new_v4().to_string();
    let version_id = uuid::Uuid::new_v4().to_string();
    let now = crate::clock::now_unix();
    let created = crate::clock::rfc3339(now);
    let token = if new.external {
        None
    } else {
        Some(versions::generate_token(app, spec, usage, &key_id, &version_id, &created).await?)
    };
    let record = KeyRecord {
        key_id: key_id.clone(),
        description: new.description,
        key_spec: spec.as_str().to_owned(),
        key_usage: usage.as_str().to_owned(),
        key_state: if new.external {
            STATE_PENDING_IMPORT
        } else {
            STATE_ENABLED
        }
        .to_owned(),
        creation_date: created.clone(),
        primary_key_version: version_id.clone(),
        key_versions: vec![version_id],
        internal: new.internal,
        origin: if new.external {
            ORIGIN_EXTERNAL
        } else {
            ORIGIN_KMS
        }
        .to_owned(),
        deletion_protection: new.deletion_protection,
        automatic_rotation: rotation.is_some(),
        rotation_interval_seconds: rotation.unwrap_or(0),
        next_rotation_unix: rotation.map_or(0, |r| now + r as i64),
        tags: new.tags,
        last_rotation_date: created,
        ..Default::default()
    };
    app.store.create_key(&record, token.as_ref())?;
    tracing::info!(key_id = %key_id, spec = spec.as_str(), origin = %record.origin, internal = new.internal, "key created");
    Ok(record)
}

/// Replaces a key's description.
pub fn update_description(
    app: &Appliance,
    key_id: &str,
    description: &str,
) -> Result<KeyRecord, KmsError> {
    check_description(description)?;
    let record = change_key(app, key_id, |k| {
        Ok(KeyRecord {
            description: description.to_owned(),
            ..k.clone()
        })
    })?;
    tracing::info!(key_id = %key_id, "key description updated");
    Ok(record)
}

/// Which keys [`list`] returns; empty fields match every key.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub key_state: String,
    pub key_spec: String,
    pub key_usage: String,
    pub origin: String,
    /// Every tag must be on the key; an empty value matches any value.
    pub tags: Vec<crate::store::records::TagRecord>,
}

impl KeyFilter {
    /// Whether key `k` matches every field of the filter.
    pub fn matches(&self, k: &KeyRecord) -> bool {
        let origin = if k.origin.is_empty() {
            ORIGIN_KMS
        } else {
            &k.origin
        };
        let field = |want: &str, have: &str| want.is_empty() || want == have;
        field(&self.key_state, &k.key_state)
            && field(&self.key_spec, &k.key_spec)
            && field(&self.key_usage, &k.key_usage)
            && field(&self.origin, origin)
            && tags::carries(&k.tags, &self.tags)
    }
}

/// One page of the keys that match `filter`, in key id order, and how many match.
pub fn list(
    app: &Appliance,
    page_number: u32,
    page_size: u32,
    filter: &KeyFilter,
) -> Result<(Vec<String>, u32, u32, u64), KmsError> {
    app.instance()?;
    let (page_number, page_size) = page(page_number, page_size)?;
    let offset = (page_number as usize - 1).saturating_mul(page_size as usize);
    if filter.key_state.is_empty()
        && filter.key_spec.is_empty()
        && filter.key_usage.is_empty()
        && filter.origin.is_empty()
        && filter.tags.is_empty()
    {
        let (ids, total) = app.store.list_keys(offset, page_size as usize)?;
        return Ok((ids, page_number, page_size, total));
    }
    let matching: Vec<String> = app
        .store
        .key_records()?
        .into_iter()
        .filter(|k| filter.matches(k))
        .map(|k| k.key_id)
        .collect();
    let total = matching.len() as u64;
    let ids = page_slice(matching, page_number, page_size);
    Ok((ids, page_number, page_size, total))
}

/// Enables or disables a key. Disabled keys refuse every cryptographic operation. A key
/// pending deletion or import keeps its state (cancel the deletion, or import material).
pub fn set_enabled(app: &Appliance, key_id: &str, enabled: bool) -> Result<KeyRecord, KmsError> {
    let state = if enabled {
        STATE_ENABLED
    } else {
        STATE_DISABLED
    };
    let record = change_key(app, key_id, |k| {
        if k.key_state != STATE_ENABLED && k.key_state != STATE_DISABLED {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!(
                    "key {key_id} is {}: {}",
                    k.key_state,
                    if k.key_state == STATE_PENDING_DELETION {
                        "cancel the deletion first (it then is Disabled)"
                    } else {
                        "import its material first"
                    }
                ),
            ));
        }
        Ok(KeyRecord {
            key_state: state.to_owned(),
            ..k.clone()
        })
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
    let record = change_key(app, key_id, |k| {
        Ok(KeyRecord {
            internal: true,
            ..k.clone()
        })
    })?;
    tracing::info!(key_id = %key_id, "key marked internal");
    Ok(record)
}

/// Refuses a key that may not be used for cryptography now (disabled, pending deletion or
/// import, or its imported material expired).
fn check_usable(key: &KeyRecord) -> Result<(), KmsError> {
    if key.key_state != STATE_ENABLED {
        return Err(not_usable(key));
    }
    if key.material_expire_unix != 0 && crate::clock::now_unix() >= key.material_expire_unix {
        // The clock job deletes it shortly; until then it is already unusable.
        return Err(KmsError::new(
            ErrorCode::KeyPendingImport,
            format!(
                "the key material of {} has expired; import it again",
                key.key_id
            ),
        ));
    }
    Ok(())
}

/// The stored token of `version` of `key`, checked to name the ids it is stored under.
fn stored_token(
    app: &Appliance,
    key: &KeyRecord,
    version: &str,
) -> Result<KeyTokenRecord, KmsError> {
    let key_id = &key.key_id;
    let token = app.store.key_token(key_id, version)?.ok_or_else(|| {
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
    Ok(token)
}

/// An AES key that may be used for cryptography now, with the token of the requested
/// version (the primary version when `key_version_id` is `None`), migrated to the current
/// token version if it was written before.
pub async fn usable_token(
    app: &Appliance,
    key_id: &str,
    key_version_id: Option<&str>,
) -> Result<(KeyRecord, KeyTokenRecord), KmsError> {
    usable_token_of(app, describe(app, key_id)?, key_version_id).await
}

/// [`usable_token`] for a key whose record was just read.
pub async fn usable_token_of(
    app: &Appliance,
    key: KeyRecord,
    key_version_id: Option<&str>,
) -> Result<(KeyRecord, KeyTokenRecord), KmsError> {
    check_usable(&key)?;
    spec::require(
        &key,
        spec::Purpose::Symmetric,
        "Encrypt, Decrypt and data keys",
    )?;
    let version = key_version_id
        .unwrap_or(&key.primary_key_version)
        .to_owned();
    let token = stored_token(app, &key, &version)?;
    let token = current_token(app, &key.key_id, &version, token).await?;
    Ok((key, token))
}

/// Which version of a key an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChoice<'a> {
    /// The primary (newest) version.
    Primary,
    /// The first version (the instance API's plain operations).
    Initial,
    /// This version, which must belong to the key.
    Id(&'a str),
}

/// An RSA, EC or HMAC key that `operation` may use for `purpose` now, its spec, and the
/// token of the chosen version.
pub fn usable_version(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice,
    purpose: spec::Purpose,
    operation: &str,
) -> Result<(KeyRecord, KeySpec, KeyTokenRecord), KmsError> {
    let key = describe(app, key_id)?;
    check_usable(&key)?;
    let spec = spec::require(&key, purpose, operation)?;
    let version = match version {
        VersionChoice::Primary => key.primary_key_version.clone(),
        VersionChoice::Initial => key.key_versions.first().cloned().unwrap_or_default(),
        VersionChoice::Id(v) => {
            if !key.key_versions.iter().any(|k| k == v) {
                return Err(KmsError::new(
                    ErrorCode::ResourceNotFound,
                    format!("key {} has no version {v:?}", key.key_id),
                ));
            }
            v.to_owned()
        }
    };
    let token = stored_token(app, &key, &version)?;
    Ok((key, spec, token))
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
