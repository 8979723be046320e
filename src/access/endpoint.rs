//! Which gateway endpoints answer application requests.
//!
//! The private endpoint always answers. On the Internet endpoint two switches decide, both
//! the instance owner's (the operator who ran `hkms init`, recorded by access control; other
//! operators may see them but not change them):
//! - cryptographic operations, answered only while Internet access is enabled (off until
//!   the owner enables it);
//! - secret reads (GetSecretValue), answered whatever Internet access says, until the owner
//!   turns them off.
//!
//! Either way a request that gets through still needs a policy of its AAP that names a
//! `Public` network rule admitting its source ([`super::policy`]).

use super::refusal::require_operator;
use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};
use crate::store::named::{NamedStore, Space};
use crate::store::Store;

const INTERNET_ACCESS: &str = "internet_access";
const INTERNET_SECRET_READS: &str = "internet_secret_reads";

// Requests carry their endpoint from authentication on; the switches here are read by it.
pub use crate::authn::endpoint::EndpointKind;

/// The operation that reads secrets (the one the secret-read switch governs).
pub const SECRET_READ: &str = "GetSecretValue";

/// Whether the Internet endpoint is enabled (off until the owner enables it).
pub fn internet_enabled(store: &dyn NamedStore) -> Result<bool, KmsError> {
    Ok(store
        .get_named(Space::Settings, INTERNET_ACCESS)?
        .is_some_and(|v| v.first() == Some(&1)))
}

/// Whether secret reads are answered on the Internet endpoint (on until the owner turns
/// them off).
pub fn internet_secret_reads(store: &dyn NamedStore) -> Result<bool, KmsError> {
    Ok(store
        .get_named(Space::Settings, INTERNET_SECRET_READS)?
        .is_none_or(|v| v.first() != Some(&0)))
}

/// Why a request for `api_name` arriving on `endpoint` is refused before it is even
/// authenticated, if it is: the Internet endpoint answers secret reads while they are on,
/// and other operations while Internet access is enabled. A setting that cannot be read
/// counts as off.
pub fn closed_to(
    store: &dyn NamedStore,
    endpoint: EndpointKind,
    api_name: &str,
) -> Option<&'static str> {
    if endpoint != EndpointKind::Internet {
        return None;
    }
    if api_name == SECRET_READ {
        (!internet_secret_reads(store).unwrap_or(false))
            .then_some("Secret reads over the Internet are turned off for this instance.")
    } else {
        (!internet_enabled(store).unwrap_or(false))
            .then_some("Internet access to this instance is not enabled.")
    }
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

/// Turns secret reads over the Internet endpoint on or off; only the instance owner may.
pub fn set_internet_secret_reads(
    store: &dyn Store,
    caller: &Caller,
    enabled: bool,
) -> Result<bool, KmsError> {
    require_owner(
        store,
        caller,
        "SetInternetSecretAccess",
        "change secret reads over the Internet",
    )?;
    store.put_named(
        Space::Settings,
        INTERNET_SECRET_READS,
        vec![u8::from(enabled)],
        false,
    )?;
    tracing::info!(caller = %caller, enabled, "secret reads over the Internet changed");
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

    #[test]
    fn secret_reads_over_the_internet_have_their_own_switch() {
        use EndpointKind::{Internet, Private};
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let owner = Caller::Operator { uid: 7, gid: 7 };
        let other = Caller::Operator { uid: 8, gid: 7 };
        s.record_instance_owner(&InstanceOwner {
            uid: 7,
            gid: 7,
            recorded: String::new(),
        })
        .unwrap();
        // By default: secret reads yes, cryptography no; the private endpoint always.
        assert!(internet_secret_reads(&s).unwrap());
        assert_eq!(closed_to(&s, Internet, SECRET_READ), None);
        assert!(closed_to(&s, Internet, "Encrypt").is_some());
        assert!(closed_to(&s, Internet, "GetSecretValueX").is_some());
        assert_eq!(closed_to(&s, Private, "Encrypt"), None);
        assert_eq!(
            set_internet_secret_reads(&s, &other, false)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert!(!set_internet_secret_reads(&s, &owner, false).unwrap());
        assert!(!internet_secret_reads(&s).unwrap());
        assert!(closed_to(&s, Internet, SECRET_READ)
            .unwrap()
            .contains("Secret reads"));
        assert_eq!(closed_to(&s, Private, SECRET_READ), None);
        // The two switches are independent.
        set_internet(&s, &owner, true).unwrap();
        assert_eq!(closed_to(&s, Internet, "Encrypt"), None);
        assert!(closed_to(&s, Internet, SECRET_READ).is_some());
        assert!(set_internet_secret_reads(&s, &owner, true).unwrap());
        set_internet(&s, &owner, false).unwrap();
        assert_eq!(closed_to(&s, Internet, SECRET_READ), None);
        assert!(closed_to(&s, Internet, "Decrypt").is_some());
    }
}
