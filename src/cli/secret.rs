//! `hkms secret`: secrets (database passwords, API keys, tokens) that hkmsd keeps encrypted
//! under a customer master key, in versions named by stages. This module holds the command
//! line and the commands that carry values (create, get, put) or move stages;
//! [`super::secret_manage`] runs the others and prints secrets, and
//! [`super::secret_policy`] handles secret policies.
//!
//! Values are read from a file or stdin (`--value TEXT` exists, and says that `ps` shows
//! it), are held in memory that is wiped after use, and are never logged.

use super::data_io::{self, Shown, Source};
use super::key_args::parse_tag;
use super::secret_policy::SecretPolicyCommand;
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

pub use super::secret_manage::{DeleteArgs, ListArgs, SecretName, UpdateArgs};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret and its first value (stage ACSCurrent), encrypted under a CMK.
    ///
    /// The value is sealed with a fresh data key that the CMK (an enabled AES key of the
    /// instance) protects inside an HSM. Give the value in a file or on stdin: --value puts
    /// it on the command line, where `ps` shows it to every user of the machine.
    ///
    /// A name "<product>!<identifier>" is a managed secret: only the AAP registered for that
    /// product (`hkms aap update <name> --managed-product <product>`) may create it.
    #[command(after_long_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Print a secret's value: the ACSCurrent version, or another stage or version.
    ///
    /// Text values are printed as they are; binary values as base64, or raw with --out.
    /// With --json the value is in SecretData (base64 for binary values), unless --out
    /// wrote it to a file.
    #[command(after_long_help = GET_EXAMPLES)]
    Get(GetArgs),
    /// Store a new value as a new version; it becomes ACSCurrent unless --stage says
    /// otherwise.
    ///
    /// When ACSCurrent moves to the new version, the version that held it becomes
    /// ACSPrevious. With --stage the new version gets those stages instead (custom stages
    /// such as "staging"), and ACSCurrent stays where it is.
    #[command(after_long_help = PUT_EXAMPLES)]
    Put(PutArgs),
    /// Move a stage to another version, give it to a version, or take it off one.
    ///
    /// With --to only, the version that holds the stage now (if any) gives it up. Moving
    /// ACSCurrent makes the version that held it ACSPrevious. ACSCurrent can only be moved,
    /// never removed.
    #[command(after_long_help = STAGE_EXAMPLES)]
    Stage(StageArgs),
    /// Show a secret: its state, CMK, versions, tags, policy, managing product.
    ///
    /// Example: hkms secret describe db/orders
    Describe(SecretName),
    /// List secrets, a page at a time, optionally filtered by name prefix, product or tags.
    #[command(after_long_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// List a secret's versions with their stages, oldest first.
    ///
    /// Versions that hold no stage (deprecated ones) are left out unless --all is given.
    ///
    /// Example: hkms secret versions db/orders --all
    Versions {
        #[command(flatten)]
        secret: SecretName,
        /// Also the versions that hold no stage.
        #[arg(long)]
        all: bool,
    },
    /// Change a secret's description or extended configuration.
    ///
    /// Example: hkms secret update db/orders --description "orders database, primary"
    Update(UpdateArgs),
    /// Delete a secret: after a recovery window (7 to 30 days, default 30), or at once with
    /// --force.
    ///
    /// During the recovery window reads and writes of the secret are refused and
    /// `hkms secret restore` brings it back. --force deletes every version at once: no
    /// question is asked, and it cannot be undone.
    #[command(after_long_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Cancel a secret's pending deletion; it can be read and changed again.
    ///
    /// A secret that was disabled before its deletion was scheduled stays disabled:
    /// `hkms secret enable` lets its values be read again.
    ///
    /// Example: hkms secret restore db/orders
    Restore(SecretName),
    /// Enable a disabled secret: its values can be read and written again.
    ///
    /// Example: hkms secret enable db/orders
    Enable(SecretName),
    /// Disable a secret: every read and write of its values is refused (SecretDisabled)
    /// until it is enabled again; nothing is deleted.
    ///
    /// Its versions, stages, metadata and policy stay as they are; describe, list, delete
    /// and restore still work. Use it to stop every application from reading a secret at
    /// once (a leaked password you are about to replace, a secret you mean to delete and
    /// want to see nobody missing first).
    #[command(after_long_help = DISABLE_EXAMPLES)]
    Disable(SecretName),
    /// Secret policies: which AAPs may do what with one secret (set, get, delete).
    #[command(subcommand)]
    Policy(SecretPolicyCommand),
}

