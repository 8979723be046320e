//! `hkms instance`: instance-wide switches. `internet` turns cryptographic operations on
//! the gateway's Internet endpoint on and off, and `internet secrets` secret reads there;
//! `key-deletion` blocks or allows scheduling the deletion of any key.

use super::access::Printed;
use super::hsm::{member_json, members_text};
use crate::client::Client;
use crate::proto::*;
use clap::Subcommand;
use serde_json::json;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// The gateway's Internet endpoint: cryptographic operations are off until the instance
    /// owner enables them; secret reads are on until the owner turns them off.
    #[command(subcommand)]
    Internet(InternetCommand),
    /// Instance-wide deletion protection: while blocked, no key's deletion can be scheduled.
    #[command(subcommand)]
    KeyDeletion(KeyDeletionCommand),
}

#[derive(Debug, Subcommand)]
pub enum InternetCommand {
    /// Answer cryptographic operations on the Internet endpoint (instance owner only).
    ///
    /// They stay capped at 1,000 QPS whatever the tier, and each AAP still needs a policy
    /// naming a Public network rule.
    Enable,
    /// Refuse cryptographic operations on the Internet endpoint (instance owner only).
    ///
    /// Secret reads are not affected: `hkms instance internet secrets disable` turns them
    /// off.
    Disable,
    /// Show what the Internet endpoint answers: cryptographic operations, secret reads.
    Status,
    /// Secret reads (GetSecretValue) on the Internet endpoint: on by default, even while
    /// Internet access for cryptographic operations is disabled.
    ///
    /// A read still needs a policy of the AAP that grants it on the secret and names a
    /// Public network rule admitting the caller's address. Over the Internet endpoint the
    /// gateway caps secret reads at `[throttle] secret_qps` (450 at most).
    #[command(subcommand)]
    Secrets(InternetSecretsCommand),
}

#[derive(Debug, Subcommand)]
pub enum InternetSecretsCommand {
    /// Answer secret reads on the Internet endpoint (the default; instance owner only).
    Enable,
    /// Refuse secret reads on the Internet endpoint (instance owner only); the private
    /// endpoint keeps answering them.
    Disable,
    /// Show whether secret reads are answered on the Internet endpoint.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum KeyDeletionCommand {
    /// Refuse `hkms key schedule-deletion` for every key.
    ///
    /// Whatever each key's own deletion protection; `hkms status` shows KeyDeletionBlocked.
    Block,
    /// Allow key deletions to be scheduled again.
    ///
    /// Each key's own deletion protection still applies.
    Allow,
    /// Show whether key deletion is blocked.
    Status,
}

/// Runs `hkms instance ...`.
pub async fn instance(c: &mut Client, cmd: &InstanceCommand) -> Result<Printed, Status> {
    match cmd {
        InstanceCommand::Internet(cmd) => internet(c, cmd).await,
        InstanceCommand::KeyDeletion(cmd) => key_deletion(c, cmd).await,
    }
}

async fn key_deletion(c: &mut Client, cmd: &KeyDeletionCommand) -> Result<Printed, Status> {
    let blocked = match cmd {
        KeyDeletionCommand::Block | KeyDeletionCommand::Allow => {
            c.admin
                .set_key_deletion_blocked(SetKeyDeletionBlockedRequest {
                    blocked: matches!(cmd, KeyDeletionCommand::Block),
                })
                .await?
                .into_inner()
                .blocked
        }
        KeyDeletionCommand::Status => {
            c.admin
                .get_status(GetStatusRequest {})
                .await?
                .into_inner()
                .key_deletion_blocked
        }
    };
    Ok((
        key_deletion_words(blocked).to_owned(),
        json!({ "KeyDeletionBlocked": blocked }),
    ))
}

/// One line on the instance-wide key deletion switch (also in `hkms status`).
pub fn key_deletion_words(blocked: bool) -> &'static str {
    if blocked {
        "Key deletion: blocked (no key's deletion can be scheduled; \
         `hkms instance key-deletion allow` lifts it)"
    } else {
        "Key deletion: allowed (keys without deletion protection can be scheduled for deletion)"
    }
}

