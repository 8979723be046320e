//! `hkms get-public-key`: the public key of an RSA or EC key, for whoever checks its
//! signatures or encrypts to it without hkms.

use super::data_io::{self, KeyTarget, Shown};
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum PublicKeyCommand {
    /// Get the public key of an RSA or EC key (SubjectPublicKeyInfo, PEM or DER).
    ///
    /// The public key is not secret: hand it to whoever verifies the key's signatures or
    /// encrypts data for it. Each version of a key has its own key pair. Without --out the key
    /// is printed (PEM, or base64 of the DER).
    #[command(after_long_help = EXAMPLES)]
    GetPublicKey(GetPublicKeyArgs),
}

#[derive(Debug, Args)]
pub struct GetPublicKeyArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// PEM ("-----BEGIN PUBLIC KEY-----", what `openssl -pubin` reads by default) or DER.
    #[arg(long, default_value = "PEM", value_parser = ["PEM", "DER"])]
    pub key_format: String,
    /// Write the public key to this file instead of printing it.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  hkms get-public-key --key-id <KeyId> --out key.pem
  hkms get-public-key --key-id <KeyId> --key-version-id <KeyVersionId> --out v1.pem
  hkms get-public-key --key-id <KeyId> --key-format DER --out key.der
  openssl pkey -pubin -in key.pem -text -noout     # what is inside";

/// Runs `hkms get-public-key`.
pub async fn public_key(c: &mut Client, cmd: &PublicKeyCommand) -> Result<Shown, Status> {
    let PublicKeyCommand::GetPublicKey(a) = cmd;
    let r = c
        .asymmetric
        .get_public_key(GetPublicKeyRequest {
            key_id: a.key.key_id.clone(),
            key_version_id: a.key.version(),
        })
        .await?
        .into_inner();
    let der = a.key_format == "DER";
    let j = json!({
        "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
        "KeySpec": r.key_spec, "KeyUsage": r.key_usage,
        "KeyFormat": a.key_format,
        "PublicKey": if der { data_io::encode(&r.public_key_der) } else { r.public_key_pem.clone() },
    });
    let text = match &a.out {
        Some(path) => {
            let bytes = if der {
                &r.public_key_der[..]
            } else {
                r.public_key_pem.as_bytes()
            };
            data_io::write_out(path, bytes, false)?;
            format!(
                "Public key of key {} version {} ({}, {}) written to {}",
                r.key_id,
                r.key_version_id,
                r.key_spec,
                a.key_format,
                path.display()
            )
        }
        None if der => data_io::encode(&r.public_key_der),
        None => r.public_key_pem.trim_end().to_owned(),
    };
    Ok(Shown::Text((text, j)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct PublicKeyCli {
        #[command(subcommand)]
        cmd: PublicKeyCommand,
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(PublicKeyCli::command());
    }
}