/// Where a value comes from: exactly one of a file, stdin, or the command line.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ValueSource {
    /// Read the value from FILE ("-" for stdin), every byte of it: a newline at the end is
    /// part of the value.
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<PathBuf>,
    /// Read the value from stdin, up to its end (e.g. `printf %s "$PW" | hkms secret ...`).
    #[arg(long)]
    pub value_stdin: bool,
    /// The value itself, as text. Avoid for real secrets: every user of the machine can
    /// read it in `ps` while the command runs, and your shell may keep it in its history;
    /// use --value-file or --value-stdin.
    #[arg(long, value_name = "TEXT")]
    pub value: Option<String>,
}

/// A value and how it is to be read back.
#[derive(Debug, Args)]
pub struct ValueArgs {
    #[command(flatten)]
    pub source: ValueSource,
    /// The value is binary (any bytes) rather than UTF-8 text: `hkms secret get` prints it
    /// as base64, or writes it raw with --out.
    #[arg(long)]
    pub binary: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub secret: SecretName,
    /// The CMK that protects every version: an enabled AES key, by id or alias
    /// (`alias/<name>`).
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Id of the first version: 1 to 64 letters, digits, '_', '.', '-'. Default: a UUID.
    #[arg(long, value_name = "VERSION_ID")]
    pub version_id: Option<String>,
    /// Free text shown by `secret describe`.
    #[arg(long, default_value = "")]
    pub description: String,
    /// A tag KEY=VALUE; repeat for more.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    /// A JSON object of your own (connection details...), at most 1 KiB, returned with
    /// every value.
    #[arg(long, value_name = "JSON")]
    pub extended_config: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub secret: SecretName,
    /// Read the version in this stage (ACSCurrent, ACSPrevious or a custom one). Default:
    /// ACSCurrent.
    #[arg(long, conflicts_with = "version_id")]
    pub stage: Option<String>,
    /// Read this version (`hkms secret versions` lists them).
    #[arg(long)]
    pub version_id: Option<String>,
    /// Write the value, raw, to FILE (created with mode 0600) instead of printing it; it
    /// is then left out of the --json output too.
    #[arg(long, visible_alias = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub secret: SecretName,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Id of the new version: 1 to 64 letters, digits, '_', '.', '-'. Default: a UUID.
    #[arg(long, value_name = "VERSION_ID")]
    pub version_id: Option<String>,
    /// A stage the new version gets; repeat for several. Default: ACSCurrent. ACSPrevious
    /// cannot be given: it follows the version ACSCurrent leaves.
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub secret: SecretName,
    /// The stage to move: ACSCurrent, ACSPrevious or a custom one (1 to 64 letters,
    /// digits, '_', '.', '-').
    #[arg(long)]
    pub stage: String,
    /// The version that holds the stage now. Default with --to: whichever holds it.
    #[arg(long, value_name = "VERSION_ID", required_unless_present = "to")]
    pub from: Option<String>,
    /// The version that gets the stage. Without it the stage is taken off --from.
    #[arg(long, value_name = "VERSION_ID")]
    pub to: Option<String>,
}

/// Examples of `hkms secret --help`.
pub const EXAMPLES: &str = "\
Examples:
  hkms secret create db/orders --key alias/secrets --value-file ./orders-pw.txt
  hkms secret get db/orders
  printf %s \"$NEW_PW\" | hkms secret put db/orders --value-stdin
  hkms secret get db/orders --stage ACSPrevious
  hkms secret versions db/orders
  hkms secret list --prefix db/
  hkms secret policy set db/orders --file policy.json
  hkms secret delete db/orders --recovery-days 7
  hkms secret restore db/orders

`hkms secret <command> --help` has more examples for each command.";

