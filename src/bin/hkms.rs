//! hkms: the operator and scripting CLI for hkmsd.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Args as ClapArgs, Parser, Subcommand};
use hkms::client::Client;
use hkms::proto::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Command-line client of hkmsd, the hkms key management daemon.
///
/// Every command talks to hkmsd over its Unix socket. Binary values (ciphertexts, data keys,
/// random bytes) are printed as base64. Add --json for machine-readable output whose field
/// names follow the KMS API (KeyId, CiphertextBlob, ...).
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// hkmsd Unix socket. Default: HKMS_SOCKET, else `listen.socket` of --config.
    #[arg(long, global = true, env = "HKMS_SOCKET")]
    socket: Option<PathBuf>,
    /// hkmsd configuration file, read only to find the socket.
    #[arg(long, global = true, default_value = "/etc/hkms/hkmsd.toml")]
    config: PathBuf,
    /// Print results (and errors) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialise the instance: create the domain key in the first HSM member and copy it to
    /// every other member HSM-to-HSM. Runs once per instance.
    Init {
        /// File with the security officer PIN of the first member. Needed when there is more
        /// than one member: the SO authorises the transport key that carries the domain key.
        #[arg(long)]
        so_pin_file: Option<PathBuf>,
    },
    /// Show the instance and the state of every HSM member.
    Status,
    /// Manage customer master keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect and change the HSM members of the cluster.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// Network access rules: the source addresses applications may call from.
    #[command(subcommand)]
    NetworkRule(hkms::cli::access::NetworkRuleCommand),
    /// Permission policies: an RBAC role on keys or secrets, optionally from some networks.
    #[command(subcommand)]
    Policy(hkms::cli::access::PolicyCommand),
    /// Application access points (AAPs): one per application, with up to three policies.
    #[command(subcommand)]
    Aap(hkms::cli::access::AapCommand),
    /// ClientKeys: the key pairs applications authenticate with (files for the SDKs).
    #[command(subcommand)]
    ClientKey(hkms::cli::access::ClientKeyCommand),
    /// Key aliases: other names of keys (alias/<name>), usable wherever a key id is.
    #[command(subcommand)]
    Alias(hkms::cli::instance::AliasCommand),
    /// Instance settings: the gateway's Internet endpoint switch.
    #[command(subcommand)]
    Instance(hkms::cli::instance::InstanceCommand),
    /// The instance CA: create it, issue the gateway's certificate, export the CA bundle.
    #[command(subcommand)]
    Ca(hkms::cli::ca::CaCommand),
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
        /// Write the plaintext to this file (created with mode 0600) instead of stdout.
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

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key; its material is generated inside an HSM and never leaves it in plaintext.
    Create {
        /// Aliyun_AES_256 (default) or Aliyun_AES_128.
        #[arg(long, default_value = "Aliyun_AES_256")]
        key_spec: String,
        /// ENCRYPT/DECRYPT.
        #[arg(long, default_value = "ENCRYPT/DECRYPT")]
        key_usage: String,
        /// Free text shown by `key describe`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show a key's metadata.
    Describe {
        /// Key id or alias (`alias/<name>`).
        key_id: String,
    },
    /// List key ids, a page at a time.
    List {
        /// Page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page_number: u32,
        /// Keys per page, 1..100.
        #[arg(long, default_value_t = 10)]
        page_size: u32,
    },
    /// Allow a key to be used again.
    Enable {
        /// Key id or alias (`alias/<name>`).
        key_id: String,
    },
    /// Refuse every cryptographic operation with a key until it is enabled again.
    Disable {
        /// Key id or alias (`alias/<name>`).
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum HsmCommand {
    /// Per member: state, sessions in use, operations served, errors, last error, latency.
    Status,
    /// Enrol a new HSM into the running cluster. The domain key is copied HSM-to-HSM from a
    /// healthy member (whose security officer authorises it once); then the new member takes
    /// traffic. Paths are as seen by hkmsd on the appliance.
    Add {
        /// Name of the new member (logs, status).
        #[arg(long)]
        name: String,
        /// PKCS#11 library of the new member.
        #[arg(long)]
        module: PathBuf,
        /// Label of the new member's token.
        #[arg(
            long,
            required_unless_present = "token_serial",
            conflicts_with = "token_serial"
        )]
        token_label: Option<String>,
        /// Serial number of the new member's token.
        #[arg(long)]
        token_serial: Option<String>,
        /// File holding the new member's user PIN.
        #[arg(long)]
        pin_file: PathBuf,
        /// Most sessions opened on the new member at once.
        #[arg(long, default_value_t = 8)]
        max_sessions: u32,
        /// HSM profile name (hsm-profiles/).
        #[arg(long, default_value = "softhsm2")]
        profile: String,
        /// Member that gives the domain key (default: any healthy member).
        #[arg(long)]
        source: Option<String>,
        /// File holding the security officer PIN of the source member (read here, sent to
        /// hkmsd over its socket, wiped after use).
        #[arg(long)]
        so_pin_file: PathBuf,
    },
    /// Stop sending new requests to a member; requests in flight finish.
    Drain {
        /// Member name.
        name: String,
    },
    /// Send requests to a drained member again.
    Resume {
        /// Member name.
        name: String,
    },
    /// Remove a drained (or failed) member from the cluster.
    Remove {
        /// Member name.
        name: String,
    },
}

