//! Access-control records: network rules, policies, application access points, ClientKey
//! certificates, API keys (their SecretKeys sealed) and the instance owner. One sled tree per record type; records are the
//! `hkms.v1` access messages encoded with prost; every write is flushed before it returns.
//! Changes to several records of a kind land together or not at all ([`swap`]).

use super::error::StoreError;
use super::sled_store::{tx_err, SledStore};
use crate::proto::{ApiKey, ApplicationAccessPoint, ClientKey, InstanceOwner, NetworkRule, Policy};
use prost::Message;
use sled::transaction::ConflictableTransactionError;

const NETWORK_RULES: &str = "access_network_rules";
const POLICIES: &str = "access_policies";
const AAPS: &str = "access_aaps";
const CLIENT_KEYS: &str = "access_client_keys";
const API_KEYS: &str = "access_api_keys";
const ACCESS_META: &str = "access_meta";
const OWNER_KEY: &[u8] = b"instance_owner";

/// Which record kind, for messages and tree names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NetworkRule,
    Policy,
    Aap,
    ClientKey,
    ApiKey,
}

impl Kind {
    fn tree(self) -> &'static str {
        match self {
            Kind::NetworkRule => NETWORK_RULES,
            Kind::Policy => POLICIES,
            Kind::Aap => AAPS,
            Kind::ClientKey => CLIENT_KEYS,
            Kind::ApiKey => API_KEYS,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::NetworkRule => "network rule",
            Kind::Policy => "policy",
            Kind::Aap => "application access point",
            Kind::ClientKey => "ClientKey",
            Kind::ApiKey => "API key",
        }
    }
}

/// One record replaced by [`AccessStore::swap_access`]: its name, the bytes it must still
/// hold, and its new bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub name: String,
    pub expected: Vec<u8>,
    pub new: Vec<u8>,
}

/// Storage of access-control records. Writes are durable when they return.
pub trait AccessStore: Send + Sync + std::fmt::Debug {
    /// Stores a record under `name`. With `create`, fails with `Exists` when the name is
    /// taken; without, fails with `NotFound` when it is not.
    fn put_access(
        &self,
        kind: Kind,
        name: &str,
        bytes: Vec<u8>,
        create: bool,
    ) -> Result<(), StoreError>;
    fn get_access(&self, kind: Kind, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record of a kind, ordered by name.
    fn list_access(&self, kind: Kind) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Removes a record; `NotFound` when absent.
    fn delete_access(&self, kind: Kind, name: &str) -> Result<(), StoreError>;
    /// Replaces records of `kind` together, each only if it is still exactly the `expected`
    /// bytes (compare-and-swap), in one transaction. `Ok(true)` once durable; `Ok(false)`
    /// when any of them changed or disappeared meanwhile, and then nothing was written.
    fn swap_access(&self, kind: Kind, swaps: &[Swap]) -> Result<bool, StoreError>;
    fn instance_owner(&self) -> Result<Option<InstanceOwner>, StoreError>;
    /// Records the owner once; later calls keep the first owner.
    fn record_instance_owner(&self, owner: &InstanceOwner) -> Result<(), StoreError>;
    /// Whether `key_id` names an internal key (one no application may use); false for an
    /// id that names no key.
    fn is_internal_key(&self, key_id: &str) -> Result<bool, StoreError>;
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl AccessStore for SledStore {
    fn is_internal_key(&self, key_id: &str) -> Result<bool, StoreError> {
        Ok(self.key_record(key_id)?.is_some_and(|k| k.internal))
    }

    fn put_access(
        &self,
        kind: Kind,
        name: &str,
        bytes: Vec<u8>,
        create: bool,
    ) -> Result<(), StoreError> {
        let tree = self.tree(kind.tree())?;
        if create {
            let swapped = tree
                .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(bytes))
                .map_err(io)?;
            if swapped.is_err() {
                return Err(StoreError::Exists(format!("{} {name}", kind.label())));
            }
        } else {
            // Replace only an existing record: a concurrent delete wins over an update.
            let mut value = Some(bytes);
            loop {
                let Some(current) = tree.get(name.as_bytes()).map_err(io)? else {
                    return Err(StoreError::NotFound(format!("{} {name}", kind.label())));
                };
                match tree
                    .compare_and_swap(name.as_bytes(), Some(current), value.take())
                    .map_err(io)?
                {
                    Ok(()) => break,
                    Err(e) => value = e.proposed.map(|v| v.to_vec()),
                }
            }
        }
        self.flush()
    }

    fn get_access(&self, kind: Kind, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(kind.tree())?
            .get(name.as_bytes())
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn list_access(&self, kind: Kind) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(kind.tree())?
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(io))
            .collect()
    }

