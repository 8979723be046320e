//! The embedded store: one sled database, one tree per record type, flushed before every
//! write is acknowledged.

use super::error::{StoreError, SCHEMA_VERSION};
use super::interface::Store;
use super::records::{InstanceRecord, KeyRecord, KeyTokenRecord, MemberRecord};
use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::path::Path;

const META: &str = "meta";
const KEYS: &str = "keys";
const TOKENS: &str = "key_tokens";
const MEMBERS: &str = "members";
/// Key version id -> key id: finds a version's key without the key id (the transfer SDK's
/// Decrypt names only the version).
const VERSIONS: &str = "key_versions";
const SCHEMA_KEY: &[u8] = b"schema_version";
const INSTANCE_KEY: &[u8] = b"instance";
/// Present once every stored key version is in the `key_versions` index.
const VERSION_INDEX_KEY: &[u8] = b"key_version_index";

/// sled-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    pub(super) keys: sled::Tree,
    pub(super) tokens: sled::Tree,
    members: sled::Tree,
    pub(super) versions: sled::Tree,
}

pub(super) fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

pub(super) fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    }
}

pub(super) fn decode<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|_| StoreError::Corrupt(what.to_owned()))
}

pub(super) fn token_key(key_id: &str, key_version_id: &str) -> Vec<u8> {
    format!("{key_id}/{key_version_id}").into_bytes()
}

impl SledStore {
    /// Opens (or creates) the store at `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // Every write is flushed before it returns, so the background flusher would
            // only wake up to find nothing to do.
            .flush_every_ms(None)
            .open()
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        let store = SledStore {
            meta: db.open_tree(META).map_err(io)?,
            keys: db.open_tree(KEYS).map_err(io)?,
            tokens: db.open_tree(TOKENS).map_err(io)?,
            members: db.open_tree(MEMBERS).map_err(io)?,
            versions: db.open_tree(VERSIONS).map_err(io)?,
            db,
        };
        match store.meta.get(SCHEMA_KEY).map_err(io)? {
            None => {
                store
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(io)?;
                store.flush()?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema_version".into()))?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
        }
        store.index_key_versions()?;
        Ok(store)
    }