async fn internet(c: &mut Client, cmd: &InternetCommand) -> Result<Printed, Status> {
    let enabled = match cmd {
        InternetCommand::Secrets(cmd) => return internet_secrets(c, cmd).await,
        InternetCommand::Enable | InternetCommand::Disable => {
            c.access
                .set_internet_access(SetInternetAccessRequest {
                    enabled: matches!(cmd, InternetCommand::Enable),
                })
                .await?
                .into_inner()
                .enabled
        }
        InternetCommand::Status => {
            let enabled = c
                .access
                .get_internet_access(GetInternetAccessRequest {})
                .await?
                .into_inner()
                .enabled;
            let secrets = internet_secret_reads(c).await?;
            return Ok((
                format!(
                    "{}\n{}",
                    internet_words(enabled),
                    internet_secrets_words(secrets)
                ),
                json!({ "InternetAccess": enabled, "InternetSecretReads": secrets }),
            ));
        }
    };
    Ok((
        internet_words(enabled).to_owned(),
        json!({ "InternetAccess": enabled }),
    ))
}

async fn internet_secret_reads(c: &mut Client) -> Result<bool, Status> {
    Ok(c.access
        .get_internet_secret_access(GetInternetSecretAccessRequest {})
        .await?
        .into_inner()
        .enabled)
}

async fn internet_secrets(c: &mut Client, cmd: &InternetSecretsCommand) -> Result<Printed, Status> {
    let enabled = match cmd {
        InternetSecretsCommand::Enable | InternetSecretsCommand::Disable => {
            c.access
                .set_internet_secret_access(SetInternetSecretAccessRequest {
                    enabled: matches!(cmd, InternetSecretsCommand::Enable),
                })
                .await?
                .into_inner()
                .enabled
        }
        InternetSecretsCommand::Status => internet_secret_reads(c).await?,
    };
    Ok((
        internet_secrets_words(enabled).to_owned(),
        json!({ "InternetSecretReads": enabled }),
    ))
}

fn internet_words(enabled: bool) -> &'static str {
    if enabled {
        "Internet access: enabled (cryptographic operations are answered on the Internet endpoint)"
    } else {
        "Internet access: disabled (cryptographic operations on the Internet endpoint are refused)"
    }
}

fn internet_secrets_words(enabled: bool) -> &'static str {
    if enabled {
        "Secret reads over the Internet: enabled (GetSecretValue is answered on the Internet endpoint)"
    } else {
        "Secret reads over the Internet: disabled (`hkms instance internet secrets enable` turns them on)"
    }
}

/// Runs `hkms status`: the instance, its key deletion switch, every HSM member, and
/// warnings (ClientKeys about to expire).
pub async fn status(c: &mut Client) -> Result<Printed, Status> {
    let r = c.admin.get_status(GetStatusRequest {}).await?.into_inner();
    let mut text = if r.initialized {
        format!(
            "Instance {} (domain key {})\n{}\n",
            r.instance_id,
            r.domain_key_id,
            key_deletion_words(r.key_deletion_blocked)
        )
    } else {
        "Instance not initialised: run `hkms init`.\n".to_owned()
    };
    text.push_str(&members_text(&r.members));
    let mut warnings = super::access::expiry_warnings(c).await;
    warnings.extend(super::api_key::expiry_warnings(c).await);
    for w in &warnings {
        text.push_str(&format!("\nWARNING: {w}"));
    }
    Ok((
        text,
        json!({
            "Initialized": r.initialized, "InstanceId": r.instance_id,
            "DomainKeyId": r.domain_key_id,
            "KeyDeletionBlocked": r.key_deletion_blocked,
            "Members": r.members.iter().map(member_json).collect::<Vec<_>>(),
            "Version": r.version,
            "Warnings": warnings,
        }),
    ))
}
