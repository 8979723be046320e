//! A ClientKey made on the operator's machine and registered with hkmsd: `client-key
//! create`'s arguments, the key pair, its validity and the application's two files.
//! `client-key rotate` makes its new key the same way.

use super::resource::Row;
use crate::access::clientkey::{self, KeyPair};
use crate::client::Client;
use crate::clock::{date_to_unix, rfc3339 as unix_to_rfc3339};
use crate::error::KmsError;
use crate::proto::{ClientKeySummary, CreateClientKeyRequest, DeleteClientKeyRequest};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
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
