//! `hkms aap create --quick`: an application connected in one command. It makes the AAP
//! with the default permission of every key and every secret of the instance (`key/*` and
//! `secret/*`), and a ClientKey valid 5 years whose two files it writes.
//!
//! A policy has one RBAC role, so the default permission is two policies, attached to the
//! new AAP: `<NAME>-keys` (CryptoServiceKeyUser on `key/*`) and `<NAME>-secrets`
//! (CryptoServiceSecretUser on `secret/*`). They have no network rules, so the application
//! reaches the instance's private endpoint only, from any address; the operator can narrow
//! them later (`hkms policy update`).
//!
//! Everything is made through the ordinary AccessService calls, in order: policies, AAP,
//! ClientKey. Names that are taken are refused before anything is made; when a later step
//! fails all the same (another operator took a name meanwhile, the files cannot be written),
//! what was made is deleted again.

use super::client_key_new::{NewClientKey, Registered, Validity};
use super::resource::{noted, Printed, View};
use crate::access::manage::validate_name;
use crate::access::policy::Role;
use crate::client::Client;
use crate::error::{error_code, ErrorCode, KmsError};
use crate::proto::{
    ApplicationAccessPoint, CreateApplicationAccessPointRequest, CreatePolicyRequest,
    DeleteApplicationAccessPointRequest, DeletePolicyRequest,
    DescribeApplicationAccessPointRequest, DescribePolicyRequest, Policy,
};
use serde_json::json;
use std::path::Path;
use tonic::Status;

/// How long the ClientKey of a quick creation is valid.
pub const VALIDITY_YEARS: i64 = 5;

/// What `--quick` was given.
#[derive(Debug, Clone, Copy)]
pub struct Quick<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub output_dir: &'a Path,
    pub password_file: Option<&'a Path>,
}

/// The two policies of the default permission of AAP `name`.
pub fn default_policies(name: &str) -> [Policy; 2] {
    let policy = |suffix: &str, role: Role, resource: &str, what: &str| Policy {
        name: format!("{name}-{suffix}"),
        rbac_role: role.as_str().to_owned(),
        resources: vec![resource.to_owned()],
        description: format!("{what} of the instance, for AAP {name} (quick creation)"),
        ..Default::default()
    };
    [
        policy("keys", Role::KeyUser, "key/*", "every key"),
        policy("secrets", Role::SecretUser, "secret/*", "every secret"),
    ]
}

fn is_not_found(status: &Status) -> bool {
    error_code(status).as_deref() == Some(ErrorCode::ResourceNotFound.as_str())
}

