//! Who may do what with a secret.
//!
//! - **Operators** may run every secret operation, except that they may only read managed
//!   secrets (`<product>!<identifier>`) and manage their policies: creating, changing and
//!   deleting those belongs to the product's principal.
//! - **The product's principal**: the AAP an operator registered as the managing principal of
//!   product `P` (`managed_product`) may run every operation but the policy ones on the
//!   secrets named `P!...`, from where its network rules admit it. It needs no permission
//!   policy for them except, to create one, the right to make data keys with the CMK
//!   (`GenerateDataKey` on the key); an explicit Deny in the secret's policy still applies.
//! - **Applications**: an operation an RBAC role grants ([`super::operations`]:
//!   `CryptoServiceSecretUser` reads and writes values and stages; `SecretUser` only
//!   GetSecretValue; `CryptoServiceSecretAdministrator` both, and the lifecycle: create,
//!   update, enable, disable, delete, restore) on a matching `secret/<name>` pattern, from a
//!   network its rules admit; or the secret's own policy. An explicit Deny in the secret policy wins over every
//!   Allow. A caller admitted by the secret policy alone (an AAP the secret's owner does not
//!   otherwise trust) must still come from where its AAP's network rules admit it (the
//!   private endpoint only when they name none); it reads the value only if it may also
//!   decrypt with the secret's CMK (`Decrypt` on the key through its own policies, or a
//!   `kms:Decrypt` statement on the key in the secret policy), and writes one only if it may
//!   make data keys with it (`GenerateDataKey`, likewise). A secret policy never grants the
//!   lifecycle ([`LIFECYCLE`]): creating, changing, enabling, disabling, deleting and
//!   restoring ordinary secrets stays with operators and the AAPs a
//!   `CryptoServiceSecretAdministrator` policy names. Creating one also takes the right to
//!   make data keys with its CMK (`GenerateDataKey` on the key, [`may_seal_with`]).
//!
//! Secret policies are JSON policy documents ([`super::document`]) whose principals are
//! AAPs (`aap/<name>`, `aap/*`, `*`) and whose resources are `secret/<name>` or `key/<id>`,
//! short for `acs:kms:${region}:${account}:secret/<name>`; the region is [`REGION`] and
//! the account the instance id.

use super::document::{Outcome, PolicyDocument, Request};
use super::endpoint::EndpointKind;
use super::policy::{AccessRequest, Decision};
use super::{forbidden, network, operations};
use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};
use crate::proto::{ApplicationAccessPoint, NetworkRule, Policy};
use crate::store::access as records;
use crate::store::{AccessStore, Store};

/// The region of every resource name (`acs:kms:local:<instance id>:secret/<name>`).
pub const REGION: &str = "local";

/// Operations that create, change or delete a secret or its values: on a managed secret,
/// only its product's principal runs them.
const WRITES: [&str; 8] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "UpdateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "EnableSecret",
    "DisableSecret",
];

/// A secret's lifecycle: granted to applications by the `CryptoServiceSecretAdministrator`
/// role only, never by a secret policy.
pub const LIFECYCLE: [&str; 6] = [
    "CreateSecret",
    "UpdateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "EnableSecret",
    "DisableSecret",
];

/// Operations on a secret's policy: operators only.
const POLICY_OPERATIONS: [&str; 3] = ["SetSecretPolicy", "GetSecretPolicy", "DeleteSecretPolicy"];

/// Longest product code of a managed secret.
const MAX_PRODUCT: usize = 32;

/// Checks a product code: 1..32 lowercase letters, digits and '-', starting with a letter.
pub fn check_product(product: &str) -> Result<(), KmsError> {
    let ok = !product.is_empty()
        && product.len() <= MAX_PRODUCT
        && product.starts_with(|c: char| c.is_ascii_lowercase())
        && product
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KmsError::invalid(format!(
            "product code {product:?} must be 1 to {MAX_PRODUCT} lowercase letters, digits or '-', starting with a letter"
        )))
    }
}