const CREATE_EXAMPLES: &str = "\
Examples:
  hkms secret create db/orders --key alias/secrets --value-file ./orders-pw.txt
  printf %s \"$PW\" | hkms secret create db/orders --key <KeyId> --value-stdin \\
      --description \"orders database\" --tag team=payments \\
      --extended-config '{\"DBHost\": \"db.local\", \"DBPort\": 5432}'
  hkms secret create tls/orders-key --key <KeyId> --value-file key.der --binary";

const GET_EXAMPLES: &str = "\
Examples:
  hkms secret get db/orders                          # ACSCurrent
  hkms secret get db/orders --stage ACSPrevious
  hkms secret get db/orders --version-id v2
  hkms secret get tls/orders-key --out key.der       # raw bytes, mode 0600
  hkms --json secret get db/orders                   # SecretData, VersionId, stages...";

const PUT_EXAMPLES: &str = "\
Examples:
  hkms secret put db/orders --value-file ./new-pw.txt             # becomes ACSCurrent
  hkms secret put db/orders --value-stdin --version-id v3 --stage staging
  hkms secret stage db/orders --stage ACSCurrent --to v3          # promote it later";

const STAGE_EXAMPLES: &str = "\
Examples:
  hkms secret stage db/orders --stage ACSCurrent --to v3      # v2 becomes ACSPrevious
  hkms secret stage db/orders --stage ACSCurrent --from v3 --to v2   # roll back
  hkms secret stage db/orders --stage staging --to v4
  hkms secret stage db/orders --stage staging --from v4       # take it off";

const LIST_EXAMPLES: &str = "\
Examples:
  hkms secret list
  hkms secret list --prefix db/ --tag team=payments
  hkms secret list --product aigw          # managed secrets of product aigw (aigw!...)
  hkms secret list --page 2 --page-size 50";

const DISABLE_EXAMPLES: &str = "\
Examples:
  hkms secret disable db/orders        # reads now answer SecretDisabled
  hkms secret describe db/orders       # State: Disabled
  hkms secret enable db/orders         # readable again, versions unchanged";

const DELETE_EXAMPLES: &str = "\
Examples:
  hkms secret delete db/orders                     # recoverable for 30 days
  hkms secret delete db/orders --recovery-days 7
  hkms secret restore db/orders                    # changed your mind
  hkms secret delete db/orders --force             # now, for good";

impl ValueSource {
    fn source(&self) -> Source<'_> {
        match (&self.value, &self.value_file) {
            (Some(t), _) => Source::Text(t),
            (None, Some(p)) => Source::File(p),
            (None, None) => Source::File(Path::new("-")),
        }
    }
}

impl ValueArgs {
    /// The value's bytes and its data type (`text` or `binary`).
    fn read(&self) -> Result<(Zeroizing<Vec<u8>>, &'static str), Status> {
        let source = self.source.source();
        let stdin = source == Source::File(Path::new("-"));
        if stdin && std::io::stdin().is_terminal() {
            super::err(
                "Type the value, then Ctrl-D on a line of its own (it shows as you type; \
                 --value-file keeps it off the screen).",
            );
        }
        let data = data_io::read(source, "secret value")?;
        if data.is_empty() {
            return Err(data_io::usage("the secret value is empty"));
        }
        if self.binary {
            return Ok((data, "binary"));
        }
        if std::str::from_utf8(&data).is_err() {
            return Err(data_io::usage(
                "the value is not UTF-8 text; add --binary to store it as binary",
            ));
        }
        if !matches!(source, Source::Text(_)) && data.ends_with(b"\n") {
            super::err(
                "hkms: note: the value ends with a newline, which is stored as part of it \
                 (printf %s writes a value without one).",
            );
        }
        Ok((data, "text"))
    }
}

/// Runs `hkms secret ...`.
pub async fn secret(c: &mut Client, cmd: &SecretCommand) -> Result<Shown, Status> {
    use super::secret_manage as manage;
    let printed = match cmd {
        SecretCommand::Create(a) => create(c, a).await?,
        SecretCommand::Get(a) => return get(c, a).await,
        SecretCommand::Put(a) => put(c, a).await?,
        SecretCommand::Stage(a) => stage(c, a).await?,
        SecretCommand::Describe(s) => manage::describe(c, &s.name).await?,
        SecretCommand::List(a) => manage::list(c, a).await?,
        SecretCommand::Versions { secret, all } => manage::versions(c, &secret.name, *all).await?,
        SecretCommand::Update(a) => manage::update(c, a).await?,
        SecretCommand::Delete(a) => manage::delete(c, a).await?,
        SecretCommand::Restore(s) => manage::restore(c, &s.name).await?,
        SecretCommand::Enable(s) => manage::set_enabled(c, &s.name, true).await?,
        SecretCommand::Disable(s) => manage::set_enabled(c, &s.name, false).await?,
        SecretCommand::Policy(p) => super::secret_policy::policy(c, p).await?,
    };
    Ok(Shown::Text(printed))
}

