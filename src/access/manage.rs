//! Creating, changing and deleting access-control records, with their checks: valid names,
//! roles, patterns and addresses; references that exist; nothing deleted while in use.
//!
//! Every record type goes through the same five functions, [`create`], [`get`], [`list`],
//! [`update`] and [`delete`]; what differs between types (defaults, checks, who uses a
//! record, its times, its log line) is its [`Managed`] implementation.
//!
//! Changes are serialised by one lock so that reference checks and writes cannot interleave
//! (they are rare operator actions).

use super::{clientkey, network, pattern, policy};
use crate::appliance::now_rfc3339;
use crate::error::{ErrorCode, KmsError};
use crate::proto::{ApiKey, ApplicationAccessPoint, ClientKey, NetworkRule, Policy};
use crate::store::access::{self as records, Record};
use crate::store::{AccessStore, StoreError};
use std::sync::Mutex;

static CHANGES: Mutex<()> = Mutex::new(());

/// Serialises a change of records with every other (see the module's documentation).
pub(super) fn lock() -> std::sync::MutexGuard<'static, ()> {
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

/// What happened to a record: the word of its log line, and which times it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        })
    }
}

/// A record that operators create, describe, list, update and delete by name.
///
/// A type states only what is its own; the functions of this module give every type the
/// same order of checks, the same lock, the same store errors and messages (`<kind> <name>
/// does not exist`, `... already exists`) and a log line for every change. A new kind of
/// record needs a [`Record`] (its store tree) and this trait; its gRPC handlers then call
/// [`create`], [`get`], [`list`], [`update`] and [`delete`].
pub trait Managed: Record {
    /// Fills in the defaults of a new record and tidies what the operator typed. Runs on
    /// creation only, after the name is checked and before [`Managed::check`].
    fn prepare(&mut self) {}

    /// Checks a record about to be written, new or changed: its values, and that the
    /// records it names exist. Runs under the change lock.
    fn check(&self, store: &dyn AccessStore) -> Result<(), KmsError>;

    /// Why the record `name` cannot be deleted now (the records that still use it), or
    /// `None` when it can. Runs under the change lock.
    fn in_use(_store: &dyn AccessStore, _name: &str) -> Result<Option<String>, KmsError> {
        Ok(None)
    }

    /// Sets the record's times to `now`: the change time, and the creation time too when
    /// the record is being created.
    fn stamp(&mut self, now: String, change: Change);

    /// Logs a change, with the fields operators follow this kind of record by.
    fn log(&self, change: Change);
}

/// The record `name`; `ResourceNotFound` when there is none.
pub fn get<R: Record>(store: &dyn AccessStore, name: &str) -> Result<R, KmsError> {
    records::get::<R>(store, name)?.ok_or_else(|| not_found(R::KIND.label(), name))
}

/// Every record of a type, ordered by name.
pub fn list<R: Record>(store: &dyn AccessStore) -> Result<Vec<R>, KmsError> {
    Ok(records::list::<R>(store)?)
}

/// Creates a record: checks its name, fills in its defaults, checks it, sets its times,
/// stores it (`ResourceExists` when the name is taken) and logs it. Returns it as stored.
pub fn create<R: Managed>(store: &dyn AccessStore, mut record: R) -> Result<R, KmsError> {
    validate_name(R::KIND.label(), record.name())?;
    record.prepare();
    let _g = lock();
    record.check(store)?;
    record.stamp(now_rfc3339(), Change::Created);
    records::put(store, &record, true).map_err(store_err)?;
    record.log(Change::Created);
    Ok(record)
}

/// Changes the record `name` with `change`, checks the result as a whole, sets its change
/// time, stores and logs it. Returns it as stored. A record keeps its name for life:
/// `change` may not rename it.
pub fn update<R: Managed>(
    store: &dyn AccessStore,
    name: &str,
    change: impl FnOnce(&mut R),
) -> Result<R, KmsError> {
    let _g = lock();
    let mut record: R = get(store, name)?;
    change(&mut record);
    if record.name() != name {
        return Err(KmsError::invalid(format!(
            "{} {name} cannot be renamed",
            R::KIND.label()
        )));
    }
    record.check(store)?;
    record.stamp(now_rfc3339(), Change::Updated);
    records::put(store, &record, false).map_err(store_err)?;
    record.log(Change::Updated);
    Ok(record)
}

