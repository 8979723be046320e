//! Customer master keys: creation, metadata, lifecycle, aliases, versions and rotation,
//! imported material, tags. Authorise, then run ([`crate::keys`]).
//!
//! Each function authorises the operation by its name in [`crate::access::operations`]
//! (`CreateKey`, `EnableKey`, `UpdateRotationPolicy`, `CreateKeyVersion`...) on the key the
//! request names, so an application whose AAP holds `CryptoServiceKeyAdministrator` on a
//! key may manage it, and operations the table does not list (aliases by name, versions,
//! tags, deletion protection, internal keys) stay with operators. `CreateKey` names no
//! resource: the role alone decides, unless the new key gets an alias.
//!
//! An alias names its key for every policy that grants `alias/<name>`, so operations that
//! give a key an alias or take one away (CreateKey with an alias, UpdateAlias, CreateAlias)
//! are authorised on the alias name itself (`alias/<name>`) as well as on the key: a
//! caller can neither point a name another application relies on at a key of its own, nor
//! learn whether a name it may not use exists.
//!
//! Listing is filtered for applications: [`list`] and [`list_records`] return only the
//! keys the caller could describe (`DescribeKey` on `key/<id>` or on one of the key's
//! aliases, `alias/<name>`), never an internal key. Operators see every key, as before.

use super::Ctx;
use crate::access::policy::{self, AccessRequest, Decision};
use crate::access::{operations, require_operator};
use crate::authn::Caller;
use crate::error::KmsError;
use crate::keys::{self, alias, deletion, import, tags, versions, KeyFilter, NewKey};
use crate::proto::{ApplicationAccessPoint, KeyAlias, KeyVersion, NetworkRule, Policy};
use crate::store::access as records;
use crate::store::records::{KeyRecord, TagRecord};
use std::collections::HashMap;

/// Creates a key, authorised by role alone; with `alias` (`alias/<name>` or the bare
/// name), the key gets that alias too, and `CreateKey` must then also be granted on the
/// alias (`alias/<name>`): an alias names the key for every policy that grants it, so
/// nobody may give a name their policy does not cover. The alias is authorised before it
/// is looked up (a caller learns nothing of names it may not use) and checked before the
/// key is made, so a name that is taken or malformed creates nothing. Only operators
/// create internal keys.
pub async fn create(
    ctx: Ctx<'_>,
    key_spec: &str,
    key_usage: &str,
    new: NewKey,
    alias_name: Option<&str>,
) -> Result<KeyRecord, KmsError> {
    if new.internal {
        require_operator(ctx.caller, "CreateKey")?;
    }
    ctx.authorize("CreateKey", Vec::new())?;
    let alias_name = alias_name.map(alias::normalize).transpose()?;
    if let Some(name) = &alias_name {
        ctx.authorize("CreateKey", vec![name.clone()])?;
        if alias::resolve(ctx.app, name).is_ok() {
            return Err(alias_exists(name));
        }
    }
    let record = keys::create(ctx.app, key_spec, key_usage, new).await?;
    if let Some(name) = &alias_name {
        if let Err(e) = alias::create(ctx.app, name, &record.key_id) {
            // Taken by a concurrent request since the check: the key stays, without alias.
            tracing::warn!(key_id = %record.key_id, alias = %name, "key created without its alias: {}", e.message);
            return Err(e);
        }
    }
    Ok(record)
}

fn alias_exists(name: &str) -> KmsError {
    KmsError::new(
        crate::error::ErrorCode::ResourceExists,
        format!("{name} already exists"),
    )
}

/// A key's record.
pub fn describe(ctx: Ctx<'_>, key_ref: &str) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("DescribeKey", key_ref)?;
    keys::describe(ctx.app, &key_id)
}

/// What a refused request may be told about the key it named: its state and origin, to
/// word the refusal in an API's own codes (a front asks after `operation` failed; the
/// caller must still be granted `operation` on the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub state: String,
    pub external: bool,
}

/// The [`KeyStatus`] of a key the caller may run `operation` on.
pub fn status(ctx: Ctx<'_>, operation: &str, key_ref: &str) -> Result<KeyStatus, KmsError> {
    let key_id = ctx.key(operation, key_ref)?;
    let k = keys::describe(ctx.app, &key_id)?;
    Ok(KeyStatus {
        external: k.origin == keys::ORIGIN_EXTERNAL,
        state: k.key_state,
    })
}