/// Refuses names that are invalid or taken, before anything is made.
async fn check_names(c: &mut Client, name: &str, policies: &[Policy]) -> Result<(), Status> {
    validate_name("application access point", name)?;
    for p in policies {
        validate_name("policy", &p.name).map_err(|e| {
            KmsError::invalid(format!(
                "{}; quick creation names its policies <NAME>-keys and <NAME>-secrets, so the \
                 AAP name must leave room for the suffix",
                e.message
            ))
        })?;
    }
    let together = format!(
        "quick creation makes the AAP {name} and the policies {}; choose another name, or \
         create the AAP the standard way (hkms aap create --name ... --policies ...). Nothing \
         was created",
        policies
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let taken = |what: String| -> Status {
        KmsError::new(
            ErrorCode::ResourceExists,
            format!("{what} already exists: {together}"),
        )
        .into()
    };
    let aap = c
        .access
        .describe_application_access_point(DescribeApplicationAccessPointRequest {
            name: name.to_owned(),
        })
        .await;
    match aap {
        Ok(_) => return Err(taken(format!("application access point {name}"))),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    for p in policies {
        let found = c
            .access
            .describe_policy(DescribePolicyRequest {
                name: p.name.clone(),
            })
            .await;
        match found {
            Ok(_) => return Err(taken(format!("policy {}", p.name))),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a quick creation has made so far, to delete again if a later step fails.
#[derive(Debug, Default)]
struct Made {
    policies: Vec<String>,
    aap: Option<String>,
}

impl Made {
    /// Deletes what was made, the AAP first; says what is left, if anything.
    async fn undo(&self, c: &mut Client) -> String {
        let mut left = Vec::new();
        if let Some(name) = &self.aap {
            let req = DeleteApplicationAccessPointRequest { name: name.clone() };
            if let Err(e) = c.access.delete_application_access_point(req).await {
                left.push(format!("AAP {name} ({})", e.message()));
            }
        }
        for name in self.policies.iter().rev() {
            let req = DeletePolicyRequest { name: name.clone() };
            if let Err(e) = c.access.delete_policy(req).await {
                left.push(format!("policy {name} ({})", e.message()));
            }
        }
        if left.is_empty() {
            "what it had created was deleted again".to_owned()
        } else {
            format!("could not delete again: {}", left.join(", "))
        }
    }
}

/// Makes the policies, the AAP and the ClientKey, recording each in `made`.
async fn make(
    c: &mut Client,
    q: &Quick<'_>,
    policies: [Policy; 2],
    key: NewClientKey,
    made: &mut Made,
) -> Result<(ApplicationAccessPoint, Vec<Policy>, Registered), Status> {
    let mut created = Vec::new();
    for p in policies {
        let p = c
            .access
            .create_policy(CreatePolicyRequest { policy: Some(p) })
            .await?
            .into_inner()
            .policy
            .unwrap_or_default();
        made.policies.push(p.name.clone());
        created.push(p);
    }
    let aap = ApplicationAccessPoint {
        name: q.name.to_owned(),
        authentication_method: "ClientKey".into(),
        policies: made.policies.clone(),
        description: q.description.to_owned(),
        ..Default::default()
    };
    let aap = c
        .access
        .create_application_access_point(CreateApplicationAccessPointRequest { aap: Some(aap) })
        .await?
        .into_inner()
        .aap
        .unwrap_or_default();
    made.aap = Some(aap.name.clone());
    let registered = key.register(c).await?;
    Ok((aap, created, registered))
}

/// Runs `hkms aap create --quick`.
pub async fn create(c: &mut Client, q: Quick<'_>) -> Result<Printed, Status> {
    let policies = default_policies(q.name);
    check_names(c, q.name, &policies).await?;
    // The password, the directory and the key pair, before hkmsd is asked for anything.
    let key = NewClientKey::prepare(
        q.name,
        q.output_dir,
        q.password_file,
        None,
        Validity::Years(VALIDITY_YEARS),
    )?;
    let mut made = Made::default();
    let (aap, policies, registered) = match make(c, &q, policies, key, &mut made).await {
        Ok(done) => done,
        Err(e) => {
            let undone = made.undo(c).await;
            return Err(noted(e, &format!("quick creation stopped, and {undone}")));
        }
    };
    let grants: Vec<String> = policies
        .iter()
        .map(|p| format!("{} ({} on {})", p.name, p.rbac_role, p.resources.join(",")))
        .collect();
    let text = format!(
        "AAP {} created (quick creation): every key and every secret of the instance, on its \
         private endpoint.\nPolicies: {}\n{}\nNarrow its access later with hkms policy update \
         (e.g. --resources alias/<name>) or hkms aap update.",
        aap.name,
        grants.join(", "),
        registered.text()
    );
    let json = json!({
        "ApplicationAccessPoint": aap.json(),
        "Policies": policies.iter().map(View::json).collect::<Vec<_>>(),
        "ClientKey": registered.json(),
    });
    Ok((text, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_permission_is_every_key_and_every_secret() {
        let [keys, secrets] = default_policies("billing");
        assert_eq!(keys.name, "billing-keys");
        assert_eq!(keys.rbac_role, "CryptoServiceKeyUser");
        assert_eq!(keys.resources, ["key/*"]);
        assert_eq!(secrets.name, "billing-secrets");
        assert_eq!(secrets.rbac_role, "CryptoServiceSecretUser");
        assert_eq!(secrets.resources, ["secret/*"]);
        assert!(keys.network_rules.is_empty() && secrets.network_rules.is_empty());
    }
}
