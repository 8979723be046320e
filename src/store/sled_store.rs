//! The embedded store: one sled database, one tree per record type, flushed before every
//! write is acknowledged.

use super::error::{StoreError, SCHEMA_VERSION};
use super::records::{KeyRecord, KeyTokenRecord};
use prost::Message;
use sled::transaction::TransactionError;
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
pub(super) const INSTANCE_KEY: &[u8] = b"instance";
/// Present once every stored key version is in the `key_versions` index.
const VERSION_INDEX_KEY: &[u8] = b"key_version_index";

/// sled-backed [`super::Store`].
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    pub(super) meta: sled::Tree,
    pub(super) keys: sled::Tree,
    pub(super) tokens: sled::Tree,
    pub(super) members: sled::Tree,
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

pub(super) fn decode<M: Message + Default>(
    what: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|_| StoreError::Corrupt(what.to_string()))
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
            .map(|v| decode(format_args!("key {key_id}"), &v))
            .transpose()
    }

    /// A tree of this database (opened on first use).
    pub(super) fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(io)
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
    use crate::store::records::InstanceRecord;
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
