//! `hkms asymmetric-encrypt` and `hkms asymmetric-decrypt`: RSA-OAEP with an RSA key of
//! usage ENCRYPT/DECRYPT. Anyone with the public key can encrypt (OpenSSL, any library);
//! only the key's HSMs can decrypt.

use super::data_io::{self, open, CiphertextInput, KeyTarget, Open, PlaintextInput, Shown};
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tonic::Status;
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum AsymmetricCipherCommand {
    /// Encrypt a short secret with the public key of an RSA ENCRYPT/DECRYPT key (RSA-OAEP).
    ///
    /// hkmsd encrypts with the public key, once it knows a member can decrypt with the
    /// algorithm; OpenSSL can do the same with `hkms get-public-key`. RSA-OAEP takes short plaintexts only: with RSA_2048 at
    /// most 214 bytes (RSAES_OAEP_SHA_1) or 190 bytes (RSAES_OAEP_SHA_256); with RSA_3072
    /// 342/318, with RSA_4096 470/446. For more data, encrypt a data key with it (or use
    /// `hkms encrypt` with an AES key). Without --out the ciphertext is printed as base64.
    #[command(after_long_help = ENCRYPT_EXAMPLES)]
    AsymmetricEncrypt(EncryptArgs),
    /// Decrypt an RSA-OAEP ciphertext with the private key of an RSA ENCRYPT/DECRYPT key.
    ///
    /// The private key is used only inside an HSM. Without --json the plaintext is written
    /// as raw bytes to stdout (or to --out); with --json it is base64.
    #[command(after_long_help = ENCRYPT_EXAMPLES)]
    AsymmetricDecrypt(DecryptArgs),
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// Encryption algorithm; decryption needs the same one.
    #[arg(long, value_parser = algorithms())]
    pub algorithm: String,
    #[command(flatten)]
    pub plaintext: PlaintextInput,
    /// Write the raw ciphertext to this file instead of printing it as base64.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    pub key: KeyTarget,
    /// Encryption algorithm the ciphertext was made with.
    #[arg(long, value_parser = algorithms())]
    pub algorithm: String,
    #[command(flatten)]
    pub ciphertext: CiphertextInput,
    /// Write the plaintext to this file (created with mode 0600) instead of stdout.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The RSA-OAEP variants, with what each is for.
fn algorithms() -> Open {
    open(&[
        (
            "RSAES_OAEP_SHA_1",
            "RSA-OAEP with SHA-1 and MGF1 SHA-1, no label. Every PKCS#11 HSM decrypts it \
             (SoftHSM2 only this one); SHA-1's collision weakness does not matter in OAEP",
        ),
        (
            "RSAES_OAEP_SHA_256",
            "RSA-OAEP with SHA-256 and MGF1 SHA-256, no label. Needs an HSM member that \
             decrypts it (`hkms hsm status` lists each member's algorithms); without one, \
             encryption and decryption fail with UnsupportedAlgorithm",
        ),
    ])
}

const ENCRYPT_EXAMPLES: &str = "\
Examples:
  hkms key create --key-spec RSA_2048 --key-usage ENCRYPT/DECRYPT
  hkms asymmetric-encrypt --key-id <KeyId> --algorithm RSAES_OAEP_SHA_1 \\
      --plaintext 'db password' --out secret.bin
  hkms asymmetric-decrypt --key-id <KeyId> --algorithm RSAES_OAEP_SHA_1 \\
      --ciphertext-blob-file secret.bin

  # Encrypt elsewhere with OpenSSL and the public key, decrypt with hkms:
  hkms get-public-key --key-id <KeyId> --out key.pem
  openssl pkeyutl -encrypt -pubin -inkey key.pem -in secret.txt -out secret.bin \\
      -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
  hkms asymmetric-decrypt --key-id <KeyId> --algorithm RSAES_OAEP_SHA_1 \\
      --ciphertext-blob-file secret.bin --out secret.txt";

/// Runs `hkms asymmetric-encrypt` and `hkms asymmetric-decrypt`.
pub async fn asymmetric_cipher(
    c: &mut Client,
    cmd: &AsymmetricCipherCommand,
) -> Result<Shown, Status> {
    match cmd {
        AsymmetricCipherCommand::AsymmetricEncrypt(a) => {
            let plaintext = data_io::read(a.plaintext.source(), "plaintext")?;
            let r = c
                .asymmetric
                .asymmetric_encrypt(AsymmetricEncryptRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone(),
                    plaintext: plaintext.to_vec(),
                })
                .await?
                .into_inner();
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id, "Algorithm": r.algorithm,
            });
            data_io::public_bytes(
                &r.ciphertext_blob,
                a.out.as_deref(),
                "ciphertext",
                "CiphertextBlob",
                j,
            )
            .map(Shown::Text)
        }
        AsymmetricCipherCommand::AsymmetricDecrypt(a) => {
            let ciphertext = data_io::read(a.ciphertext.source(), "ciphertext")?;
            let r = c
                .asymmetric
                .asymmetric_decrypt(AsymmetricDecryptRequest {
                    key_id: a.key.key_id.clone(),
                    key_version_id: a.key.version(),
                    algorithm: a.algorithm.clone(),
                    ciphertext_blob: ciphertext.to_vec(),
                })
                .await?
                .into_inner();
            let plaintext = Zeroizing::new(r.plaintext);
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                "Plaintext": data_io::encode(&plaintext),
            });
            Ok(match &a.out {
                Some(path) => {
                    data_io::write_out(path, &plaintext, true)?;
                    Shown::Text((format!("plaintext written to {}", path.display()), j))
                }
                None => Shown::Raw(plaintext, j),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "hkms")]
    struct CipherCli {
        #[command(subcommand)]
        cmd: AsymmetricCipherCommand,
    }

    fn parse(args: &[&str]) -> Result<AsymmetricCipherCommand, clap::Error> {
        CipherCli::try_parse_from(std::iter::once("hkms").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn decrypt_needs_a_ciphertext_and_an_algorithm() {
        let base = ["asymmetric-decrypt", "--key-id", "k"];
        assert!(parse(&[&base[..], &["--ciphertext-blob", "YQ=="]].concat()).is_err());
        let ok = [
            &base[..],
            &[
                "--algorithm",
                "RSAES_OAEP_SHA_1",
                "--ciphertext-blob-file",
                "-",
            ],
        ]
        .concat();
        assert!(parse(&ok).is_ok());
        let none = [&base[..], &["--algorithm", "RSAES_OAEP_SHA_1"]].concat();
        assert!(parse(&none).is_err());
        let pkcs1 = [
            &base[..],
            &[
                "--algorithm",
                "RSAES_PKCS1_V1_5",
                "--ciphertext-blob",
                "YQ==",
            ],
        ];
        assert!(
            parse(&pkcs1.concat()).is_ok(),
            "hkmsd decides on algorithm names"
        );
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(CipherCli::command());
    }
}
