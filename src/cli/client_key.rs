//! `hkms client-key`: the key pairs applications authenticate with. `client-key create`
//! makes the key pair here, on the operator's machine: the private key goes only into the
//! files it writes; hkmsd receives only the certificate.

use super::resource::{self, Printed, Row};
use crate::access::clientkey::{self, KeyPair};
use crate::client::Client;
use crate::clock::{date_to_unix, rfc3339 as unix_to_rfc3339};
use crate::error::KmsError;
use crate::proto::{
    ClientKeySummary, CreateClientKeyRequest, DeleteClientKeyRequest, ListClientKeysRequest,
};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
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

impl Row for ClientKeySummary {
    const LIST_KEY: &'static str = "ClientKeys";

    fn header() -> String {
        format!(
            "{:<42} {:<20} {:<21} {:>9}  STATE",
            "CLIENT KEY ID", "AAP", "NOT AFTER", "DAYS LEFT"
        )
    }

    fn row(&self) -> String {
        format!(
            "{:<42} {:<20} {:<21} {:>9}  {}",
            self.client_key_id,
            self.aap_name,
            unix_to_rfc3339(self.not_after),
            self.days_left,
            self.state
        )
    }

    fn entry(&self) -> Value {
        json!({
            "ClientKeyId": self.client_key_id, "AapName": self.aap_name,
            "NotBefore": unix_to_rfc3339(self.not_before),
            "NotAfter": unix_to_rfc3339(self.not_after),
            "CreateTime": self.create_time, "DaysLeft": self.days_left, "State": self.state,
            "CertificateSha256": self.certificate_sha256,
        })
    }
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
    let mut j = key.entry();
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

/// Runs one `hkms client-key` command.
pub async fn client_key(c: &mut Client, cmd: &ClientKeyCommand) -> Result<Printed, Status> {
    match cmd {
        ClientKeyCommand::Create(a) => create_client_key(c, a).await,
        ClientKeyCommand::List { aap } => {
            let req = ListClientKeysRequest {
                aap_name: aap.clone().unwrap_or_default(),
            };
            resource::list(c.access.list_client_keys(req), |r| r.client_keys).await
        }
        ClientKeyCommand::Delete { client_key_id } => {
            let req = DeleteClientKeyRequest {
                client_key_id: client_key_id.clone(),
            };
            resource::deleted(c.access.delete_client_key(req), "ClientKey", client_key_id).await
        }
    }
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
