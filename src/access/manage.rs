//! Creating, changing and deleting access-control records, with their checks: valid names,
//! roles, patterns and addresses; references that exist; nothing deleted while in use.
//!
//! Changes are serialised by one lock so that reference checks and writes cannot interleave
//! (they are rare operator actions).

use super::{clientkey, network, pattern, policy};
use crate::appliance::now_rfc3339;
use crate::error::{ErrorCode, KmsError};
use crate::proto::{ApplicationAccessPoint, ClientKey, NetworkRule, Policy};
use crate::store::access::{self as records, Record};
use crate::store::{AccessStore, StoreError};
use std::sync::Mutex;

static CHANGES: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    CHANGES.lock().unwrap_or_else(|p| p.into_inner())
}

fn store_err(e: StoreError) -> KmsError {
    match e {
        StoreError::Exists(what) => {
            KmsError::new(ErrorCode::ResourceExists, format!("{what} already exists"))
        }
        StoreError::NotFound(what) => KmsError::new(
            ErrorCode::ResourceNotFound,
            format!("{what} does not exist"),
        ),
        other => other.into(),
    }
}

fn not_found(kind: &str, name: &str) -> KmsError {
    KmsError::new(
        ErrorCode::ResourceNotFound,
        format!("{kind} {name} does not exist"),
    )
}

/// Names of rules, policies and AAPs: 1..64 of letters, digits, `_ - . /`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), KmsError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KmsError::invalid(format!(
            "{kind} name {name:?} must be 1 to 64 letters, digits, '_', '-', '.' or '/'"
        )))
    }
}

fn validate_description(d: &str) -> Result<(), KmsError> {
    if d.len() > 1024 {
        return Err(KmsError::invalid("Description is longer than 1024 bytes"));
    }
    Ok(())
}

pub fn get<R: Record>(store: &dyn AccessStore, name: &str) -> Result<R, KmsError> {
    records::get::<R>(store, name)?.ok_or_else(|| not_found(R::KIND.label(), name))
}

pub fn list<R: Record>(store: &dyn AccessStore) -> Result<Vec<R>, KmsError> {
    Ok(records::list::<R>(store)?)
}

// ---- network rules ----

pub fn create_network_rule(
    store: &dyn AccessStore,
    mut rule: NetworkRule,
) -> Result<NetworkRule, KmsError> {
    validate_name("network rule", &rule.name)?;
    validate_description(&rule.description)?;
    rule.source_private_ips = rule
        .source_private_ips
        .iter()
        .map(|s| s.trim().to_owned())
        .collect();
    network::validate(&rule.network_type, &rule.source_private_ips).map_err(KmsError::invalid)?;
    rule.create_time = now_rfc3339();
    rule.update_time = rule.create_time.clone();
    let _g = lock();
    records::put(store, &rule, true).map_err(store_err)?;
    tracing::info!(rule = %rule.name, "network rule created");
    Ok(rule)
}

pub fn update_network_rule(
    store: &dyn AccessStore,
    name: &str,
    sources: Vec<String>,
    description: Option<String>,
) -> Result<NetworkRule, KmsError> {
    let _g = lock();
    let mut rule: NetworkRule = get(store, name)?;
    if !sources.is_empty() {
        let sources: Vec<String> = sources.iter().map(|s| s.trim().to_owned()).collect();
        network::validate(&rule.network_type, &sources).map_err(KmsError::invalid)?;
        rule.source_private_ips = sources;
    }
    if let Some(d) = description {
        validate_description(&d)?;
        rule.description = d;
    }
    rule.update_time = now_rfc3339();
    records::put(store, &rule, false).map_err(store_err)?;
    tracing::info!(rule = %name, "network rule updated");
    Ok(rule)
}