/// Deletes the record `name` unless it does not exist (`ResourceNotFound`) or other records
/// still use it (`ResourceInUse`, saying which); logs the deletion.
pub fn delete<R: Managed>(store: &dyn AccessStore, name: &str) -> Result<(), KmsError> {
    let _g = lock();
    let record: R = get(store, name)?;
    if let Some(why) = R::in_use(store, name)? {
        return Err(KmsError::new(ErrorCode::ResourceInUse, why));
    }
    records::delete::<R>(store, name).map_err(store_err)?;
    record.log(Change::Deleted);
    Ok(())
}

// ---- network rules ----

impl Managed for NetworkRule {
    fn prepare(&mut self) {
        self.source_private_ips = network::trimmed(&self.source_private_ips);
    }

    fn check(&self, _store: &dyn AccessStore) -> Result<(), KmsError> {
        validate_description(&self.description)?;
        network::validate(&self.network_type, &self.source_private_ips).map_err(KmsError::invalid)
    }

    fn in_use(store: &dyn AccessStore, name: &str) -> Result<Option<String>, KmsError> {
        let users: Vec<String> = list::<Policy>(store)?
            .into_iter()
            .filter(|p| p.network_rules.iter().any(|r| r == name))
            .map(|p| p.name)
            .collect();
        Ok((!users.is_empty()).then(|| {
            format!(
                "network rule {name} is used by policies {}; remove it from them first",
                users.join(", ")
            )
        }))
    }

    fn stamp(&mut self, now: String, change: Change) {
        if change == Change::Created {
            self.create_time = now.clone();
        }
        self.update_time = now;
    }

    fn log(&self, change: Change) {
        tracing::info!(rule = %self.name, "network rule {change}");
    }
}

// ---- policies ----

impl Managed for Policy {
    fn prepare(&mut self) {
        if self.scope.is_empty() {
            self.scope = "shared".into();
        }
        self.resources.dedup();
    }

    fn check(&self, store: &dyn AccessStore) -> Result<(), KmsError> {
        policy::Role::parse(&self.rbac_role).map_err(KmsError::invalid)?;
        if self.resources.is_empty() {
            return Err(KmsError::invalid(
                "a policy needs at least one resource (key/*, key/<key id>, alias/<name>, secret/*...)",
            ));
        }
        if self.resources.len() > policy::MAX_RESOURCES {
            return Err(KmsError::invalid(format!(
                "a policy holds at most {} resources; use wildcards",
                policy::MAX_RESOURCES
            )));
        }
        for r in &self.resources {
            pattern::validate_resource(r).map_err(KmsError::invalid)?;
        }
        for r in &self.network_rules {
            if records::get::<NetworkRule>(store, r)?.is_none() {
                return Err(not_found("network rule", r));
            }
        }
        validate_description(&self.description)
    }

    fn in_use(store: &dyn AccessStore, name: &str) -> Result<Option<String>, KmsError> {
        let users: Vec<String> = list::<ApplicationAccessPoint>(store)?
            .into_iter()
            .filter(|a| a.policies.iter().any(|p| p == name))
            .map(|a| a.name)
            .collect();
        Ok((!users.is_empty()).then(|| {
            format!(
                "policy {name} is attached to AAPs {}; detach it first",
                users.join(", ")
            )
        }))
    }

    fn stamp(&mut self, now: String, change: Change) {
        if change == Change::Created {
            self.create_time = now.clone();
        }
        self.update_time = now;
    }

    fn log(&self, change: Change) {
        tracing::info!(policy = %self.name, role = %self.rbac_role, "policy {change}");
    }
}

// ---- application access points ----

impl Managed for ApplicationAccessPoint {
    fn prepare(&mut self) {
        if self.authentication_method.is_empty() {
            self.authentication_method = "ClientKey".into();
        }
    }

