//! [`Store`]: every storage operation, the seam where a replicated database can replace
//! sled later; and sled's answers to the operations of its own (the instance record, keys,
//! key tokens and their version index, HSM members), beside the other store traits, each of
//! which its own module implements.

use super::access::AccessStore;
use super::error::StoreError;
use super::lifecycle::LifecycleStore;
use super::named::NamedStore;
use super::records::{InstanceRecord, KeyRecord, KeyTokenRecord, MemberRecord};
use super::secrets::SecretStore;
use super::sled_store::{decode, io, token_key, tx_err, SledStore, INSTANCE_KEY};
use prost::Message;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

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

impl Store for SledStore {
    fn instance(&self) -> Result<Option<InstanceRecord>, StoreError> {
        self.meta
            .get(INSTANCE_KEY)
            .map_err(io)?
            .map(|v| decode("instance", &v))
            .transpose()
    }

    fn create_instance(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let swapped = self
            .meta
            .compare_and_swap(
                INSTANCE_KEY,
                None as Option<&[u8]>,
                Some(record.encode_to_vec()),
            )
            .map_err(io)?;
        if swapped.is_err() {
            return Err(StoreError::Exists("the instance".into()));
        }
        self.flush()
    }

    fn create_key(
        &self,
        key: &KeyRecord,
        token: Option<&KeyTokenRecord>,
    ) -> Result<(), StoreError> {
        let key_bytes = key.encode_to_vec();
        let token_entry = token.map(|t| {
            (
                token_key(&t.key_id, &t.key_version_id),
                t.encode_to_vec(),
                t.key_version_id.clone(),
            )
        });
        if let Some(t) = token {
            if t.key_id != key.key_id || !key.key_versions.contains(&t.key_version_id) {
                return Err(StoreError::Corrupt(format!(
                    "token {} is not a version of key {}",
                    t.key_version_id, key.key_id
                )));
            }
        }
        (&self.keys, &self.tokens, &self.versions)
            .transaction(|(keys, tokens, versions)| {
                if keys.get(key.key_id.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Exists(
                        format!("key {}", key.key_id),
                    )));
                }
                for v in &key.key_versions {
                    if versions.get(v.as_bytes())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(StoreError::Exists(
                            format!("key version {v}"),
                        )));
                    }
                    versions.insert(v.as_bytes(), key.key_id.as_bytes())?;
                }
                keys.insert(key.key_id.as_bytes(), key_bytes.as_slice())?;
                if let Some((tk, bytes, _)) = &token_entry {
                    tokens.insert(tk.as_slice(), bytes.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.key_record(key_id)
    }

    fn update_key(
        &self,
        key_id: &str,
        change: &dyn Fn(&mut KeyRecord),
    ) -> Result<KeyRecord, StoreError> {
        let updated = self
            .keys
            .transaction(|keys| {
                let Some(current) = keys.get(key_id.as_bytes())? else {
                    return Err(ConflictableTransactionError::Abort(StoreError::NotFound(
                        format!("key {key_id}"),
                    )));
                };
                let mut record: KeyRecord = decode(format_args!("key {key_id}"), &current)
                    .map_err(ConflictableTransactionError::Abort)?;
                change(&mut record);
                keys.insert(key_id.as_bytes(), record.encode_to_vec())?;
                Ok(record)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(updated)
    }

    fn list_keys(&self, offset: usize, limit: usize) -> Result<(Vec<String>, u64), StoreError> {
        let total = self.keys.len() as u64;
        let mut ids = Vec::with_capacity(limit);
        for entry in self.keys.iter().keys().skip(offset).take(limit) {
            let k = entry.map_err(io)?;
            ids.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok((ids, total))
    }

    fn key_token(
        &self,
        key_id: &str,
        key_version_id: &str,
    ) -> Result<Option<KeyTokenRecord>, StoreError> {
        self.tokens
            .get(token_key(key_id, key_version_id))
            .map_err(io)?
            .map(|v| decode(format_args!("key token {key_id}/{key_version_id}"), &v))
            .transpose()
    }

    fn key_tokens(&self) -> Result<Vec<(String, String, KeyTokenRecord)>, StoreError> {
        self.tokens
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(io)?;
                let name = String::from_utf8_lossy(&k).into_owned();
                let token = decode(format_args!("key token {name}"), &v)?;
                let (key_id, version) = name
                    .split_once('/')
                    .ok_or_else(|| StoreError::Corrupt(format!("key token {name}")))?;
                Ok((key_id.to_owned(), version.to_owned(), token))
            })
            .collect()
    }

    fn replace_key_token(
        &self,
        key_id: &str,
        key_version_id: &str,
        old: &KeyTokenRecord,
        new: &KeyTokenRecord,
    ) -> Result<bool, StoreError> {
        let swapped = self
            .tokens
            .compare_and_swap(
                token_key(key_id, key_version_id),
                Some(old.encode_to_vec()),
                Some(new.encode_to_vec()),
            )
            .map_err(io)?
            .is_ok();
        if swapped {
            self.flush()?;
        }
        Ok(swapped)
    }

    fn key_of_version(&self, key_version_id: &str) -> Result<Option<String>, StoreError> {
        self.versions
            .get(key_version_id.as_bytes())
            .map_err(io)?
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| StoreError::Corrupt(format!("key version {key_version_id}")))
            })
            .transpose()
    }

    fn member_records(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.members
            .iter()
            .values()
            .map(|v| decode("member", &v.map_err(io)?))
            .collect()
    }

    fn put_member_record(&self, record: &MemberRecord) -> Result<(), StoreError> {
        self.members
            .insert(record.name.as_bytes(), record.encode_to_vec())
            .map_err(io)?;
        self.flush()
    }
}