    fn delete_access(&self, kind: Kind, name: &str) -> Result<(), StoreError> {
        if self
            .tree(kind.tree())?
            .remove(name.as_bytes())
            .map_err(io)?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("{} {name}", kind.label())));
        }
        self.flush()
    }

    fn swap_access(&self, kind: Kind, swaps: &[Swap]) -> Result<bool, StoreError> {
        let tree = self.tree(kind.tree())?;
        let result = tree.transaction(|t| {
            for s in swaps {
                match t.get(s.name.as_bytes())? {
                    Some(current) if current.as_ref() == s.expected.as_slice() => {
                        t.insert(s.name.as_bytes(), s.new.as_slice())?;
                    }
                    _ => return Err(ConflictableTransactionError::Abort(StoreError::Conflict)),
                }
            }
            Ok(())
        });
        match result.map_err(tx_err) {
            Ok(()) => self.flush().map(|()| true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn instance_owner(&self) -> Result<Option<InstanceOwner>, StoreError> {
        self.tree(ACCESS_META)?
            .get(OWNER_KEY)
            .map_err(io)?
            .map(|v| {
                InstanceOwner::decode(v.as_ref())
                    .map_err(|_| StoreError::Corrupt("instance owner".into()))
            })
            .transpose()
    }

    fn record_instance_owner(&self, owner: &InstanceOwner) -> Result<(), StoreError> {
        let _ = self
            .tree(ACCESS_META)?
            .compare_and_swap(
                OWNER_KEY,
                None as Option<&[u8]>,
                Some(owner.encode_to_vec()),
            )
            .map_err(io)?;
        self.flush()
    }
}

/// Typed access on top of [`AccessStore`]'s byte records.
pub trait Record: Message + Default + Sized {
    const KIND: Kind;
    fn name(&self) -> &str;
}

impl Record for NetworkRule {
    const KIND: Kind = Kind::NetworkRule;
    fn name(&self) -> &str {
        &self.name
    }
}
impl Record for Policy {
    const KIND: Kind = Kind::Policy;
    fn name(&self) -> &str {
        &self.name
    }
}
impl Record for ApplicationAccessPoint {
    const KIND: Kind = Kind::Aap;
    fn name(&self) -> &str {
        &self.name
    }
}
impl Record for ClientKey {
    const KIND: Kind = Kind::ClientKey;
    fn name(&self) -> &str {
        &self.client_key_id
    }
}

impl Record for ApiKey {
    const KIND: Kind = Kind::ApiKey;
    fn name(&self) -> &str {
        &self.secret_id
    }
}

fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    R::decode(bytes).map_err(|_| StoreError::Corrupt(R::KIND.label().into()))
}

/// Reads one record.
pub fn get<R: Record>(store: &dyn AccessStore, name: &str) -> Result<Option<R>, StoreError> {
    store
        .get_access(R::KIND, name)?
        .map(|b| decode(&b))
        .transpose()
}

/// Every record of a type, ordered by name.
pub fn list<R: Record>(store: &dyn AccessStore) -> Result<Vec<R>, StoreError> {
    store
        .list_access(R::KIND)?
        .iter()
        .map(|b| decode(b))
        .collect()
}

/// Creates (`create`) or replaces a record.
pub fn put<R: Record>(store: &dyn AccessStore, record: &R, create: bool) -> Result<(), StoreError> {
    store.put_access(R::KIND, record.name(), record.encode_to_vec(), create)
}

pub fn delete<R: Record>(store: &dyn AccessStore, name: &str) -> Result<(), StoreError> {
    store.delete_access(R::KIND, name)
}

/// Replaces each record read (`expected`) with its new version (`new`, of the same name),
/// all or none ([`AccessStore::swap_access`]): `Ok(false)` when any changed meanwhile.
pub fn swap<R: Record>(store: &dyn AccessStore, changes: &[(&R, &R)]) -> Result<bool, StoreError> {
    let mut swaps = Vec::with_capacity(changes.len());
    for (expected, new) in changes {
        if expected.name() != new.name() {
            return Err(StoreError::Corrupt(format!(
                "{} {} cannot become {}",
                R::KIND.label(),
                expected.name(),
                new.name()
            )));
        }
        swaps.push(Swap {
            name: new.name().to_owned(),
            expected: expected.encode_to_vec(),
            new: new.encode_to_vec(),
        });
    }
    store.swap_access(R::KIND, &swaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_created_once_updated_listed_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = crate::store::sled_store::when_unlocked(|| SledStore::open(dir.path()));
            let mut rule = NetworkRule {
                name: "office".into(),
                network_type: "Private".into(),
                source_private_ips: vec!["10.0.0.0/8".into()],
                ..Default::default()
            };
            put(&s, &rule, true).unwrap();
            assert!(matches!(put(&s, &rule, true), Err(StoreError::Exists(_))));
            rule.description = "changed".into();
            put(&s, &rule, false).unwrap();
            let ghost = NetworkRule {
                name: "ghost".into(),
                ..Default::default()
            };
            assert!(matches!(
                put(&s, &ghost, false),
                Err(StoreError::NotFound(_))
            ));
            put(
                &s,
                &Policy {
                    name: "p".into(),
                    ..Default::default()
                },
                true,
            )
            .unwrap();
            s.record_instance_owner(&InstanceOwner {
                uid: 7,
                ..Default::default()
            })
            .unwrap();
            s.record_instance_owner(&InstanceOwner {
                uid: 8,
                ..Default::default()
            })
            .unwrap();
        }
        let s = crate::store::sled_store::when_unlocked(|| SledStore::open(dir.path()));
        let rule: NetworkRule = get(&s, "office").unwrap().unwrap();
        assert_eq!(rule.description, "changed");
        assert_eq!(list::<Policy>(&s).unwrap().len(), 1);
        assert!(list::<ApplicationAccessPoint>(&s).unwrap().is_empty());
        assert_eq!(s.instance_owner().unwrap().unwrap().uid, 7);
        delete::<NetworkRule>(&s, "office").unwrap();
        assert!(matches!(
            delete::<NetworkRule>(&s, "office"),
            Err(StoreError::NotFound(_))
        ));
        assert!(get::<NetworkRule>(&s, "office").unwrap().is_none());
    }

    #[test]
    fn swaps_land_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let key = |id: &str, retire_unix: i64| ClientKey {
            client_key_id: id.into(),
            aap_name: "app".into(),
            retire_unix,
            ..Default::default()
        };
        let (a, b) = (key("KAAP.a", 0), key("KAAP.b", 0));
        put(&s, &a, true).unwrap();
        put(&s, &b, true).unwrap();
        let (a1, b1) = (key("KAAP.a", 100), key("KAAP.b", 100));
        assert!(swap(&s, &[(&a, &a1), (&b, &b1)]).unwrap());
        assert_eq!(get::<ClientKey>(&s, "KAAP.b").unwrap().unwrap(), b1);
        // One record no longer as read: neither changes.
        let (a2, b2) = (key("KAAP.a", 200), key("KAAP.b", 200));
        assert!(!swap(&s, &[(&a1, &a2), (&b, &b2)]).unwrap());
        assert_eq!(get::<ClientKey>(&s, "KAAP.a").unwrap().unwrap(), a1);
        assert_eq!(get::<ClientKey>(&s, "KAAP.b").unwrap().unwrap(), b1);
        // A record that is gone, or a change of name, is refused too.
        delete::<ClientKey>(&s, "KAAP.b").unwrap();
        assert!(!swap(&s, &[(&a1, &a2), (&b1, &b2)]).unwrap());
        assert_eq!(get::<ClientKey>(&s, "KAAP.a").unwrap().unwrap(), a1);
        assert!(swap(&s, &[(&a1, &b2)]).is_err());
    }
}
