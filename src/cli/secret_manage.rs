//! `hkms secret describe|list|versions|update|delete|restore|enable|disable`, and how
//! secrets print:
//! labelled text that says what a secret's state allows, and JSON whose field names follow
//! the KMS API (SecretName, EncryptionKeyId, ...).

use super::access::Printed;
use super::key_args::parse_tag;
use super::key_show::{tags_json, tags_text};
use crate::client::Client;
use crate::proto::*;
use clap::{ArgGroup, Args};
use serde_json::{json, Value};
use tonic::Status;

/// The secret a command acts on.
#[derive(Debug, Clone, Args)]
pub struct SecretName {
    /// The secret's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only secrets whose name starts with this.
    #[arg(long, conflicts_with = "product")]
    pub prefix: Option<String>,
    /// Only the managed secrets of this product: the same as --prefix "<product>!".
    #[arg(long)]
    pub product: Option<String>,
    /// Only secrets carrying this tag (KEY= matches any value); repeat to require several.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    /// Page to show, from 1.
    #[arg(long, visible_alias = "page-number", default_value_t = 1)]
    pub page: u32,
    /// Secrets per page, 1 to 100.
    #[arg(long, default_value_t = 10)]
    pub page_size: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)))]
pub struct UpdateArgs {
    #[command(flatten)]
    pub secret: SecretName,
    /// The new description (empty clears it).
    #[arg(long, group = "change")]
    pub description: Option<String>,
    /// The new extended configuration: a JSON object of at most 1 KiB ('' removes it).
    #[arg(long, value_name = "JSON", group = "change")]
    pub extended_config: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub secret: SecretName,
    /// Days before the deletion is final: 7 to 30 (default 30).
    #[arg(long, value_name = "DAYS", conflicts_with = "force",
          value_parser = clap::value_parser!(u32).range(7..=30))]
    pub recovery_days: Option<u32>,
    /// Delete the secret and every version now, without a recovery window. Nothing is
    /// asked and nothing can bring it back.
    #[arg(long)]
    pub force: bool,
}

/// Width of the labels of `hkms secret describe`.
const LABEL: usize = 18;

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}

pub fn metadata_json(m: &SecretMetadata) -> Value {
    json!({
        "SecretName": m.secret_name,
        "Description": m.description,
        "EncryptionKeyId": m.encryption_key_id,
        "SecretType": m.secret_type,
        "SecretState": m.secret_state,
        "CreateTime": m.create_time,
        "UpdateTime": m.update_time,
        "PlannedDeleteTime": m.planned_delete_time,
        "Tags": tags_json(&m.tags),
        "ManagedProduct": m.managed_product,
        "HasPolicy": m.has_policy,
        "ExtendedConfig": m.extended_config,
        "VersionCount": m.version_count,
    })
}

/// What a secret's state allows, and how to change it.
fn state_words(m: &SecretMetadata) -> String {
    if m.secret_state == "PendingDeletion" {
        format!(
            "PendingDeletion: reads and writes are refused, and every version is deleted on \
             {date}.\n{pad}To keep it, before then: hkms secret restore {name}",
            date = m.planned_delete_time,
            pad = " ".repeat(LABEL),
            name = m.secret_name
        )
    } else if m.secret_state == "Disabled" {
        format!(
            "Disabled: reads and writes of its values are refused; its versions are kept.\n\
             {pad}To use it again: hkms secret enable {name}",
            pad = " ".repeat(LABEL),
            name = m.secret_name
        )
    } else {
        m.secret_state.clone()
    }
}

