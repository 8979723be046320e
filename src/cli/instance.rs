//! `hkms instance`: instance-wide switches. `internet` turns the gateway's Internet
//! endpoint on and off; `key-deletion` blocks or allows scheduling the deletion of any key.

use super::access::Printed;
use super::hsm::{member_json, members_text};
use crate::client::Client;
use crate::proto::*;
use clap::Subcommand;
use serde_json::json;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// The gateway's Internet endpoint: off until the instance owner enables it.
    #[command(subcommand)]
    Internet(InternetCommand),
    /// Instance-wide deletion protection: while blocked, no key's deletion can be scheduled.
    #[command(subcommand)]
    KeyDeletion(KeyDeletionCommand),
}

#[derive(Debug, Subcommand)]
pub enum InternetCommand {
    /// Let the Internet endpoint answer (instance owner only). Cryptographic operations over
    /// it stay capped at 1,000 QPS whatever the tier.
    Enable,
    /// Refuse every request that arrives on the Internet endpoint (instance owner only).
    Disable,
    /// Show whether the Internet endpoint answers.
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
            c.access
                .get_internet_access(GetInternetAccessRequest {})
                .await?
                .into_inner()
                .enabled
        }
    };
    Ok((
        format!(
            "Internet access: {}",
            if enabled { "enabled" } else { "disabled" }
        ),
        json!({ "InternetAccess": enabled }),
    ))
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
    let warnings = super::access::expiry_warnings(c).await;
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
