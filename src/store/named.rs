//! Small named records beside keys: key aliases and instance settings (such as whether the
//! Internet endpoint is enabled). One sled tree per space; values are prost messages or
//! plain bytes chosen by the owning module; every write is flushed before it returns.

use super::error::StoreError;
use super::sled_store::SledStore;

/// Which set of named records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// `alias/<name>` → key id (see `keys::alias`).
    Aliases,
    /// Instance-wide switches.
    Settings,
    /// Import token id → import parameters (see `keys::import`).
    ImportParams,
}

impl Space {
    fn tree(self) -> &'static str {
        match self {
            Space::Aliases => "key_aliases",
            Space::Settings => "instance_settings",
            Space::ImportParams => "key_import_params",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Space::Aliases => "alias",
            Space::Settings => "setting",
            Space::ImportParams => "import token",
        }
    }
}

/// Storage of named records. Writes are durable when they return.
pub trait NamedStore: Send + Sync + std::fmt::Debug {
    fn get_named(&self, space: Space, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value`; with `create`, fails with `Exists` when the name is taken.
    fn put_named(
        &self,
        space: Space,
        name: &str,
        value: Vec<u8>,
        create: bool,
    ) -> Result<(), StoreError>;
    /// Removes a record; `NotFound` when absent.
    fn delete_named(&self, space: Space, name: &str) -> Result<(), StoreError>;
    /// Every record of a space, ordered by name.
    fn list_named(&self, space: Space) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl NamedStore for SledStore {
    fn get_named(&self, space: Space, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(space.tree())?
            .get(name.as_bytes())
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn put_named(
        &self,
        space: Space,
        name: &str,
        value: Vec<u8>,
        create: bool,
    ) -> Result<(), StoreError> {
        let tree = self.tree(space.tree())?;
        if create {
            let swapped = tree
                .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(value))
                .map_err(io)?;
            if swapped.is_err() {
                return Err(StoreError::Exists(format!("{} {name}", space.label())));
            }
        } else {
            tree.insert(name.as_bytes(), value).map_err(io)?;
        }
        self.flush()
    }

    fn delete_named(&self, space: Space, name: &str) -> Result<(), StoreError> {
        if self
            .tree(space.tree())?
            .remove(name.as_bytes())
            .map_err(io)?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("{} {name}", space.label())));
        }
        self.flush()
    }

    fn list_named(&self, space: Space) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree(space.tree())?
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_records_are_created_once_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.put_named(Space::Aliases, "b", b"k2".to_vec(), true)
            .unwrap();
        s.put_named(Space::Aliases, "a", b"k1".to_vec(), true)
            .unwrap();
        assert!(matches!(
            s.put_named(Space::Aliases, "a", b"k3".to_vec(), true),
            Err(StoreError::Exists(_))
        ));
        let all = s.list_named(Space::Aliases).unwrap();
        assert_eq!(all[0], ("a".to_string(), b"k1".to_vec()));
        assert_eq!(all.len(), 2);
        assert!(s.list_named(Space::Settings).unwrap().is_empty());
        s.delete_named(Space::Aliases, "a").unwrap();
        assert!(matches!(
            s.delete_named(Space::Aliases, "a"),
            Err(StoreError::NotFound(_))
        ));
        s.put_named(Space::Settings, "x", vec![1], false).unwrap();
        s.put_named(Space::Settings, "x", vec![0], false).unwrap();
        assert_eq!(s.get_named(Space::Settings, "x").unwrap(), Some(vec![0]));
    }
}