/// A secret as labelled lines.
pub fn metadata_text(m: &SecretMetadata) -> String {
    let tags = if m.tags.is_empty() {
        "none".to_owned()
    } else {
        tags_text(&m.tags).replace('\n', ", ")
    };
    let managed = if m.managed_product.is_empty() {
        "no".to_owned()
    } else {
        format!(
            "yes, by product {}: only its AAP creates, changes and deletes it",
            m.managed_product
        )
    };
    let rows = [
        ("SecretName", m.secret_name.clone()),
        ("State", state_words(m)),
        ("EncryptionKeyId", m.encryption_key_id.clone()),
        ("Description", m.description.clone()),
        ("Versions", m.version_count.to_string()),
        ("Tags", tags),
        ("ExtendedConfig", or_none(&m.extended_config).to_owned()),
        ("Managed", managed),
        (
            "SecretPolicy",
            if m.has_policy { "attached" } else { "none" }.to_owned(),
        ),
        ("CreateTime", m.create_time.clone()),
        ("UpdateTime", m.update_time.clone()),
    ];
    rows.iter()
        .map(|(label, value)| format!("{:<LABEL$}{value}", format!("{label}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A secret as text, and as `{"Secret": {...}}`.
pub fn printed(m: &SecretMetadata) -> Printed {
    (metadata_text(m), json!({ "Secret": metadata_json(m) }))
}

/// Every version of `name` (those without a stage too), oldest first.
async fn all_versions(c: &mut Client, name: &str, all: bool) -> Result<Vec<SecretVersion>, Status> {
    let mut versions = Vec::new();
    for page_number in 1.. {
        let r = c
            .secrets
            .list_secret_version_ids(ListSecretVersionIdsRequest {
                secret_name: name.to_owned(),
                include_deprecated: all,
                page_number,
                page_size: 100,
            })
            .await?
            .into_inner();
        let last = r.versions.is_empty();
        versions.extend(r.versions);
        if last || versions.len() as u64 >= r.total_count {
            break;
        }
    }
    Ok(versions)
}

/// The version of `name` that holds `stage`, if any.
pub async fn holder(c: &mut Client, name: &str, stage: &str) -> Result<Option<String>, Status> {
    Ok(all_versions(c, name, false)
        .await?
        .into_iter()
        .find(|v| v.version_stages.iter().any(|s| s == stage))
        .map(|v| v.version_id))
}

pub async fn describe(c: &mut Client, name: &str) -> Result<Printed, Status> {
    let r = c
        .secrets
        .describe_secret(DescribeSecretRequest {
            secret_name: name.to_owned(),
        })
        .await?
        .into_inner();
    Ok(printed(&r.secret.unwrap_or_default()))
}

pub async fn list(c: &mut Client, a: &ListArgs) -> Result<Printed, Status> {
    let name_prefix = match (&a.prefix, &a.product) {
        (_, Some(product)) => {
            crate::access::secrets::check_product(product)?;
            format!("{product}!")
        }
        (Some(p), None) => p.clone(),
        (None, None) => String::new(),
    };
    let r = c
        .secrets
        .list_secrets(ListSecretsRequest {
            name_prefix,
            tag_filters: a.tags.clone(),
            page_number: a.page,
            page_size: a.page_size,
        })
        .await?
        .into_inner();
    let mut text = format!(
        "{:<40} {:<16} {:>8} ENCRYPTION KEY",
        "NAME", "STATE", "VERSIONS"
    );
    for s in &r.secrets {
        text.push_str(&format!(
            "\n{:<40} {:<16} {:>8} {}",
            s.secret_name, s.secret_state, s.version_count, s.encryption_key_id
        ));
    }
    text.push_str(&format!(
        "\n(page {} of size {}; {} secret(s) in all)",
        r.page_number, r.page_size, r.total_count
    ));
    Ok((
        text,
        json!({
            "Secrets": r.secrets.iter().map(metadata_json).collect::<Vec<_>>(),
            "PageNumber": r.page_number, "PageSize": r.page_size,
            "TotalCount": r.total_count,
        }),
    ))
}

fn version_json(v: &SecretVersion) -> Value {
    json!({
        "VersionId": v.version_id, "VersionStages": v.version_stages,
        "CreateTime": v.create_time, "SecretDataType": v.secret_data_type,
    })
}

pub async fn versions(c: &mut Client, name: &str, all: bool) -> Result<Printed, Status> {
    let versions = all_versions(c, name, all).await?;
    let mut text = format!(
        "{:<38} {:<30} {:<7} CREATED",
        "VERSION ID", "STAGES", "TYPE"
    );
    for v in &versions {
        text.push_str(&format!(
            "\n{:<38} {:<30} {:<7} {}",
            v.version_id,
            or_none(&v.version_stages.join(",")),
            v.secret_data_type,
            v.create_time
        ));
    }
    if !all {
        text.push_str("\n(versions that hold no stage are left out; --all shows them)");
    }
    Ok((
        text,
        json!({
            "SecretName": name,
            "Versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            "TotalCount": versions.len(),
        }),
    ))
}

pub async fn update(c: &mut Client, a: &UpdateArgs) -> Result<Printed, Status> {
    let r = c
        .secrets
        .update_secret(UpdateSecretRequest {
            secret_name: a.secret.name.clone(),
            description: a.description.clone(),
            extended_config: a.extended_config.clone(),
        })
        .await?
        .into_inner();
    Ok(printed(&r.secret.unwrap_or_default()))
}

pub async fn delete(c: &mut Client, a: &DeleteArgs) -> Result<Printed, Status> {
    let name = &a.secret.name;
    let r = c
        .secrets
        .delete_secret(DeleteSecretRequest {
            secret_name: name.clone(),
            recovery_window_in_days: a.recovery_days.unwrap_or(0),
            force_delete_without_recovery: a.force,
        })
        .await?
        .into_inner();
    let text = if a.force {
        format!(
            "Secret {name} and every version of it are deleted, now and for good: there was \
             no recovery window, and nothing can restore it."
        )
    } else {
        format!(
            "Secret {name} is PendingDeletion: reads and writes are refused, and every version \
             is deleted on {date}.\nTo keep it, before then: hkms secret restore {name}",
            date = r.planned_delete_time
        )
    };
    Ok((
        text,
        json!({
            "SecretName": r.secret_name,
            "PlannedDeleteTime": r.planned_delete_time,
            "Recoverable": !a.force,
        }),
    ))
}

pub async fn restore(c: &mut Client, name: &str) -> Result<Printed, Status> {
    let r = c
        .secrets
        .restore_secret(RestoreSecretRequest {
            secret_name: name.to_owned(),
        })
        .await?
        .into_inner();
    let m = r.secret.unwrap_or_default();
    let (text, j) = printed(&m);
    Ok((
        format!(
            "Deletion of secret {name} cancelled; it is {} again.\n\n{text}",
            m.secret_state
        ),
        j,
    ))
}

pub async fn set_enabled(c: &mut Client, name: &str, enabled: bool) -> Result<Printed, Status> {
    let m = if enabled {
        c.secrets
            .enable_secret(EnableSecretRequest {
                secret_name: name.to_owned(),
            })
            .await?
            .into_inner()
            .secret
    } else {
        c.secrets
            .disable_secret(DisableSecretRequest {
                secret_name: name.to_owned(),
            })
            .await?
            .into_inner()
            .secret
    }
    .unwrap_or_default();
    let (text, j) = printed(&m);
    let head = if enabled {
        format!("Secret {name} is enabled: its values can be read and written.")
    } else {
        format!(
            "Secret {name} is disabled: every read and write of its values is refused until \
             `hkms secret enable {name}`."
        )
    };
    Ok((format!("{head}\n\n{text}"), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_deletion_says_how_to_restore() {
        let m = SecretMetadata {
            secret_name: "db".into(),
            secret_state: "PendingDeletion".into(),
            planned_delete_time: "2030-01-01T00:00:00Z".into(),
            managed_product: "aigw".into(),
            tags: vec![
                Tag {
                    tag_key: "a".into(),
                    tag_value: "1".into(),
                },
                Tag {
                    tag_key: "b".into(),
                    tag_value: "".into(),
                },
            ],
            ..Default::default()
        };
        let t = metadata_text(&m);
        assert!(t.contains("hkms secret restore db"), "{t}");
        assert!(t.contains("2030-01-01T00:00:00Z"), "{t}");
        assert!(t.contains("Tags:             a=1, b="), "{t}");
        assert!(t.contains("by product aigw"), "{t}");
        let j = metadata_json(&m);
        assert_eq!(j["ManagedProduct"], "aigw");
        assert_eq!(j["Tags"][0]["TagKey"], "a");
    }

    #[test]
    fn disabled_says_how_to_enable() {
        let m = SecretMetadata {
            secret_name: "db".into(),
            secret_state: "Disabled".into(),
            ..Default::default()
        };
        let t = metadata_text(&m);
        assert!(
            t.contains("State:            Disabled: reads and writes"),
            "{t}"
        );
        assert!(t.contains("hkms secret enable db"), "{t}");
        assert_eq!(metadata_json(&m)["SecretState"], "Disabled");
    }
}
