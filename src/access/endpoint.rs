//! Which gateway endpoints answer application requests.
//!
//! The private endpoint always answers. The Internet endpoint answers only while the
//! instance owner (the operator who ran `hkms init`, recorded by access control) has enabled
//! it; other operators may see the switch but not change it.

use super::require_operator;
use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};
use crate::store::named::{NamedStore, Space};
use crate::store::Store;

const INTERNET_ACCESS: &str = "internet_access";

/// An endpoint a gateway reports a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Private,
    Internet,
}

impl EndpointKind {
    /// Parses the relayed name; empty and "instance" (older gateways) mean private.
    pub fn parse(name: &str) -> Option<EndpointKind> {
        match name {
            "" | "instance" | "private" => Some(EndpointKind::Private),
            "internet" => Some(EndpointKind::Internet),
            _ => None,
        }
    }

    /// The name a gateway relays (and logs show).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Private => "private",
            EndpointKind::Internet => "internet",
        }
    }
}

impl std::fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the Internet endpoint is enabled (off until the owner enables it).
pub fn internet_enabled(store: &dyn NamedStore) -> Result<bool, KmsError> {
    Ok(store
        .get_named(Space::Settings, INTERNET_ACCESS)?
        .is_some_and(|v| v.first() == Some(&1)))
}

/// Refuses everyone but the instance owner (the operator who initialised the instance).
pub fn require_owner(
    store: &dyn Store,
    caller: &Caller,
    operation: &str,
    what: &str,
) -> Result<(), KmsError> {
    require_operator(caller, operation)?;
    let Caller::Operator { uid, .. } = caller else {
        unreachable!("require_operator admits operators only")
    };
    match store.instance_owner()? {
        Some(owner) if owner.uid == *uid => Ok(()),
        Some(owner) => {
            tracing::warn!(caller = %caller, owner_uid = owner.uid, "denied: only the instance owner may {what}");
            Err(KmsError::new(
                ErrorCode::Forbidden,
                format!("only the instance owner (the operator who initialised the instance) may {what}"),
            ))
        }
        None => Err(KmsError::new(
            ErrorCode::NotInitialized,
            "no instance owner is recorded; initialise the instance first (hkms init)",
        )),
    }
}

/// Turns the Internet endpoint on or off; only the instance owner may.
pub fn set_internet(store: &dyn Store, caller: &Caller, enabled: bool) -> Result<bool, KmsError> {
    require_owner(store, caller, "SetInternetAccess", "change Internet access")?;
    store.put_named(
        Space::Settings,
        INTERNET_ACCESS,
        vec![u8::from(enabled)],
        false,
    )?;
    tracing::info!(caller = %caller, enabled, "Internet access changed");
    Ok(enabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::InstanceOwner;
    use crate::store::{AccessStore, SledStore};

    #[test]
    fn only_the_owner_switches_internet_access() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let owner = Caller::Operator { uid: 7, gid: 7 };
        let other = Caller::Operator { uid: 8, gid: 7 };
        assert!(!internet_enabled(&s).unwrap());
        assert_eq!(
            set_internet(&s, &owner, true).unwrap_err().code,
            ErrorCode::NotInitialized
        );
        s.record_instance_owner(&InstanceOwner {
            uid: 7,
            gid: 7,
            recorded: String::new(),
        })
        .unwrap();
        assert_eq!(
            set_internet(&s, &other, true).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert!(set_internet(&s, &owner, true).unwrap());
        assert!(internet_enabled(&s).unwrap());
        assert!(!set_internet(&s, &owner, false).unwrap());
        assert!(!internet_enabled(&s).unwrap());
        assert_eq!(EndpointKind::parse("instance"), Some(EndpointKind::Private));
        assert_eq!(
            EndpointKind::parse("internet"),
            Some(EndpointKind::Internet)
        );
        assert_eq!(EndpointKind::parse("elsewhere"), None);
        for e in [EndpointKind::Private, EndpointKind::Internet] {
            assert_eq!(EndpointKind::parse(e.as_str()), Some(e));
        }
    }
}
