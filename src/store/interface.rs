//! [`Store`]: every storage operation, the seam where a replicated database can replace
//! sled later.

use super::access::AccessStore;
use super::error::StoreError;
use super::lifecycle::LifecycleStore;
use super::named::NamedStore;
use super::records::{InstanceRecord, KeyRecord, KeyTokenRecord, MemberRecord};
use super::secrets::SecretStore;

/// Storage operations. Every method that writes returns only after the write is durable.
pub trait Store:
    AccessStore + NamedStore + LifecycleStore + SecretStore + Send + Sync + std::fmt::Debug
{
    fn instance(&self) -> Result<Option<InstanceRecord>, StoreError>;
    /// Records the instance; fails with `Exists` if one is recorded already.
    fn create_instance(&self, record: &InstanceRecord) -> Result<(), StoreError>;

    /// Stores a new key with the token of its first version (none for a key whose material
    /// is to be imported), atomically; every version it names is indexed.
    fn create_key(&self, key: &KeyRecord, token: Option<&KeyTokenRecord>)
        -> Result<(), StoreError>;
    fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Applies `change` to a key atomically and returns the new record.
    fn update_key(
        &self,
        key_id: &str,
        change: &dyn Fn(&mut KeyRecord),
    ) -> Result<KeyRecord, StoreError>;
    /// One page of key ids in a stable order, and the total number of keys.
    fn list_keys(&self, offset: usize, limit: usize) -> Result<(Vec<String>, u64), StoreError>;
    fn key_token(
        &self,
        key_id: &str,
        key_version_id: &str,
    ) -> Result<Option<KeyTokenRecord>, StoreError>;
    /// Every stored key token with the key id and version id it is stored under (for
    /// start-up migrations).
    fn key_tokens(&self) -> Result<Vec<(String, String, KeyTokenRecord)>, StoreError>;
    /// Replaces the token stored under (`key_id`, `key_version_id`) with `new` if it is
    /// still exactly `old`; returns whether it was replaced.
    fn replace_key_token(
        &self,
        key_id: &str,
        key_version_id: &str,
        old: &KeyTokenRecord,
        new: &KeyTokenRecord,
    ) -> Result<bool, StoreError>;
    /// The key a key version belongs to. Kept by an index written in the same transaction
    /// as the version, so a version that exists is always found.
    fn key_of_version(&self, key_version_id: &str) -> Result<Option<String>, StoreError>;

    /// HSM members added or removed at run time.
    fn member_records(&self) -> Result<Vec<MemberRecord>, StoreError>;
    fn put_member_record(&self, record: &MemberRecord) -> Result<(), StoreError>;
}