/// Checks the product an AAP is registered for (if any): a valid code that no other AAP
/// holds.
pub fn check_product_principal(
    store: &dyn AccessStore,
    aap: &ApplicationAccessPoint,
) -> Result<(), KmsError> {
    if aap.managed_product.is_empty() {
        return Ok(());
    }
    check_product(&aap.managed_product)?;
    let other = records::list::<ApplicationAccessPoint>(store)?
        .into_iter()
        .find(|a| a.name != aap.name && a.managed_product == aap.managed_product);
    match other {
        Some(other) => Err(KmsError::new(
            ErrorCode::ResourceExists,
            format!(
                "AAP {} is the principal of product {} already",
                other.name, aap.managed_product
            ),
        )),
        None => Ok(()),
    }
}

/// What is being decided: an operation on one secret.
#[derive(Debug, Clone, Copy)]
pub struct SecretTarget<'a> {
    pub name: &'a str,
    /// The managing product of a managed secret's name.
    pub product: Option<&'a str>,
    /// The attached secret policy (JSON); empty when none.
    pub policy: &'a str,
    /// The secret's CMK (key id); empty before the secret exists.
    pub key_id: &'a str,
}

/// An AAP's principal name in secret policies.
pub fn principal(aap: &str) -> String {
    format!("aap/{aap}")
}

/// The full resource name of `short` (`secret/<name>`, `key/<id>`).
pub fn resource_name(account: &str, short: &str) -> String {
    format!("acs:kms:{REGION}:{account}:{short}")
}

/// Parses a secret policy: a resource policy (every statement names principals) whose
/// principals are `*` or `aap/...`.
pub fn parse_policy(json: &str) -> Result<PolicyDocument, KmsError> {
    let mut doc = PolicyDocument::parse_resource_policy(json).map_err(KmsError::invalid)?;
    for (i, s) in doc.statements.iter_mut().enumerate() {
        for p in s.principals.iter().flatten() {
            if p != "*" && !p.starts_with("aap/") {
                return Err(KmsError::invalid(format!(
                    "statement {i}: principal {p:?} must be \"*\" or \"aap/<AAP name>\" (wildcards allowed)"
                )));
            }
        }
        for r in s.resources.iter_mut() {
            if !r.starts_with("acs:") {
                if !(r.starts_with("secret/") || r.starts_with("key/") || r == "*") {
                    return Err(KmsError::invalid(format!(
                        "statement {i}: resource {r:?} must be secret/<name>, key/<id> or acs:kms:${{region}}:${{account}}:..."
                    )));
                }
                *r = format!("acs:kms:${{region}}:${{account}}:{r}");
            }
        }
    }
    Ok(doc)
}

fn policy_outcome(
    account: &str,
    target: &SecretTarget<'_>,
    aap: &str,
    action: &str,
    short_resource: &str,
) -> Outcome {
    if target.policy.is_empty() {
        return Outcome::NotApplicable;
    }
    let Ok(doc) = parse_policy(target.policy) else {
        // A stored policy is checked when set; one that no longer parses grants nothing.
        return Outcome::Deny(Some("unreadable secret policy".into()));
    };
    let who = principal(aap);
    let resource = resource_name(account, short_resource);
    doc.evaluate(&Request {
        action: &format!("kms:{action}"),
        resource: &resource,
        principal: Some(&who),
        region: REGION,
        account,
    })
}

/// The outcome of [`decide`]: why a request is allowed, or the error its caller gets and the
/// reason (for the log only).
#[derive(Debug)]
pub enum Verdict {
    Allow(String),
    Deny { error: KmsError, reason: String },
}

fn deny(reason: impl Into<String>) -> Verdict {
    Verdict::Deny {
        error: forbidden(),
        reason: reason.into(),
    }
}

fn managed_refusal(name: &str, product: &str) -> Verdict {
    Verdict::Deny {
        reason: "a managed secret is changed only by its product's principal".into(),
        error: KmsError::new(
        ErrorCode::Forbidden,
        format!(
            "{name} is a managed secret of product {product}: only the AAP registered for {product} may create, change or delete it; others may only read it"
        ),
        ),
    }
}

