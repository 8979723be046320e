//! `hkms sign` and `hkms verify`: digital signatures with an RSA or EC key of usage
//! SIGN/VERIFY. The private key is used only inside an HSM; the public key
//! (`hkms get-public-key`) lets anyone check a signature without hkms.

use super::data_io::{self, open, KeyTarget, MessageInput, Open, Shown, SignatureInput, Source};
use crate::client::Client;
use crate::proto::*;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum SignatureCommand {
    /// Sign a message (or its digest) with an RSA or EC key of usage SIGN/VERIFY.
    ///
    /// The signature is made inside an HSM; the private key never leaves it. Without
    /// --out the signature is printed as base64. RSA signatures are as long as the
    /// modulus; ECDSA signatures are DER (SEQUENCE of r and s), the form OpenSSL, X.509
    /// and most libraries read.
    #[command(after_long_help = SIGN_EXAMPLES)]
    Sign(SignArgs),
    /// Check a signature made with a key's private key; exits 1 when it is not valid.
    ///
    /// Prints whether the signature is valid. Exit status: 0 when it is valid, 1 when it
    /// is not (a wrong or malformed signature, another message, another key or version)
    /// and 1 too, with an error on stderr, when the check could not be made. hkmsd checks
    /// with the public key; `openssl` can do the same with the file from
    /// `hkms get-public-key`.
    #[command(after_long_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// Signature algorithm; it must fit the key (RSA_* for RSA keys, ECDSA_SHA_256 for
    /// EC_P256 and EC_P256K, ECDSA_SHA_384 for EC_P384).
    #[arg(long, value_parser = algorithms())]
    pub algorithm: String,
    /// What the message is: RAW (the message itself) or DIGEST (its hash).
    #[arg(long, default_value = "RAW", value_parser = message_types())]
    pub message_type: String,
    #[command(flatten)]
    pub message: MessageInput,
    /// Write the raw signature to this file instead of printing it as base64.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// Signature algorithm the signature was made with.
    #[arg(long, value_parser = algorithms())]
    pub algorithm: String,
    /// What the message is: RAW (the message itself) or DIGEST (its hash).
    #[arg(long, default_value = "RAW", value_parser = message_types())]
    pub message_type: String,
    #[command(flatten)]
    pub message: MessageInput,
    #[command(flatten)]
    pub signature: SignatureInput,
}

/// The signature algorithms, with what each is for (shown by `--help`).
fn algorithms() -> Open {
    open(&[
        (
            "RSA_PSS_SHA_256",
            "RSA keys: RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt as long as the hash). \
             The usual choice for new RSA signatures",
        ),
        ("RSA_PSS_SHA_384", "RSA keys: RSASSA-PSS with SHA-384"),
        ("RSA_PSS_SHA_512", "RSA keys: RSASSA-PSS with SHA-512"),
        (
            "RSA_PKCS1_SHA_256",
            "RSA keys: RSASSA-PKCS1-v1_5 with SHA-256. Deterministic; for verifiers that \
             know only PKCS#1 v1.5 (JWT RS256, many X.509 tools)",
        ),
        (
            "RSA_PKCS1_SHA_384",
            "RSA keys: RSASSA-PKCS1-v1_5 with SHA-384",
        ),
        (
            "RSA_PKCS1_SHA_512",
            "RSA keys: RSASSA-PKCS1-v1_5 with SHA-512",
        ),
        (
            "ECDSA_SHA_256",
            "EC_P256 keys (ES256) and EC_P256K keys (secp256k1, as in Bitcoin and Ethereum): \
             ECDSA with SHA-256",
        ),
        ("ECDSA_SHA_384", "EC_P384 keys (ES384): ECDSA with SHA-384"),
    ])
}

/// The message types, with what each means.
fn message_types() -> PossibleValuesParser {
    PossibleValuesParser::new([
        PossibleValue::new("RAW").help(
            "The message itself; hkmsd hashes it with the algorithm's hash (at most \
             limits.max_plaintext_bytes of hkmsd.toml, 2 MiB by default)",
        ),
        PossibleValue::new("DIGEST").help(
            "The message's hash, computed by you (e.g. `openssl dgst -sha256 -binary`): \
             32 bytes for *_SHA_256, 48 for *_SHA_384, 64 for *_SHA_512. For large data",
        ),
    ])
}

const SIGN_EXAMPLES: &str = "\
Examples:
  # A signing key, and its public key for whoever checks the signatures:
  hkms key create --key-spec EC_P256 --key-usage SIGN/VERIFY
  hkms get-public-key --key-id <KeyId> --out key.pem

  # Sign a file; the raw signature goes to sig.bin:
  hkms sign --key-id <KeyId> --algorithm ECDSA_SHA_256 --message-file release.tar \\
      --out sig.bin
  # Anyone can check it with OpenSSL:
  openssl dgst -sha256 -verify key.pem -signature sig.bin release.tar

  # Large data: hash it here and send only the digest:
  openssl dgst -sha256 -binary release.tar > digest.bin
  hkms sign --key-id <KeyId> --algorithm ECDSA_SHA_256 --message-type DIGEST \\
      --message-file digest.bin --out sig.bin

  # RSA-PSS, checked by OpenSSL:
  hkms sign --key-id <KeyId> --algorithm RSA_PSS_SHA_256 --message 'hello' --out sig.bin
  printf hello | openssl dgst -sha256 -verify key.pem -signature sig.bin \\
      -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1

  # From stdin, signature printed as base64:
  echo -n 'hello' | hkms sign --key-id <KeyId> --algorithm RSA_PKCS1_SHA_256 --message-file -";

