//! Inputs and outputs of the commands that sign, verify, encrypt and MAC with a key
//! ([`super::signature`], [`super::asymmetric_cipher`], [`super::public_key`],
//! [`super::data_key_pair`], [`super::mac`]).
//!
//! Bytes come as text (`--message`), as base64 (`--message-base64`, `--signature`), or raw
//! from a file or stdin (`--message-file -`). Binary results print as base64, or are written
//! raw to a file with `--out`; JSON output always carries them as base64.

use super::access::Printed;
use super::ca::write_atomic;
use crate::error::KmsError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::builder::{
    NonEmptyStringValueParser, PossibleValue, PossibleValuesParser, TypedValueParser,
};
use clap::Args;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

/// What one of these commands prints.
#[derive(Debug)]
pub enum Shown {
    /// Text for stdout, and the JSON form.
    Text(Printed),
    /// Raw bytes for stdout without --json (a plaintext), and the JSON form.
    Raw(Zeroizing<Vec<u8>>, Value),
    /// The answer of a check (verify, verify-mac), printed like `Text`; when it is false
    /// the command exits with status 1.
    Verdict(bool, Printed),
}

/// An `InvalidParameter` failure.
pub fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
}

/// A name hkmsd decides on (a key spec, an algorithm): `--help` lists the known ones with
/// what each is for, but any other name is passed on, so that hkmsd says why it refuses it
/// (UnsupportedKeySpec, UnsupportedAlgorithm, with what would be needed) and names a newer
/// hkmsd offers work.
#[derive(Clone, Debug)]
pub struct Open(pub PossibleValuesParser);

/// An [`Open`] list of names, each with its help.
pub fn open(names: &[(&'static str, &'static str)]) -> Open {
    Open(PossibleValuesParser::new(
        names
            .iter()
            .map(|(name, help)| PossibleValue::new(*name).help(*help)),
    ))
}

impl TypedValueParser for Open {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        NonEmptyStringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

/// Where the bytes of one input come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Text(&'a str),
    Base64(&'a str),
    /// A file, or stdin for "-".
    File(&'a Path),
}

impl Source<'_> {
    fn is_stdin(&self) -> bool {
        matches!(self, Source::File(p) if *p == Path::new("-"))
    }
}

/// Decodes base64 given on the command line (surrounding blanks ignored).
pub fn base64(input: &str, what: &str) -> Result<Vec<u8>, Status> {
    B64.decode(input.trim())
        .map_err(|e| usage(format!("{what} is not valid base64: {e}")))
}

/// The bytes of `source`; `what` names the input in errors.
pub fn read(source: Source, what: &str) -> Result<Zeroizing<Vec<u8>>, Status> {
    let mut out = Zeroizing::new(Vec::new());
    match source {
        Source::Text(t) => out.extend_from_slice(t.as_bytes()),
        Source::Base64(b) => *out = base64(b, what)?,
        Source::File(path) => {
            let read = if source.is_stdin() {
                std::io::stdin().read_to_end(&mut out)
            } else {
                std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut out))
            };
            read.map_err(|e| {
                usage(format!(
                    "cannot read the {what} from {}: {e}",
                    if source.is_stdin() {
                        "stdin".to_owned()
                    } else {
                        path.display().to_string()
                    }
                ))
            })?;
        }
    }
    Ok(out)
}

/// Refuses more than one input read from stdin.
pub fn one_stdin(inputs: &[(Source, &str)]) -> Result<(), Status> {
    let from_stdin: Vec<&str> = inputs
        .iter()
        .filter(|(s, _)| s.is_stdin())
        .map(|(_, what)| *what)
        .collect();
    if from_stdin.len() > 1 {
        return Err(usage(format!(
            "only one input can come from stdin, not the {}; give the others as arguments \
             or files",
            from_stdin.join(" and the ")
        )));
    }
    Ok(())
}

/// A key and, optionally, one of its versions.
#[derive(Debug, Args)]
pub struct KeyTarget {
    /// The key: its id or an alias (`alias/<name>`).
    #[arg(long)]
    pub key_id: String,
    /// One version of the key (`hkms key versions` lists them). Default: its primary
    /// (newest) version. Verify with the version that signed, decrypt with the one that
    /// encrypted (sign and asymmetric-encrypt print it with --json).
    #[arg(long)]
    pub key_version_id: Option<String>,
}