/// Decides whether `caller` may run `operation` on `target` and logs a denial with its
/// reason. `account` is the instance id.
pub fn authorize(
    store: &dyn Store,
    account: &str,
    caller: &Caller,
    operation: &str,
    target: &SecretTarget<'_>,
) -> Result<(), KmsError> {
    match decide(store, account, caller, operation, target)? {
        Verdict::Allow(why) => {
            tracing::debug!(caller = %caller, operation, secret = target.name, "allowed: {why}");
            Ok(())
        }
        Verdict::Deny { error, reason } => {
            tracing::warn!(caller = %caller, operation, secret = target.name, "denied: {reason}");
            Err(error)
        }
    }
}

/// Decides whether `caller` may run `operation` on `target`, without logging (listings
/// decide once per secret). `account` is the instance id.
pub fn decide(
    store: &dyn Store,
    account: &str,
    caller: &Caller,
    operation: &str,
    target: &SecretTarget<'_>,
) -> Result<Verdict, KmsError> {
    let write = WRITES.contains(&operation);
    let (aap_name, source, endpoint) = match caller {
        Caller::Operator { .. } => {
            return match target.product {
                Some(product) if write => Ok(managed_refusal(target.name, product)),
                _ => Ok(Verdict::Allow("an operator".into())),
            };
        }
        Caller::Gateway { .. } | Caller::RemoteGateway { .. } => {
            return Ok(deny("a gateway acts only for signed application requests"))
        }
        Caller::Application {
            aap,
            source,
            endpoint,
            ..
        } => (aap.as_str(), *source, *endpoint),
    };
    if POLICY_OPERATIONS.contains(&operation) {
        return Ok(deny("secret policies are managed by operators"));
    }
    let Some(aap) = records::get::<ApplicationAccessPoint>(store, aap_name)? else {
        return Ok(deny("the AAP no longer exists"));
    };
    // An explicit Deny in the secret policy wins over every Allow, the product's too.
    let short = operations::secret_resource(target.name);
    let outcome = policy_outcome(account, target, aap_name, operation, &short);
    if let Outcome::Deny(sid) = &outcome {
        let reason = format!(
            "an explicit Deny in the secret policy{}",
            sid.as_ref()
                .map(|s| format!(" (statement {s})"))
                .unwrap_or_default()
        );
        return Ok(deny(&reason));
    }
    if let Some(product) = target.product {
        if !aap.managed_product.is_empty() && aap.managed_product == product {
            if let Some(reason) = network_refusal(store, &aap, source, endpoint)? {
                return Ok(deny(format!(
                    "the principal of product {product}, but {reason}"
                )));
            }
            return Ok(Verdict::Allow(format!(
                "the principal of product {product}"
            )));
        }
        if write {
            return Ok(managed_refusal(target.name, product));
        }
    }
    if operations::roles_for(operation).is_none() {
        return Ok(deny("only operators may do this"));
    }
    let req = AccessRequest {
        operation: operation.to_owned(),
        resources: vec![short.clone()],
        source,
        endpoint,
    };
    let rbac = super::decide_for(store, &aap, &req)?;
    if let Decision::Allow { policy } = rbac {
        return Ok(Verdict::Allow(format!("policy {policy}")));
    }
    if outcome != Outcome::Allow || LIFECYCLE.contains(&operation) {
        let Decision::Deny { reason } = rbac else {
            unreachable!("allowed above")
        };
        if outcome == Outcome::Allow {
            return Ok(deny(format!(
                "{reason}; a secret policy does not grant {operation} (a CryptoServiceSecretAdministrator policy does)"
            )));
        }
        return Ok(deny(&reason));
    }
    if let Some(reason) = network_refusal(store, &aap, source, endpoint)? {
        return Ok(deny(format!(
            "the secret policy admits the AAP, but {reason}"
        )));
    }
    let key_use = match operation {
        "GetSecretValue" => Some("Decrypt"),
        "PutSecretValue" => Some("GenerateDataKey"),
        _ => None,
    };
    if let Some(action) = key_use {
        if let Some(refused) = may_use_key(store, account, target, &aap, action, source, endpoint)?
        {
            return Ok(refused);
        }
    }
    Ok(Verdict::Allow("the secret policy".into()))
}

