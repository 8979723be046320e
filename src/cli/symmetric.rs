//! `hkms encrypt`, `decrypt`, `generate-data-key`, `generate-data-key-without-plaintext`,
//! `re-encrypt` and `generate-random`: the symmetric operations on a key's versions (AES
//! inside an HSM) and the HSMs' random generator.

use super::data_io::{base64, read, write_out, PlaintextInput, Shown};
use crate::client::Client;
use crate::proto::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum SymmetricCommand {
    /// Encrypt data (AES-256-GCM inside an HSM) with a key's primary version.
    Encrypt {
        /// Key to encrypt with: its id or an alias (`alias/<name>`).
        #[arg(long)]
        key_id: String,
        #[command(flatten)]
        input: PlaintextInput,
        #[command(flatten)]
        aad: Aad,
    },
    /// Decrypt a ciphertext blob made by `hkms encrypt` or `generate-data-key`.
    ///
    /// Without --json the plaintext is written as raw bytes to stdout (or --output).
    Decrypt {
        /// Ciphertext blob, base64.
        #[arg(long)]
        ciphertext_blob: String,
        #[command(flatten)]
        aad: Aad,
        /// Write the plaintext to this file (mode 0600, replacing any file there) instead
        /// of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Generate a data key: its plaintext and the same key encrypted under a CMK.
    GenerateDataKey(DataKeyArgs),
    /// Generate a data key and return it only encrypted under a CMK.
    GenerateDataKeyWithoutPlaintext(DataKeyArgs),
    /// Re-encrypt a ciphertext under another key without the plaintext leaving hkmsd.
    ReEncrypt {
        /// Ciphertext blob to re-encrypt, base64.
        #[arg(long)]
        ciphertext_blob: String,
        /// AAD the source ciphertext was made with (text).
        #[arg(long, default_value = "")]
        source_aad: String,
        /// Key to encrypt with: its id or an alias (`alias/<name>`).
        #[arg(long)]
        destination_key_id: String,
        /// AAD for the new ciphertext (text).
        #[arg(long, default_value = "")]
        destination_aad: String,
    },
    /// Random bytes from an HSM's generator, base64.
    GenerateRandom {
        /// Number of bytes, 1..1024.
        #[arg(long, default_value_t = 32)]
        length: u32,
    },
}

#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct Aad {
    /// Additional authenticated data, as text; decryption needs the same value.
    #[arg(long)]
    aad: Option<String>,
    /// Additional authenticated data, as base64.
    #[arg(long)]
    aad_base64: Option<String>,
}

impl Aad {
    fn bytes(&self) -> Result<Vec<u8>, Status> {
        match (&self.aad, &self.aad_base64) {
            (Some(t), _) => Ok(t.as_bytes().to_vec()),
            (None, Some(b)) => base64(b, "--aad-base64"),
            (None, None) => Ok(Vec::new()),
        }
    }
}

#[derive(Debug, Args)]
pub struct DataKeyArgs {
    /// Key that encrypts the data key: its id or an alias (`alias/<name>`).
    #[arg(long)]
    key_id: String,
    /// AES_256 (default) or AES_128.
    #[arg(long, default_value = "AES_256")]
    key_spec: String,
    /// Length in bytes (1..1024); overrides --key-spec.
    #[arg(long)]
    number_of_bytes: Option<u32>,
    #[command(flatten)]
    aad: Aad,
}

impl DataKeyArgs {
    fn request(&self) -> Result<GenerateDataKeyRequest, Status> {
        Ok(GenerateDataKeyRequest {
            key_id: self.key_id.clone(),
            key_spec: self.key_spec.clone(),
            number_of_bytes: self.number_of_bytes.unwrap_or(0),
            aad: self.aad.bytes()?,
        })
    }
}