impl KeyTarget {
    pub fn version(&self) -> String {
        self.key_version_id.clone().unwrap_or_default()
    }
}

/// The message to sign, verify or MAC.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct MessageInput {
    /// The message as text (its UTF-8 bytes).
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// The message as base64, for any bytes.
    #[arg(long, value_name = "BASE64")]
    pub message_base64: Option<String>,
    /// Read the message from a file ("-" for stdin). Without any --message option the
    /// message is read from stdin.
    #[arg(long, value_name = "FILE")]
    pub message_file: Option<PathBuf>,
}

impl MessageInput {
    pub fn source(&self) -> Source<'_> {
        if let Some(t) = &self.message {
            Source::Text(t)
        } else if let Some(b) = &self.message_base64 {
            Source::Base64(b)
        } else {
            Source::File(self.message_file.as_deref().unwrap_or(Path::new("-")))
        }
    }
}

/// The plaintext to encrypt.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct PlaintextInput {
    /// The plaintext as text (its UTF-8 bytes).
    #[arg(long, value_name = "TEXT")]
    pub plaintext: Option<String>,
    /// The plaintext as base64, for any bytes.
    #[arg(long, value_name = "BASE64")]
    pub plaintext_base64: Option<String>,
    /// Read the plaintext from a file ("-" for stdin). Without any --plaintext option the
    /// plaintext is read from stdin.
    #[arg(long, value_name = "FILE")]
    pub plaintext_file: Option<PathBuf>,
}

impl PlaintextInput {
    pub fn source(&self) -> Source<'_> {
        if let Some(t) = &self.plaintext {
            Source::Text(t)
        } else if let Some(b) = &self.plaintext_base64 {
            Source::Base64(b)
        } else {
            Source::File(self.plaintext_file.as_deref().unwrap_or(Path::new("-")))
        }
    }
}

/// The signature to verify.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SignatureInput {
    /// The signature, base64 (as `hkms sign` prints it).
    #[arg(long, value_name = "BASE64")]
    pub signature: Option<String>,
    /// Read the raw signature from a file ("-" for stdin), e.g. one written by
    /// `hkms sign --out` or `openssl dgst -sign`.
    #[arg(long, value_name = "FILE")]
    pub signature_file: Option<PathBuf>,
}

impl SignatureInput {
    pub fn source(&self) -> Source<'_> {
        match (&self.signature, &self.signature_file) {
            (Some(b), _) => Source::Base64(b),
            (None, Some(p)) => Source::File(p),
            (None, None) => Source::File(Path::new("-")),
        }
    }
}

/// The MAC to verify.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct MacInput {
    /// The MAC, base64 (as `hkms generate-mac` prints it).
    #[arg(long, value_name = "BASE64")]
    pub mac: Option<String>,
    /// Read the raw MAC from a file ("-" for stdin), e.g. one written by
    /// `hkms generate-mac --out`.
    #[arg(long, value_name = "FILE")]
    pub mac_file: Option<PathBuf>,
}

impl MacInput {
    pub fn source(&self) -> Source<'_> {
        match (&self.mac, &self.mac_file) {
            (Some(b), _) => Source::Base64(b),
            (None, Some(p)) => Source::File(p),
            (None, None) => Source::File(Path::new("-")),
        }
    }
}

/// The ciphertext to decrypt.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CiphertextInput {
    /// The ciphertext, base64 (as `hkms asymmetric-encrypt` prints it).
    #[arg(long, value_name = "BASE64")]
    pub ciphertext_blob: Option<String>,
    /// Read the raw ciphertext from a file ("-" for stdin), e.g. one written by
    /// `hkms asymmetric-encrypt --out` or `openssl pkeyutl -encrypt`.
    #[arg(long, value_name = "FILE")]
    pub ciphertext_blob_file: Option<PathBuf>,
}

