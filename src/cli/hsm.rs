//! `hkms hsm`: the HSM members of the cluster. See their state, enrol a new member (the
//! domain key is copied to it HSM-to-HSM), drain, resume and remove members.

use super::access::Printed;
use crate::client::Client;
use crate::error::KmsError;
use crate::proto::*;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum HsmCommand {
    /// Per member: state, sessions in use, operations served, errors, last error, latency,
    /// and what it can do.
    ///
    /// What it can do: the key specs whose keys it can hold (RSA_2048, EC_P256,
    /// HMAC_SHA_256, ...) and the algorithms it can run (RSA_PSS_SHA_256, ECDSA_SHA_256,
    /// RSAES_OAEP_SHA_1, HMAC_SHA_256, ...), found from its PKCS#11 mechanisms and known
    /// quirks when it connects. hkmsd sends each operation only to members that can do it;
    /// one that no member offers fails with UnsupportedAlgorithm or UnsupportedKeySpec.
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
        /// HSM profile name (hsm-profiles/<name>.toml): softhsm2, kryoptic, thales-luna,
        /// entrust-nshield, utimaco-securityserver, aws-cloudhsm, yubihsm2, securosys-primus,
        /// or one in hkmsd's profiles_dir. A token that lacks a mechanism the profile requires
        /// is refused.
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

pub fn member_json(m: &MemberStatus) -> Value {
    json!({
        "Name": m.name, "Token": m.token_label, "State": m.state,
        "SessionsInUse": m.sessions_in_use, "MaxSessions": m.max_sessions,
        "Operations": m.operations, "Errors": m.errors, "LastError": m.last_error,
        "MeanLatencyMicros": m.mean_latency_micros, "CachedKeys": m.cached_keys,
        "Module": m.module, "UnwrapTemplate": m.unwrap_template, "Calls": m.calls,
        "KeySpecs": m.key_specs, "Algorithms": m.algorithms,
        "Profile": m.profile, "ProfileFindings": m.profile_findings,
    })
}

pub fn members_text(members: &[MemberStatus]) -> String {
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
        for finding in &m.profile_findings {
            text.push_str(&format!("  {}: {finding}\n", m.name));
        }
    }
    text.trim_end().to_owned()
}

/// Width of the capability lines of `hkms hsm status`.
const CAPABILITY_WIDTH: usize = 100;

/// What each member can do: its key specs and algorithms, as wrapped lines under the member's
/// name.
pub fn capabilities_text(members: &[MemberStatus]) -> String {
    let mut text = String::from("CAPABILITIES");
    for m in members {
        text.push_str(&format!("\n{}", m.name));
        for (label, names) in [
            ("key specs: ", &m.key_specs),
            ("algorithms:", &m.algorithms),
        ] {
            let lead = format!("  {label} ");
            if names.is_empty() {
                text.push_str(&format!("\n{lead}(not known until the member connects)"));
                continue;
            }
            let mut line = lead.clone();
            for name in names {
                if line.len() > lead.len() && line.len() + 1 + name.len() > CAPABILITY_WIDTH {
                    text.push_str(&format!("\n{}", line.trim_end()));
                    line = " ".repeat(lead.len());
                }
                line.push_str(name);
                line.push(' ');
            }
            text.push_str(&format!("\n{}", line.trim_end()));
        }
    }
    text
}

/// The first line of a PIN file, trimmed; the whole file is wiped from memory after use.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, Status> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Status::from(KmsError::invalid(format!(
            "cannot read {}: {e}",
            path.display()
        )))
    })?);
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or("").trim().to_owned(),
    ))
}

/// Runs `hkms hsm ...`; `quiet` leaves out the progress line on stderr (for --json).
pub async fn hsm(c: &mut Client, h: &HsmCommand, quiet: bool) -> Result<Printed, Status> {
    Ok(match h {
        HsmCommand::Status => {
            let r = c.admin.get_status(GetStatusRequest {}).await?.into_inner();
            (
                format!(
                    "{}\n\n{}",
                    members_text(&r.members),
                    capabilities_text(&r.members)
                ),
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
            if !quiet {
                super::err(&format!(
                    "Copying the domain key to {name} and checking it..."
                ));
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
            (
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
            (
                format!("Member {} is {}.", m.name, m.state),
                json!({"Member": member_json(&m)}),
            )
        }
        HsmCommand::Remove { name } => {
            c.admin
                .remove_member(RemoveMemberRequest { name: name.clone() })
                .await?;
            (format!("Member {name} removed."), json!({"Removed": name}))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_wrap_under_each_member() {
        let algorithms: Vec<String> = (0..30).map(|i| format!("ALGORITHM_{i:02}")).collect();
        let members = [
            MemberStatus {
                name: "hsm-0".into(),
                key_specs: vec!["RSA_2048".into(), "EC_P256".into()],
                algorithms: algorithms.clone(),
                ..Default::default()
            },
            MemberStatus {
                name: "hsm-1".into(),
                ..Default::default()
            },
        ];
        let text = capabilities_text(&members);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            ["CAPABILITIES", "hsm-0", "  key specs:  RSA_2048 EC_P256"]
        );
        assert!(lines[3].starts_with("  algorithms: ALGORITHM_00 ALGORITHM_01"));
        assert!(lines.iter().all(|l| l.len() <= CAPABILITY_WIDTH), "{text}");
        for a in &algorithms {
            assert!(text.contains(a.as_str()), "{a} missing: {text}");
        }
        assert!(lines[4].starts_with("              ALGORITHM_"), "{text}");
        assert!(text.ends_with("hsm-1\n  key specs:  (not known until the member connects)\n  algorithms: (not known until the member connects)"), "{text}");
    }
}
