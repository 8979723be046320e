//! `hkms client-key`: the key pairs applications authenticate with. `client-key create`
//! makes the key pair here, on the operator's machine: the private key goes only into the
//! files it writes; hkmsd receives only the certificate.

use super::client_key_new::{retire_time, CreateClientKey, NewClientKey, Validity};
use super::client_key_rotate::{self, RotateClientKey};
use super::resource::{self, Printed, Row};
use crate::client::Client;
use crate::clock::rfc3339 as unix_to_rfc3339;
use crate::proto::{ClientKeySummary, DeleteClientKeyRequest, ListClientKeysRequest};
use clap::Subcommand;
use serde_json::{json, Value};
use tonic::Status;

const CREATE_EXAMPLES: &str = "\
Examples:
  # A ClientKey valid one year, with a generated password:
  hkms client-key create --aap billing --output-dir ./billing
  # -> ./billing/clientKey_KAAP.<id>.json and clientKey_KAAP.<id>_Password.txt

  # 730 days from 2027-01-01, with a password of your own:
  hkms client-key create --aap billing --output-dir ./billing --validity-days 730 \\
      --not-before 2027-01-01 --password-file ./password.txt";

#[derive(Debug, Subcommand)]
pub enum ClientKeyCommand {
    /// Create a ClientKey for an AAP and write the application's two files into --output-dir:
    /// clientKey_<KeyId>.json (KeyId and the password-protected PKCS#12) and
    /// clientKey_<KeyId>_Password.txt.
    ///
    /// The RSA-2048 key pair is generated here; only its certificate is sent to hkmsd. It is
    /// valid one year by default. To change an AAP's ClientKey before it expires, use
    /// hkms client-key rotate.
    #[command(after_long_help = CREATE_EXAMPLES)]
    Create(CreateClientKey),
    /// Change an AAP's ClientKey before it expires: create a new one (its two files written
    /// as by create) and retire the AAP's earlier ClientKeys after an overlap.
    ///
    /// During the overlap (--overlap-days, 0 to 90, default 7) the earlier keys keep
    /// working, so the application can move to the new files without an interruption;
    /// from then on hkmsd refuses them as if they had expired (ClientKeyExpired). With 0 they
    /// are refused at once. A key already retiring sooner keeps its date. If the earlier keys
    /// cannot be retired, the new key is deleted again and its files removed.
    #[command(after_long_help = client_key_rotate::EXAMPLES)]
    Rotate(RotateClientKey),
    /// List ClientKeys with their validity, days left and, for retiring keys, when hkmsd
    /// stops accepting them.
    List {
        /// Only this AAP's keys.
        #[arg(long)]
        aap: Option<String>,
    },
    /// Delete a ClientKey: requests signed with it are refused from now on.
    Delete { client_key_id: String },
}

impl Row for ClientKeySummary {
    const LIST_KEY: &'static str = "ClientKeys";

    fn header() -> String {
        format!(
            "{:<42} {:<20} {:<21} {:>9}  {:<21} STATE",
            "CLIENT KEY ID", "AAP", "NOT AFTER", "DAYS LEFT", "RETIRES"
        )
    }

    fn row(&self) -> String {
        format!(
            "{:<42} {:<20} {:<21} {:>9}  {:<21} {}",
            self.client_key_id,
            self.aap_name,
            unix_to_rfc3339(self.not_after),
            self.days_left,
            retire_time(self).unwrap_or_else(|| "-".to_owned()),
            self.state
        )
    }

    fn entry(&self) -> Value {
        json!({
            "ClientKeyId": self.client_key_id, "AapName": self.aap_name,
            "NotBefore": unix_to_rfc3339(self.not_before),
            "NotAfter": unix_to_rfc3339(self.not_after),
            "CreateTime": self.create_time, "DaysLeft": self.days_left, "State": self.state,
            "RetireTime": retire_time(self),
            "CertificateSha256": self.certificate_sha256,
        })
    }
}

async fn create_client_key(c: &mut Client, a: &CreateClientKey) -> Result<Printed, Status> {
    let new = NewClientKey::prepare(
        &a.aap,
        &a.output_dir,
        a.password_file.as_deref(),
        a.not_before.as_deref(),
        Validity::from_days(a.validity_days),
    )?;
    let made = new.register(c).await?;
    Ok((made.text(), json!({ "ClientKey": made.json() })))
}

/// Runs one `hkms client-key` command.
pub async fn client_key(c: &mut Client, cmd: &ClientKeyCommand) -> Result<Printed, Status> {
    match cmd {
        ClientKeyCommand::Create(a) => create_client_key(c, a).await,
        ClientKeyCommand::Rotate(a) => client_key_rotate::rotate(c, a).await,
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

/// Lines warning about ClientKeys that expire within 30 days, have expired or were retired
/// (for `hkms status`); empty when there is nothing to say or the list cannot be read.
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
        .filter_map(|k| match k.state.as_str() {
            "Expired" => Some(format!(
                "ClientKey {} of AAP {} has expired",
                k.client_key_id, k.aap_name
            )),
            "ExpiringSoon" => Some(format!(
                "ClientKey {} of AAP {} expires in {} day(s); change it (hkms client-key rotate --aap {} ...)",
                k.client_key_id, k.aap_name, k.days_left, k.aap_name
            )),
            "Retired" => Some(format!(
                "ClientKey {} of AAP {} was retired at {} and is refused; delete it (hkms client-key delete {})",
                k.client_key_id,
                k.aap_name,
                unix_to_rfc3339(k.retire_unix),
                k.client_key_id
            )),
            _ => None,
        })
        .collect()
}