const VERIFY_EXAMPLES: &str = "\
Examples:
  hkms verify --key-id <KeyId> --algorithm ECDSA_SHA_256 --message-file release.tar \\
      --signature-file sig.bin
  hkms verify --key-id <KeyId> --algorithm RSA_PSS_SHA_256 --message 'hello' \\
      --signature <base64>

  # In a script:
  if hkms verify --key-id <KeyId> --algorithm ECDSA_SHA_256 --message-file f \\
      --signature-file f.sig >/dev/null; then echo trusted; fi";

/// Runs `hkms sign` and `hkms verify`.
pub async fn signature(c: &mut Client, cmd: &SignatureCommand) -> Result<Shown, Status> {
    match cmd {
        SignatureCommand::Sign(a) => {
            let message = data_io::read(a.message.source(), "message")?;
            let r = c
                .asymmetric
                .sign(SignRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone(),
                    message: message.to_vec(),
                    message_type: a.message_type.clone(),
                })
                .await?
                .into_inner();
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                "Algorithm": r.algorithm, "MessageType": a.message_type,
            });
            data_io::public_bytes(&r.signature, a.out.as_deref(), "signature", "Signature", j)
                .map(Shown::Text)
        }
        SignatureCommand::Verify(a) => {
            let sources: [(Source, &str); 2] = [
                (a.message.source(), "message"),
                (a.signature.source(), "signature"),
            ];
            data_io::one_stdin(&sources)?;
            let message = data_io::read(sources[0].0, "message")?;
            let signature = data_io::read(sources[1].0, "signature")?;
            let r = c
                .asymmetric
                .verify(VerifyRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone(),
                    message: message.to_vec(),
                    message_type: a.message_type.clone(),
                    signature: signature.to_vec(),
                })
                .await?
                .into_inner();
            Ok(verdict(
                r.value,
                "Signature",
                &r.key_id,
                &r.key_version_id,
                json!({
                    "KeyId": r.key_id, "KeyVersionId": r.key_version_id, "Value": r.value,
                    "Algorithm": a.algorithm, "MessageType": a.message_type,
                }),
            ))
        }
    }
}

/// The printed answer of a check: "<What> is valid (key K, version V)." or "... NOT valid".
pub fn verdict(
    valid: bool,
    what: &str,
    key_id: &str,
    version: &str,
    json: serde_json::Value,
) -> Shown {
    let words = if valid { "valid" } else { "NOT valid" };
    Shown::Verdict(
        valid,
        (
            format!("{what} is {words} (key {key_id}, version {version})."),
            json,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct SignatureCli {
        #[command(subcommand)]
        cmd: SignatureCommand,
    }

    fn parse(args: &[&str]) -> Result<SignatureCommand, clap::Error> {
        SignatureCli::try_parse_from(std::iter::once("hkms").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn sign_takes_an_algorithm_a_message_type_and_one_message() {
        let SignatureCommand::Sign(a) = parse(&[
            "sign",
            "--key-id",
            "k",
            "--algorithm",
            "RSA_PSS_SHA_256",
            "--message",
            "hi",
        ])
        .unwrap() else {
            panic!("not sign");
        };
        assert_eq!(
            (a.message_type.as_str(), a.key.version()),
            ("RAW", String::new())
        );
        assert_eq!(a.message.source(), Source::Text("hi"));
        // Names hkms does not know go to hkmsd, which explains; an empty one does not.
        assert!(parse(&["sign", "--key-id", "k", "--algorithm", "SM2DSA"]).is_ok());
        assert!(parse(&["sign", "--key-id", "k", "--algorithm", ""]).is_err());
        assert!(parse(&[
            "sign",
            "--key-id",
            "k",
            "--algorithm",
            "SM2DSA",
            "--message-type",
            "HEX"
        ])
        .is_err());
        assert!(parse(&["sign", "--key-id", "k"]).is_err());
        let two = [
            "sign",
            "--key-id",
            "k",
            "--algorithm",
            "ECDSA_SHA_256",
            "--message",
            "a",
            "--message-file",
            "-",
        ];
        assert!(parse(&two).is_err());
        let SignatureCommand::Sign(a) = parse(&[
            "sign",
            "--key-id",
            "k",
            "--algorithm",
            "ECDSA_SHA_256",
            "--message-type",
            "DIGEST",
            "--key-version-id",
            "v1",
        ])
        .unwrap() else {
            panic!("not sign");
        };
        assert_eq!(
            (a.message_type.as_str(), a.key.version().as_str()),
            ("DIGEST", "v1")
        );
        assert_eq!(a.message.source(), Source::File(std::path::Path::new("-")));
    }

    #[test]
    fn verify_needs_a_signature() {
        let base = [
            "verify",
            "--key-id",
            "k",
            "--algorithm",
            "ECDSA_SHA_256",
            "--message",
            "m",
        ];
        assert!(parse(&base).is_err());
        let mut with = base.to_vec();
        with.extend(["--signature", "c2ln"]);
        assert!(parse(&with).is_ok());
        with.extend(["--signature-file", "s.bin"]);
        assert!(parse(&with).is_err());
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(SignatureCli::command());
    }
}
