//! `hkms secret policy`: the policy attached to one secret, a JSON policy document that
//! names which AAPs may do what with it (operators only).

use super::access::Printed;
use super::data_io::{self, Source};
use crate::client::Client;
use crate::proto::*;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum SecretPolicyCommand {
    /// Attach a secret policy (replacing any attached one), read from a JSON file.
    ///
    /// Statements name principals ("aap/<AAP name>", "aap/*" or "*"), actions
    /// ("kms:GetSecretValue", "kms:DescribeSecret", "kms:List*"...) and resources
    /// ("secret/<name>", or "key/<key id>" for kms:Decrypt on the secret's CMK). An
    /// explicit Deny wins over every Allow, the AAP's own policies included. An AAP that
    /// only the secret policy admits is served on the private endpoint only, and reads the
    /// value only if it may also decrypt with the secret's CMK: Decrypt on the key in its
    /// own policies, or a kms:Decrypt statement on key/<key id> here.
    #[command(after_long_help = SET_EXAMPLES)]
    Set {
        /// The secret's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// File holding the policy document ("-" for stdin).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a secret's policy document.
    ///
    /// Example: hkms secret policy get db/orders > policy.json
    Get {
        /// The secret's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Detach a secret's policy; only the AAPs' own policies decide then.
    ///
    /// Example: hkms secret policy delete db/orders
    Delete {
        /// The secret's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

const SET_EXAMPLES: &str = r#"Examples:
  hkms secret policy set db/orders --file policy.json
  hkms secret policy get db/orders

A policy.json that lets the AAP orders-app read db/orders (and decrypt with its CMK, which
it needs when nothing else grants it the secret) and keeps every AAP named batch-* from
reading it, whatever their own policies say:

  {"Version": "1",
   "Statement": [
     {"Effect": "Allow", "Principal": {"AAP": ["aap/orders-app"]},
      "Action": ["kms:GetSecretValue", "kms:DescribeSecret"],
      "Resource": ["secret/db/orders"]},
     {"Effect": "Allow", "Principal": {"AAP": ["aap/orders-app"]},
      "Action": ["kms:Decrypt"], "Resource": ["key/<KeyId of the secret>"]},
     {"Sid": "no-batch", "Effect": "Deny", "Principal": {"AAP": ["aap/batch-*"]},
      "Action": ["kms:*"], "Resource": ["secret/db/orders"]}]}"#;

/// Runs `hkms secret policy ...`.
pub async fn policy(c: &mut Client, cmd: &SecretPolicyCommand) -> Result<Printed, Status> {
    match cmd {
        SecretPolicyCommand::Set { name, file } => {
            let document = read_document(file)?;
            c.secrets
                .set_secret_policy(SetSecretPolicyRequest {
                    secret_name: name.clone(),
                    policy: document,
                })
                .await?;
            Ok((
                format!("Secret policy of {name} set."),
                json!({"SecretName": name, "SecretPolicySet": true}),
            ))
        }
        SecretPolicyCommand::Get { name } => {
            let r = c
                .secrets
                .get_secret_policy(GetSecretPolicyRequest {
                    secret_name: name.clone(),
                })
                .await?
                .into_inner();
            let text = if r.policy.is_empty() {
                format!("Secret {name} has no secret policy.")
            } else {
                pretty(&r.policy)
            };
            Ok((text, json!({"SecretName": name, "SecretPolicy": r.policy})))
        }
        SecretPolicyCommand::Delete { name } => {
            c.secrets
                .delete_secret_policy(DeleteSecretPolicyRequest {
                    secret_name: name.clone(),
                })
                .await?;
            Ok((
                format!("Secret policy of {name} deleted."),
                json!({"SecretName": name, "Deleted": "SecretPolicy"}),
            ))
        }
    }
}

/// The document in `file`, checked to be JSON here so that a typo is reported with its line
/// and column; hkmsd checks what it says.
fn read_document(file: &std::path::Path) -> Result<String, Status> {
    let bytes = data_io::read(Source::File(file), "policy document")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| data_io::usage(format!("{} is not UTF-8 text", file.display())))?;
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        return Err(data_io::usage(format!(
            "the policy document in {} is not JSON: {e}",
            file.display()
        )));
    }
    Ok(text.to_owned())
}

/// A stored document, indented for reading (as stored when it is not JSON).
fn pretty(document: &str) -> String {
    serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| document.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json_before_they_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        std::fs::write(&f, "{\"Statement\": [\n  {\"Effect\": \"Allow\",}\n]}").unwrap();
        let e = read_document(&f).unwrap_err();
        assert!(
            e.message().contains("is not JSON") && e.message().contains("line 2"),
            "{e}"
        );
        std::fs::write(&f, "{\"Statement\": []}").unwrap();
        assert_eq!(read_document(&f).unwrap(), "{\"Statement\": []}");
        assert_eq!(pretty("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(pretty("not json"), "not json");
    }

    #[test]
    fn the_example_document_is_a_valid_secret_policy() {
        let start = SET_EXAMPLES.find("{\"Version\"").unwrap();
        let end = SET_EXAMPLES.find("]}]}").unwrap() + 4;
        let doc = &SET_EXAMPLES[start..end];
        crate::access::secrets::parse_policy(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    }
}