impl CiphertextInput {
    pub fn source(&self) -> Source<'_> {
        match (&self.ciphertext_blob, &self.ciphertext_blob_file) {
            (Some(b), _) => Source::Base64(b),
            (None, Some(p)) => Source::File(p),
            (None, None) => Source::File(Path::new("-")),
        }
    }
}

/// Writes `data` to `path`: mode 0600 when `secret`, 0644 otherwise.
pub fn write_out(path: &Path, data: &[u8], secret: bool) -> Result<(), Status> {
    write_atomic(path, data, if secret { 0o600 } else { 0o644 })
}

/// A binary result that is not secret (signature, ciphertext, MAC): base64 on stdout, or
/// raw bytes in `out`. `json` gets it as base64 under `field`.
pub fn public_bytes(
    bytes: &[u8],
    out: Option<&Path>,
    what: &str,
    field: &str,
    mut json: Value,
) -> Result<Printed, Status> {
    let encoded = B64.encode(bytes);
    json[field] = Value::String(encoded.clone());
    let text = match out {
        Some(path) => {
            write_out(path, bytes, false)?;
            format!(
                "{what} ({} bytes) written to {}",
                bytes.len(),
                path.display()
            )
        }
        None => encoded,
    };
    Ok((text, json))
}

/// Base64 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Checks that every command and option of `cmd` has help text, and clap's own rules.
#[cfg(test)]
pub fn assert_all_helped(cmd: clap::Command) {
    fn check(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" {
                assert!(arg.get_help().is_some(), "{path} {id} has no help");
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" {
                assert!(sub.get_about().is_some(), "{path} has no help");
            }
            check(sub, &path);
        }
    }
    cmd.clone().debug_assert();
    check(&cmd, cmd.get_name());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_read_text_base64_and_files() {
        assert_eq!(&*read(Source::Text("hi"), "message").unwrap(), b"hi");
        assert_eq!(&*read(Source::Base64(" aGk= "), "message").unwrap(), b"hi");
        let e = read(Source::Base64("!!"), "signature").unwrap_err();
        assert!(e.message().contains("signature is not valid base64"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.bin");
        std::fs::write(&f, [0u8, 255, 1]).unwrap();
        assert_eq!(&*read(Source::File(&f), "message").unwrap(), &[0u8, 255, 1]);
        let e = read(Source::File(&dir.path().join("none")), "message").unwrap_err();
        assert!(e.message().contains("cannot read the message from"), "{e}");
    }

    #[test]
    fn open_names_list_the_known_ones_and_take_any_other() {
        let parser = open(&[("A_1", "the first"), ("B_2", "the second")]);
        let known: Vec<String> = parser
            .possible_values()
            .unwrap()
            .map(|v| format!("{}: {}", v.get_name(), v.get_help().unwrap()))
            .collect();
        assert_eq!(known, ["A_1: the first", "B_2: the second"]);
        let cmd = clap::Command::new("t");
        let take = |v: &str| parser.parse_ref(&cmd, None, OsStr::new(v));
        assert_eq!(take("A_1").unwrap(), "A_1");
        assert_eq!(take("C_3").unwrap(), "C_3");
        assert!(take("").is_err());
    }

    #[test]
    fn only_one_input_reads_stdin() {
        let stdin = Source::File(Path::new("-"));
        let file = Source::File(Path::new("sig.bin"));
        assert!(one_stdin(&[(stdin, "message"), (file, "signature")]).is_ok());
        let e = one_stdin(&[(stdin, "message"), (stdin, "signature")]).unwrap_err();
        assert!(e.message().contains("message and the signature"), "{e}");
    }

    #[test]
    fn public_bytes_print_base64_or_go_to_a_file() {
        let (text, json) = public_bytes(
            b"sig",
            None,
            "signature",
            "Signature",
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(text, "c2ln");
        assert_eq!(json["Signature"], "c2ln");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sig.bin");
        let (text, json) = public_bytes(
            b"sig",
            Some(&out),
            "signature",
            "Signature",
            serde_json::json!({"KeyId": "k"}),
        )
        .unwrap();
        assert!(text.contains("sig.bin"), "{text}");
        assert_eq!(
            (json["KeyId"].as_str(), json["Signature"].as_str()),
            (Some("k"), Some("c2ln"))
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"sig");
    }
}