    fn check(&self, store: &dyn AccessStore) -> Result<(), KmsError> {
        if self.authentication_method != "ClientKey" {
            return Err(KmsError::invalid(
                "the only authentication method is ClientKey",
            ));
        }
        if self.policies.len() > policy::MAX_POLICIES_PER_AAP {
            return Err(KmsError::invalid(format!(
                "an AAP has at most {} policies",
                policy::MAX_POLICIES_PER_AAP
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.policies {
            if !seen.insert(p) {
                return Err(KmsError::invalid(format!("policy {p} is listed twice")));
            }
            if records::get::<Policy>(store, p)?.is_none() {
                return Err(not_found("policy", p));
            }
        }
        super::secrets::check_product_principal(store, self)?;
        validate_description(&self.description)
    }

    fn in_use(store: &dyn AccessStore, name: &str) -> Result<Option<String>, KmsError> {
        let keys = client_keys(store, name)?;
        if !keys.is_empty() {
            return Ok(Some(format!(
                "AAP {name} still has {} ClientKey(s); delete them first (hkms client-key delete)",
                keys.len()
            )));
        }
        let api_keys = api_keys(store, name)?;
        Ok((!api_keys.is_empty()).then(|| {
            format!(
                "AAP {name} still has {} API key(s); delete them first (hkms api-key delete)",
                api_keys.len()
            )
        }))
    }

    fn stamp(&mut self, now: String, change: Change) {
        if change == Change::Created {
            self.create_time = now.clone();
        }
        self.update_time = now;
    }

    fn log(&self, change: Change) {
        tracing::info!(aap = %self.name, policies = ?self.policies, "application access point {change}");
    }
}

// ---- ClientKeys ----

/// ClientKeys are created by [`create_client_key`] and never changed; a new one is a
/// certificate of an existing AAP that no other ClientKey has.
impl Managed for ClientKey {
    fn check(&self, store: &dyn AccessStore) -> Result<(), KmsError> {
        get::<ApplicationAccessPoint>(store, &self.aap_name)?;
        if list::<ClientKey>(store)?
            .iter()
            .any(|k| k.certificate_sha256 == self.certificate_sha256)
        {
            return Err(KmsError::new(
                ErrorCode::ResourceExists,
                "this certificate is registered already; make a new key pair",
            ));
        }
        Ok(())
    }

    fn stamp(&mut self, now: String, change: Change) {
        if change == Change::Created {
            self.create_time = now;
        }
    }

    fn log(&self, change: Change) {
        tracing::info!(client_key = %self.client_key_id, aap = %self.aap_name, not_after = self.not_after, "ClientKey {change}");
    }
}

/// The ClientKeys of one AAP (every AAP when `aap` is empty).
pub fn client_keys(store: &dyn AccessStore, aap: &str) -> Result<Vec<ClientKey>, KmsError> {
    Ok(list::<ClientKey>(store)?
        .into_iter()
        .filter(|k| aap.is_empty() || k.aap_name == aap)
        .collect())
}

/// The API keys of one AAP (every AAP when `aap` is empty).
pub fn api_keys(store: &dyn AccessStore, aap: &str) -> Result<Vec<ApiKey>, KmsError> {
    Ok(list::<ApiKey>(store)?
        .into_iter()
        .filter(|k| aap.is_empty() || k.aap_name == aap)
        .collect())
}

/// Registers the certificate of a new ClientKey of `aap`, under a new ClientKey id.
pub fn create_client_key(
    store: &dyn AccessStore,
    aap: &str,
    certificate: Vec<u8>,
) -> Result<ClientKey, KmsError> {
    let info = clientkey::check_certificate(&certificate, crate::clock::now_unix())
        .map_err(KmsError::invalid)?;
    create(
        store,
        ClientKey {
            client_key_id: clientkey::new_id(),
            aap_name: aap.to_owned(),
            certificate,
            not_before: info.not_before,
            not_after: info.not_after,
            create_time: String::new(),
            certificate_sha256: info.sha256,
            retire_unix: 0,
        },
    )
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
            code(create(&s, pol("p", &["office"]))),
            ErrorCode::ResourceNotFound
        );
        create(&s, rule("office")).unwrap();
        assert_eq!(code(create(&s, rule("office"))), ErrorCode::ResourceExists);
        create(&s, pol("p", &["office"])).unwrap();
        assert_eq!(
            code(delete::<NetworkRule>(&s, "office")),
            ErrorCode::ResourceInUse
        );
        assert_eq!(
            code(create(&s, aap("app", &["nope"]))),
            ErrorCode::ResourceNotFound
        );
        create(&s, aap("app", &["p"])).unwrap();
        assert_eq!(code(delete::<Policy>(&s, "p")), ErrorCode::ResourceInUse);

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
        assert_eq!(
            code(delete::<ApplicationAccessPoint>(&s, "app")),
            ErrorCode::ResourceInUse
        );
        delete::<ClientKey>(&s, &ck.client_key_id).unwrap();
        assert_eq!(
            code(delete::<ClientKey>(&s, &ck.client_key_id)),
            ErrorCode::ResourceNotFound
        );
        delete::<ApplicationAccessPoint>(&s, "app").unwrap();
        delete::<Policy>(&s, "p").unwrap();
        delete::<NetworkRule>(&s, "office").unwrap();
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
            assert_eq!(code(create(&s, r)), ErrorCode::InvalidParameter);
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
            assert_eq!(code(create(&s, p)), ErrorCode::InvalidParameter);
        }
        for n in ["p1", "p2", "p3", "p4"] {
            create(&s, pol(n, &[])).unwrap();
        }
        assert_eq!(
            code(create(&s, aap("app", &["p1", "p2", "p3", "p4"]))),
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            code(create(&s, aap("app", &["p1", "p1"]))),
            ErrorCode::InvalidParameter
        );
        create(&s, aap("app", &["p1", "p2", "p3"])).unwrap();
        let a = update(&s, "app", |a: &mut ApplicationAccessPoint| {
            a.policies = vec!["p4".into()];
            a.description = "d".into();
        })
        .unwrap();
        assert_eq!(a.policies, ["p4"]);
        let p = update(&s, "p1", |p: &mut Policy| {
            p.resources = vec!["secret/x*".into()]
        })
        .unwrap();
        assert_eq!(p.resources, ["secret/x*"]);
        assert_eq!(
            code(update(&s, "p1", |p: &mut Policy| p.network_rules =
                vec!["none".into()])),
            ErrorCode::ResourceNotFound
        );
    }

    #[test]
    fn updates_check_the_whole_record_and_keep_the_creation_time() {
        let (_d, s) = store();
        let created = create(
            &s,
            NetworkRule {
                source_private_ips: vec![" 10.0.0.0/8".into(), "fd00::/8 ".into()],
                ..rule("office")
            },
        )
        .unwrap();
        assert_eq!(created.source_private_ips, ["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(created.create_time, created.update_time);
        let bad = |r: &mut NetworkRule| r.source_private_ips = vec!["10.0.0.1/8".into()];
        assert_eq!(code(update(&s, "office", bad)), ErrorCode::InvalidParameter);
        let changed = update(&s, "office", |r: &mut NetworkRule| {
            r.description = "d".into()
        })
        .unwrap();
        assert_eq!(changed.create_time, created.create_time);
        assert_eq!(get::<NetworkRule>(&s, "office").unwrap(), changed);
        assert_eq!(
            code(update(&s, "ghost", |_: &mut NetworkRule| ())),
            ErrorCode::ResourceNotFound
        );
        let rename = |r: &mut NetworkRule| r.name = "home".into();
        assert_eq!(
            code(update(&s, "office", rename)),
            ErrorCode::InvalidParameter
        );
        create(&s, pol("p", &["office"])).unwrap();
        let e = delete::<NetworkRule>(&s, "office").unwrap_err();
        assert_eq!(
            e.message,
            "network rule office is used by policies p; remove it from them first"
        );
    }
}