/// One page of the keys that match `filter` and the caller may see, in key id order:
/// (ids, page number, page size, how many match).
pub fn list(
    ctx: Ctx<'_>,
    page_number: u32,
    page_size: u32,
    filter: &KeyFilter,
) -> Result<(Vec<String>, u32, u32, u64), KmsError> {
    ctx.authorize("ListKeys", Vec::new())?;
    if let Caller::Operator { .. } = ctx.caller {
        return keys::list(ctx.app, page_number, page_size, filter);
    }
    let (page_number, page_size) = keys::page(page_number, page_size)?;
    let ids: Vec<String> = visible(ctx, filter)?
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    let total = ids.len() as u64;
    Ok((
        keys::page_slice(ids, page_number, page_size),
        page_number,
        page_size,
        total,
    ))
}

/// Every key that matches `filter` and the caller may see, in key id order.
pub fn list_records(ctx: Ctx<'_>, filter: &KeyFilter) -> Result<Vec<KeyRecord>, KmsError> {
    ctx.authorize("ListKeys", Vec::new())?;
    visible(ctx, filter)
}

fn visible(ctx: Ctx<'_>, filter: &KeyFilter) -> Result<Vec<KeyRecord>, KmsError> {
    ctx.app.instance()?;
    let mut all: Vec<KeyRecord> = ctx
        .app
        .store
        .key_records()?
        .into_iter()
        .filter(|k| filter.matches(k))
        .collect();
    all.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    match ctx.caller {
        Caller::Operator { .. } => Ok(all),
        Caller::Application {
            aap,
            source,
            endpoint,
            ..
        } => {
            let Some(grants) = Grants::load(ctx, aap)? else {
                return Ok(Vec::new());
            };
            // A key is visible through its id or any of its aliases, as a request that
            // names it by alias is granted by a policy on the alias.
            let mut names: HashMap<String, Vec<String>> = HashMap::new();
            for a in alias::list(ctx.app, "")? {
                names.entry(a.key_id).or_default().push(a.alias_name);
            }
            Ok(all
                .into_iter()
                .filter(|k| {
                    if k.internal {
                        return false;
                    }
                    let mut resources = operations::key_resources(&k.key_id, &k.key_id);
                    resources.extend(names.remove(&k.key_id).unwrap_or_default());
                    grants.allow(&AccessRequest {
                        operation: "DescribeKey".into(),
                        resources,
                        source: *source,
                        endpoint: *endpoint,
                    })
                })
                .collect())
        }
        // Refused by the authorisation above; nothing to show in any case.
        _ => Ok(Vec::new()),
    }
}

/// An AAP with its policies and their network rules, read once for a whole listing.
struct Grants {
    aap: ApplicationAccessPoint,
    policies: Vec<Policy>,
    rules: Vec<NetworkRule>,
}

impl Grants {
    fn load(ctx: Ctx<'_>, aap: &str) -> Result<Option<Grants>, KmsError> {
        let store = &*ctx.app.store;
        let Some(aap) = records::get::<ApplicationAccessPoint>(store, aap)? else {
            return Ok(None);
        };
        let mut policies = Vec::new();
        let mut rules = Vec::new();
        for name in &aap.policies {
            if let Some(p) = records::get::<Policy>(store, name)? {
                for r in &p.network_rules {
                    if let Some(rule) = records::get::<NetworkRule>(store, r)? {
                        rules.push(rule);
                    }
                }
                policies.push(p);
            }
        }
        Ok(Some(Grants {
            aap,
            policies,
            rules,
        }))
    }

    fn allow(&self, req: &AccessRequest) -> bool {
        matches!(
            policy::evaluate(&self.aap, &self.policies, &self.rules, req),
            Decision::Allow { .. }
        )
    }
}

/// Enables or disables a key (`EnableKey`, `DisableKey`).
pub fn set_enabled(ctx: Ctx<'_>, key_ref: &str, enabled: bool) -> Result<KeyRecord, KmsError> {
    let op = if enabled { "EnableKey" } else { "DisableKey" };
    let key_id = ctx.key(op, key_ref)?;
    keys::set_enabled(ctx.app, &key_id, enabled)
}

/// Marks a key internal (operators only: no role grants it).
pub fn mark_internal(ctx: Ctx<'_>, key_ref: &str) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("MarkKeyInternal", key_ref)?;
    keys::mark_internal(ctx.app, &key_id)
}

/// Replaces a key's description.
pub fn update_description(
    ctx: Ctx<'_>,
    key_ref: &str,
    description: &str,
) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("UpdateKeyDescription", key_ref)?;
    keys::update_description(ctx.app, &key_id, description)
}

/// Authorises `operation` on the alias name `name` itself (`alias/<name>`), not on the key
/// it may name: for operations that give or take a name, which must be one the caller's
/// policy covers. A malformed name is left to the alias functions to refuse.
fn authorize_alias_name(ctx: Ctx<'_>, operation: &str, name: &str) -> Result<(), KmsError> {
    match alias::normalize(name) {
        Ok(name) => ctx.authorize(operation, vec![name]),
        Err(_) => Ok(()),
    }
}