fn member_json(m: &MemberStatus) -> Value {
    json!({
        "Name": m.name, "Token": m.token_label, "State": m.state,
        "SessionsInUse": m.sessions_in_use, "MaxSessions": m.max_sessions,
        "Operations": m.operations, "Errors": m.errors, "LastError": m.last_error,
        "MeanLatencyMicros": m.mean_latency_micros, "CachedKeys": m.cached_keys,
        "Module": m.module, "UnwrapTemplate": m.unwrap_template, "Calls": m.calls,
    })
}

fn members_text(members: &[MemberStatus]) -> String {
    let mut text = format!(
        "{:<14} {:<16} {:<9} {:<15} {:<7} {:>8} {:>11} {:>7} {:>9}  LAST ERROR\n",
        "MEMBER",
        "TOKEN",
        "STATE",
        "UNWRAP TEMPLATE",
        "CALLS",
        "SESSIONS",
        "OPERATIONS",
        "ERRORS",
        "LATENCY"
    );
    for m in members {
        text.push_str(&format!(
            "{:<14} {:<16} {:<9} {:<15} {:<7} {:>8} {:>11} {:>7} {:>7}us  {}\n",
            m.name,
            m.token_label,
            m.state,
            m.unwrap_template,
            m.calls,
            format!("{}/{}", m.sessions_in_use, m.max_sessions),
            m.operations,
            m.errors,
            m.mean_latency_micros,
            m.last_error
        ));
    }
    text.trim_end().to_owned()
}

fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or("").trim().to_owned(),
    ))
}

