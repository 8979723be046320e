//! The operations layer: every request, whichever front or gRPC service it came through,
//! is authorised, then run, here. Fronts ([`crate::front`]) and the gRPC handlers
//! ([`crate::service`]) decode their wire format into one call of this layer and encode
//! what it returns; only this layer (through [`crate::keys`], [`crate::crypto`],
//! [`crate::secrets`]) reaches keys, secrets, the store and the HSM pool.
//!
//! A call carries a [`Ctx`]: the appliance and the authenticated caller. Operators may run
//! every operation; applications only what their AAP's policies grant
//! ([`crate::access::authorize`]), on the resources the request names. Keys may be named by
//! alias: the alias resolves before authorisation, and a policy on either grants the
//! request. A key that does not exist is reported as missing only to callers that may use
//! the name they sent, so nobody learns which keys exist without a grant.
//!
//! The instance API's transfer SDK may name a key version instead of a key
//! (`x-kms-migrationkeyversionid`): the version then names its key too ([`Ctx::version`]).
//!
//! - [`crypto`]: Encrypt, Decrypt, data keys, ReEncrypt, GenerateRandom, and the instance
//!   API's forms of them (bare ciphertexts, chosen algorithms);
//! - [`asymmetric`]: Sign, Verify, GetPublicKey, RSA-OAEP, MACs;
//! - [`key_pair`]: data key pairs;
//! - [`keys`]: key creation, metadata, lifecycle, aliases, rotation, imported material;
//! - [`secrets`]: the secrets manager (values, versions, lifecycle, secret policies).

pub mod asymmetric;
pub mod crypto;
pub mod key_pair;
pub mod keys;
pub mod secrets;

use crate::access::{self, operations};
use crate::appliance::Appliance;
use crate::audit::scope;
use crate::authn::Caller;
use crate::error::KmsError;
use crate::keys::{alias, find_version, VersionRef};

// Fronts and services name versions with it, without reaching into the key store's module.
pub use crate::keys::VersionChoice;

/// Who asks, of which appliance.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a Appliance,
    pub caller: &'a Caller,
}

impl<'a> Ctx<'a> {
    pub fn new(app: &'a Appliance, caller: &'a Caller) -> Ctx<'a> {
        scope::note_caller(caller);
        Ctx { app, caller }
    }

    /// Authorises `operation` on a target known by `resources` (empty: the role alone
    /// decides, as for GenerateRandom or CreateKey).
    pub fn authorize(&self, operation: &str, resources: Vec<String>) -> Result<(), KmsError> {
        let verdict = access::authorize(&*self.app.store, self.caller, operation, resources);
        if verdict.is_err() {
            scope::note_denied();
        }
        verdict
    }

    /// Resolves a key reference (id or `alias/<name>`) and authorises `operation` on it;
    /// returns the key id. An empty reference is a parameter error.
    pub fn key(&self, operation: &str, requested: &str) -> Result<String, KmsError> {
        if requested.is_empty() {
            return Err(KmsError::invalid("KeyId is required"));
        }
        match alias::resolve(self.app, requested) {
            Ok(key_id) => {
                scope::note_key(&key_id);
                if requested != key_id {
                    scope::note_resource(requested);
                }
                self.authorize(operation, operations::key_resources(requested, &key_id))?;
                Ok(key_id)
            }
            Err(e) => {
                self.authorize(operation, vec![requested.to_owned()])?;
                Err(e)
            }
        }
    }

    /// Authorises `operation` on the key a self-describing ciphertext names; returns the
    /// key id.
    pub fn blob_key(&self, operation: &str, blob: &[u8]) -> Result<String, KmsError> {
        let key_id = crate::crypto::ciphertext::parse(blob)
            .map(|p| p.header.key_id.to_string())
            .map_err(|_| KmsError::invalid_ciphertext())?;
        self.key(operation, &key_id)
    }

    /// Finds the key version `version_id` names and authorises `operation` on its key. A
    /// key reference sent as well must name that key. A version that does not exist is
    /// reported as a missing key only to callers that may use every key
    /// ([`operations::ANY_KEY`]); others cannot tell it from a version of a key they may
    /// not use, as with aliases in [`Self::key`].
    pub fn version(
        &self,
        operation: &str,
        key_ref: &str,
        version_id: &str,
    ) -> Result<VersionRef, KmsError> {
        let found = find_version(self.app, version_id)?;
        if let Some(v) = &found {
            scope::note_key(&v.key_id);
            scope::note_key_version(&v.key_version_id);
        }
        if !key_ref.is_empty() {
            let key_id = self.key(operation, key_ref)?;
            return match found {
                Some(v) if v.key_id == key_id => Ok(v),
                _ => Err(KmsError::key_not_found(version_id)),
            };
        }
        match found {
            Some(v) => {
                self.authorize(operation, operations::key_resources(&v.key_id, &v.key_id))?;
                Ok(v)
            }
            None => {
                self.authorize(operation, vec![operations::ANY_KEY.to_owned()])?;
                Err(KmsError::key_not_found(version_id))
            }
        }
    }

    /// The key a request names, authorised, and the version it names by id, if any (then
    /// the key reference may be empty: see [`Self::version`]).
    pub fn key_and_version(
        &self,
        operation: &str,
        key_ref: &str,
        version_id: Option<&str>,
    ) -> Result<(String, Option<String>), KmsError> {
        match version_id {
            Some(version_id) => {
                let v = self.version(operation, key_ref, version_id)?;
                Ok((v.key_id, Some(v.key_version_id)))
            }
            None => Ok((self.key(operation, key_ref)?, None)),
        }
    }

    /// Authorises a question about the service itself (the algorithms it offers, its
    /// status, its region): `DescribeService`, on no resource, so the caller's role, its
    /// policies' network rules and the endpoint it came through decide.
    pub fn describe_service(&self) -> Result<(), KmsError> {
        self.authorize("DescribeService", Vec::new())
    }
}

/// A result that used one key version, which the request's audit record names.
pub trait UsedVersion {
    fn key_version_id(&self) -> &str;
}

impl UsedVersion for crate::crypto::Sealed {
    fn key_version_id(&self) -> &str {
        &self.key_version_id
    }
}

impl UsedVersion for crate::crypto::Opened {
    fn key_version_id(&self) -> &str {
        &self.key_version_id
    }
}

impl UsedVersion for crate::crypto::instance::Bare {
    fn key_version_id(&self) -> &str {
        &self.key_version_id
    }
}

impl<A: UsedVersion, B> UsedVersion for (A, B) {
    fn key_version_id(&self) -> &str {
        self.0.key_version_id()
    }
}

/// `r`, after noting the key version it used in the audit record.
pub fn noted<T: UsedVersion>(r: Result<T, KmsError>) -> Result<T, KmsError> {
    if let Ok(v) = &r {
        scope::note_key_version(v.key_version_id());
    }
    r
}