/// Creates an alias of a key; `CreateAlias` is needed on the key and on the alias name.
pub fn create_alias(ctx: Ctx<'_>, alias_name: &str, key_ref: &str) -> Result<KeyAlias, KmsError> {
    let key_id = ctx.key("CreateAlias", key_ref)?;
    authorize_alias_name(ctx, "CreateAlias", alias_name)?;
    alias::create(ctx.app, alias_name, &key_id)
}

/// Points an existing alias at another key; `UpdateAlias` is needed on the alias name, on
/// the key it names now and on the new key.
pub fn update_alias(ctx: Ctx<'_>, alias_name: &str, key_ref: &str) -> Result<KeyAlias, KmsError> {
    let key_id = ctx.key("UpdateAlias", key_ref)?;
    authorize_alias_name(ctx, "UpdateAlias", alias_name)?;
    if let Ok(name) = alias::normalize(alias_name) {
        if let Ok(current) = alias::resolve(ctx.app, &name) {
            ctx.authorize("UpdateAlias", vec![format!("key/{current}")])?;
        }
    }
    alias::update(ctx.app, alias_name, &key_id)
}

/// Gives a key alias `new_name` in place of the alias `replaced` picks among the key's
/// aliases (oldest first; `None`: the key just gets `new_name`), for APIs where a key has
/// one alias that is renamed (Tencent's UpdateAlias). Authorised as `UpdateAlias` on the
/// key, on the new name (`alias/<new_name>`, before it is looked up, so a caller learns
/// nothing of names it may not use) and on the name it replaces, which is deleted.
pub fn rename_alias(
    ctx: Ctx<'_>,
    key_ref: &str,
    new_name: &str,
    replaced: impl FnOnce(&[KeyAlias]) -> Option<String>,
) -> Result<KeyAlias, KmsError> {
    let key_id = ctx.key("UpdateAlias", key_ref)?;
    authorize_alias_name(ctx, "UpdateAlias", new_name)?;
    let mut aliases = alias::list(ctx.app, &key_id)?;
    oldest_first(&mut aliases);
    let old = replaced(&aliases);
    if let Some(old) = &old {
        if alias::normalize(old).ok() != alias::normalize(new_name).ok() {
            authorize_alias_name(ctx, "UpdateAlias", old)?;
        }
    }
    alias::rename(ctx.app, &key_id, old.as_deref(), new_name)
}

fn oldest_first(aliases: &mut [KeyAlias]) {
    aliases.sort_by(|a, b| {
        (a.create_time.as_str(), a.alias_name.as_str())
            .cmp(&(b.create_time.as_str(), b.alias_name.as_str()))
    });
}

/// Deletes an alias.
pub fn delete_alias(ctx: Ctx<'_>, alias_name: &str) -> Result<(), KmsError> {
    let resources = match alias::normalize(alias_name) {
        Ok(name) => match alias::resolve(ctx.app, &name) {
            Ok(key_id) => operations::key_resources(&name, &key_id),
            Err(_) => vec![name],
        },
        Err(_) => vec![alias_name.to_owned()],
    };
    ctx.authorize("DeleteAlias", resources)?;
    alias::delete(ctx.app, alias_name)
}

/// Every alias, or only those of the key `key_ref` names when it is not empty.
pub fn list_aliases(ctx: Ctx<'_>, key_ref: &str) -> Result<Vec<KeyAlias>, KmsError> {
    if key_ref.is_empty() {
        ctx.authorize("ListAliases", Vec::new())?;
        return alias::list(ctx.app, "");
    }
    let key_id = ctx.key("ListAliases", key_ref)?;
    alias::list(ctx.app, &key_id)
}

/// The aliases of keys an authorised call returned (their metadata, as DescribeKey shows
/// it), by key id, each key's oldest first.
pub fn aliases_of(
    ctx: Ctx<'_>,
    keys: &[KeyRecord],
) -> Result<HashMap<String, Vec<KeyAlias>>, KmsError> {
    let mut out: HashMap<String, Vec<KeyAlias>> = keys
        .iter()
        .map(|k| (k.key_id.clone(), Vec::new()))
        .collect();
    if keys.is_empty() {
        return Ok(out);
    }
    for a in alias::list(ctx.app, "")? {
        if let Some(v) = out.get_mut(&a.key_id) {
            v.push(a);
        }
    }
    for v in out.values_mut() {
        oldest_first(v);
    }
    Ok(out)
}

