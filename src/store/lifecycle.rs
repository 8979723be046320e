//! Key lifecycle writes: a key record changed together with its tokens, in one transaction
//! that succeeds only if the record is still the one the caller read (compare-and-swap).
//!
//! Rotation, deletion, import and expiry are decided by `crate::keys` on a record it read;
//! the write then refuses to land on a record that changed meanwhile (another operator, a
//! clock job on the same or another run). So a job that is interrupted and run again, or
//! two runs at once, change a key once.

use super::error::StoreError;
use super::records::{KeyRecord, KeyTokenRecord};
use super::sled_store::{decode, io, token_key, tx_err, SledStore};
use prost::Message;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

/// What happens to a key's tokens in the same transaction as its record.
#[derive(Debug, Clone, Copy)]
pub enum TokenChange<'a> {
    /// Only the record changes.
    None,
    /// Store this token under its key id and version (a new version, or material imported
    /// into an existing version), and index the version.
    Put(&'a KeyTokenRecord),
    /// Remove the token of this version (its material is deleted; the version stays).
    Remove(&'a str),
}

/// Key lifecycle writes. Each returns `Ok(false)` when the stored record is no longer
/// `expected` (nothing was written), and is durable when it returns `Ok(true)`.
pub trait LifecycleStore: Send + Sync + std::fmt::Debug {
    /// Replaces `expected` with `new` and applies `tokens`, atomically.
    fn commit_key_change(
        &self,
        expected: &KeyRecord,
        new: &KeyRecord,
        tokens: TokenChange<'_>,
    ) -> Result<bool, StoreError>;
    /// Removes the key, every token of it and its versions from the version index,
    /// atomically: after this, nothing in the store can decrypt what the key encrypted.
    fn delete_key(&self, expected: &KeyRecord) -> Result<bool, StoreError>;
    /// Every key record, in key id order.
    fn key_records(&self) -> Result<Vec<KeyRecord>, StoreError>;
}

fn conflict<T>() -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(StoreError::Conflict))
}

