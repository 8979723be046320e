//! `hkms generate-data-key-pair` and `hkms generate-data-key-pair-without-plaintext`: a
//! fresh RSA or EC key pair for an application to use on its own, with its private key
//! encrypted under an AES key (envelope encryption for key pairs).

use super::data_io::{self, open, usage, Open, Shown};
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum DataKeyPairCommand {
    /// Generate a key pair: its public key, its private key, and the private key encrypted
    /// under an AES key.
    ///
    /// The pair is made inside an HSM and is not kept by hkms: store the encrypted private
    /// key next to your data and recover the private key with `hkms decrypt` when you need
    /// it. The private key is PKCS#8 ("-----BEGIN PRIVATE KEY-----" in PEM), the public key
    /// SubjectPublicKeyInfo; OpenSSL and most libraries read both. Without the *-out
    /// options everything is printed (PEM as text, DER as base64).
    #[command(after_long_help = EXAMPLES)]
    GenerateDataKeyPair(DataKeyPairArgs),
    /// Generate a key pair and return only its public key and its encrypted private key.
    ///
    /// For a private key needed later, elsewhere: `hkms decrypt` recovers it then.
    #[command(after_long_help = EXAMPLES)]
    GenerateDataKeyPairWithoutPlaintext(DataKeyPairArgs),
}

#[derive(Debug, Args)]
pub struct DataKeyPairArgs {
    /// AES key (ENCRYPT/DECRYPT) that encrypts the private key: its id or an alias
    /// (`alias/<name>`).
    #[arg(long)]
    pub key_id: String,
    /// The kind of key pair to generate.
    #[arg(long, value_parser = specs())]
    pub key_pair_spec: String,
    /// PEM or DER, for both keys.
    #[arg(long, default_value = "PEM", value_parser = ["PEM", "DER"])]
    pub key_format: String,
    /// Additional authenticated data for the encrypted private key, as text; `hkms decrypt`
    /// needs the same value.
    #[arg(long, conflicts_with = "aad_base64")]
    pub aad: Option<String>,
    /// Additional authenticated data, as base64.
    #[arg(long)]
    pub aad_base64: Option<String>,
    /// Write the public key to this file.
    #[arg(long, value_name = "FILE")]
    pub public_key_out: Option<PathBuf>,
    /// Write the private key to this file (created with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub private_key_out: Option<PathBuf>,
    /// Write the encrypted private key (raw ciphertext blob) to this file.
    #[arg(long, value_name = "FILE")]
    pub private_key_ciphertext_out: Option<PathBuf>,
}

fn specs() -> Open {
    open(&[
        ("RSA_2048", "RSA, 2048-bit modulus"),
        ("RSA_3072", "RSA, 3072-bit modulus"),
        ("RSA_4096", "RSA, 4096-bit modulus"),
        ("EC_P256", "ECDSA on NIST P-256 (prime256v1; ES256)"),
        ("EC_P384", "ECDSA on NIST P-384 (secp384r1; ES384)"),
        ("EC_P256K", "ECDSA on secp256k1 (Bitcoin, Ethereum)"),
    ])
}

const EXAMPLES: &str = "\
Examples:
  hkms generate-data-key-pair --key-id <AesKeyId> --key-pair-spec EC_P256 \\
      --public-key-out pub.pem --private-key-out priv.pem \\
      --private-key-ciphertext-out priv.enc
  openssl dgst -sha256 -sign priv.pem -out sig.bin data.txt
  openssl dgst -sha256 -verify pub.pem -signature sig.bin data.txt

  # Later, get the private key back from its encrypted form:
  hkms decrypt --ciphertext-blob \"$(base64 -w0 priv.enc)\" --output priv.pem

  hkms --json generate-data-key-pair-without-plaintext --key-id <AesKeyId> \\
      --key-pair-spec RSA_2048 --key-format DER";