pub fn delete_network_rule(store: &dyn AccessStore, name: &str) -> Result<(), KmsError> {
    let _g = lock();
    get::<NetworkRule>(store, name)?;
    let users: Vec<String> = list::<Policy>(store)?
        .into_iter()
        .filter(|p| p.network_rules.iter().any(|r| r == name))
        .map(|p| p.name)
        .collect();
    if !users.is_empty() {
        return Err(KmsError::new(
            ErrorCode::ResourceInUse,
            format!(
                "network rule {name} is used by policies {}; remove it from them first",
                users.join(", ")
            ),
        ));
    }
    records::delete::<NetworkRule>(store, name).map_err(store_err)?;
    tracing::info!(rule = %name, "network rule deleted");
    Ok(())
}

// ---- policies ----

fn check_policy(store: &dyn AccessStore, p: &Policy) -> Result<(), KmsError> {
    policy::Role::parse(&p.rbac_role).map_err(KmsError::invalid)?;
    if p.resources.is_empty() {
        return Err(KmsError::invalid(
            "a policy needs at least one resource (key/*, key/<key id>, alias/<name>, secret/*...)",
        ));
    }
    if p.resources.len() > policy::MAX_RESOURCES {
        return Err(KmsError::invalid(format!(
            "a policy holds at most {} resources; use wildcards",
            policy::MAX_RESOURCES
        )));
    }
    for r in &p.resources {
        pattern::validate_resource(r).map_err(KmsError::invalid)?;
    }
    for r in &p.network_rules {
        if records::get::<NetworkRule>(store, r)?.is_none() {
            return Err(not_found("network rule", r));
        }
    }
    validate_description(&p.description)
}

pub fn create_policy(store: &dyn AccessStore, mut p: Policy) -> Result<Policy, KmsError> {
    validate_name("policy", &p.name)?;
    if p.scope.is_empty() {
        p.scope = "shared".into();
    }
    p.resources.dedup();
    let _g = lock();
    check_policy(store, &p)?;
    p.create_time = now_rfc3339();
    p.update_time = p.create_time.clone();
    records::put(store, &p, true).map_err(store_err)?;
    tracing::info!(policy = %p.name, role = %p.rbac_role, "policy created");
    Ok(p)
}

pub fn update_policy(
    store: &dyn AccessStore,
    name: &str,
    change: impl FnOnce(&mut Policy),
) -> Result<Policy, KmsError> {
    let _g = lock();
    let mut p: Policy = get(store, name)?;
    change(&mut p);
    check_policy(store, &p)?;
    p.update_time = now_rfc3339();
    records::put(store, &p, false).map_err(store_err)?;
    tracing::info!(policy = %name, "policy updated");
    Ok(p)
}

pub fn delete_policy(store: &dyn AccessStore, name: &str) -> Result<(), KmsError> {
    let _g = lock();
    get::<Policy>(store, name)?;
    let users: Vec<String> = list::<ApplicationAccessPoint>(store)?
        .into_iter()
        .filter(|a| a.policies.iter().any(|p| p == name))
        .map(|a| a.name)
        .collect();
    if !users.is_empty() {
        return Err(KmsError::new(
            ErrorCode::ResourceInUse,
            format!(
                "policy {name} is attached to AAPs {}; detach it first",
                users.join(", ")
            ),
        ));
    }
    records::delete::<Policy>(store, name).map_err(store_err)?;
    tracing::info!(policy = %name, "policy deleted");
    Ok(())
}

// ---- application access points ----

