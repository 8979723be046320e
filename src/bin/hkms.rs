//! hkms: the operator and scripting CLI for hkmsd.

use clap::{Parser, Subcommand};
use hkms::cli::{self, data_io::Shown};
use hkms::client::Client;
use hkms::proto::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Command-line client of hkmsd, the hkms key management daemon.
///
/// Every command talks to hkmsd over its Unix socket. Binary values (ciphertexts, data keys,
/// signatures, MACs, random bytes) are printed as base64. Add --json for machine-readable
/// output whose field names follow the KMS API (KeyId, CiphertextBlob, ...).
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
    /// Show the instance, whether key deletion is blocked, and every HSM member.
    Status,
    /// Customer master keys: create, rotate, tag, protect, delete, import your own.
    ///
    /// Create and describe keys, make versions (by hand or on a rotation schedule), tag
    /// them, protect them from deletion, schedule and cancel their deletion, and import
    /// material of your own into EXTERNAL keys.
    ///
    /// A key is in one of four states. Enabled: usable. Disabled: every use is refused
    /// until it is enabled again. PendingDeletion: every use is refused and its material is
    /// destroyed at the end of the pending window, unless the deletion is cancelled.
    /// PendingImport: an EXTERNAL key without material; usable once material is imported.
    ///
    /// Commands that act on one key take it as an argument or with --key-id, as its id or
    /// an alias (alias/<name>).
    #[command(subcommand)]
    Key(hkms::cli::key::KeyCommand),
    /// Inspect and change the HSM members of the cluster.
    #[command(subcommand)]
    Hsm(hkms::cli::hsm::HsmCommand),
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
    /// API keys: SecretId / SecretKey pairs for Tencent Cloud API 3.0 clients (SDKs, tccli).
    #[command(subcommand)]
    ApiKey(hkms::cli::api_key::ApiKeyCommand),
    /// Secrets: versioned values (passwords, API keys, tokens) kept encrypted under a CMK.
    ///
    /// Each value is a version of its secret, sealed with a fresh data key under the
    /// secret's CMK. Stages name versions: ACSCurrent is the one read by default, and when
    /// it moves ACSPrevious follows to the version that held it. A deleted secret can be
    /// restored during its recovery window. Names "<product>!<identifier>" are managed
    /// secrets: only the AAP registered for the product creates, changes or deletes them;
    /// operators may read them and manage their secret policies.
    ///
    /// Values come from a file or stdin (--value-file, --value-stdin) so that they stay out
    /// of `ps` and shell history.
    #[command(subcommand, after_long_help = cli::secret::EXAMPLES)]
    Secret(cli::secret::SecretCommand),
    /// Key aliases: other names of keys (alias/<name>), usable wherever a key id is.
    #[command(subcommand)]
    Alias(hkms::cli::alias::AliasCommand),
    /// Instance settings: the Internet endpoint, whether key deletion may be scheduled.
    ///
    /// `internet` turns cryptographic operations on the gateway's Internet endpoint on and
    /// off (`internet secrets`: secret reads there); `key-deletion` blocks or allows
    /// scheduling the deletion of any key.
    #[command(subcommand)]
    Instance(hkms::cli::instance::InstanceCommand),
    /// The instance CA: create it, issue the gateway's certificate, export the CA bundle.
    #[command(subcommand)]
    Ca(hkms::cli::ca::CaCommand),
    /// Jobs hkmsd runs by the clock: list them, run the due ones now.
    ///
    /// Automatic rotation, deletion at the end of a pending window, expiry of imported
    /// material.
    #[command(subcommand)]
    Jobs(hkms::cli::jobs::JobsCommand),
    /// The audit trail: export it, verify an export offline, follow it, hash a value.
    ///
    /// Every request that reaches hkmsd is recorded before it is answered, in a hash chain
    /// with checkpoints signed inside the HSMs. `export` writes a file that `verify` checks
    /// anywhere, without hkmsd; `tail` follows the trail; `hash` gives the keyed hash the
    /// trail shows in place of a value (an AAD, a refused secret name); `status` shows
    /// whether it is being written.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Check that an HSM does everything hkms relies on, and write a report.
    #[command(long_about = cli::certify::ABOUT, after_long_help = cli::certify::after_help())]
    Certify(cli::certify::CertifyArgs),
    #[command(flatten)]
    Symmetric(cli::symmetric::SymmetricCommand),
    #[command(flatten)]
    Signature(cli::signature::SignatureCommand),
    #[command(flatten)]
    PublicKey(cli::public_key::PublicKeyCommand),
    #[command(flatten)]
    AsymmetricCipher(cli::asymmetric_cipher::AsymmetricCipherCommand),
    #[command(flatten)]
    DataKeyPair(cli::data_key_pair::DataKeyPairCommand),
    #[command(flatten)]
    Mac(cli::mac::MacCommand),
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

