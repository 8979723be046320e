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
//! - [`crypto`]: Encrypt, Decrypt, data keys, ReEncrypt, GenerateRandom;
//! - [`asymmetric`]: Sign, Verify, GetPublicKey, RSA-OAEP, MACs;
//! - [`keys`]: key creation, metadata, lifecycle, aliases, rotation, imported material;
//! - [`secrets`]: the secrets manager (values, versions, lifecycle, secret policies).

pub mod asymmetric;
pub mod crypto;
pub mod keys;
pub mod secrets;

use crate::access::{self, operations};
use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::error::KmsError;
use crate::keys::alias;

/// Who asks, of which appliance.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a Appliance,
    pub caller: &'a Caller,
}

impl<'a> Ctx<'a> {
    pub fn new(app: &'a Appliance, caller: &'a Caller) -> Ctx<'a> {
        Ctx { app, caller }
    }

    /// Authorises `operation` on a target known by `resources` (empty: the role alone
    /// decides, as for GenerateRandom or CreateKey).
    pub fn authorize(&self, operation: &str, resources: Vec<String>) -> Result<(), KmsError> {
        access::authorize(&*self.app.store, self.caller, operation, resources)
    }

    /// Resolves a key reference (id or `alias/<name>`) and authorises `operation` on it;
    /// returns the key id. An empty reference is a parameter error.
    pub fn key(&self, operation: &str, requested: &str) -> Result<String, KmsError> {
        if requested.is_empty() {
            return Err(KmsError::invalid("KeyId is required"));
        }
        match alias::resolve(self.app, requested) {
            Ok(key_id) => {
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

    /// Authorises a question about the service itself (the algorithms it offers, its
    /// status, its region): `DescribeService`, on no resource, so the caller's role, its
    /// policies' network rules and the endpoint it came through decide.
    pub fn describe_service(&self) -> Result<(), KmsError> {
        self.authorize("DescribeService", Vec::new())
    }
}
