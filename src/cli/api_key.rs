//! `hkms api-key`: the SecretId / SecretKey pairs that Tencent Cloud API 3.0 clients (the
//! tencentcloud SDKs, tccli) sign requests with. hkmsd makes the SecretKey from an HSM's
//! random generator, keeps it only sealed inside the HSMs' keys, and returns it once.

use super::resource::{self, Printed, Row};
use crate::client::Client;
use crate::clock::rfc3339 as unix_to_rfc3339;
use crate::error::{ErrorCode, KmsError};
use crate::proto::{ApiKeySummary, CreateApiKeyRequest, DeleteApiKeyRequest, ListApiKeysRequest};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

const CREATE_EXAMPLES: &str = "\
Examples:
  # An API key valid one year; its SecretKey goes to a file only the operator can read:
  hkms api-key create --aap billing --output-file ./billing-api-key.json

  # 90 days, printed (shown once; hkmsd cannot show it again):
  hkms api-key create --aap billing --validity-days 90 --description \"CI pipeline\"

Point a Tencent Cloud SDK at the gateway with the pair:
  credential.Credential(SecretId, SecretKey), HttpProfile(endpoint=\"kms.example:8443\",
  certification=\"PrivateKmsCA_<instance>.pem\")";

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key (SecretId and SecretKey) for an AAP.
    ///
    /// Requests signed with it (TC3-HMAC-SHA256) are authorised like the AAP's ClientKeys:
    /// by its policies, their roles and resources, and their network rules. The SecretKey is
    /// returned once: write it to --output-file (created mode 0600, never overwritten) or
    /// copy it from the output. hkmsd keeps it only sealed under a key inside the HSMs.
    #[command(after_long_help = CREATE_EXAMPLES)]
    Create(CreateApiKey),
    /// List API keys with their validity and days left (never their SecretKeys).
    List {
        /// Only this AAP's keys.
        #[arg(long)]
        aap: Option<String>,
    },
    /// Delete an API key: requests signed with it are refused from now on
    /// (AuthFailure.SecretIdNotFound).
    Delete { secret_id: String },
}

#[derive(Debug, Args)]
pub struct CreateApiKey {
    /// The AAP the key authenticates.
    #[arg(long)]
    pub aap: String,
    /// Days of validity, 1 to 1825 (5 years); default 365. hkmsd logs a warning in the
    /// last 30 days and `hkms status` lists keys about to expire.
    #[arg(long)]
    pub validity_days: Option<u32>,
    /// What the key is for (at most 1024 bytes).
    #[arg(long, default_value = "")]
    pub description: String,
    /// Write {"SecretId": ..., "SecretKey": ...} to this new file (mode 0600) instead of
    /// printing the SecretKey.
    #[arg(long)]
    pub output_file: Option<PathBuf>,
}

impl Row for ApiKeySummary {
    const LIST_KEY: &'static str = "ApiKeys";

    fn header() -> String {
        format!(
            "{:<38} {:<20} {:<21} {:>9}  {:<13} DESCRIPTION",
            "SECRET ID", "AAP", "NOT AFTER", "DAYS LEFT", "STATE"
        )
    }

    fn row(&self) -> String {
        format!(
            "{:<38} {:<20} {:<21} {:>9}  {:<13} {}",
            self.secret_id,
            self.aap_name,
            unix_to_rfc3339(self.not_after),
            self.days_left,
            self.state,
            self.description
        )
    }

    fn entry(&self) -> Value {
        json!({
            "SecretId": self.secret_id, "AapName": self.aap_name,
            "NotBefore": unix_to_rfc3339(self.not_before),
            "NotAfter": unix_to_rfc3339(self.not_after),
            "CreateTime": self.create_time, "DaysLeft": self.days_left, "State": self.state,
            "Description": self.description,
        })
    }
}

/// Writes the pair to a new file only its owner can read.
fn write_new_file(path: &std::path::Path, content: &[u8]) -> Result<(), Status> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KmsError::invalid(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            KmsError::new(
                ErrorCode::Internal,
                format!("cannot write {}: {e}", path.display()),
            )
            .into()
        })
}

async fn create(c: &mut Client, a: &CreateApiKey) -> Result<Printed, Status> {
    if let Some(p) = &a.output_file {
        if p.exists() {
            return Err(KmsError::invalid(format!(
                "{} exists; choose a new file (an API key file is never overwritten)",
                p.display()
            ))
            .into());
        }
    }
    let r = c
        .access
        .create_api_key(CreateApiKeyRequest {
            aap_name: a.aap.clone(),
            validity_days: a.validity_days.unwrap_or(0),
            description: a.description.clone(),
        })
        .await?
        .into_inner();
    let secret_key = Zeroizing::new(r.secret_key);
    let key = r.api_key.unwrap_or_default();
    let mut j = key.entry();
    let mut text = format!(
        "API key {} created for AAP {} (valid until {}).",
        key.secret_id,
        key.aap_name,
        unix_to_rfc3339(key.not_after)
    );
    match &a.output_file {
        Some(path) => {
            let content = Zeroizing::new(
                serde_json::to_vec_pretty(&json!({
                    "SecretId": key.secret_id,
                    "SecretKey": secret_key.as_str(),
                }))
                .unwrap_or_default(),
            );
            write_new_file(path, &content)?;
            j["SecretKeyFile"] = json!(path);
            text.push_str(&format!(
                "\nSecretId and SecretKey written to {} (keep it secret; it cannot be shown again).",
                path.display()
            ));
        }
        None => {
            j["SecretKey"] = json!(secret_key.as_str());
            text.push_str(&format!(
                "\nSecretId:  {}\nSecretKey: {}\nKeep the SecretKey secret; it cannot be shown again.",
                key.secret_id,
                secret_key.as_str()
            ));
        }
    }
    Ok((text, json!({ "ApiKey": j })))
}

/// Runs one `hkms api-key` command.
pub async fn api_key(c: &mut Client, cmd: &ApiKeyCommand) -> Result<Printed, Status> {
    match cmd {
        ApiKeyCommand::Create(a) => create(c, a).await,
        ApiKeyCommand::List { aap } => {
            let req = ListApiKeysRequest {
                aap_name: aap.clone().unwrap_or_default(),
            };
            resource::list(c.access.list_api_keys(req), |r| r.api_keys).await
        }
        ApiKeyCommand::Delete { secret_id } => {
            let req = DeleteApiKeyRequest {
                secret_id: secret_id.clone(),
            };
            resource::deleted(c.access.delete_api_key(req), "API key", secret_id).await
        }
    }
}

/// Lines warning about API keys that expire within 30 days or have expired (for
/// `hkms status`); empty when there is nothing to say or the list cannot be read.
pub async fn expiry_warnings(c: &mut Client) -> Vec<String> {
    let Ok(r) = c.access.list_api_keys(ListApiKeysRequest::default()).await else {
        return Vec::new();
    };
    r.into_inner()
        .api_keys
        .iter()
        .filter_map(|k| match k.state.as_str() {
            "Expired" => Some(format!(
                "API key {} of AAP {} has expired; delete it (hkms api-key delete {})",
                k.secret_id, k.aap_name, k.secret_id
            )),
            "ExpiringSoon" => Some(format!(
                "API key {} of AAP {} expires in {} day(s); create a new one (hkms api-key create --aap {}) and delete this one",
                k.secret_id, k.aap_name, k.days_left, k.aap_name
            )),
            _ => None,
        })
        .collect()
}