/// Why the AAP's network rules refuse a request admitted without its permission policies
/// (by the secret policy, or as a product's principal); `None` when they admit it. The
/// rules are those its policies name: one for the request's endpoint must contain the
/// source. With none, only the private endpoint is admitted, as for a policy without rules.
fn network_refusal(
    store: &dyn Store,
    aap: &ApplicationAccessPoint,
    source: std::net::IpAddr,
    endpoint: EndpointKind,
) -> Result<Option<String>, KmsError> {
    let mut named = Vec::new();
    for p in &aap.policies {
        if let Some(policy) = records::get::<Policy>(store, p)? {
            named.extend(policy.network_rules);
        }
    }
    if named.is_empty() {
        return Ok((endpoint != EndpointKind::Private).then(|| {
            format!("its policies name no network rule, so only the private endpoint admits it, not the {endpoint} endpoint")
        }));
    }
    for name in &named {
        if let Some(rule) = records::get::<NetworkRule>(store, name)? {
            if network::admits_endpoint(&rule.network_type, endpoint)
                && network::allows(&rule.source_private_ips, source)
            {
                return Ok(None);
            }
        }
    }
    Ok(Some(format!(
        "no network rule of its policies ([{}]) admits {source} on the {endpoint} endpoint",
        named.join(", ")
    )))
}

/// A caller admitted by the secret policy alone reads a value only if it may also decrypt
/// with the secret's CMK (`action` Decrypt), and writes one only if it may make data keys
/// with it (GenerateDataKey): by a statement of the secret policy on `key/<id>`, or by its
/// own permission policies.
fn may_use_key(
    store: &dyn Store,
    account: &str,
    target: &SecretTarget<'_>,
    aap: &ApplicationAccessPoint,
    action: &str,
    source: std::net::IpAddr,
    endpoint: EndpointKind,
) -> Result<Option<Verdict>, KmsError> {
    let key = format!("key/{}", target.key_id);
    match policy_outcome(account, target, &aap.name, action, &key) {
        Outcome::Allow => return Ok(None),
        Outcome::Deny(_) => {
            return Ok(Some(deny(format!(
                "the secret policy denies kms:{action} on its key"
            ))))
        }
        Outcome::NotApplicable => {}
    }
    let req = AccessRequest {
        operation: action.to_owned(),
        resources: vec![key],
        source,
        endpoint,
    };
    match super::decide_for(store, aap, &req)? {
        Decision::Allow { .. } => Ok(None),
        Decision::Deny { reason } => Ok(Some(deny(format!(
                "the secret policy admits the AAP, but nothing lets it use the secret's key {} for {action} (grant {action} on key/{} or a kms:{action} statement in the secret policy): {reason}",
                target.key_id, target.key_id
            )))),
    }
}