/// Runs `hkms generate-data-key-pair[-without-plaintext]`.
pub async fn data_key_pair(c: &mut Client, cmd: &DataKeyPairCommand) -> Result<Shown, Status> {
    let (a, with_plaintext) = match cmd {
        DataKeyPairCommand::GenerateDataKeyPair(a) => (a, true),
        DataKeyPairCommand::GenerateDataKeyPairWithoutPlaintext(a) => (a, false),
    };
    if !with_plaintext && a.private_key_out.is_some() {
        return Err(usage(
            "--private-key-out needs generate-data-key-pair; this command returns no private key",
        ));
    }
    let aad = match (&a.aad, &a.aad_base64) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(b)) => data_io::base64(b, "--aad-base64")?,
        (None, None) => Vec::new(),
    };
    let req = GenerateDataKeyPairRequest {
        key_id: a.key_id.clone(),
        key_pair_spec: a.key_pair_spec.clone(),
        key_format: a.key_format.clone(),
        aad,
    };
    let r = if with_plaintext {
        c.asymmetric.generate_data_key_pair(req).await?
    } else {
        c.asymmetric
            .generate_data_key_pair_without_plaintext(req)
            .await?
    }
    .into_inner();
    let private = Zeroizing::new(r.private_key_plaintext);
    let der = a.key_format == "DER";
    // PEM is text; DER prints as base64.
    let shown = |bytes: &[u8]| -> String {
        if der {
            data_io::encode(bytes)
        } else {
            String::from_utf8_lossy(bytes).trim_end().to_owned()
        }
    };
    let blob = data_io::encode(&r.private_key_ciphertext_blob);
    let mut j = json!({
        "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
        "KeyPairSpec": r.key_pair_spec, "KeyFormat": a.key_format,
        "PublicKey": shown(&r.public_key),
        "PrivateKeyCiphertextBlob": blob,
    });
    // A private key written to a file is not printed as well, not even in JSON.
    if with_plaintext && a.private_key_out.is_none() {
        j["PrivateKeyPlaintext"] = shown(&private).into();
    }
    let mut lines = vec![
        format!("KeyId:                    {}", r.key_id),
        format!("KeyVersionId:             {}", r.key_version_id),
        format!("KeyPairSpec:              {}", r.key_pair_spec),
    ];
    lines.push(field(
        "PublicKey",
        &r.public_key,
        a.public_key_out.as_deref(),
        false,
        &shown,
    )?);
    if with_plaintext {
        lines.push(field(
            "PrivateKeyPlaintext",
            &private,
            a.private_key_out.as_deref(),
            true,
            &shown,
        )?);
    }
    lines.push(match &a.private_key_ciphertext_out {
        Some(path) => {
            data_io::write_out(path, &r.private_key_ciphertext_blob, false)?;
            format!("PrivateKeyCiphertextBlob: written to {}", path.display())
        }
        None => format!("PrivateKeyCiphertextBlob: {blob}"),
    });
    Ok(Shown::Text((lines.join("\n"), j)))
}

/// One key of the pair as a line of text: written to `out`, or shown (PEM on lines of its
/// own, base64 after the label).
fn field(
    label: &str,
    bytes: &[u8],
    out: Option<&Path>,
    secret: bool,
    shown: &dyn Fn(&[u8]) -> String,
) -> Result<String, Status> {
    let pad = " ".repeat(25 - label.len());
    Ok(match out {
        Some(path) => {
            data_io::write_out(path, bytes, secret)?;
            format!("{label}:{pad}written to {}", path.display())
        }
        None => {
            let value = Zeroizing::new(shown(bytes));
            if value.contains('\n') {
                format!("{label}:\n{}", *value)
            } else {
                format!("{label}:{pad}{}", *value)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct PairCli {
        #[command(subcommand)]
        cmd: DataKeyPairCommand,
    }

    #[test]
    fn a_pair_needs_a_spec_and_defaults_to_pem() {
        let p = |args: &[&str]| {
            PairCli::try_parse_from(std::iter::once("hkms").chain(args.iter().copied()))
        };
        let PairCli {
            cmd: DataKeyPairCommand::GenerateDataKeyPair(a),
        } = p(&[
            "generate-data-key-pair",
            "--key-id",
            "k",
            "--key-pair-spec",
            "EC_P256K",
        ])
        .unwrap()
        else {
            panic!("not generate-data-key-pair");
        };
        assert_eq!(a.key_format, "PEM");
        assert!(p(&["generate-data-key-pair", "--key-id", "k"]).is_err());
        let sm2 = [
            "generate-data-key-pair",
            "--key-id",
            "k",
            "--key-pair-spec",
            "EC_SM2",
        ];
        assert!(p(&sm2).is_ok(), "hkmsd decides on spec names");
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(PairCli::command());
    }
}
