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
    #[command(after_long_help = super::client_key_rotate::EXAMPLES)]
    Rotate(super::client_key_rotate::RotateClientKey),
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

#[derive(Debug, Args)]
pub struct CreateClientKey {
    /// The AAP the key authenticates.
    #[arg(long)]
    pub aap: String,
    /// Directory for the two files (created if missing; files are mode 0600).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// File whose first line is the PKCS#12 password: 8 to 64 characters with at least two
    /// of digits, letters and ~!@#$%^&*?_- . Without it a strong password is generated.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Days of validity, 1 to 1827 (5 years). Default: one year to the day (365 or 366
    /// days), the recommended validity.
    #[arg(long)]
    pub validity_days: Option<i64>,
    /// First day of validity, YYYY-MM-DD (UTC). Default: now.
    #[arg(long)]
    pub not_before: Option<String>,
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

/// When a retiring key stops being accepted (RFC 3339), `None` for a key that is not
/// retiring.
pub fn retire_time(k: &ClientKeySummary) -> Option<String> {
    (k.retire_unix != 0).then(|| unix_to_rfc3339(k.retire_unix))
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

/// How long a new ClientKey is valid from its first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// This many days, 1 to [`clientkey::MAX_VALIDITY_DAYS`].
    Days(i64),
    /// To the same date this many calendar years later (1 to 5).
    Years(i64),
}

impl Validity {
    /// `--validity-days` when given, else one year to the day.
    pub fn from_days(days: Option<i64>) -> Validity {
        days.map_or(Validity::Years(1), Validity::Days)
    }

    /// The last second of validity of a key valid from `not_before`.
    fn not_after(self, not_before: i64) -> Result<i64, Status> {
        match self {
            Validity::Days(days) if (1..=clientkey::MAX_VALIDITY_DAYS).contains(&days) => {
                Ok(not_before + days * 86_400)
            }
            Validity::Days(_) => Err(usage(format!(
                "--validity-days must be 1..{} (5 years)",
                clientkey::MAX_VALIDITY_DAYS
            ))),
            Validity::Years(years) if (1..=5).contains(&years) => {
                Ok(crate::clock::years_after(not_before, years))
            }
            Validity::Years(_) => Err(usage("a ClientKey is valid for 1 to 5 years")),
        }
    }
}

/// A ClientKey made here and not registered yet: its key pair's certificate, the PKCS#12
/// for the application's files and their password. Making one checks everything that can
/// fail on this machine, so that hkmsd registers nothing for a command that cannot finish.
pub struct NewClientKey {
    aap: String,
    output_dir: PathBuf,
    password: Zeroizing<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    certificate: Vec<u8>,
    pkcs12: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NewClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClientKey")
            .field("aap", &self.aap)
            .field("output_dir", &self.output_dir)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A registered ClientKey and the two files written for it.
#[derive(Debug)]
pub struct Registered {
    pub key: ClientKeySummary,
    pub files: clientkey::Files,
}

impl NewClientKey {
    /// Reads the password (or makes one), checks the validity (`not_before` is a
    /// `YYYY-MM-DD` date, default now), creates the output directory and makes the key pair.
    pub fn prepare(
        aap: &str,
        output_dir: &std::path::Path,
        password_file: Option<&std::path::Path>,
        not_before: Option<&str>,
        validity: Validity,
    ) -> Result<NewClientKey, Status> {
        let password = match password_file {
            Some(p) => read_password(p)?,
            None => clientkey::generate_password().map_err(usage)?,
        };
        clientkey::validate_password(&password).map_err(usage)?;
        let not_before = match not_before {
            Some(d) => date_to_unix(d).map_err(usage)?,
            None => clientkey::now_unix(),
        };
        let not_after = validity.not_after(not_before)?;
        std::fs::create_dir_all(output_dir)
            .map_err(|e| usage(format!("cannot create {}: {e}", output_dir.display())))?;
        let pair =
            KeyPair::generate(&format!("hkms AAP {aap}"), not_before, not_after).map_err(usage)?;
        Ok(NewClientKey {
            aap: aap.to_owned(),
            output_dir: output_dir.to_owned(),
            certificate: pair.certificate_der().map_err(usage)?,
            pkcs12: pair.pkcs12(&password).map_err(usage)?,
            password,
            not_before,
            not_after,
        })
    }

    /// Registers the certificate with hkmsd and writes the application's two files. A key
    /// whose files cannot be written is useless: it is deleted again.
    pub async fn register(self, c: &mut Client) -> Result<Registered, Status> {
        let key = c
            .access
            .create_client_key(CreateClientKeyRequest {
                aap_name: self.aap.clone(),
                certificate: self.certificate.clone(),
            })
            .await?
            .into_inner()
            .client_key
            .unwrap_or_default();
        match clientkey::write_files(
            &self.output_dir,
            &key.client_key_id,
            &self.pkcs12,
            &self.password,
        ) {
            Ok(files) => Ok(Registered { key, files }),
            Err(e) => {
                let _ = delete(c, &key.client_key_id).await;
                Err(usage(format!("{e}; the ClientKey was deleted again")))
            }
        }
    }
}

async fn delete(c: &mut Client, client_key_id: &str) -> Result<(), Status> {
    c.access
        .delete_client_key(DeleteClientKeyRequest {
            client_key_id: client_key_id.to_owned(),
        })
        .await
        .map(|_| ())
}

impl Registered {
    /// Takes the key back: deletes it in hkmsd and removes its files (when a command that
    /// made it cannot finish). Says what could not be undone, if anything.
    pub async fn undo(&self, c: &mut Client) -> Result<(), String> {
        let mut left = Vec::new();
        if let Err(e) = delete(c, &self.key.client_key_id).await {
            left.push(format!(
                "ClientKey {} ({})",
                self.key.client_key_id,
                e.message()
            ));
        }
        for p in [&self.files.client_key, &self.files.password] {
            if let Err(e) = std::fs::remove_file(p) {
                left.push(format!("{} ({e})", p.display()));
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {}", left.join(", ")))
        }
    }

    /// The key as JSON, with its files.
    pub fn json(&self) -> Value {
        let mut j = self.key.entry();
        j["ClientKeyFile"] = json!(self.files.client_key);
        j["PasswordFile"] = json!(self.files.password);
        j
    }

    /// What the operator reads: the key, its validity and its files.
    pub fn text(&self) -> String {
        format!(
            "ClientKey {} created for AAP {} (valid until {}).\nApplication files (keep them secret):\n  {}\n  {}",
            self.key.client_key_id,
            self.key.aap_name,
            unix_to_rfc3339(self.key.not_after),
            self.files.client_key.display(),
            self.files.password.display()
        )
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
        ClientKeyCommand::Rotate(a) => super::client_key_rotate::rotate(c, a).await,
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