fn check_aap(store: &dyn AccessStore, a: &ApplicationAccessPoint) -> Result<(), KmsError> {
    if a.authentication_method != "ClientKey" {
        return Err(KmsError::invalid(
            "the only authentication method is ClientKey",
        ));
    }
    if a.policies.len() > policy::MAX_POLICIES_PER_AAP {
        return Err(KmsError::invalid(format!(
            "an AAP has at most {} policies",
            policy::MAX_POLICIES_PER_AAP
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for p in &a.policies {
        if !seen.insert(p) {
            return Err(KmsError::invalid(format!("policy {p} is listed twice")));
        }
        if records::get::<Policy>(store, p)?.is_none() {
            return Err(not_found("policy", p));
        }
    }
    validate_description(&a.description)
}

pub fn create_aap(
    store: &dyn AccessStore,
    mut a: ApplicationAccessPoint,
) -> Result<ApplicationAccessPoint, KmsError> {
    validate_name("application access point", &a.name)?;
    if a.authentication_method.is_empty() {
        a.authentication_method = "ClientKey".into();
    }
    let _g = lock();
    check_aap(store, &a)?;
    a.create_time = now_rfc3339();
    a.update_time = a.create_time.clone();
    records::put(store, &a, true).map_err(store_err)?;
    tracing::info!(aap = %a.name, policies = ?a.policies, "application access point created");
    Ok(a)
}

pub fn update_aap(
    store: &dyn AccessStore,
    name: &str,
    policies: Vec<String>,
    description: Option<String>,
) -> Result<ApplicationAccessPoint, KmsError> {
    let _g = lock();
    let mut a: ApplicationAccessPoint = get(store, name)?;
    if !policies.is_empty() {
        a.policies = policies;
    }
    if let Some(d) = description {
        a.description = d;
    }
    check_aap(store, &a)?;
    a.update_time = now_rfc3339();
    records::put(store, &a, false).map_err(store_err)?;
    tracing::info!(aap = %name, policies = ?a.policies, "application access point updated");
    Ok(a)
}

pub fn delete_aap(store: &dyn AccessStore, name: &str) -> Result<(), KmsError> {
    let _g = lock();
    get::<ApplicationAccessPoint>(store, name)?;
    let keys = client_keys(store, name)?;
    if !keys.is_empty() {
        return Err(KmsError::new(
            ErrorCode::ResourceInUse,
            format!(
                "AAP {name} still has {} ClientKey(s); delete them first (hkms client-key delete)",
                keys.len()
            ),
        ));
    }
    records::delete::<ApplicationAccessPoint>(store, name).map_err(store_err)?;
    tracing::info!(aap = %name, "application access point deleted");
    Ok(())
}

// ---- ClientKeys ----

/// The ClientKeys of one AAP (every AAP when `aap` is empty).
pub fn client_keys(store: &dyn AccessStore, aap: &str) -> Result<Vec<ClientKey>, KmsError> {
    Ok(list::<ClientKey>(store)?
        .into_iter()
        .filter(|k| aap.is_empty() || k.aap_name == aap)
        .collect())
}

/// Registers the certificate of a new ClientKey of `aap`.
pub fn create_client_key(
    store: &dyn AccessStore,
    aap: &str,
    certificate: Vec<u8>,
) -> Result<ClientKey, KmsError> {
    let info = clientkey::check_certificate(&certificate, clientkey::now_unix())
        .map_err(KmsError::invalid)?;
    let _g = lock();
    get::<ApplicationAccessPoint>(store, aap)?;
    if list::<ClientKey>(store)?
        .iter()
        .any(|k| k.certificate_sha256 == info.sha256)
    {
        return Err(KmsError::new(
            ErrorCode::ResourceExists,
            "this certificate is registered already; make a new key pair",
        ));
    }
    let key = ClientKey {
        client_key_id: clientkey::new_id(),
        aap_name: aap.to_owned(),
        certificate,
        not_before: info.not_before,
        not_after: info.not_after,
        create_time: now_rfc3339(),
        certificate_sha256: info.sha256,
    };
    records::put(store, &key, true).map_err(store_err)?;
    tracing::info!(client_key = %key.client_key_id, aap = %aap, not_after = key.not_after, "ClientKey created");
    Ok(key)
}

pub fn delete_client_key(store: &dyn AccessStore, id: &str) -> Result<(), KmsError> {
    let _g = lock();
    records::delete::<ClientKey>(store, id).map_err(store_err)?;
    tracing::info!(client_key = %id, "ClientKey deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn rule(name: &str) -> NetworkRule {
        NetworkRule {
            name: name.into(),
            network_type: "Private".into(),
            source_private_ips: vec!["10.0.0.0/8".into()],
            ..Default::default()
        }
    }

    fn pol(name: &str, rules: &[&str]) -> Policy {
        Policy {
            name: name.into(),
            rbac_role: "CryptoServiceKeyUser".into(),
            resources: vec!["key/*".into()],
            network_rules: rules.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn aap(name: &str, policies: &[&str]) -> ApplicationAccessPoint {
        ApplicationAccessPoint {
            name: name.into(),
            policies: policies.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn code(r: Result<impl std::fmt::Debug, KmsError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn references_must_exist_and_in_use_records_stay() {
        let (_d, s) = store();
        assert_eq!(
            code(create_policy(&s, pol("p", &["office"]))),
            ErrorCode::ResourceNotFound
        );
        create_network_rule(&s, rule("office")).unwrap();
        assert_eq!(
            code(create_network_rule(&s, rule("office"))),
            ErrorCode::ResourceExists
        );
        create_policy(&s, pol("p", &["office"])).unwrap();
        assert_eq!(
            code(delete_network_rule(&s, "office")),
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            code(create_aap(&s, aap("app", &["nope"]))),
            ErrorCode::ResourceNotFound
        );
        create_aap(&s, aap("app", &["p"])).unwrap();
        assert_eq!(code(delete_policy(&s, "p")), ErrorCode::ResourceInUse);

        let now = clientkey::now_unix();
        let kp = clientkey::KeyPair::generate("app", now, now + 86_400).unwrap();
        let der = kp.certificate_der().unwrap();
        assert_eq!(
            code(create_client_key(&s, "ghost", der.clone())),
            ErrorCode::ResourceNotFound
        );
        let ck = create_client_key(&s, "app", der.clone()).unwrap();
        assert!(clientkey::is_id(&ck.client_key_id));
        assert_eq!(
            code(create_client_key(&s, "app", der)),
            ErrorCode::ResourceExists
        );
        assert_eq!(code(delete_aap(&s, "app")), ErrorCode::ResourceInUse);
        delete_client_key(&s, &ck.client_key_id).unwrap();
        assert_eq!(
            code(delete_client_key(&s, &ck.client_key_id)),
            ErrorCode::ResourceNotFound
        );
        delete_aap(&s, "app").unwrap();
        delete_policy(&s, "p").unwrap();
        delete_network_rule(&s, "office").unwrap();
    }

    #[test]
    fn invalid_records_are_refused() {
        let (_d, s) = store();
        let bad_rules = [
            NetworkRule {
                name: "a b".into(),
                ..rule("x")
            },
            NetworkRule {
                network_type: "Internet".into(),
                ..rule("x")
            },
            NetworkRule {
                source_private_ips: vec!["10.0.0.1/8".into()],
                ..rule("x")
            },
            NetworkRule {
                source_private_ips: vec![],
                ..rule("x")
            },
        ];
        for r in bad_rules {
            assert_eq!(
                code(create_network_rule(&s, r)),
                ErrorCode::InvalidParameter
            );
        }
        let bad_policies = [
            Policy {
                rbac_role: "Admin".into(),
                ..pol("p", &[])
            },
            Policy {
                resources: vec![],
                ..pol("p", &[])
            },
            Policy {
                resources: vec!["keys/*".into()],
                ..pol("p", &[])
            },
        ];
        for p in bad_policies {
            assert_eq!(code(create_policy(&s, p)), ErrorCode::InvalidParameter);
        }
        for n in ["p1", "p2", "p3", "p4"] {
            create_policy(&s, pol(n, &[])).unwrap();
        }
        assert_eq!(
            code(create_aap(&s, aap("app", &["p1", "p2", "p3", "p4"]))),
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            code(create_aap(&s, aap("app", &["p1", "p1"]))),
            ErrorCode::InvalidParameter
        );
        create_aap(&s, aap("app", &["p1", "p2", "p3"])).unwrap();
        let a = update_aap(&s, "app", vec!["p4".into()], Some("d".into())).unwrap();
        assert_eq!(a.policies, ["p4"]);
        let p = update_policy(&s, "p1", |p| p.resources = vec!["secret/x*".into()]).unwrap();
        assert_eq!(p.resources, ["secret/x*"]);
        assert_eq!(
            code(update_policy(&s, "p1", |p| p.network_rules = vec!["none".into()])),
            ErrorCode::ResourceNotFound
        );
    }
}
