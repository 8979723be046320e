//! `hkms network-rule`, `hkms policy`, `hkms aap` and `hkms client-key`: set up which
//! applications may use which keys and secrets, from where.
//!
//! The usual order: a network rule (optional), a policy that grants a role on resources,
//! an application access point (AAP) with up to three policies, then a ClientKey for the
//! AAP. `client-key create` makes the key pair here, on the operator's machine: the private
//! key goes only into the files it writes; hkmsd receives only the certificate.

use crate::access::clientkey::{self, KeyPair};
use crate::client::Client;
use crate::error::KmsError;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

/// What a command prints: text, and the same as JSON for --json.
pub type Printed = (String, Value);

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
}

#[derive(Debug, Subcommand)]
pub enum NetworkRuleCommand {
    /// Create a rule listing the source addresses applications may call from.
    ///
    /// Example: hkms network-rule create --name office --source-ips 10.0.0.0/8,fd00::/8
    Create {
        /// Rule name: 1 to 64 letters, digits, '_', '-', '.', '/'.
        #[arg(long)]
        name: String,
        /// Private or VPC (the rule admits requests on the gateway's private endpoint), or
        /// Public (requests on its Internet endpoint). A policy that serves both endpoints
        /// names a rule of each type.
        #[arg(long, default_value = "Private")]
        network_type: String,
        /// Allowed source IP addresses and CIDR blocks, IPv4 or IPv6, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        source_ips: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List every network rule.
    List,
    /// Show one network rule.
    Describe { name: String },
    /// Replace a rule's source addresses and/or description.
    Update {
        name: String,
        /// New allowed addresses and CIDR blocks (replace the old ones), comma separated.
        #[arg(long, value_delimiter = ',')]
        source_ips: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a rule that no policy uses any more.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a permission policy: a role on resources, optionally from some networks only.
    ///
    /// Example: hkms policy create --name app-keys --role CryptoServiceKeyUser
    ///   --resources 'key/*' --network-rules office
    Create {
        /// Policy name: 1 to 64 letters, digits, '_', '-', '.', '/'.
        #[arg(long)]
        name: String,
        /// CryptoServiceKeyUser (cryptography with keys), CryptoServiceSecretUser (secrets),
        /// or SecretUser (GetSecretValue through a shared gateway).
        #[arg(long)]
        role: String,
        /// Accessible resources, comma separated: key/*, key/<key id>, alias/<name>,
        /// secret/*, secret/<name prefix>*. '*' matches any run of characters.
        #[arg(long, value_delimiter = ',', required = true)]
        resources: Vec<String>,
        /// Network rules; requests must come from an address one of them allows, through
        /// the endpoint its type is for. Without any, the policy applies from every address
        /// on the private endpoint only (the Internet endpoint needs a Public rule).
        #[arg(long, value_delimiter = ',')]
        network_rules: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List every policy.
    List,
    /// Show one policy.
    Describe { name: String },
    /// Change a policy; options not given stay as they are.
    Update {
        name: String,
        #[arg(long)]
        role: Option<String>,
        /// Replace the resources.
        #[arg(long, value_delimiter = ',')]
        resources: Vec<String>,
        /// Replace the network rules.
        #[arg(long, value_delimiter = ',', conflicts_with = "clear_network_rules")]
        network_rules: Vec<String>,
        /// Remove every network rule (the policy then applies from every address on the
        /// private endpoint only).
        #[arg(long)]
        clear_network_rules: bool,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a policy that no AAP uses any more.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AapCommand {
    /// Create an application access point (one per application) with up to three policies.
    ///
    /// Example: hkms aap create --name billing --policies app-keys
    Create {
        /// AAP name: 1 to 64 letters, digits, '_', '-', '.', '/'.
        #[arg(long)]
        name: String,
        /// Up to three policy names, comma separated.
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List AAPs with their ClientKeys' remaining validity (DAYS LEFT).
    List,
    /// Show an AAP and its ClientKeys.
    Describe { name: String },
    /// Replace an AAP's policies and/or description.
    Update {
        name: String,
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an AAP that has no ClientKeys left.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientKeyCommand {
    /// Create a ClientKey for an AAP and write the application's two files into --output-dir:
    /// clientKey_<KeyId>.json (KeyId and the password-protected PKCS#12) and
    /// clientKey_<KeyId>_Password.txt.
    ///
    /// The RSA-2048 key pair is generated here; only its certificate is sent to hkmsd.
    /// To change a ClientKey before it expires: create a new one, configure the application
    /// with it, then delete the old one.
    Create(CreateClientKey),
    /// List ClientKeys with their validity and days left.
    List {
        /// Only this AAP's keys.
        #[arg(long)]
        aap: Option<String>,
    },
    /// Delete a ClientKey: requests signed with it are refused from now on.
    Delete { client_key_id: String },
}

#[derive(Debug, Args)]
pub struct CreateClientKey {
    /// The AAP the key authenticates.
    #[arg(long)]
    aap: String,
    /// Directory for the two files (created if missing; files are mode 0600).
    #[arg(long)]
    output_dir: PathBuf,
    /// File whose first line is the PKCS#12 password: 8 to 64 characters with at least two
    /// of digits, letters and ~!@#$%^&*?_- . Without it a strong password is generated.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Days of validity, 1 to 1827 (5 years). One year is recommended.
    #[arg(long, default_value_t = 365)]
    validity_days: i64,
    /// First day of validity, YYYY-MM-DD (UTC). Default: now.
    #[arg(long)]
    not_before: Option<String>,
}

fn rule_json(r: &NetworkRule) -> Value {
    json!({
        "Name": r.name, "NetworkType": r.network_type, "SourcePrivateIp": r.source_private_ips,
        "Description": r.description, "CreateTime": r.create_time, "UpdateTime": r.update_time,
    })
}

fn rule_text(r: &NetworkRule) -> String {
    format!(
        "Name:        {}\nNetworkType: {}\nSourceIps:   {}\nDescription: {}\nCreateTime:  {}\nUpdateTime:  {}",
        r.name,
        r.network_type,
        r.source_private_ips.join(", "),
        r.description,
        r.create_time,
        r.update_time
    )
}

fn policy_json(p: &Policy) -> Value {
    json!({
        "Name": p.name, "RbacRole": p.rbac_role, "AccessControlRules": {
            "NetworkRules": p.network_rules,
        },
        "Resources": p.resources, "Scope": p.scope, "Description": p.description,
        "CreateTime": p.create_time, "UpdateTime": p.update_time,
    })
}

fn policy_text(p: &Policy) -> String {
    format!(
        "Name:         {}\nRbacRole:     {}\nResources:    {}\nNetworkRules: {}\nDescription:  {}\nCreateTime:   {}\nUpdateTime:   {}",
        p.name,
        p.rbac_role,
        p.resources.join(", "),
        if p.network_rules.is_empty() {
            "(any source address, private endpoint only)".to_owned()
        } else {
            p.network_rules.join(", ")
        },
        p.description,
        p.create_time,
        p.update_time
    )
}

fn aap_json(a: &ApplicationAccessPoint) -> Value {
    json!({
        "Name": a.name, "AuthenticationMethod": a.authentication_method,
        "Policies": a.policies, "Description": a.description,
        "CreateTime": a.create_time, "UpdateTime": a.update_time,
    })
}

fn aap_text(a: &ApplicationAccessPoint) -> String {
    format!(
        "Name:                 {}\nAuthenticationMethod: {}\nPolicies:             {}\nDescription:          {}\nCreateTime:           {}",
        a.name,
        a.authentication_method,
        a.policies.join(", "),
        a.description,
        a.create_time
    )
}

fn key_json(k: &ClientKeySummary) -> Value {
    json!({
        "ClientKeyId": k.client_key_id, "AapName": k.aap_name,
        "NotBefore": unix_to_rfc3339(k.not_before), "NotAfter": unix_to_rfc3339(k.not_after),
        "CreateTime": k.create_time, "DaysLeft": k.days_left, "State": k.state,
        "CertificateSha256": k.certificate_sha256,
    })
}

fn keys_table(keys: &[ClientKeySummary]) -> String {
    let mut t = format!(
        "{:<42} {:<20} {:<21} {:>9}  STATE",
        "CLIENT KEY ID", "AAP", "NOT AFTER", "DAYS LEFT"
    );
    for k in keys {
        t.push_str(&format!(
            "\n{:<42} {:<20} {:<21} {:>9}  {}",
            k.client_key_id,
            k.aap_name,
            unix_to_rfc3339(k.not_after),
            k.days_left,
            k.state
        ));
    }
    t
}

pub use crate::clock::{date_to_unix, rfc3339 as unix_to_rfc3339};

pub async fn network_rule(c: &mut Client, cmd: &NetworkRuleCommand) -> Result<Printed, Status> {
    let one = |r: Option<NetworkRule>| {
        let r = r.unwrap_or_default();
        (rule_text(&r), json!({ "NetworkRule": rule_json(&r) }))
    };
    Ok(match cmd {
        NetworkRuleCommand::Create {
            name,
            network_type,
            source_ips,
            description,
        } => one(c
            .access
            .create_network_rule(CreateNetworkRuleRequest {
                rule: Some(NetworkRule {
                    name: name.clone(),
                    network_type: network_type.clone(),
                    source_private_ips: source_ips.clone(),
                    description: description.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .rule),
        NetworkRuleCommand::List => {
            let rules = c
                .access
                .list_network_rules(ListNetworkRulesRequest {})
                .await?
                .into_inner()
                .rules;
            let mut t = format!("{:<24} {:<8} SOURCE IPS", "NAME", "TYPE");
            for r in &rules {
                t.push_str(&format!(
                    "\n{:<24} {:<8} {}",
                    r.name,
                    r.network_type,
                    r.source_private_ips.join(", ")
                ));
            }
            (
                t,
                json!({ "NetworkRules": rules.iter().map(rule_json).collect::<Vec<_>>() }),
            )
        }
        NetworkRuleCommand::Describe { name } => one(c
            .access
            .describe_network_rule(DescribeNetworkRuleRequest { name: name.clone() })
            .await?
            .into_inner()
            .rule),
        NetworkRuleCommand::Update {
            name,
            source_ips,
            description,
        } => one(c
            .access
            .update_network_rule(UpdateNetworkRuleRequest {
                name: name.clone(),
                source_private_ips: source_ips.clone(),
                description: description.clone(),
            })
            .await?
            .into_inner()
            .rule),
        NetworkRuleCommand::Delete { name } => {
            c.access
                .delete_network_rule(DeleteNetworkRuleRequest { name: name.clone() })
                .await?;
            (
                format!("network rule {name} deleted"),
                json!({ "Deleted": name }),
            )
        }
    })
}

pub async fn policy(c: &mut Client, cmd: &PolicyCommand) -> Result<Printed, Status> {
    let one = |p: Option<Policy>| {
        let p = p.unwrap_or_default();
        (policy_text(&p), json!({ "Policy": policy_json(&p) }))
    };
    Ok(match cmd {
        PolicyCommand::Create {
            name,
            role,
            resources,
            network_rules,
            description,
        } => one(c
            .access
            .create_policy(CreatePolicyRequest {
                policy: Some(Policy {
                    name: name.clone(),
                    rbac_role: role.clone(),
                    resources: resources.clone(),
                    network_rules: network_rules.clone(),
                    description: description.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .policy),
        PolicyCommand::List => {
            let policies = c
                .access
                .list_policies(ListPoliciesRequest {})
                .await?
                .into_inner()
                .policies;
            let mut t = format!(
                "{:<24} {:<24} {:<30} NETWORK RULES",
                "NAME", "ROLE", "RESOURCES"
            );
            for p in &policies {
                t.push_str(&format!(
                    "\n{:<24} {:<24} {:<30} {}",
                    p.name,
                    p.rbac_role,
                    p.resources.join(","),
                    p.network_rules.join(",")
                ));
            }
            (
                t,
                json!({ "Policies": policies.iter().map(policy_json).collect::<Vec<_>>() }),
            )
        }
        PolicyCommand::Describe { name } => one(c
            .access
            .describe_policy(DescribePolicyRequest { name: name.clone() })
            .await?
            .into_inner()
            .policy),
        PolicyCommand::Update {
            name,
            role,
            resources,
            network_rules,
            clear_network_rules,
            description,
        } => one(c
            .access
            .update_policy(UpdatePolicyRequest {
                name: name.clone(),
                resources: resources.clone(),
                network_rules: network_rules.clone(),
                clear_network_rules: *clear_network_rules,
                description: description.clone(),
                rbac_role: role.clone().unwrap_or_default(),
            })
            .await?
            .into_inner()
            .policy),
        PolicyCommand::Delete { name } => {
            c.access
                .delete_policy(DeletePolicyRequest { name: name.clone() })
                .await?;
            (format!("policy {name} deleted"), json!({ "Deleted": name }))
        }
    })
}

pub async fn aap(c: &mut Client, cmd: &AapCommand) -> Result<Printed, Status> {
    let one = |a: Option<ApplicationAccessPoint>| {
        let a = a.unwrap_or_default();
        (
            aap_text(&a),
            json!({ "ApplicationAccessPoint": aap_json(&a) }),
        )
    };
    Ok(match cmd {
        AapCommand::Create {
            name,
            policies,
            description,
        } => one(c
            .access
            .create_application_access_point(CreateApplicationAccessPointRequest {
                aap: Some(ApplicationAccessPoint {
                    name: name.clone(),
                    authentication_method: "ClientKey".into(),
                    policies: policies.clone(),
                    description: description.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .aap),
        AapCommand::List => {
            let aaps = c
                .access
                .list_application_access_points(ListApplicationAccessPointsRequest {})
                .await?
                .into_inner()
                .aaps;
            let mut t = format!(
                "{:<24} {:<36} {:>11} {:>9}",
                "NAME", "POLICIES", "CLIENT KEYS", "DAYS LEFT"
            );
            let mut j = Vec::new();
            for s in &aaps {
                let a = s.aap.clone().unwrap_or_default();
                let days = if s.days_left < 0 && s.client_key_count == 0 {
                    "-".to_owned()
                } else {
                    s.days_left.to_string()
                };
                let warn = if s.client_key_count > 0 && s.days_left <= clientkey::WARN_DAYS {
                    "  <- change its ClientKey soon"
                } else {
                    ""
                };
                t.push_str(&format!(
                    "\n{:<24} {:<36} {:>11} {:>9}{warn}",
                    a.name,
                    a.policies.join(","),
                    s.client_key_count,
                    days
                ));
                let mut v = aap_json(&a);
                v["ClientKeyCount"] = json!(s.client_key_count);
                v["DaysLeft"] = if s.client_key_count == 0 {
                    Value::Null
                } else {
                    json!(s.days_left)
                };
                j.push(v);
            }
            (t, json!({ "ApplicationAccessPoints": j }))
        }
        AapCommand::Describe { name } => {
            let r = c
                .access
                .describe_application_access_point(DescribeApplicationAccessPointRequest {
                    name: name.clone(),
                })
                .await?
                .into_inner();
            let (mut t, mut j) = one(r.aap);
            t.push_str("\n\n");
            t.push_str(&keys_table(&r.client_keys));
            j["ClientKeys"] = json!(r.client_keys.iter().map(key_json).collect::<Vec<_>>());
            (t, j)
        }
        AapCommand::Update {
            name,
            policies,
            description,
        } => one(c
            .access
            .update_application_access_point(UpdateApplicationAccessPointRequest {
                name: name.clone(),
                policies: policies.clone(),
                description: description.clone(),
            })
            .await?
            .into_inner()
            .aap),
        AapCommand::Delete { name } => {
            c.access
                .delete_application_access_point(DeleteApplicationAccessPointRequest {
                    name: name.clone(),
                })
                .await?;
            (format!("AAP {name} deleted"), json!({ "Deleted": name }))
        }
    })
}

fn read_password(path: &std::path::Path) -> Result<Zeroizing<String>, Status> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(Zeroizing::new(
        text.lines()
            .next()
            .unwrap_or("")
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    ))
}

async fn create_client_key(c: &mut Client, a: &CreateClientKey) -> Result<Printed, Status> {
    // Everything that can fail locally is checked before hkmsd registers anything.
    let password = match &a.password_file {
        Some(p) => read_password(p)?,
        None => clientkey::generate_password().map_err(usage)?,
    };
    clientkey::validate_password(&password).map_err(usage)?;
    if !(1..=clientkey::MAX_VALIDITY_DAYS).contains(&a.validity_days) {
        return Err(usage(format!(
            "--validity-days must be 1..{} (5 years)",
            clientkey::MAX_VALIDITY_DAYS
        )));
    }
    let not_before = match &a.not_before {
        Some(d) => date_to_unix(d).map_err(usage)?,
        None => clientkey::now_unix(),
    };
    let not_after = not_before + a.validity_days * 86_400;
    std::fs::create_dir_all(&a.output_dir)
        .map_err(|e| usage(format!("cannot create {}: {e}", a.output_dir.display())))?;
    let pair =
        KeyPair::generate(&format!("hkms AAP {}", a.aap), not_before, not_after).map_err(usage)?;
    let certificate = pair.certificate_der().map_err(usage)?;
    let pkcs12 = pair.pkcs12(&password).map_err(usage)?;
    let key = c
        .access
        .create_client_key(CreateClientKeyRequest {
            aap_name: a.aap.clone(),
            certificate,
        })
        .await?
        .into_inner()
        .client_key
        .unwrap_or_default();
    let files = match clientkey::write_files(&a.output_dir, &key.client_key_id, &pkcs12, &password)
    {
        Ok(f) => f,
        Err(e) => {
            // Without its files the key is useless: take it back.
            let _ = c
                .access
                .delete_client_key(DeleteClientKeyRequest {
                    client_key_id: key.client_key_id.clone(),
                })
                .await;
            return Err(usage(format!("{e}; the ClientKey was deleted again")));
        }
    };
    let mut j = key_json(&key);
    j["ClientKeyFile"] = json!(files.client_key);
    j["PasswordFile"] = json!(files.password);
    Ok((
        format!(
            "ClientKey {} created for AAP {} (valid until {}).\nApplication files (keep them secret):\n  {}\n  {}",
            key.client_key_id,
            key.aap_name,
            unix_to_rfc3339(key.not_after),
            files.client_key.display(),
            files.password.display()
        ),
        json!({ "ClientKey": j }),
    ))
}

pub async fn client_key(c: &mut Client, cmd: &ClientKeyCommand) -> Result<Printed, Status> {
    Ok(match cmd {
        ClientKeyCommand::Create(a) => create_client_key(c, a).await?,
        ClientKeyCommand::List { aap } => {
            let keys = c
                .access
                .list_client_keys(ListClientKeysRequest {
                    aap_name: aap.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .client_keys;
            (
                keys_table(&keys),
                json!({ "ClientKeys": keys.iter().map(key_json).collect::<Vec<_>>() }),
            )
        }
        ClientKeyCommand::Delete { client_key_id } => {
            c.access
                .delete_client_key(DeleteClientKeyRequest {
                    client_key_id: client_key_id.clone(),
                })
                .await?;
            (
                format!("ClientKey {client_key_id} deleted"),
                json!({ "Deleted": client_key_id }),
            )
        }
    })
}

/// Lines warning about ClientKeys that expire within 30 days or have expired (for
/// `hkms status`); empty when there is nothing to say or the list cannot be read.
pub async fn expiry_warnings(c: &mut Client) -> Vec<String> {
    let Ok(r) = c
        .access
        .list_client_keys(ListClientKeysRequest::default())
        .await
    else {
        return Vec::new();
    };
    r.into_inner()
        .client_keys
        .iter()
        .filter(|k| k.state == "ExpiringSoon" || k.state == "Expired")
        .map(|k| {
            if k.state == "Expired" {
                format!(
                    "ClientKey {} of AAP {} has expired",
                    k.client_key_id, k.aap_name
                )
            } else {
                format!(
                    "ClientKey {} of AAP {} expires in {} day(s); create a new one and delete it",
                    k.client_key_id, k.aap_name, k.days_left
                )
            }
        })
        .collect()
}