pub async fn symmetric(c: &mut Client, cmd: &SymmetricCommand) -> Result<Shown, Status> {
    let crypto = &mut c.crypto;
    Ok(match cmd {
        SymmetricCommand::Encrypt { key_id, input, aad } => {
            let plaintext = read(input.source(), "plaintext")?;
            let r = crypto
                .encrypt(EncryptRequest {
                    key_id: key_id.clone(),
                    plaintext: plaintext.to_vec(),
                    aad: aad.bytes()?,
                })
                .await?
                .into_inner();
            let blob = B64.encode(&r.ciphertext_blob);
            Shown::Text((
                blob.clone(),
                json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id, "CiphertextBlob": blob}),
            ))
        }
        SymmetricCommand::Decrypt {
            ciphertext_blob,
            aad,
            output,
        } => {
            let r = crypto
                .decrypt(DecryptRequest {
                    ciphertext_blob: base64(ciphertext_blob, "--ciphertext-blob")?,
                    aad: aad.bytes()?,
                })
                .await?
                .into_inner();
            let plaintext = Zeroizing::new(r.plaintext);
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                "Plaintext": B64.encode(&*plaintext),
            });
            match output {
                Some(path) => {
                    write_out(path, &plaintext, true)?;
                    Shown::Text((format!("plaintext written to {}", path.display()), j))
                }
                None => Shown::Raw(plaintext, j),
            }
        }
        SymmetricCommand::GenerateDataKey(a) => {
            let r = crypto.generate_data_key(a.request()?).await?.into_inner();
            let pt = Zeroizing::new(B64.encode(&r.plaintext));
            let blob = B64.encode(&r.ciphertext_blob);
            Shown::Text((
                format!("Plaintext:      {}\nCiphertextBlob: {blob}", *pt),
                json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                       "Plaintext": *pt, "CiphertextBlob": blob}),
            ))
        }
        SymmetricCommand::GenerateDataKeyWithoutPlaintext(a) => {
            let r = crypto
                .generate_data_key_without_plaintext(a.request()?)
                .await?
                .into_inner();
            let blob = B64.encode(&r.ciphertext_blob);
            Shown::Text((
                blob.clone(),
                json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                       "CiphertextBlob": blob}),
            ))
        }
        SymmetricCommand::ReEncrypt {
            ciphertext_blob,
            source_aad,
            destination_key_id,
            destination_aad,
        } => {
            let r = crypto
                .re_encrypt(ReEncryptRequest {
                    source_ciphertext_blob: base64(ciphertext_blob, "--ciphertext-blob")?,
                    source_aad: source_aad.as_bytes().to_vec(),
                    destination_key_id: destination_key_id.clone(),
                    destination_aad: destination_aad.as_bytes().to_vec(),
                })
                .await?
                .into_inner();
            let blob = B64.encode(&r.ciphertext_blob);
            Shown::Text((
                blob.clone(),
                json!({"SourceKeyId": r.source_key_id,
                       "SourceKeyVersionId": r.source_key_version_id,
                       "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                       "CiphertextBlob": blob}),
            ))
        }
        SymmetricCommand::GenerateRandom { length } => {
            let r = crypto
                .generate_random(GenerateRandomRequest { length: *length })
                .await?
                .into_inner();
            let v = B64.encode(&r.random);
            Shown::Text((v.clone(), json!({"Random": v})))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct SymmetricCli {
        #[command(subcommand)]
        cmd: SymmetricCommand,
    }

    #[test]
    fn one_plaintext_and_one_aad_at_most() {
        let p = |args: &[&str]| {
            SymmetricCli::try_parse_from(std::iter::once("hkms").chain(args.iter().copied()))
        };
        assert!(p(&["encrypt", "--key-id", "k", "--plaintext", "x"]).is_ok());
        assert!(p(&[
            "encrypt",
            "--key-id",
            "k",
            "--plaintext",
            "x",
            "--plaintext-base64",
            "eA=="
        ])
        .is_err());
        assert!(p(&[
            "decrypt",
            "--ciphertext-blob",
            "b",
            "--aad",
            "a",
            "--aad-base64",
            "YQ=="
        ])
        .is_err());
        assert!(p(&["generate-data-key"]).is_err(), "a key is needed");
    }

    #[test]
    fn every_command_and_option_has_help() {
        crate::cli::data_io::assert_all_helped(SymmetricCli::command());
    }
}
