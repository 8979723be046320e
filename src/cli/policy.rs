//! `hkms policy`: permission policies, a role on resources, optionally from some networks
//! only.

use super::resource::{self, Printed, Row, View};
use crate::client::Client;
use crate::proto::{
    CreatePolicyRequest, DeletePolicyRequest, DescribePolicyRequest, ListPoliciesRequest, Policy,
    UpdatePolicyRequest,
};
use clap::Subcommand;
use serde_json::{json, Value};
use tonic::Status;

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

impl View for Policy {
    const KEY: &'static str = "Policy";

    fn json(&self) -> Value {
        json!({
            "Name": self.name, "RbacRole": self.rbac_role, "AccessControlRules": {
                "NetworkRules": self.network_rules,
            },
            "Resources": self.resources, "Scope": self.scope, "Description": self.description,
            "CreateTime": self.create_time, "UpdateTime": self.update_time,
        })
    }

    fn text(&self) -> String {
        format!(
            "Name:         {}\nRbacRole:     {}\nResources:    {}\nNetworkRules: {}\nDescription:  {}\nCreateTime:   {}\nUpdateTime:   {}",
            self.name,
            self.rbac_role,
            self.resources.join(", "),
            if self.network_rules.is_empty() {
                "(any source address, private endpoint only)".to_owned()
            } else {
                self.network_rules.join(", ")
            },
            self.description,
            self.create_time,
            self.update_time
        )
    }
}

impl Row for Policy {
    const LIST_KEY: &'static str = "Policies";

    fn header() -> String {
        format!(
            "{:<24} {:<24} {:<30} NETWORK RULES",
            "NAME", "ROLE", "RESOURCES"
        )
    }

    fn row(&self) -> String {
        format!(
            "{:<24} {:<24} {:<30} {}",
            self.name,
            self.rbac_role,
            self.resources.join(","),
            self.network_rules.join(",")
        )
    }

    fn entry(&self) -> Value {
        self.json()
    }
}

/// Runs one `hkms policy` command.
pub async fn policy(c: &mut Client, cmd: &PolicyCommand) -> Result<Printed, Status> {
    let api = &mut c.access;
    match cmd {
        PolicyCommand::Create {
            name,
            role,
            resources,
            network_rules,
            description,
        } => {
            let policy = Policy {
                name: name.clone(),
                rbac_role: role.clone(),
                resources: resources.clone(),
                network_rules: network_rules.clone(),
                description: description.clone(),
                ..Default::default()
            };
            let req = CreatePolicyRequest {
                policy: Some(policy),
            };
            resource::one(api.create_policy(req), |r| r.policy).await
        }
        PolicyCommand::List => {
            let req = ListPoliciesRequest {};
            resource::list(api.list_policies(req), |r| r.policies).await
        }
        PolicyCommand::Describe { name } => {
            let req = DescribePolicyRequest { name: name.clone() };
            resource::one(api.describe_policy(req), |r| r.policy).await
        }
        PolicyCommand::Update {
            name,
            role,
            resources,
            network_rules,
            clear_network_rules,
            description,
        } => {
            let req = UpdatePolicyRequest {
                name: name.clone(),
                resources: resources.clone(),
                network_rules: network_rules.clone(),
                clear_network_rules: *clear_network_rules,
                description: description.clone(),
                rbac_role: role.clone().unwrap_or_default(),
            };
            resource::one(api.update_policy(req), |r| r.policy).await
        }
        PolicyCommand::Delete { name } => {
            let req = DeletePolicyRequest { name: name.clone() };
            resource::deleted(api.delete_policy(req), "policy", name).await
        }
    }
}