/// What a command prints: JSON for --json, text otherwise.
enum Output {
    /// Text lines, and the JSON form.
    Text(String, Value),
    /// Raw bytes for stdout (decrypt without --json), and the JSON form.
    Raw(Zeroizing<Vec<u8>>, Value),
    /// A check that came out false (verify, verify-mac): printed like `Text`, exit status 1.
    NotValid(String, Value),
}

impl From<Shown> for Output {
    fn from(s: Shown) -> Output {
        match s {
            Shown::Text((t, j)) | Shown::Verdict(true, (t, j)) => Output::Text(t, j),
            Shown::Verdict(false, (t, j)) => Output::NotValid(t, j),
            Shown::Raw(bytes, j) => Output::Raw(bytes, j),
        }
    }
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
                Some(p) => hkms::cli::hsm::read_secret_file(p)?,
                None => Zeroizing::new(String::new()),
            };
            if !cli.json {
                cli::err("Creating the domain key and copying it to every member...");
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
            let (t, j) = hkms::cli::instance::status(&mut c).await?;
            Output::Text(t, j)
        }
        Command::Hsm(cmd) => {
            let (t, j) = hkms::cli::hsm::hsm(&mut c, cmd, cli.json).await?;
            Output::Text(t, j)
        }
        Command::Key(cmd) => {
            let (t, j) = hkms::cli::key::key(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Symmetric(cmd) => cli::symmetric::symmetric(&mut c, cmd).await?.into(),
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
        Command::ApiKey(cmd) => {
            let (t, j) = hkms::cli::api_key::api_key(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Secret(cmd) => cli::secret::secret(&mut c, cmd).await?.into(),
        Command::Alias(cmd) => {
            let (t, j) = hkms::cli::alias::alias(&mut c, cmd).await?;
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
        Command::Jobs(cmd) => {
            let (t, j) = hkms::cli::jobs::jobs(&mut c, cmd).await?;
            Output::Text(t, j)
        }
        Command::Audit(_) => return Err(Failure::usage("hkms audit runs on its own")),
        Command::Certify(_) => return Err(Failure::usage("hkms certify runs on its own")),
        Command::Signature(cmd) => cli::signature::signature(&mut c, cmd).await?.into(),
        Command::PublicKey(cmd) => cli::public_key::public_key(&mut c, cmd).await?.into(),
        Command::AsymmetricCipher(cmd) => cli::asymmetric_cipher::asymmetric_cipher(&mut c, cmd)
            .await?
            .into(),
        Command::DataKeyPair(cmd) => cli::data_key_pair::data_key_pair(&mut c, cmd).await?.into(),
        Command::Mac(cmd) => cli::mac::mac(&mut c, cmd).await?.into(),
    })
}

/// Parses the command line. With --json, a usage error is reported as JSON too, like every
/// other error; help and version print as usual.
fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
            let text = e.to_string();
            let message = text.lines().next().unwrap_or_default();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            cli::err(&json!({"Code": "InvalidParameter", "Message": message}).to_string());
            ExitCode::from(2)
        } else {
            e.exit()
        }
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Local: talks to a PKCS#11 library, not to hkmsd (and starts its own runtime).
    if let Command::Certify(args) = &cli.command {
        return cli::certify::run(args, cli.json);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            cli::err(&format!("hkms: cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Command::Audit(cmd) = &cli.command {
        return runtime.block_on(cli::audit::run(cmd, &socket_path(&cli), cli.json));
    }
    match runtime.block_on(run(&cli)) {
        Ok(out) => {
            let mut stdout = std::io::stdout();
            let status = match out {
                Output::NotValid(..) => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            };
            let _ = match out {
                Output::Text(_, v) | Output::Raw(_, v) | Output::NotValid(_, v) if cli.json => {
                    writeln!(
                        stdout,
                        "{}",
                        serde_json::to_string_pretty(&v).unwrap_or_default()
                    )
                }
                Output::Text(t, _) | Output::NotValid(t, _) => writeln!(stdout, "{t}"),
                Output::Raw(bytes, _) => stdout.write_all(&bytes),
            };
            status
        }
        Err(f) => {
            if cli.json {
                cli::err(&json!({"Code": f.code, "Message": f.message}).to_string());
            } else {
                cli::err(&format!("hkms: {}: {}", f.code, f.message));
            }
            ExitCode::FAILURE
        }
    }
}
