//! Access control: who may do what, from where.
//!
//! - [`pattern`]: wildcard matching of resources and actions;
//! - [`network`]: network access rules (addresses, CIDR blocks);
//! - [`role`]: the RBAC roles a policy grants;
//! - [`policy`]: RBAC permission policies and the decision for one request;
//! - [`operations`]: which role and resource each operation needs;
//! - [`document`]: JSON policy documents (statements with Effect/Action/Resource/Principal);
//! - [`clientkey`]: ClientKey passwords, key pairs, certificates, files;
//! - [`apikey`]: API keys (SecretId and a SecretKey sealed inside the HSMs);
//! - [`manage`]: creating and changing the records, with their checks;
//! - [`rotation`]: changing an AAP's ClientKey, the earlier ones retiring after an overlap;
//! - [`endpoint`]: which gateway endpoints answer (the Internet endpoint switch);
//! - [`secrets`]: secret operations: roles, secret policies and managed secrets.
//!
//! Authorisation is deny by default: an operator (local administrator) may do everything;
//! an application may only run the operations one of its AAP's policies grants, on the
//! resources and from the networks that policy names. A denial is logged with the grant
//! that was missing; the caller learns only that it was forbidden.

pub mod apikey;
pub mod clientkey;
pub mod document;
pub mod endpoint;
pub mod manage;
pub mod network;
pub mod operations;
pub mod pattern;
pub mod policy;
mod refusal;
pub mod role;
pub mod rotation;
pub mod secrets;

pub use self::refusal::{require_operator, FORBIDDEN_MESSAGE};

use crate::authn::Caller;
use crate::error::KmsError;
use crate::proto::{ApplicationAccessPoint, NetworkRule, Policy};
use crate::store::access as records;
use crate::store::AccessStore;
use policy::{AccessRequest, Decision};
use refusal::forbidden;

/// Decides whether `caller` may run `operation` on a target known by `resources`
/// (`key/<id>`, `alias/<name>`, `secret/<name>`; empty for GenerateRandom).
pub fn authorize(
    store: &dyn AccessStore,
    caller: &Caller,
    operation: &str,
    resources: Vec<String>,
) -> Result<(), KmsError> {
    match caller {
        Caller::Operator { .. } => Ok(()),
        Caller::Gateway { .. } | Caller::RemoteGateway { .. } => {
            tracing::warn!(caller = %caller, operation, "denied: a gateway acts only for signed application requests");
            Err(forbidden())
        }
        Caller::Application {
            aap,
            source,
            endpoint,
            ..
        } => {
            if let Some(key) = internal_key(store, &resources)? {
                tracing::warn!(caller = %caller, operation, key, "denied: an internal key is never an application's");
                return Err(forbidden());
            }
            let req = AccessRequest {
                operation: operation.to_owned(),
                resources,
                source: *source,
                endpoint: *endpoint,
            };
            match decide(store, aap, &req)? {
                Decision::Allow { policy } => {
                    tracing::debug!(caller = %caller, operation, policy = %policy, "allowed");
                    Ok(())
                }
                Decision::Deny { reason } => {
                    tracing::warn!(caller = %caller, operation, "denied: {reason}");
                    Err(forbidden())
                }
            }
        }
    }
}

/// The first `key/<id>` resource that names an internal key: hkmsd's own keys are refused
/// to every application before any policy is read, so no grant (`key/*` included) reaches
/// them.
fn internal_key<'a>(
    store: &dyn AccessStore,
    resources: &'a [String],
) -> Result<Option<&'a str>, KmsError> {
    for r in resources {
        if let Some(id) = r.strip_prefix(operations::ANY_KEY) {
            if store.is_internal_key(id)? {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// Evaluates a request of AAP `aap` against its current policies and rules.
pub fn decide(
    store: &dyn AccessStore,
    aap: &str,
    req: &AccessRequest,
) -> Result<Decision, KmsError> {
    let Some(aap) = records::get::<ApplicationAccessPoint>(store, aap)? else {
        return Ok(Decision::Deny {
            reason: format!("AAP {aap} no longer exists"),
        });
    };
    decide_for(store, &aap, req)
}

/// Evaluates a request of an AAP record already read against its current policies and
/// rules.
pub fn decide_for(
    store: &dyn AccessStore,
    aap: &ApplicationAccessPoint,
    req: &AccessRequest,
) -> Result<Decision, KmsError> {
    let mut policies = Vec::new();
    let mut rules = Vec::new();
    for name in &aap.policies {
        if let Some(p) = records::get::<Policy>(store, name)? {
            for r in &p.network_rules {
                if let Some(rule) = records::get::<NetworkRule>(store, r)? {
                    rules.push(rule);
                }
            }
            policies.push(p);
        }
    }
    Ok(policy::evaluate(aap, &policies, &rules, req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::proto::{ApplicationAccessPoint, Policy};
    use crate::store::SledStore;

    #[test]
    fn each_kind_of_caller_gets_only_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        manage::create(
            &s,
            Policy {
                name: "all-keys".into(),
                rbac_role: "CryptoServiceKeyUser".into(),
                resources: vec!["key/*".into()],
                ..Default::default()
            },
        )
        .unwrap();
        manage::create(
            &s,
            ApplicationAccessPoint {
                name: "app".into(),
                policies: vec!["all-keys".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let operator = Caller::Operator { uid: 0, gid: 0 };
        let gateway = Caller::Gateway { uid: 9, gid: 9 };
        let remote_gateway = Caller::RemoteGateway {
            subject: "CN=gw".into(),
            address: "10.0.0.2".parse().unwrap(),
        };
        let app = Caller::Application {
            aap: "app".into(),
            credential: "KAAP.x".into(),
            source: "10.0.0.1".parse().unwrap(),
            endpoint: endpoint::EndpointKind::Private,
        };
        let ghost = Caller::Application {
            aap: "deleted".into(),
            credential: "KAAP.y".into(),
            source: "10.0.0.1".parse().unwrap(),
            endpoint: endpoint::EndpointKind::Private,
        };
        let key = || vec!["key/k1".to_owned()];

        authorize(&s, &operator, "Encrypt", key()).unwrap();
        require_operator(&operator, "CreateKey").unwrap();
        authorize(&s, &app, "Encrypt", key()).unwrap();
        authorize(&s, &app, "GenerateRandom", vec![]).unwrap();
        for (caller, op) in [
            (&gateway, "Encrypt"),
            (&remote_gateway, "Encrypt"),
            (&app, "GetSecretValue"),
            (&app, "CreateKey"),
            (&ghost, "Encrypt"),
        ] {
            let e = authorize(&s, caller, op, key()).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden, "{caller} {op}");
            assert_eq!(e.message, FORBIDDEN_MESSAGE, "no detail for the caller");
        }
        for caller in [&gateway, &remote_gateway, &app] {
            assert_eq!(
                require_operator(caller, "CreatePolicy").unwrap_err().code,
                ErrorCode::Forbidden
            );
        }
    }
}