async fn create(c: &mut Client, a: &CreateArgs) -> Result<super::access::Printed, Status> {
    let (mut data, data_type) = a.value.read()?;
    let r = c
        .secrets
        .create_secret(CreateSecretRequest {
            secret_name: a.secret.name.clone(),
            // Moved into the request (the transport's copy is beyond reach); none is left here.
            secret_data: std::mem::take(&mut *data),
            secret_data_type: data_type.into(),
            version_id: a.version_id.clone().unwrap_or_default(),
            encryption_key_id: a.key.clone(),
            description: a.description.clone(),
            tags: a.tags.clone(),
            extended_config: a.extended_config.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let m = r.secret.unwrap_or_default();
    let (text, mut j) = super::secret_manage::printed(&m);
    j["VersionId"] = json!(r.version_id);
    Ok((
        format!(
            "Secret {} created; its first version {} is ACSCurrent.\n\n{text}",
            m.secret_name, r.version_id
        ),
        j,
    ))
}

async fn get(c: &mut Client, a: &GetArgs) -> Result<Shown, Status> {
    let r = c
        .secrets
        .get_secret_value(GetSecretValueRequest {
            secret_name: a.secret.name.clone(),
            version_stage: a.stage.clone().unwrap_or_default(),
            version_id: a.version_id.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let data = Zeroizing::new(r.secret_data);
    let binary = r.secret_data_type == "binary";
    let mut j = json!({
        "SecretName": r.secret_name, "SecretType": r.secret_type,
        "SecretDataType": r.secret_data_type, "VersionId": r.version_id,
        "VersionStages": r.version_stages, "CreateTime": r.create_time,
        "ExtendedConfig": r.extended_config,
    });
    if let Some(path) = &a.out {
        data_io::write_out(path, &data, true)?;
        return Ok(Shown::Text((
            format!(
                "Value of secret {} (version {}, {} bytes of {}) written to {}",
                r.secret_name,
                r.version_id,
                data.len(),
                r.secret_data_type,
                path.display()
            ),
            j,
        )));
    }
    if binary {
        let encoded = Zeroizing::new(data_io::encode(&data));
        j["SecretData"] = json!(*encoded);
        return Ok(Shown::Text((encoded.to_string(), j)));
    }
    j["SecretData"] = json!(String::from_utf8_lossy(&data));
    let mut raw = data;
    // Exactly the value for pipes and files; a terminal also gets the line ended.
    if std::io::stdout().is_terminal() && !raw.ends_with(b"\n") {
        raw.push(b'\n');
    }
    Ok(Shown::Raw(raw, j))
}

async fn put(c: &mut Client, a: &PutArgs) -> Result<super::access::Printed, Status> {
    let (mut data, data_type) = a.value.read()?;
    let r = c
        .secrets
        .put_secret_value(PutSecretValueRequest {
            secret_name: a.secret.name.clone(),
            // Moved into the request (the transport's copy is beyond reach); none is left here.
            secret_data: std::mem::take(&mut *data),
            secret_data_type: data_type.into(),
            version_id: a.version_id.clone().unwrap_or_default(),
            version_stages: a.stages.clone(),
        })
        .await?
        .into_inner();
    Ok((
        format!(
            "Version {} of secret {} stored; its stages: {}.",
            r.version_id,
            r.secret_name,
            r.version_stages.join(", ")
        ),
        json!({
            "SecretName": r.secret_name, "VersionId": r.version_id,
            "VersionStages": r.version_stages,
        }),
    ))
}

async fn stage(c: &mut Client, a: &StageArgs) -> Result<super::access::Printed, Status> {
    let name = &a.secret.name;
    let to = a.to.clone().unwrap_or_default();
    let from = match &a.from {
        Some(f) => f.clone(),
        // Whichever version holds the stage now gives it up (none: it is only given).
        None => super::secret_manage::holder(c, name, &a.stage)
            .await?
            .unwrap_or_default(),
    };
    let unchanged = from == to;
    let from = if unchanged && a.from.is_none() {
        String::new()
    } else {
        from
    };
    c.secrets
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_name: name.clone(),
            version_stage: a.stage.clone(),
            remove_from_version: from.clone(),
            move_to_version: to.clone(),
        })
        .await?;
    let mut text = match (from.is_empty(), to.is_empty()) {
        _ if unchanged => format!(
            "{to} holds stage {} of secret {name} already; nothing changed.",
            a.stage
        ),
        (false, false) => format!(
            "Stage {} of secret {name} moved from {from} to {to}.",
            a.stage
        ),
        (true, _) => format!("Stage {} of secret {name} given to {to}.", a.stage),
        (false, true) => format!("Stage {} of secret {name} taken off {from}.", a.stage),
    };
    if a.stage == "ACSCurrent" && !from.is_empty() && !unchanged {
        text.push_str(&format!(" {from} is ACSPrevious now."));
    }
    Ok((
        text,
        json!({
            "SecretName": name, "VersionStage": a.stage,
            "RemoveFromVersion": from, "MoveToVersion": to,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "secret")]
    struct SecretCli {
        #[command(subcommand)]
        cmd: SecretCommand,
    }

    fn parse(args: &[&str]) -> Result<SecretCommand, clap::Error> {
        SecretCli::try_parse_from(std::iter::once("secret").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn a_value_comes_from_exactly_one_place() {
        let SecretCommand::Create(a) =
            parse(&["create", "db", "--key", "k", "--value-file", "pw.txt"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(a.value.source.source(), Source::File(Path::new("pw.txt")));
        assert!(!a.value.binary);
        let SecretCommand::Put(a) = parse(&["put", "db", "--value-stdin", "--binary"]).unwrap()
        else {
            panic!("not put");
        };
        assert_eq!(a.value.source.source(), Source::File(Path::new("-")));
        assert!(a.value.binary && a.stages.is_empty());
        assert!(parse(&["create", "db", "--key", "k"]).is_err(), "no value");
        assert!(parse(&["put", "db", "--value", "x", "--value-stdin"]).is_err());
        assert!(parse(&["create", "db", "--value", "x"]).is_err(), "no key");
    }

    #[test]
    fn text_values_are_utf8_unless_binary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.bin");
        std::fs::write(&f, [0xffu8, 0]).unwrap();
        let file = f.to_str().unwrap();
        let SecretCommand::Put(a) = parse(&["put", "db", "--value-file", file]).unwrap() else {
            panic!("not put");
        };
        let e = a.value.read().unwrap_err();
        assert!(e.message().contains("add --binary"), "{e}");
        let SecretCommand::Put(a) =
            parse(&["put", "db", "--value-file", file, "--binary"]).unwrap()
        else {
            panic!("not put");
        };
        let (data, kind) = a.value.read().unwrap();
        assert_eq!((&data[..], kind), (&[0xffu8, 0][..], "binary"));
        std::fs::write(&f, b"").unwrap();
        let e = a.value.read().unwrap_err();
        assert!(e.message().contains("empty"), "{e}");
    }

    #[test]
    fn get_takes_a_stage_or_a_version_and_stage_needs_a_version() {
        assert!(parse(&["get", "db", "--stage", "ACSPrevious"]).is_ok());
        assert!(parse(&["get", "db", "--version-id", "v1"]).is_ok());
        assert!(parse(&["get", "db", "--stage", "s", "--version-id", "v1"]).is_err());
        assert!(parse(&["stage", "db", "--stage", "s"]).is_err());
        assert!(parse(&["stage", "db", "--stage", "s", "--to", "v2"]).is_ok());
        assert!(parse(&["stage", "db", "--stage", "s", "--from", "v2"]).is_ok());
    }

    #[test]
    fn every_command_and_option_has_help() {
        data_io::assert_all_helped(SecretCli::command());
    }
}
