//! A key's record: its states and origins, reading it, changing it, and refusing it when
//! its state does not allow an operation; and the paging every key listing shares.

use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::store::records::KeyRecord;
use crate::store::TokenChange;

pub const STATE_ENABLED: &str = "Enabled";
pub const STATE_DISABLED: &str = "Disabled";
pub const STATE_PENDING_DELETION: &str = "PendingDeletion";
pub const STATE_PENDING_IMPORT: &str = "PendingImport";

/// Material generated inside an HSM.
pub const ORIGIN_KMS: &str = "Aliyun_KMS";
/// Material imported by its owner.
pub const ORIGIN_EXTERNAL: &str = "EXTERNAL";

/// Largest page of ListKeys.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks that a key id is a well-formed id before it reaches the store.
pub fn parse_key_id(key_id: &str) -> Result<uuid::Uuid, KmsError> {
    if key_id.is_empty() {
        return Err(KmsError::invalid("KeyId is required"));
    }
    uuid::Uuid::try_parse(key_id).map_err(|_| KmsError::key_not_found(key_id))
}

/// Applies `change` to a key's record: `change` sees the stored record and returns the new
/// one or refuses. The write lands only on the record `change` saw; when another change
/// came first, it is decided again on the new record.
pub fn change_key(
    app: &Appliance,
    key_id: &str,
    change: impl Fn(&KeyRecord) -> Result<KeyRecord, KmsError>,
) -> Result<KeyRecord, KmsError> {
    for _ in 0..8 {
        let current = describe(app, key_id)?;
        let new = change(&current)?;
        if new == current {
            return Ok(new);
        }
        if app
            .store
            .commit_key_change(&current, &new, TokenChange::None)?
        {
            return Ok(new);
        }
    }
    Err(crate::store::StoreError::Conflict.into())
}

/// The error for a key that is not Enabled, naming its state and the way out.
pub fn not_usable(key: &KeyRecord) -> KmsError {
    let id = &key.key_id;
    match key.key_state.as_str() {
        STATE_PENDING_DELETION => KmsError::new(
            ErrorCode::KeyPendingDeletion,
            format!(
                "key {id} is pending deletion (on {}); cancel the deletion to use it again",
                crate::clock::rfc3339(key.deletion_unix)
            ),
        ),
        STATE_PENDING_IMPORT => KmsError::new(
            ErrorCode::KeyPendingImport,
            format!("key {id} has no key material; import it first"),
        ),
        state => KmsError::new(ErrorCode::KeyDisabled, format!("key {id} is {state}")),
    }
}

/// A key's record.
pub fn describe(app: &Appliance, key_id: &str) -> Result<KeyRecord, KmsError> {
    parse_key_id(key_id)?;
    app.instance()?;
    app.store
        .key(key_id)?
        .ok_or_else(|| KmsError::key_not_found(key_id))
}

/// Checks a page request: 1-based page numbers (0 means 1), sizes 1..100 (0 means 10).
pub fn page(page_number: u32, page_size: u32) -> Result<(u32, u32), KmsError> {
    let page_number = if page_number == 0 { 1 } else { page_number };
    let page_size = if page_size == 0 { 10 } else { page_size };
    if page_size > MAX_PAGE_SIZE {
        return Err(KmsError::invalid(format!(
            "PageSize must be 1..{MAX_PAGE_SIZE}"
        )));
    }
    Ok((page_number, page_size))
}

/// The items of one page (after [`page`] checked its number and size).
pub fn page_slice<T>(
    items: impl IntoIterator<Item = T>,
    page_number: u32,
    page_size: u32,
) -> Vec<T> {
    let offset = (page_number.max(1) as usize - 1).saturating_mul(page_size as usize);
    items
        .into_iter()
        .skip(offset)
        .take(page_size as usize)
        .collect()
}