/// Whether `caller` may use the CMK it named `requested` (an id or `alias/<name>`),
/// resolved to `key_id`, to make data keys (an application creating a secret). Operators
/// may.
pub fn may_seal_with(
    store: &dyn Store,
    caller: &Caller,
    requested: &str,
    key_id: &str,
) -> Result<(), KmsError> {
    match caller {
        Caller::Operator { .. } => Ok(()),
        _ => super::authorize(
            store,
            caller,
            "GenerateDataKey",
            operations::key_resources(requested, key_id),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{endpoint, manage};
    use crate::store::SledStore;

    const ACCOUNT: &str = "kst-test";

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        for (name, role, resources) in [
            (
                "admin",
                "CryptoServiceSecretAdministrator",
                vec!["secret/app-*"],
            ),
            ("user", "CryptoServiceSecretUser", vec!["secret/*"]),
        ] {
            manage::create(
                &s,
                Policy {
                    name: name.into(),
                    rbac_role: role.into(),
                    resources: resources.into_iter().map(String::from).collect(),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        for (aap, policies, product) in [
            ("admins", vec!["admin"], ""),
            ("users", vec!["user"], ""),
            ("aigw", vec![], "aigw"),
        ] {
            manage::create(
                &s,
                ApplicationAccessPoint {
                    name: aap.into(),
                    policies: policies.into_iter().map(String::from).collect(),
                    managed_product: product.into(),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        (dir, s)
    }

    fn app(aap: &str) -> Caller {
        Caller::Application {
            aap: aap.into(),
            credential: format!("AKID{aap}"),
            source: "10.0.0.1".parse().unwrap(),
            endpoint: endpoint::EndpointKind::Private,
        }
    }

    fn allowed(s: &SledStore, caller: &Caller, op: &str, name: &str, policy: &str) -> bool {
        let target = SecretTarget {
            name,
            product: crate::secrets::names::managed_product(name),
            policy,
            key_id: "k1",
        };
        matches!(
            decide(s, ACCOUNT, caller, op, &target).unwrap(),
            Verdict::Allow(_)
        )
    }

    #[test]
    fn the_secret_administrator_runs_the_lifecycle_in_its_resources() {
        let (_dir, s) = store();
        let (admins, users) = (app("admins"), app("users"));
        for op in LIFECYCLE {
            assert!(allowed(&s, &admins, op, "app-db", ""), "{op}");
            assert!(!allowed(&s, &admins, op, "other-db", ""), "{op} outside");
            assert!(!allowed(&s, &users, op, "app-db", ""), "{op} by a user");
        }
        // It also has what CryptoServiceSecretUser grants, but no policy operation.
        for op in [
            "GetSecretValue",
            "PutSecretValue",
            "DescribeSecret",
            "ListSecrets",
        ] {
            assert!(allowed(&s, &admins, op, "app-db", ""), "{op}");
        }
        assert!(!allowed(&s, &admins, "SetSecretPolicy", "app-db", ""));
    }

    #[test]
    fn a_secret_policy_grants_no_lifecycle_and_its_deny_wins() {
        let (_dir, s) = store();
        let users = app("users");
        let allow_all = r#"{"Statement":[{"Effect":"Allow","Action":"kms:*",
            "Principal":{"AAP":["aap/users"]},"Resource":"*"}]}"#;
        assert!(allowed(&s, &users, "DescribeSecret", "x", allow_all));
        for op in LIFECYCLE {
            assert!(!allowed(&s, &users, op, "x", allow_all), "{op}");
        }
        let deny = r#"{"Statement":[{"Effect":"Deny","Action":"kms:DeleteSecret",
            "Principal":{"AAP":["aap/admins"]},"Resource":"secret/app-db"}]}"#;
        let admins = app("admins");
        assert!(!allowed(&s, &admins, "DeleteSecret", "app-db", deny));
        assert!(allowed(&s, &admins, "DisableSecret", "app-db", deny));
    }

    #[test]
    fn managed_secrets_stay_with_their_product() {
        let (_dir, s) = store();
        let operator = Caller::Operator { uid: 0, gid: 0 };
        for op in [
            "EnableSecret",
            "DisableSecret",
            "DeleteSecret",
            "CreateSecret",
        ] {
            assert!(allowed(&s, &app("aigw"), op, "aigw!key", ""), "{op}");
            assert!(!allowed(&s, &operator, op, "aigw!key", ""), "{op}");
        }
        let broad = ApplicationAccessPoint {
            name: "broad".into(),
            policies: vec!["broad".into()],
            ..Default::default()
        };
        manage::create(
            &s,
            Policy {
                name: "broad".into(),
                rbac_role: "CryptoServiceSecretAdministrator".into(),
                resources: vec!["secret/*".into()],
                ..Default::default()
            },
        )
        .unwrap();
        manage::create(&s, broad).unwrap();
        let broad = app("broad");
        assert!(allowed(&s, &broad, "GetSecretValue", "aigw!key", ""));
        for op in LIFECYCLE {
            assert!(!allowed(&s, &broad, op, "aigw!key", ""), "{op}");
            assert!(allowed(&s, &broad, op, "db", ""), "{op}");
        }
        assert!(allowed(&s, &operator, "DisableSecret", "db", ""));
    }
}
