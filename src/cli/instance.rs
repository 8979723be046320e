//! `hkms alias` (other names of keys) and `hkms instance internet` (the gateway's Internet
//! endpoint switch).

use super::access::Printed;
use crate::client::Client;
use crate::proto::*;
use clap::Subcommand;
use serde_json::json;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Give a key another name, usable wherever a key id is (SDK requests included).
    ///
    /// Example: hkms alias create --alias-name alias/orders-db --key-id <KeyId>
    Create {
        /// "alias/" followed by letters, digits, '_', '-', '/' (the prefix may be left out).
        #[arg(long)]
        alias_name: String,
        /// The key it names.
        #[arg(long)]
        key_id: String,
    },
    /// Delete an alias; the key is not touched.
    Delete {
        /// The alias to delete.
        alias_name: String,
    },
    /// List aliases (of one key with --key-id).
    List {
        #[arg(long, default_value = "")]
        key_id: String,
    },
}

fn alias_json(a: &KeyAlias) -> serde_json::Value {
    json!({"AliasName": a.alias_name, "KeyId": a.key_id, "CreateTime": a.create_time})
}

pub async fn alias(c: &mut Client, cmd: &AliasCommand) -> Result<Printed, Status> {
    Ok(match cmd {
        AliasCommand::Create { alias_name, key_id } => {
            let a = c
                .keys
                .create_alias(CreateAliasRequest {
                    alias_name: alias_name.clone(),
                    key_id: key_id.clone(),
                })
                .await?
                .into_inner()
                .alias
                .unwrap_or_default();
            (
                format!("{} -> {}", a.alias_name, a.key_id),
                json!({ "Alias": alias_json(&a) }),
            )
        }
        AliasCommand::Delete { alias_name } => {
            c.keys
                .delete_alias(DeleteAliasRequest {
                    alias_name: alias_name.clone(),
                })
                .await?;
            (format!("{alias_name} deleted"), json!({}))
        }
        AliasCommand::List { key_id } => {
            let r = c
                .keys
                .list_aliases(ListAliasesRequest {
                    key_id: key_id.clone(),
                })
                .await?
                .into_inner();
            let text = r
                .aliases
                .iter()
                .map(|a| format!("{:<40} {}", a.alias_name, a.key_id))
                .collect::<Vec<_>>()
                .join("\n");
            (
                text,
                json!({ "Aliases": r.aliases.iter().map(alias_json).collect::<Vec<_>>() }),
            )
        }
    })
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// The gateway's Internet endpoint: off until the instance owner enables it.
    #[command(subcommand)]
    Internet(InternetCommand),
}

#[derive(Debug, Subcommand)]
pub enum InternetCommand {
    /// Let the Internet endpoint answer (instance owner only). Cryptographic operations over
    /// it stay capped at 1,000 QPS whatever the tier.
    Enable,
    /// Refuse every request that arrives on the Internet endpoint (instance owner only).
    Disable,
    /// Show whether the Internet endpoint answers.
    Status,
}

pub async fn instance(c: &mut Client, cmd: &InstanceCommand) -> Result<Printed, Status> {
    let InstanceCommand::Internet(cmd) = cmd;
    let enabled = match cmd {
        InternetCommand::Enable | InternetCommand::Disable => {
            c.access
                .set_internet_access(SetInternetAccessRequest {
                    enabled: matches!(cmd, InternetCommand::Enable),
                })
                .await?
                .into_inner()
                .enabled
        }
        InternetCommand::Status => {
            c.access
                .get_internet_access(GetInternetAccessRequest {})
                .await?
                .into_inner()
                .enabled
        }
    };
    Ok((
        format!(
            "Internet access: {}",
            if enabled { "enabled" } else { "disabled" }
        ),
        json!({ "InternetAccess": enabled }),
    ))
}
