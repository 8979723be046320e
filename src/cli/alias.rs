//! `hkms alias`: other names of keys (`alias/<name>`), usable wherever a key id is.

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
        /// "alias/" followed by 1 to 255 letters, digits, '_', '-', '/' (the prefix may be
        /// left out).
        #[arg(long)]
        alias_name: String,
        /// The key it names.
        #[arg(long)]
        key_id: String,
    },
    /// Point an existing alias at another key.
    ///
    /// Requests that name the alias use the new key from then on. Self-describing
    /// ciphertexts (hkms encrypt, AdvanceEncrypt) name their own key and still decrypt; a
    /// bare ciphertext of the instance API's plain Encrypt is decrypted with the key its
    /// request names, so decrypt those by the old key's id.
    ///
    /// Example: hkms alias update --alias-name alias/orders-db --key-id <NewKeyId>
    Update {
        /// The alias to change (the "alias/" prefix may be left out).
        #[arg(long)]
        alias_name: String,
        /// The key it names from now on.
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
        /// Only the aliases of this key (its id or one of its aliases).
        #[arg(long, default_value = "")]
        key_id: String,
    },
}

fn alias_json(a: &KeyAlias) -> serde_json::Value {
    json!({"AliasName": a.alias_name, "KeyId": a.key_id, "CreateTime": a.create_time})
}

/// Runs `hkms alias ...`.
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
        AliasCommand::Update { alias_name, key_id } => {
            let a = c
                .keys
                .update_alias(UpdateAliasRequest {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct AliasCli {
        #[command(subcommand)]
        cmd: AliasCommand,
    }

    #[test]
    fn update_takes_an_alias_and_a_key() {
        let cli = AliasCli::try_parse_from([
            "alias",
            "update",
            "--alias-name",
            "alias/orders",
            "--key-id",
            "k2",
        ])
        .unwrap();
        let AliasCommand::Update { alias_name, key_id } = cli.cmd else {
            panic!("not update");
        };
        assert_eq!(
            (alias_name.as_str(), key_id.as_str()),
            ("alias/orders", "k2")
        );
        assert!(AliasCli::try_parse_from(["alias", "update", "--alias-name", "a"]).is_err());
    }
}
