//! `hkms generate-mac` and `hkms verify-mac`: HMAC with a key of usage
//! GENERATE/VERIFY_MAC (HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512). The key never leaves
//! the HSMs, so only hkms can make or check its MACs.

use super::data_io::{self, open, KeyTarget, MacInput, MessageInput, Open, Shown, Source};
use super::signature::verdict;
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum MacCommand {
    /// Compute the HMAC of a message with an HMAC key, inside an HSM.
    ///
    /// A MAC proves that a message comes from someone holding the key and was not changed:
    /// tokens, cookies, webhook payloads, database rows. Checking it needs the same key, so
    /// check with `hkms verify-mac`. Without --out the MAC is printed as base64.
    #[command(after_long_help = EXAMPLES)]
    GenerateMac(GenerateMacArgs),
    /// Check the HMAC of a message; exits 1 when it is not valid.
    ///
    /// The MAC is compared in constant time. Prints whether it is valid. Exit status: 0
    /// when it is valid, 1 when it is not (another message, key, version or algorithm) and
    /// 1 too, with an error on stderr, when the check could not be made.
    #[command(after_long_help = EXAMPLES)]
    VerifyMac(VerifyMacArgs),
}

#[derive(Debug, Args)]
pub struct GenerateMacArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// MAC algorithm. Default: the one of the key's spec.
    #[arg(long, value_parser = algorithms())]
    pub algorithm: Option<String>,
    #[command(flatten)]
    pub message: MessageInput,
    /// Write the raw MAC to this file instead of printing it as base64.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyMacArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// MAC algorithm. Default: the one of the key's spec.
    #[arg(long, value_parser = algorithms())]
    pub algorithm: Option<String>,
    #[command(flatten)]
    pub message: MessageInput,
    #[command(flatten)]
    pub mac: MacInput,
}

fn algorithms() -> Open {
    open(&[
        (
            "HMAC_SHA_256",
            "HMAC_SHA_256 keys: HMAC-SHA-256, 32-byte MAC",
        ),
        (
            "HMAC_SHA_384",
            "HMAC_SHA_384 keys: HMAC-SHA-384, 48-byte MAC",
        ),
        (
            "HMAC_SHA_512",
            "HMAC_SHA_512 keys: HMAC-SHA-512, 64-byte MAC",
        ),
    ])
}

const EXAMPLES: &str = "\
Examples:
  hkms key create --key-spec HMAC_SHA_256 --key-usage GENERATE/VERIFY_MAC
  hkms generate-mac --key-id <KeyId> --message 'user=42;exp=1767225600'
  hkms verify-mac --key-id <KeyId> --message 'user=42;exp=1767225600' --mac <base64>

  # Files, and a MAC written raw:
  hkms generate-mac --key-id <KeyId> --message-file payload.json --out payload.mac
  hkms verify-mac --key-id <KeyId> --message-file payload.json --mac-file payload.mac";

/// Runs `hkms generate-mac` and `hkms verify-mac`.
pub async fn mac(c: &mut Client, cmd: &MacCommand) -> Result<Shown, Status> {
    match cmd {
        MacCommand::GenerateMac(a) => {
            let message = data_io::read(a.message.source(), "message")?;
            let r = c
                .asymmetric
                .generate_mac(GenerateMacRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone().unwrap_or_default(),
                    message: message.to_vec(),
                })
                .await?
                .into_inner();
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id, "Algorithm": r.algorithm,
            });
            data_io::public_bytes(&r.mac, a.out.as_deref(), "MAC", "Mac", j).map(Shown::Text)
        }
        MacCommand::VerifyMac(a) => {
            let sources: [(Source, &str); 2] =
                [(a.message.source(), "message"), (a.mac.source(), "MAC")];
            data_io::one_stdin(&sources)?;
            let message = data_io::read(sources[0].0, "message")?;
            let mac = data_io::read(sources[1].0, "MAC")?;
            let r = c
                .asymmetric
                .verify_mac(VerifyMacRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone().unwrap_or_default(),
                    message: message.to_vec(),
                    mac: mac.to_vec(),
                })
                .await?
                .into_inner();
            Ok(verdict(
                r.value,
                "MAC",
                &r.key_id,
                &r.key_version_id,
                json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id, "Value": r.value}),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct MacCli {
        #[command(subcommand)]
        cmd: MacCommand,
    }

    #[test]
    fn verify_mac_needs_a_mac_and_the_algorithm_is_optional() {
        let p = |args: &[&str]| {
            MacCli::try_parse_from(std::iter::once("hkms").chain(args.iter().copied()))
        };
        let MacCli {
            cmd: MacCommand::VerifyMac(a),
        } = p(&[
            "verify-mac",
            "--key-id",
            "k",
            "--message",
            "m",
            "--mac",
            "bWFj",
        ])
        .unwrap()
        else {
            panic!("not verify-mac");
        };
        assert!(a.algorithm.is_none());
        assert!(p(&["verify-mac", "--key-id", "k", "--message", "m"]).is_err());
        let md5 = ["generate-mac", "--key-id", "k", "--algorithm", "HMAC_MD5"];
        assert!(p(&md5).is_ok(), "hkmsd decides on algorithm names");
        assert!(p(&["generate-mac", "--key-id", "k", "--algorithm", ""]).is_err());
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(MacCli::command());
    }
}