#[derive(Debug, ClapArgs)]
#[group(required = false, multiple = false)]
struct PlaintextInput {
    /// Plaintext given as text.
    #[arg(long)]
    plaintext: Option<String>,
    /// Plaintext given as base64.
    #[arg(long)]
    plaintext_base64: Option<String>,
    /// Read the plaintext from a file ("-" for stdin).
    #[arg(long)]
    plaintext_file: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
#[group(required = false, multiple = false)]
struct Aad {
    /// Additional authenticated data, as text; decryption needs the same value.
    #[arg(long)]
    aad: Option<String>,
    /// Additional authenticated data, as base64.
    #[arg(long)]
    aad_base64: Option<String>,
}

#[derive(Debug, ClapArgs)]
struct DataKeyArgs {
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

/// A failure to report: a stable code and a message.
struct Failure {
    code: String,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: "InvalidParameter".into(),
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        let code = hkms::error::error_code(&s).unwrap_or_else(|| format!("{:?}", s.code()));
        let prefix = format!("{code}: ");
        let message = s
            .message()
            .strip_prefix(&prefix)
            .unwrap_or(s.message())
            .to_owned();
        Failure { code, message }
    }
}

fn b64(input: &str, what: &str) -> Result<Vec<u8>, Failure> {
    B64.decode(input.trim())
        .map_err(|e| Failure::usage(format!("{what} is not valid base64: {e}")))
}

impl Aad {
    fn bytes(&self) -> Result<Vec<u8>, Failure> {
        match (&self.aad, &self.aad_base64) {
            (Some(t), _) => Ok(t.as_bytes().to_vec()),
            (None, Some(b)) => b64(b, "--aad-base64"),
            (None, None) => Ok(Vec::new()),
        }
    }
}

impl PlaintextInput {
    fn bytes(&self) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let mut out = Zeroizing::new(Vec::new());
        if let Some(t) = &self.plaintext {
            out.extend_from_slice(t.as_bytes());
        } else if let Some(b) = &self.plaintext_base64 {
            *out = b64(b, "--plaintext-base64")?;
        } else {
            let path = self.plaintext_file.as_deref().unwrap_or(Path::new("-"));
            let read = if path == Path::new("-") {
                std::io::stdin().read_to_end(&mut out)
            } else {
                std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut out))
            };
            read.map_err(|e| {
                Failure::usage(format!(
                    "cannot read plaintext from {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(out)
    }
}

fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.socket {
        return s.clone();
    }
    #[derive(serde::Deserialize)]
    struct Partial {
        listen: PartialListen,
    }
    #[derive(serde::Deserialize)]
    struct PartialListen {
        socket: PathBuf,
    }
    std::fs::read_to_string(&cli.config)
        .ok()
        .and_then(|t| toml::from_str::<Partial>(&t).ok())
        .map(|p| p.listen.socket)
        .unwrap_or_else(|| PathBuf::from("/run/hkms/hkmsd.sock"))
}

fn metadata_json(m: &KeyMetadata) -> Value {
    json!({
        "KeyId": m.key_id,
        "Description": m.description,
        "KeySpec": m.key_spec,
        "KeyUsage": m.key_usage,
        "KeyState": m.key_state,
        "CreationDate": m.creation_date,
        "ProtectionLevel": m.protection_level,
        "PrimaryKeyVersion": m.primary_key_version,
        "Origin": m.origin,
        "Internal": m.internal,
    })
}

/// What a command prints: JSON for --json, text otherwise.
enum Output {
    /// Text lines, and the JSON form.
    Text(String, Value),
    /// Raw bytes for stdout (decrypt without --json), and the JSON form.
    Raw(Zeroizing<Vec<u8>>, Value),
}

fn key_text(m: &KeyMetadata) -> String {
    format!(
        "KeyId:             {}\nKeyState:          {}\nKeySpec:           {}\nKeyUsage:          {}\nProtectionLevel:   {}\nPrimaryKeyVersion: {}\nCreationDate:      {}\nDescription:       {}{}",
        m.key_id, m.key_state, m.key_spec, m.key_usage, m.protection_level,
        m.primary_key_version, m.creation_date, m.description,
        if m.internal { "\nInternal:          yes (hkmsd's own; no application may use it)" } else { "" }
    )
}

fn key_output(m: Option<KeyMetadata>) -> Output {
    let m = m.unwrap_or_default();
    Output::Text(key_text(&m), json!({ "KeyMetadata": metadata_json(&m) }))
}

async fn run(cli: &Cli) -> Result<Output, Failure> {
    let socket = socket_path(cli);
    let mut c = Client::connect(&socket).await.map_err(|m| Failure {
        code: "Unavailable".into(),
        message: m,
    })?;
    Ok(match &cli.command {
        Command::Init { so_pin_file } => {
            // The whole file, not just its first line, is wiped from memory after use.
            let pin = match so_pin_file {
                Some(p) => read_secret_file(p)?,
                None => Zeroizing::new(String::new()),
            };
            if !cli.json {
                eprintln!("Creating the domain key and copying it to every member...");
            }
            let r = c
                .admin
                .init(InitRequest {
                    source_so_pin: pin.to_string(),
                })
                .await?
                .into_inner();
            let j = json!({
                "InstanceId": r.instance_id,
                "DomainKeyId": r.domain_key_id,
                "Members": r.members,
            });
            Output::Text(
                format!(
                    "Instance {} initialised.\nDomain key {} is on: {}",
                    r.instance_id,
                    r.domain_key_id,
                    r.members.join(", ")
                ),
                j,
            )
        }
        Command::Status => {
            let r = c.admin.get_status(GetStatusRequest {}).await?.into_inner();
            let mut text = if r.initialized {
                format!(
                    "Instance {} (domain key {})\n",
                    r.instance_id, r.domain_key_id
                )
            } else {
                "Instance not initialised: run `hkms init`.\n".to_owned()
            };
            text.push_str(&members_text(&r.members));
            let warnings = hkms::cli::access::expiry_warnings(&mut c).await;
            for w in &warnings {
                text.push_str(&format!("\nWARNING: {w}"));
            }
            Output::Text(
                text,
                json!({
                    "Initialized": r.initialized, "InstanceId": r.instance_id,
                    "DomainKeyId": r.domain_key_id,
                    "Members": r.members.iter().map(member_json).collect::<Vec<_>>(),
                    "Version": r.version,
                    "Warnings": warnings,
                }),
            )
        }
        Command::Hsm(h) => match h {
            HsmCommand::Status => {
                let r = c.admin.get_status(GetStatusRequest {}).await?.into_inner();
                Output::Text(
                    members_text(&r.members),
                    json!({"Members": r.members.iter().map(member_json).collect::<Vec<_>>()}),
                )
            }
            HsmCommand::Add {
                name,
                module,
                token_label,
                token_serial,
                pin_file,
                max_sessions,
                profile,
                source,
                so_pin_file,
            } => {
                let so_pin = read_secret_file(so_pin_file)?;
                if !cli.json {
                    eprintln!("Copying the domain key to {name} and checking it...");
                }
                let r = c
                    .admin
                    .add_member(AddMemberRequest {
                        name: name.clone(),
                        module: module.display().to_string(),
                        token_label: token_label.clone().unwrap_or_default(),
                        token_serial: token_serial.clone().unwrap_or_default(),
                        pin_file: pin_file.display().to_string(),
                        max_sessions: *max_sessions,
                        profile: profile.clone(),
                        source_member: source.clone().unwrap_or_default(),
                        source_so_pin: so_pin.to_string(),
                    })
                    .await?
                    .into_inner();
                let m = r.member.unwrap_or_default();
                Output::Text(
                    format!(
                        "Member {} enrolled (domain key from {}); state {}.",
                        m.name, r.source_member, m.state
                    ),
                    json!({"Member": member_json(&m), "SourceMember": r.source_member}),
                )
            }
            HsmCommand::Drain { name } | HsmCommand::Resume { name } => {
                let resume = matches!(h, HsmCommand::Resume { .. });
                let r = c
                    .admin
                    .drain_member(DrainMemberRequest {
                        name: name.clone(),
                        resume,
                    })
                    .await?
                    .into_inner();
                let m = r.member.unwrap_or_default();
                Output::Text(
                    format!("Member {} is {}.", m.name, m.state),
                    json!({"Member": member_json(&m)}),
                )
            }
            HsmCommand::Remove { name } => {
                c.admin
                    .remove_member(RemoveMemberRequest { name: name.clone() })
                    .await?;
                Output::Text(format!("Member {name} removed."), json!({"Removed": name}))
            }
        },
        Command::Key(k) => match k {
            KeyCommand::Create {
                key_spec,
                key_usage,
                description,
            } => key_output(
                c.keys
                    .create_key(CreateKeyRequest {
                        key_spec: key_spec.clone(),
                        key_usage: key_usage.clone(),
                        description: description.clone(),
                        internal: false,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .key_metadata,
            ),
            KeyCommand::Describe { key_id } => key_output(
                c.keys
                    .describe_key(DescribeKeyRequest {
                        key_id: key_id.clone(),
                    })
                    .await?
                    .into_inner()
                    .key_metadata,
            ),
            KeyCommand::Enable { key_id } => key_output(
                c.keys
                    .enable_key(EnableKeyRequest {
                        key_id: key_id.clone(),
                    })
                    .await?
                    .into_inner()
                    .key_metadata,
            ),
            KeyCommand::Disable { key_id } => key_output(
                c.keys
                    .disable_key(DisableKeyRequest {
                        key_id: key_id.clone(),
                    })
                    .await?
                    .into_inner()
                    .key_metadata,
            ),
            KeyCommand::List {
                page_number,
                page_size,
            } => {
                let r = c
                    .keys
                    .list_keys(ListKeysRequest {
                        page_number: *page_number,
                        page_size: *page_size,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let ids: Vec<&str> = r.keys.iter().map(|k| k.key_id.as_str()).collect();
                let mut text = ids.join("\n");
                text.push_str(&format!(
                    "\n(page {} of size {}; {} key(s) in all)",
                    r.page_number, r.page_size, r.total_count
                ));
                Output::Text(
                    text.trim_start().to_owned(),
                    json!({
                        "Keys": ids.iter().map(|k| json!({"KeyId": k})).collect::<Vec<_>>(),
                        "PageNumber": r.page_number, "PageSize": r.page_size,
                        "TotalCount": r.total_count,
                    }),
                )
            }
        },
        Command::Encrypt { key_id, input, aad } => {
            let plaintext = input.bytes()?;
            let r = c
                .crypto
                .encrypt(EncryptRequest {
                    key_id: key_id.clone(),
                    plaintext: plaintext.to_vec(),
                    aad: aad.bytes()?,
                })
                .await?
                .into_inner();
            let blob = B64.encode(&r.ciphertext_blob);
            Output::Text(
                blob.clone(),
                json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id, "CiphertextBlob": blob}),
            )
        }
        Command::Decrypt {
            ciphertext_blob,
            aad,
            output,
        } => {
            let r = c
                .crypto
                .decrypt(DecryptRequest {
                    ciphertext_blob: b64(ciphertext_blob, "--ciphertext-blob")?,
                    aad: aad.bytes()?,
                })
                .await?
                .into_inner();
            let plaintext = Zeroizing::new(r.plaintext);
            let j = json!({
                "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                "Plaintext": B64.encode(&*plaintext),
            });
            if let Some(path) = output {
                write_private(path, &plaintext)?;
                Output::Text(format!("plaintext written to {}", path.display()), j)
            } else {
                Output::Raw(plaintext, j)
            }
        }
        Command::GenerateDataKey(a) | Command::GenerateDataKeyWithoutPlaintext(a) => {
            let req = GenerateDataKeyRequest {
                key_id: a.key_id.clone(),
                key_spec: a.key_spec.clone(),
                number_of_bytes: a.number_of_bytes.unwrap_or(0),
                aad: a.aad.bytes()?,
            };
            if matches!(cli.command, Command::GenerateDataKey(_)) {
                let r = c.crypto.generate_data_key(req).await?.into_inner();
                let pt = Zeroizing::new(B64.encode(&r.plaintext));
                let blob = B64.encode(&r.ciphertext_blob);
                Output::Text(
                    format!("Plaintext:      {}\nCiphertextBlob: {blob}", *pt),
                    json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                           "Plaintext": *pt, "CiphertextBlob": blob}),
                )
            } else {
                let r = c
                    .crypto
                    .generate_data_key_without_plaintext(req)
                    .await?
                    .into_inner();
                let blob = B64.encode(&r.ciphertext_blob);
                Output::Text(
                    blob.clone(),
                    json!({"KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                           "CiphertextBlob": blob}),
                )
            }
        }
        Command::ReEncrypt {
            ciphertext_blob,
            source_aad,
            destination_key_id,
            destination_aad,
        } => {
            let r = c
                .crypto
                .re_encrypt(ReEncryptRequest {
                    source_ciphertext_blob: b64(ciphertext_blob, "--ciphertext-blob")?,
                    source_aad: source_aad.as_bytes().to_vec(),
                    destination_key_id: destination_key_id.clone(),
                    destination_aad: destination_aad.as_bytes().to_vec(),
                })
                .await?
                .into_inner();
            let blob = B64.encode(&r.ciphertext_blob);
            Output::Text(
                blob.clone(),
                json!({"SourceKeyId": r.source_key_id,
                       "SourceKeyVersionId": r.source_key_version_id,
                       "KeyId": r.key_id, "KeyVersionId": r.key_version_id,
                       "CiphertextBlob": blob}),
            )
        }
        Command::NetworkRule(cmd) => {
            let (t, j) = hkms::cli::access::network_rule(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Policy(cmd) => {
            let (t, j) = hkms::cli::access::policy(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Aap(cmd) => {
            let (t, j) = hkms::cli::access::aap(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::ClientKey(cmd) => {
            let (t, j) = hkms::cli::access::client_key(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Alias(cmd) => {
            let (t, j) = hkms::cli::instance::alias(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Instance(cmd) => {
            let (t, j) = hkms::cli::instance::instance(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Ca(cmd) => {
            let (t, j) = hkms::cli::ca::ca(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::GenerateRandom { length } => {
            let r = c
                .crypto
                .generate_random(GenerateRandomRequest { length: *length })
                .await?
                .into_inner();
            let v = B64.encode(&r.random);
            Output::Text(v.clone(), json!({"Random": v}))
        }
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hkms: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(out) => {
            let mut stdout = std::io::stdout();
            let _ = match out {
                Output::Text(_, v) | Output::Raw(_, v) if cli.json => {
                    writeln!(
                        stdout,
                        "{}",
                        serde_json::to_string_pretty(&v).unwrap_or_default()
                    )
                }
                Output::Text(t, _) => writeln!(stdout, "{t}"),
                Output::Raw(bytes, _) => stdout.write_all(&bytes),
            };
            ExitCode::SUCCESS
        }
        Err(f) => {
            if cli.json {
                eprintln!("{}", json!({"Code": f.code, "Message": f.message}));
            } else {
                eprintln!("hkms: {}: {}", f.code, f.message);
            }
            ExitCode::FAILURE
        }
    }
}
