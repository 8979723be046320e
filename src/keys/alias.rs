//! Key aliases: other names of keys (`alias/<name>`), accepted wherever a key id is.
//!
//! An alias names exactly one key; a key may have several aliases. Requests that name a key
//! by alias are resolved here before authorisation, so a policy may grant either the alias
//! (`alias/<name>`) or the key (`key/<id>`). Giving a key an alias or taking one away is
//! authorised on the alias name itself as well ([`crate::ops::keys`]).

use crate::appliance::{now_rfc3339, Appliance};
use crate::error::{ErrorCode, KmsError};
use crate::proto::KeyAlias;
use crate::store::named::Space;
use crate::store::StoreError;
use prost::Message;
use std::sync::Mutex;

/// The prefix of every alias name.
pub const PREFIX: &str = "alias/";
/// Longest alias name after the prefix.
pub const MAX_NAME: usize = 255;

/// Serialises alias changes (rare operator actions) so the key check and the write cannot
/// interleave with another change.
static CHANGES: Mutex<()> = Mutex::new(());

/// The full form (`alias/<name>`) of a name given with or without its prefix.
pub fn normalize(name: &str) -> Result<String, KmsError> {
    let bare = name.trim().strip_prefix(PREFIX).unwrap_or(name.trim());
    let ok = (1..=MAX_NAME).contains(&bare.len())
        && !bare.starts_with('/')
        && !bare.starts_with("acs/")
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/".contains(&b));
    if !ok {
        return Err(KmsError::invalid(format!(
            "alias {name:?} must be \"alias/\" followed by 1 to {MAX_NAME} letters, digits, \
             '_', '-' or '/' (not starting with '/' or \"acs/\")"
        )));
    }
    Ok(format!("{PREFIX}{bare}"))
}

fn decode(bytes: &[u8]) -> Result<KeyAlias, KmsError> {
    KeyAlias::decode(bytes).map_err(|_| StoreError::Corrupt("key alias".into()).into())
}

/// Creates an alias of an existing key.
pub fn create(app: &Appliance, alias_name: &str, key_id: &str) -> Result<KeyAlias, KmsError> {
    let name = normalize(alias_name)?;
    let _g = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let key = super::record::describe(app, key_id)?;
    let alias = KeyAlias {
        alias_name: name.clone(),
        key_id: key.key_id,
        create_time: now_rfc3339(),
    };
    app.store
        .put_named(Space::Aliases, &name, alias.encode_to_vec(), true)
        .map_err(|e| match e {
            StoreError::Exists(_) => KmsError::new(
                ErrorCode::ResourceExists,
                format!("{name} already exists; delete it first to point it at another key"),
            ),
            other => other.into(),
        })?;
    tracing::info!(alias = %name, key_id = %alias.key_id, "alias created");
    Ok(alias)
}

/// Points an existing alias at another key.
pub fn update(app: &Appliance, alias_name: &str, key_id: &str) -> Result<KeyAlias, KmsError> {
    let name = normalize(alias_name)?;
    let _g = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let key = super::record::describe(app, key_id)?;
    let Some(old) = app.store.get_named(Space::Aliases, &name)? else {
        return Err(KmsError::new(
            ErrorCode::ResourceNotFound,
            format!("{name} does not exist; create it (hkms alias create)"),
        ));
    };
    let old = decode(&old)?;
    let alias = KeyAlias {
        alias_name: name.clone(),
        key_id: key.key_id,
        create_time: old.create_time,
    };
    app.store
        .put_named(Space::Aliases, &name, alias.encode_to_vec(), false)?;
    tracing::info!(alias = %name, from = %old.key_id, to = %alias.key_id, "alias updated");
    Ok(alias)
}

/// Gives key `key_id` the alias `new_name` in place of its alias `old_name` (if any), for
/// APIs where a key has one alias that is renamed (Tencent's UpdateAlias). The new alias
/// keeps the old one's creation time, so it takes the old one's place among the key's
/// aliases; it is refused with `ResourceExists` when it names another key. The old alias
/// is deleted only if it names this key. Renaming an alias to itself changes nothing.
pub fn rename(
    app: &Appliance,
    key_id: &str,
    old_name: Option<&str>,
    new_name: &str,
) -> Result<KeyAlias, KmsError> {
    let name = normalize(new_name)?;
    let old = old_name.map(normalize).transpose()?;
    let _g = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let key = super::record::describe(app, key_id)?;
    let existing = match app.store.get_named(Space::Aliases, &name)? {
        Some(bytes) => Some(decode(&bytes)?),
        None => None,
    };
    if let Some(existing) = &existing {
        if existing.key_id != key.key_id {
            return Err(KmsError::new(
                ErrorCode::ResourceExists,
                format!("{name} already names another key"),
            ));
        }
        if old.as_deref() == Some(name.as_str()) {
            return Ok(existing.clone());
        }
    }
    let old = match old.filter(|o| *o != name) {
        Some(o) => match app.store.get_named(Space::Aliases, &o)? {
            Some(bytes) => Some(decode(&bytes)?).filter(|a| a.key_id == key.key_id),
            None => None,
        },
        None => None,
    };
    let create_time = old
        .as_ref()
        .or(existing.as_ref())
        .map(|a| a.create_time.clone())
        .unwrap_or_else(now_rfc3339);
    let alias = KeyAlias {
        alias_name: name.clone(),
        key_id: key.key_id.clone(),
        create_time,
    };
    app.store
        .put_named(Space::Aliases, &name, alias.encode_to_vec(), false)?;
    if let Some(old) = &old {
        match app.store.delete_named(Space::Aliases, &old.alias_name) {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(alias = %name, from = ?old.map(|a| a.alias_name), key_id = %key.key_id, "alias renamed");
    Ok(alias)
}

/// Deletes an alias (the key is not touched).
pub fn delete(app: &Appliance, alias_name: &str) -> Result<(), KmsError> {
    let name = normalize(alias_name)?;
    app.instance()?;
    let _g = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    app.store
        .delete_named(Space::Aliases, &name)
        .map_err(|e| match e {
            StoreError::NotFound(_) => KmsError::new(
                ErrorCode::ResourceNotFound,
                format!("{name} does not exist"),
            ),
            other => other.into(),
        })?;
    tracing::info!(alias = %name, "alias deleted");
    Ok(())
}

/// Every alias, or only those of `key_id` when it is not empty.
pub fn list(app: &Appliance, key_id: &str) -> Result<Vec<KeyAlias>, KmsError> {
    app.instance()?;
    app.store
        .list_named(Space::Aliases)?
        .iter()
        .map(|(_, v)| decode(v))
        .filter(|a| key_id.is_empty() || a.as_ref().map_or(true, |a| a.key_id == key_id))
        .collect()
}

/// The key id a reference names: a key id as is, an alias resolved. An alias that does not
/// exist is `KeyNotFound`, like a key that does not.
pub fn resolve(app: &Appliance, key_ref: &str) -> Result<String, KmsError> {
    if !key_ref.starts_with(PREFIX) {
        return Ok(key_ref.to_owned());
    }
    let name = normalize(key_ref).map_err(|_| KmsError::key_not_found(key_ref))?;
    match app.store.get_named(Space::Aliases, &name)? {
        Some(v) => Ok(decode(&v)?.key_id),
        None => Err(KmsError::key_not_found(key_ref)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalize("orders").unwrap(), "alias/orders");
        assert_eq!(normalize("alias/a/b-c_1").unwrap(), "alias/a/b-c_1");
        for bad in [
            "",
            "alias/",
            "alias/a b",
            "alias/acs/x",
            "alias//x",
            &"x".repeat(256),
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