    /// Fills the key version index from the key tokens, once, for a store written before
    /// the index existed (the schema is unchanged: the index can always be rebuilt from the
    /// tokens). The entries and the marker that says the index is complete are written in
    /// one transaction, so an interrupted start simply indexes again.
    fn index_key_versions(&self) -> Result<(), StoreError> {
        if self.meta.get(VERSION_INDEX_KEY).map_err(io)?.is_some() {
            return Ok(());
        }
        let mut entries = Vec::new();
        for v in self.tokens.iter().values() {
            let token: KeyTokenRecord = decode("key token", &v.map_err(io)?)?;
            entries.push((token.key_version_id, token.key_id));
        }
        (&self.versions, &self.meta)
            .transaction(|(versions, meta)| {
                for (version, key) in &entries {
                    versions.insert(version.as_bytes(), key.as_bytes())?;
                }
                meta.insert(VERSION_INDEX_KEY, &[1u8][..])?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        if !entries.is_empty() {
            tracing::info!(versions = entries.len(), "indexed the stored key versions");
        }
        Ok(())
    }

    /// Makes every write so far durable (fsync).
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }

    /// The record of key `key_id`, if there is one.
    pub(super) fn key_record(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.keys
            .get(key_id.as_bytes())
            .map_err(io)?
            .map(|v| decode(&format!("key {key_id}"), &v))
            .transpose()
    }

    /// A tree of this database (opened on first use).
    pub(super) fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(io)
    }
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
                let mut record: KeyRecord = decode(&format!("key {key_id}"), &current)
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
            .map(|v| decode(&format!("key token {key_id}/{key_version_id}"), &v))
            .transpose()
    }

    fn key_tokens(&self) -> Result<Vec<(String, String, KeyTokenRecord)>, StoreError> {
        self.tokens
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(io)?;
                let name = String::from_utf8_lossy(&k).into_owned();
                let token = decode(&format!("key token {name}"), &v)?;
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

/// Runs `open` until it stops failing on the database lock: a store dropped a moment ago
/// may still be held by sled's background threads (tests that reopen a store).
#[cfg(test)]
pub(crate) fn when_unlocked<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> T {
    for _ in 0..200 {
        match open() {
            Ok(v) => return v,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open the store: {e}"),
        }
    }
    panic!("the store stayed locked for 2 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            key_state: "Enabled".into(),
            primary_key_version: format!("{id}-v1"),
            key_versions: vec![format!("{id}-v1")],
            ..Default::default()
        }
    }

    fn token(id: &str) -> KeyTokenRecord {
        KeyTokenRecord {
            key_id: id.into(),
            key_version_id: format!("{id}-v1"),
            wrapped_key: vec![1, 2, 3],
            ..Default::default()
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = when_unlocked(|| SledStore::open(dir.path()));
            s.create_instance(&InstanceRecord {
                instance_id: "i".into(),
                ..Default::default()
            })
            .unwrap();
            s.create_key(&key("k1"), Some(&token("k1"))).unwrap();
            s.update_key("k1", &|k| k.key_state = "Disabled".into())
                .unwrap();
        }
        let s = when_unlocked(|| SledStore::open(dir.path()));
        assert_eq!(s.instance().unwrap().unwrap().instance_id, "i");
        assert_eq!(s.key("k1").unwrap().unwrap().key_state, "Disabled");
        assert_eq!(
            s.key_token("k1", "k1-v1").unwrap().unwrap().wrapped_key,
            [1, 2, 3]
        );
    }

    #[test]
    fn instance_is_created_once_and_keys_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = when_unlocked(|| SledStore::open(dir.path()));
        let rec = InstanceRecord::default();
        s.create_instance(&rec).unwrap();
        assert!(matches!(
            s.create_instance(&rec),
            Err(StoreError::Exists(_))
        ));
        s.create_key(&key("k"), Some(&token("k"))).unwrap();
        assert!(matches!(
            s.create_key(&key("k"), Some(&token("k"))),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.update_key("nope", &|_| {}),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn list_pages_through_all_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = when_unlocked(|| SledStore::open(dir.path()));
        for i in 0..25 {
            let id = format!("k{i:02}");
            s.create_key(&key(&id), Some(&token(&id))).unwrap();
        }
        let mut seen = Vec::new();
        for page in 0..3 {
            let (ids, total) = s.list_keys(page * 10, 10).unwrap();
            assert_eq!(total, 25);
            seen.extend(ids);
        }
        assert_eq!(seen.len(), 25);
        seen.dedup();
        assert_eq!(seen.len(), 25);
    }

    #[test]
    fn versions_are_found_by_id_and_indexed_for_older_stores() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = when_unlocked(|| SledStore::open(dir.path()));
            s.create_key(&key("k1"), Some(&token("k1"))).unwrap();
            s.create_key(&key("k2"), Some(&token("k2"))).unwrap();
            assert_eq!(s.key_of_version("k1-v1").unwrap().as_deref(), Some("k1"));
            assert_eq!(s.key_of_version("k2-v1").unwrap().as_deref(), Some("k2"));
            assert_eq!(s.key_of_version("k3-v1").unwrap(), None);
            // A version id is never reused, even by another key.
            let mut stolen = token("k3");
            stolen.key_version_id = "k1-v1".into();
            let mut k3 = key("k3");
            k3.key_versions = vec!["k1-v1".into()];
            assert!(matches!(
                s.create_key(&k3, Some(&stolen)),
                Err(StoreError::Exists(_))
            ));
            assert_eq!(s.key("k3").unwrap(), None, "nothing of k3 was written");
            assert_eq!(s.key_of_version("k1-v1").unwrap().as_deref(), Some("k1"));
        }
        // A store written before the index existed: no index tree, no marker.
        {
            let db = when_unlocked(|| sled::open(dir.path()));
            db.drop_tree(VERSIONS).unwrap();
            db.open_tree(META)
                .unwrap()
                .remove(VERSION_INDEX_KEY)
                .unwrap();
            db.flush().unwrap();
        }
        let s = when_unlocked(|| SledStore::open(dir.path()));
        assert_eq!(s.key_of_version("k1-v1").unwrap().as_deref(), Some("k1"));
        assert_eq!(s.key_of_version("k2-v1").unwrap().as_deref(), Some("k2"));
        assert!(s.meta.get(VERSION_INDEX_KEY).unwrap().is_some());
    }

    #[test]
    fn unknown_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = when_unlocked(|| sled::open(dir.path()));
            db.open_tree(META)
                .unwrap()
                .insert(SCHEMA_KEY, &99u32.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(
            SledStore::open(dir.path()),
            Err(StoreError::Schema { found: 99 })
        ));
    }
}
