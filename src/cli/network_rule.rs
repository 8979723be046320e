//! `hkms network-rule`: the source addresses applications may call from, and through which
//! gateway endpoint.

use super::resource::{self, Printed, Row, View};
use crate::client::Client;
use crate::proto::{
    CreateNetworkRuleRequest, DeleteNetworkRuleRequest, DescribeNetworkRuleRequest,
    ListNetworkRulesRequest, NetworkRule, UpdateNetworkRuleRequest,
};
use clap::Subcommand;
use serde_json::{json, Value};
use tonic::Status;

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

impl View for NetworkRule {
    const KEY: &'static str = "NetworkRule";

    fn json(&self) -> Value {
        json!({
            "Name": self.name, "NetworkType": self.network_type,
            "SourcePrivateIp": self.source_private_ips, "Description": self.description,
            "CreateTime": self.create_time, "UpdateTime": self.update_time,
        })
    }

    fn text(&self) -> String {
        format!(
            "Name:        {}\nNetworkType: {}\nSourceIps:   {}\nDescription: {}\nCreateTime:  {}\nUpdateTime:  {}",
            self.name,
            self.network_type,
            self.source_private_ips.join(", "),
            self.description,
            self.create_time,
            self.update_time
        )
    }
}

impl Row for NetworkRule {
    const LIST_KEY: &'static str = "NetworkRules";

    fn header() -> String {
        format!("{:<24} {:<8} SOURCE IPS", "NAME", "TYPE")
    }

    fn row(&self) -> String {
        format!(
            "{:<24} {:<8} {}",
            self.name,
            self.network_type,
            self.source_private_ips.join(", ")
        )
    }

    fn entry(&self) -> Value {
        self.json()
    }
}

/// Runs one `hkms network-rule` command.
pub async fn network_rule(c: &mut Client, cmd: &NetworkRuleCommand) -> Result<Printed, Status> {
    let api = &mut c.access;
    match cmd {
        NetworkRuleCommand::Create {
            name,
            network_type,
            source_ips,
            description,
        } => {
            let rule = NetworkRule {
                name: name.clone(),
                network_type: network_type.clone(),
                source_private_ips: source_ips.clone(),
                description: description.clone(),
                ..Default::default()
            };
            let req = CreateNetworkRuleRequest { rule: Some(rule) };
            resource::one(api.create_network_rule(req), |r| r.rule).await
        }
        NetworkRuleCommand::List => {
            let req = ListNetworkRulesRequest {};
            resource::list(api.list_network_rules(req), |r| r.rules).await
        }
        NetworkRuleCommand::Describe { name } => {
            let req = DescribeNetworkRuleRequest { name: name.clone() };
            resource::one(api.describe_network_rule(req), |r| r.rule).await
        }
        NetworkRuleCommand::Update {
            name,
            source_ips,
            description,
        } => {
            let req = UpdateNetworkRuleRequest {
                name: name.clone(),
                source_private_ips: source_ips.clone(),
                description: description.clone(),
            };
            resource::one(api.update_network_rule(req), |r| r.rule).await
        }
        NetworkRuleCommand::Delete { name } => {
            let req = DeleteNetworkRuleRequest { name: name.clone() };
            resource::deleted(api.delete_network_rule(req), "network rule", name).await
        }
    }
}
