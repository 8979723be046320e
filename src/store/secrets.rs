//! Secrets as they rest: one record per secret (metadata, stages, version ids) and one per
//! version (the sealed value). A secret changes with its versions in one transaction that
//! lands only if the record is still the one the caller read (compare-and-swap), so two
//! writers never lose each other's versions.

use super::error::StoreError;
use super::records::{SecretRecord, SecretVersionRecord};
use super::sled_store::{decode, io, tx_err, SledStore};
use prost::Message;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

const SECRETS: &str = "secrets";
const SECRET_VERSIONS: &str = "secret_versions";

/// One change to a secret and its versions.
#[derive(Debug, Clone, Copy)]
pub struct SecretChange<'a> {
    /// The record read before deciding (`None`: the secret must not exist yet).
    pub expected: Option<&'a SecretRecord>,
    /// The record to store (`None`: the secret and every version of it are removed).
    pub new: Option<&'a SecretRecord>,
    /// A version to add.
    pub add: Option<&'a SecretVersionRecord>,
    /// Versions to remove (the oldest ones past the limit).
    pub remove: &'a [String],
}

/// Storage of secrets. Writes are durable when they return.
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    fn secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError>;
    /// Every secret, ordered by name.
    fn secrets(&self) -> Result<Vec<SecretRecord>, StoreError>;
    fn secret_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> Result<Option<SecretVersionRecord>, StoreError>;
    /// Applies `change` atomically. `Exists` when creating a secret whose name is taken,
    /// `Conflict` when the stored record is no longer `change.expected` (nothing written).
    fn change_secret(&self, change: SecretChange<'_>) -> Result<(), StoreError>;
}

/// Versions are stored under `<name> 0x00 <version id>`: names hold no NUL, so one
/// secret's versions are one contiguous range.
fn version_key(name: &str, version_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1 + version_id.len());
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(version_id.as_bytes());
    k
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

impl SecretStore for SledStore {
    fn secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.tree(SECRETS)?
            .get(name.as_bytes())
            .map_err(io)?
            .map(|v| decode(format_args!("secret {name}"), &v))
            .transpose()
    }

    fn secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        self.tree(SECRETS)?
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                decode(format_args!("secret {}", String::from_utf8_lossy(&k)), &v)
            })
            .collect()
    }

    fn secret_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> Result<Option<SecretVersionRecord>, StoreError> {
        self.tree(SECRET_VERSIONS)?
            .get(version_key(name, version_id))
            .map_err(io)?
            .map(|v| decode(format_args!("secret {name} version {version_id}"), &v))
            .transpose()
    }

    fn change_secret(&self, change: SecretChange<'_>) -> Result<(), StoreError> {
        let name = match (change.expected, change.new) {
            (_, Some(n)) => n.name.clone(),
            (Some(e), None) => e.name.clone(),
            (None, None) => return Ok(()),
        };
        if let (Some(e), Some(n)) = (change.expected, change.new) {
            if e.name != n.name {
                return Err(StoreError::Corrupt(format!(
                    "secret {} cannot become {}",
                    e.name, n.name
                )));
            }
        }
        if let Some(v) = change.add {
            if v.secret_name != name {
                return Err(StoreError::Corrupt(format!(
                    "version {} is not a version of secret {name}",
                    v.version_id
                )));
            }
        }
        let expected = change.expected.map(Message::encode_to_vec);
        let new = change.new.map(Message::encode_to_vec);
        let added = change
            .add
            .map(|v| (version_key(&name, &v.version_id), v.encode_to_vec()));
        // Every version of the secret goes with it.
        let all_versions: Vec<Vec<u8>> = match (change.new, change.expected) {
            (None, Some(e)) => e
                .version_ids
                .iter()
                .map(|v| version_key(&name, v))
                .collect(),
            _ => change
                .remove
                .iter()
                .map(|v| version_key(&name, v))
                .collect(),
        };
        let secrets = self.tree(SECRETS)?;
        let versions = self.tree(SECRET_VERSIONS)?;
        (&secrets, &versions)
            .transaction(|(secrets, versions)| {
                let current = secrets.get(name.as_bytes())?;
                match (&current, &expected) {
                    (None, None) => {}
                    (Some(_), None) => return abort(StoreError::Exists(format!("secret {name}"))),
                    (Some(c), Some(e)) if c.as_ref() == e.as_slice() => {}
                    _ => return abort(StoreError::Conflict),
                }
                match &new {
                    Some(bytes) => {
                        secrets.insert(name.as_bytes(), bytes.as_slice())?;
                    }
                    None => {
                        secrets.remove(name.as_bytes())?;
                    }
                }
                for k in &all_versions {
                    versions.remove(k.as_slice())?;
                }
                if let Some((k, v)) = &added {
                    if versions.get(k.as_slice())?.is_some() {
                        return abort(StoreError::Exists(format!("secret {name} version")));
                    }
                    versions.insert(k.as_slice(), v.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, versions: &[&str]) -> SecretRecord {
        SecretRecord {
            name: name.into(),
            version_ids: versions.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }

    fn version(name: &str, id: &str) -> SecretVersionRecord {
        SecretVersionRecord {
            secret_name: name.into(),
            version_id: id.into(),
            ciphertext: vec![7; 20],
            ..Default::default()
        }
    }

    #[test]
    fn secrets_change_with_their_versions_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let v1 = version("db", "v1");
        let first = secret("db", &["v1"]);
        let create = |rec: &SecretRecord, v: &SecretVersionRecord| {
            s.change_secret(SecretChange {
                expected: None,
                new: Some(rec),
                add: Some(v),
                remove: &[],
            })
        };
        create(&first, &v1).unwrap();
        assert!(matches!(create(&first, &v1), Err(StoreError::Exists(_))));
        // "db" and "db2" keep their versions apart.
        create(&secret("db2", &["v1"]), &version("db2", "v1")).unwrap();
        assert_eq!(s.secret_version("db", "v1").unwrap(), Some(v1.clone()));

        // A new version that prunes the old one.
        let second = secret("db", &["v2"]);
        let v2 = version("db", "v2");
        s.change_secret(SecretChange {
            expected: Some(&first),
            new: Some(&second),
            add: Some(&v2),
            remove: &["v1".to_owned()],
        })
        .unwrap();
        assert_eq!(s.secret_version("db", "v1").unwrap(), None);
        assert_eq!(s.secret_version("db", "v2").unwrap(), Some(v2.clone()));

        // A writer that read the first record changes nothing.
        let stale = s.change_secret(SecretChange {
            expected: Some(&first),
            new: Some(&secret("db", &["v3"])),
            add: Some(&version("db", "v3")),
            remove: &[],
        });
        assert!(matches!(stale, Err(StoreError::Conflict)));
        assert_eq!(s.secret_version("db", "v3").unwrap(), None);
        assert_eq!(s.secret("db").unwrap(), Some(second.clone()));

        // Removal takes every version; the other secret stays.
        s.change_secret(SecretChange {
            expected: Some(&second),
            new: None,
            add: None,
            remove: &[],
        })
        .unwrap();
        assert_eq!(s.secret("db").unwrap(), None);
        assert_eq!(s.secret_version("db", "v2").unwrap(), None);
        let names: Vec<String> = s.secrets().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["db2"]);
        assert!(s.secret_version("db2", "v1").unwrap().is_some());
    }
}
