//! Persistent state of an instance: the instance record, key metadata, key tokens, access
//! records and secrets.
//!
//! The store never sees key material in plaintext, only key tokens wrapped under the domain
//! key. [`Store`] is the seam where a replicated database can replace sled later.

pub mod access;
pub mod lifecycle;
pub mod named;
pub mod secrets;
mod sled_store;

pub use access::AccessStore;
pub use lifecycle::{LifecycleStore, TokenChange};
pub use named::NamedStore;
pub use secrets::{SecretChange, SecretStore};
pub use sled_store::SledStore;

/// Records as persisted (prost messages, see `proto/hkms/v1/store.proto`).
pub mod records {
    #![allow(missing_docs, missing_debug_implementations)]
    include!(concat!(env!("OUT_DIR"), "/hkms.v1.store.rs"));
}

use records::{InstanceRecord, KeyRecord, KeyTokenRecord, MemberRecord};

/// The store schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A store failure. The message never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("store record {0} is corrupt")]
    Corrupt(String),
    #[error("store schema version {found} is not supported (this build uses {SCHEMA_VERSION})")]
    Schema { found: u32 },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A compare-and-swap found another record than the one expected (nothing was written).
    #[error("the record changed meanwhile")]
    Conflict,
}

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