/// Schedules a key's deletion in `window_days`; also returns the secrets the key protects
/// (unreadable from now on), which are logged.
pub fn schedule_deletion(
    ctx: Ctx<'_>,
    key_ref: &str,
    window_days: u32,
) -> Result<(KeyRecord, Vec<String>), KmsError> {
    let key_id = ctx.key("ScheduleKeyDeletion", key_ref)?;
    let k = deletion::schedule(ctx.app, &key_id, window_days)?;
    let protected_secrets = crate::secrets::protected_by(ctx.app, &key_id)?;
    if !protected_secrets.is_empty() {
        tracing::warn!(
            key_id = %key_id,
            secrets = %protected_secrets.join(", "),
            "a key scheduled for deletion protects secrets: they cannot be read while the deletion is pending, nor ever after it"
        );
    }
    Ok((k, protected_secrets))
}

/// Cancels a scheduled deletion.
pub fn cancel_deletion(ctx: Ctx<'_>, key_ref: &str) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("CancelKeyDeletion", key_ref)?;
    deletion::cancel(ctx.app, &key_id)
}

/// Turns a key's deletion protection on or off (operators only).
pub fn set_deletion_protection(
    ctx: Ctx<'_>,
    key_ref: &str,
    enable: bool,
    description: &str,
) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("SetDeletionProtection", key_ref)?;
    deletion::set_protection(ctx.app, &key_id, enable, description)
}

/// Turns automatic rotation on (every `interval` seconds; 0: 365 days) or off.
pub fn update_rotation_policy(
    ctx: Ctx<'_>,
    key_ref: &str,
    enable: bool,
    interval: u64,
) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("UpdateRotationPolicy", key_ref)?;
    versions::update_rotation_policy(ctx.app, &key_id, enable, interval)
}

/// Rotates a key now: a new primary version.
pub async fn create_version(ctx: Ctx<'_>, key_ref: &str) -> Result<KeyVersion, KmsError> {
    let key_id = ctx.key("CreateKeyVersion", key_ref)?;
    versions::create_version(ctx.app, &key_id).await
}

/// One page of a key's versions (operators only).
pub fn list_versions(
    ctx: Ctx<'_>,
    key_ref: &str,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<KeyVersion>, u32, u32, u64), KmsError> {
    let key_id = ctx.key("ListKeyVersions", key_ref)?;
    versions::list(ctx.app, &key_id, page_number, page_size)
}

/// One version of a key (operators only).
pub fn describe_version(
    ctx: Ctx<'_>,
    key_ref: &str,
    key_version_id: &str,
) -> Result<KeyVersion, KmsError> {
    let key_id = ctx.key("DescribeKeyVersion", key_ref)?;
    versions::describe_version(ctx.app, &key_id, key_version_id)
}

/// Import parameters (a wrapping public key and an import token) for an EXTERNAL key.
pub async fn get_parameters_for_import(
    ctx: Ctx<'_>,
    key_ref: &str,
    wrapping_algorithm: &str,
    wrapping_key_spec: &str,
) -> Result<import::Params, KmsError> {
    let key_id = ctx.key("GetParametersForImport", key_ref)?;
    import::get_parameters(ctx.app, &key_id, wrapping_algorithm, wrapping_key_spec).await
}

/// Imports wrapped material into an EXTERNAL key (`expire_unix` 0: it never expires).
pub async fn import_material(
    ctx: Ctx<'_>,
    key_ref: &str,
    encrypted_material: &[u8],
    import_token: &[u8],
    expire_unix: i64,
) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("ImportKeyMaterial", key_ref)?;
    import::import_material(
        ctx.app,
        &key_id,
        encrypted_material,
        import_token,
        expire_unix,
    )
    .await
}

/// Deletes an EXTERNAL key's material (the key is PendingImport).
pub async fn delete_material(ctx: Ctx<'_>, key_ref: &str) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("DeleteKeyMaterial", key_ref)?;
    import::delete_material(ctx.app, &key_id).await
}

/// Adds or replaces tags of a key (operators only).
pub fn tag(ctx: Ctx<'_>, key_ref: &str, new: &[TagRecord]) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("TagResource", key_ref)?;
    tags::tag(ctx.app, &key_id, new)
}

/// Removes tags of a key (operators only).
pub fn untag(ctx: Ctx<'_>, key_ref: &str, tag_keys: &[String]) -> Result<KeyRecord, KmsError> {
    let key_id = ctx.key("UntagResource", key_ref)?;
    tags::untag(ctx.app, &key_id, tag_keys)
}

/// A key's tags (operators only).
pub fn list_tags(ctx: Ctx<'_>, key_ref: &str) -> Result<Vec<TagRecord>, KmsError> {
    let key_id = ctx.key("ListResourceTags", key_ref)?;
    Ok(keys::describe(ctx.app, &key_id)?.tags)
}