impl SledStore {
    /// Whether a compare-and-swap transaction landed (made durable before answering).
    fn landed(
        &self,
        result: Result<(), sled::transaction::TransactionError<StoreError>>,
    ) -> Result<bool, StoreError> {
        match result.map_err(tx_err) {
            Ok(()) => {
                self.flush()?;
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl LifecycleStore for SledStore {
    fn commit_key_change(
        &self,
        expected: &KeyRecord,
        new: &KeyRecord,
        tokens: TokenChange<'_>,
    ) -> Result<bool, StoreError> {
        if expected.key_id != new.key_id {
            return Err(StoreError::Corrupt("key change across two key ids".into()));
        }
        let key = expected.key_id.as_bytes();
        let (expected_bytes, new_bytes) = (expected.encode_to_vec(), new.encode_to_vec());
        let token_bytes = match tokens {
            TokenChange::Put(t) => {
                if t.key_id != new.key_id {
                    return Err(StoreError::Corrupt("token of another key".into()));
                }
                Some(t.encode_to_vec())
            }
            _ => None,
        };
        let result = (&self.keys, &self.tokens, &self.versions).transaction(
            |(keys, tokens_tree, versions)| {
                match keys.get(key)? {
                    Some(current) if current.as_ref() == expected_bytes.as_slice() => {}
                    _ => return conflict(),
                }
                keys.insert(key, new_bytes.as_slice())?;
                match tokens {
                    TokenChange::None => {}
                    TokenChange::Put(t) => {
                        if let Some(owner) = versions.get(t.key_version_id.as_bytes())? {
                            if owner.as_ref() != key {
                                return Err(ConflictableTransactionError::Abort(
                                    StoreError::Exists(format!("key version {}", t.key_version_id)),
                                ));
                            }
                        }
                        let bytes = token_bytes.as_deref().unwrap_or_default();
                        tokens_tree.insert(token_key(&t.key_id, &t.key_version_id), bytes)?;
                        versions.insert(t.key_version_id.as_bytes(), key)?;
                    }
                    TokenChange::Remove(version) => {
                        tokens_tree.remove(token_key(&new.key_id, version))?;
                    }
                }
                Ok(())
            },
        );
        self.landed(result)
    }

    fn delete_key(&self, expected: &KeyRecord) -> Result<bool, StoreError> {
        let key = expected.key_id.as_bytes();
        let expected_bytes = expected.encode_to_vec();
        // Tokens are found by prefix outside the transaction; the record check inside it
        // makes sure no version was added meanwhile (adding one changes the record).
        let prefix = format!("{}/", expected.key_id);
        let token_keys: Vec<sled::IVec> = self
            .tokens
            .scan_prefix(prefix.as_bytes())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io)?;
        let result =
            (&self.keys, &self.tokens, &self.versions).transaction(|(keys, tokens, versions)| {
                match keys.get(key)? {
                    Some(current) if current.as_ref() == expected_bytes.as_slice() => {}
                    _ => return conflict(),
                }
                keys.remove(key)?;
                for k in &token_keys {
                    tokens.remove(k)?;
                }
                for v in &expected.key_versions {
                    versions.remove(v.as_bytes())?;
                }
                Ok(())
            });
        self.landed(result)
    }

    fn key_records(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(io)?;
                decode(format_args!("key {}", String::from_utf8_lossy(&k)), &v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            key_state: "Enabled".into(),
            primary_key_version: format!("{id}-v1"),
            key_versions: vec![format!("{id}-v1")],
            ..Default::default()
        }
    }

    fn token(id: &str, version: &str) -> KeyTokenRecord {
        KeyTokenRecord {
            key_id: id.into(),
            key_version_id: version.into(),
            wrapped_key: vec![7; 40],
            ..Default::default()
        }
    }

    #[test]
    fn a_change_lands_once_on_the_record_it_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let k = key("k");
        s.create_key(&k, Some(&token("k", "k-v1"))).unwrap();
        let mut rotated = k.clone();
        rotated.key_versions.push("k-v2".into());
        rotated.primary_key_version = "k-v2".into();
        let t2 = token("k", "k-v2");
        assert!(s
            .commit_key_change(&k, &rotated, TokenChange::Put(&t2))
            .unwrap());
        // The same change again (an interrupted job run again) finds another record.
        assert!(!s
            .commit_key_change(&k, &rotated, TokenChange::Put(&t2))
            .unwrap());
        let stored = s.key("k").unwrap().unwrap();
        assert_eq!(stored.key_versions, ["k-v1", "k-v2"]);
        assert_eq!(s.key_of_version("k-v2").unwrap().as_deref(), Some("k"));
        assert!(s.key_token("k", "k-v2").unwrap().is_some());

        // Material removed with the record change, atomically.
        let mut pending = stored.clone();
        pending.key_state = "PendingImport".into();
        assert!(s
            .commit_key_change(&stored, &pending, TokenChange::Remove("k-v2"))
            .unwrap());
        assert!(s.key_token("k", "k-v2").unwrap().is_none());
        assert!(s.key_token("k", "k-v1").unwrap().is_some());
    }

    #[test]
    fn a_version_of_another_key_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.create_key(&key("a"), Some(&token("a", "a-v1"))).unwrap();
        let b = key("b");
        s.create_key(&b, Some(&token("b", "b-v1"))).unwrap();
        let mut b2 = b.clone();
        b2.key_versions.push("a-v1".into());
        let stolen = token("b", "a-v1");
        assert!(matches!(
            s.commit_key_change(&b, &b2, TokenChange::Put(&stolen)),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(s.key("b").unwrap().unwrap(), b);
        assert_eq!(s.key_of_version("a-v1").unwrap().as_deref(), Some("a"));
    }

    #[test]
    fn deleting_a_key_removes_every_token_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        {
            let k = key("k");
            s.create_key(&k, Some(&token("k", "k-v1"))).unwrap();
            s.create_key(&key("kk"), Some(&token("kk", "kk-v1")))
                .unwrap();
            let mut k2 = k.clone();
            k2.key_versions.push("k-v2".into());
            assert!(s
                .commit_key_change(&k, &k2, TokenChange::Put(&token("k", "k-v2")))
                .unwrap());
            // A stale record cannot delete.
            assert!(!s.delete_key(&k).unwrap());
            assert!(s.delete_key(&k2).unwrap());
            assert!(!s.delete_key(&k2).unwrap(), "deleted once");
        }
        assert_eq!(s.key("k").unwrap(), None);
        assert!(s.key_token("k", "k-v1").unwrap().is_none());
        assert!(s.key_token("k", "k-v2").unwrap().is_none());
        assert_eq!(s.key_of_version("k-v1").unwrap(), None);
        // The neighbour whose id starts with the same letters is untouched.
        assert!(s.key_token("kk", "kk-v1").unwrap().is_some());
        assert_eq!(s.key_records().unwrap().len(), 1);
    }
}
