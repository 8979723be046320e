//! `hkms key`: customer master keys and their lifecycle. Create, list and describe keys;
//! enable and disable them; make versions by hand or on a rotation schedule; tag them;
//! protect them from deletion, schedule and cancel their deletion; and import material of
//! one's own into EXTERNAL keys ([`super::key_import`]). The command line itself is in
//! [`super::key_args`]; how keys print, in [`super::key_show`].

use super::access::Printed;
use super::key_import;
use super::key_show::{self, metadata_json, tags_json, tags_text, version_json, KeyTags};
use crate::client::Client;
use crate::proto::*;
use serde_json::json;
use tonic::Status;

pub use super::key_args::{KeyCommand, KeyRef, ProtectionCommand, RotationCommand};

fn usage(message: impl Into<String>) -> Status {
    crate::error::KmsError::invalid(message).into()
}

async fn describe(c: &mut Client, key_id: String) -> Result<KeyMetadata, Status> {
    Ok(c.keys
        .describe_key(DescribeKeyRequest { key_id })
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default())
}

async fn all_versions(c: &mut Client, key_id: &str) -> Result<Vec<KeyVersion>, Status> {
    let mut versions = Vec::new();
    for page_number in 1.. {
        let r = c
            .keys
            .list_key_versions(ListKeyVersionsRequest {
                key_id: key_id.to_owned(),
                page_number,
                page_size: 100,
            })
            .await?
            .into_inner();
        let last = r.key_versions.is_empty();
        versions.extend(r.key_versions);
        if last || versions.len() as u64 >= r.total_count {
            break;
        }
    }
    Ok(versions)
}

/// Runs `hkms key ...`.
pub async fn key(c: &mut Client, cmd: &KeyCommand) -> Result<Printed, Status> {
    Ok(match cmd {
        KeyCommand::Create(a) => {
            if a.origin == "EXTERNAL" && a.rotation_interval.is_some() {
                return Err(usage(
                    "EXTERNAL keys do not rotate automatically (hkmsd cannot make their \
                     material); leave out --rotation-interval",
                ));
            }
            let m = c
                .keys
                .create_key(CreateKeyRequest {
                    key_spec: a.key_spec.clone(),
                    key_usage: a.key_usage.clone().unwrap_or_default(),
                    description: a.description.clone(),
                    internal: false,
                    origin: a.origin.clone(),
                    enable_automatic_rotation: a.rotation_interval.is_some(),
                    rotation_interval_seconds: a.rotation_interval.unwrap_or(0),
                    tags: a.tags.clone(),
                    deletion_protection: a.protection,
                })
                .await?
                .into_inner()
                .key_metadata
                .unwrap_or_default();
            key_show::key_printed(&m, KeyTags::Omitted)
        }
        KeyCommand::Describe(k) => {
            let m = describe(c, k.id()).await?;
            // Tags are listed apart; a daemon that cannot list them still describes keys.
            let tags = c
                .keys
                .list_resource_tags(ListResourceTagsRequest {
                    key_id: m.key_id.clone(),
                })
                .await
                .map(|r| r.into_inner().tags)
                .map_err(|s| status_words(&s));
            let shown = match &tags {
                Ok(tags) => KeyTags::Known(tags),
                Err(why) => KeyTags::Failed(why),
            };
            key_show::key_printed(&m, shown)
        }
        KeyCommand::List(a) => {
            let r = c
                .keys
                .list_keys(ListKeysRequest {
                    page_number: a.page_number,
                    page_size: a.page_size,
                    key_state: a.state.clone().unwrap_or_default(),
                    key_spec: a.spec.clone().unwrap_or_default(),
                    key_usage: a.usage.clone().unwrap_or_default(),
                    origin: a.origin.clone().unwrap_or_default(),
                    tags: a.tags.clone(),
                })
                .await?
                .into_inner();
            let ids: Vec<&str> = r.keys.iter().map(|k| k.key_id.as_str()).collect();
            let mut text = ids.join("\n");
            text.push_str(&format!(
                "\n(page {} of size {}; {} key(s) in all)",
                r.page_number, r.page_size, r.total_count
            ));
            (
                text.trim_start().to_owned(),
                json!({
                    "Keys": ids.iter().map(|k| json!({"KeyId": k})).collect::<Vec<_>>(),
                    "PageNumber": r.page_number, "PageSize": r.page_size,
                    "TotalCount": r.total_count,
                }),
            )
        }
        KeyCommand::Enable(k) => {
            let r = c.keys.enable_key(EnableKeyRequest { key_id: k.id() });
            key_show::key_printed(
                &r.await?.into_inner().key_metadata.unwrap_or_default(),
                KeyTags::Omitted,
            )
        }
        KeyCommand::Disable(k) => {
            let r = c.keys.disable_key(DisableKeyRequest { key_id: k.id() });
            key_show::key_printed(
                &r.await?.into_inner().key_metadata.unwrap_or_default(),
                KeyTags::Omitted,
            )
        }
        KeyCommand::UpdateDescription { key, description } => {
            let r = c.keys.update_key_description(UpdateKeyDescriptionRequest {
                key_id: key.id(),
                description: description.clone(),
            });
            key_show::key_printed(
                &r.await?.into_inner().key_metadata.unwrap_or_default(),
                KeyTags::Omitted,
            )
        }
        KeyCommand::CreateVersion(k) => {
            let v = c
                .keys
                .create_key_version(CreateKeyVersionRequest { key_id: k.id() })
                .await?
                .into_inner()
                .key_version
                .unwrap_or_default();
            (
                format!(
                    "Version {} of key {} created; it is the primary version now.",
                    v.key_version_id, v.key_id
                ),
                json!({ "KeyVersion": version_json(&v) }),
            )
        }
        KeyCommand::Versions(k) => {
            let versions = all_versions(c, &k.id()).await?;
            (
                key_show::versions_text(&versions),
                json!({
                    "KeyVersions": versions.iter().map(version_json).collect::<Vec<_>>(),
                    "TotalCount": versions.len(),
                }),
            )
        }
        KeyCommand::Version { key, version_id } => {
            let v = c
                .keys
                .describe_key_version(DescribeKeyVersionRequest {
                    key_id: key.id(),
                    key_version_id: version_id.clone(),
                })
                .await?
                .into_inner()
                .key_version
                .unwrap_or_default();
            (
                key_show::version_text(&v),
                json!({ "KeyVersion": version_json(&v) }),
            )
        }
        KeyCommand::Rotation(RotationCommand::Set {
            key,
            interval,
            disable,
        }) => {
            let m = c
                .keys
                .update_rotation_policy(UpdateRotationPolicyRequest {
                    key_id: key.id(),
                    enable_automatic_rotation: !*disable,
                    rotation_interval_seconds: interval.unwrap_or(0),
                })
                .await?
                .into_inner()
                .key_metadata
                .unwrap_or_default();
            rotation_printed(&m)
        }
        KeyCommand::Rotation(RotationCommand::Show(k)) => {
            rotation_printed(&describe(c, k.id()).await?)
        }
        KeyCommand::ScheduleDeletion {
            key,
            pending_window_days,
        } => {
            let r = c.keys.schedule_key_deletion(ScheduleKeyDeletionRequest {
                key_id: key.id(),
                pending_window_in_days: *pending_window_days,
            });
            let r = r.await?.into_inner();
            let m = r.key_metadata.unwrap_or_default();
            if let Some(warning) = protected_secrets_warning(&m, &r.protected_secrets) {
                super::err(&format!("hkms: warning: {warning}"));
            }
            (
                format!(
                    "Key {id} is PendingDeletion: every use is refused, and its material is \
                     destroyed on {date}.\nTo keep the key, before then: hkms key \
                     cancel-deletion --key-id {id}",
                    id = m.key_id,
                    date = m.deletion_date
                ),
                json!({
                    "KeyMetadata": metadata_json(&m),
                    "ProtectedSecrets": r.protected_secrets,
                }),
            )
        }
        KeyCommand::CancelDeletion(k) => {
            let r = c
                .keys
                .cancel_key_deletion(CancelKeyDeletionRequest { key_id: k.id() });
            let m = r.await?.into_inner().key_metadata.unwrap_or_default();
            (
                format!(
                    "Deletion of key {} cancelled; it is {} now.",
                    m.key_id, m.key_state
                ),
                json!({ "KeyMetadata": metadata_json(&m) }),
            )
        }
        KeyCommand::Protection(p) => {
            let (key, on, description) = match p {
                ProtectionCommand::On { key, description } => (key, true, description.clone()),
                ProtectionCommand::Off(key) => (key, false, String::new()),
            };
            let r = c
                .keys
                .set_deletion_protection(SetDeletionProtectionRequest {
                    key_id: key.id(),
                    enable_deletion_protection: on,
                    deletion_protection_description: description,
                });
            let m = r.await?.into_inner().key_metadata.unwrap_or_default();
            (
                format!(
                    "Deletion protection of key {}: {}",
                    m.key_id,
                    key_show::protection_words(&m)
                ),
                json!({ "KeyMetadata": metadata_json(&m) }),
            )
        }
        KeyCommand::ImportParams(a) => key_import::import_params(c, a).await?,
        KeyCommand::Import(a) => key_import::import(c, a).await?,
        KeyCommand::DeleteMaterial(k) => {
            let r = c
                .keys
                .delete_key_material(DeleteKeyMaterialRequest { key_id: k.id() });
            let m = r.await?.into_inner().key_metadata.unwrap_or_default();
            (
                format!(
                    "Material of key {} deleted; the key is {} now. What it encrypted stays \
                     unreadable until the same material is imported again.",
                    m.key_id, m.key_state
                ),
                json!({ "KeyMetadata": metadata_json(&m) }),
            )
        }
        KeyCommand::Tag { key_id, tags } => {
            let r = c.keys.tag_resource(TagResourceRequest {
                key_id: key_id.clone(),
                tags: tags.clone(),
            });
            let tags = r.await?.into_inner().tags;
            (tags_text(&tags), json!({ "Tags": tags_json(&tags) }))
        }
        KeyCommand::Untag { key_id, tag_keys } => {
            let r = c.keys.untag_resource(UntagResourceRequest {
                key_id: key_id.clone(),
                tag_keys: tag_keys.clone(),
            });
            let tags = r.await?.into_inner().tags;
            (tags_text(&tags), json!({ "Tags": tags_json(&tags) }))
        }
        KeyCommand::Tags(k) => {
            let r = c
                .keys
                .list_resource_tags(ListResourceTagsRequest { key_id: k.id() });
            let tags = r.await?.into_inner().tags;
            (tags_text(&tags), json!({ "Tags": tags_json(&tags) }))
        }
    })
}

/// What a key scheduled for deletion takes with it: the secrets it protects, which cannot be
/// read from now on, nor ever once the key is gone. `None` when it protects none.
fn protected_secrets_warning(m: &KeyMetadata, secrets: &[String]) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    Some(format!(
        "key {id} protects {n} secret(s): {names}. They cannot be read while its deletion is \
         pending, and are lost for good once it is deleted on {date}. To keep them readable: \
         hkms key cancel-deletion --key-id {id}",
        id = m.key_id,
        n = secrets.len(),
        names = secrets.join(", "),
        date = m.deletion_date,
    ))
}

/// `Code: message` of a failed call, for a line of text.
fn status_words(s: &Status) -> String {
    let code = crate::error::error_code(s).unwrap_or_else(|| format!("{:?}", s.code()));
    let message = s.message();
    let message = message
        .strip_prefix(&format!("{code}: "))
        .unwrap_or(message);
    format!("{code}: {message}")
}

fn rotation_printed(m: &KeyMetadata) -> Printed {
    (
        format!("Key {}: rotation {}", m.key_id, key_show::rotation_words(m)),
        json!({
            "KeyId": m.key_id,
            "AutomaticRotation": m.automatic_rotation,
            "RotationInterval": key_show::interval_json(m.rotation_interval_seconds),
            "NextRotationDate": m.next_rotation_date,
            "LastRotationDate": m.last_rotation_date,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `hkms key ...` on its own.
    #[derive(Debug, Parser)]
    struct KeyCli {
        #[command(subcommand)]
        cmd: KeyCommand,
    }

    fn parse(args: &[&str]) -> Result<KeyCommand, clap::Error> {
        KeyCli::try_parse_from(std::iter::once("key").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn create_parses_lifecycle_options() {
        let KeyCommand::Create(a) = parse(&[
            "create",
            "--origin",
            "EXTERNAL",
            "--tag",
            "team=payments",
            "--tag",
            "env=prod",
            "--protection",
        ])
        .unwrap() else {
            panic!("not create");
        };
        assert_eq!(a.origin, "EXTERNAL");
        assert_eq!(a.key_spec, "Aliyun_AES_256");
        assert!(a.protection && a.rotation_interval.is_none());
        let keys: Vec<_> = a.tags.iter().map(|t| t.tag_key.as_str()).collect();
        assert_eq!(keys, ["team", "env"]);

        let KeyCommand::Create(a) = parse(&["create", "--rotation-interval", "90d"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(a.rotation_interval, Some(7_776_000));
        assert_eq!(a.origin, "Aliyun_KMS");
        assert!(!a.protection);

        assert!(parse(&["create", "--rotation-interval", "400d"]).is_err());
        assert!(parse(&["create", "--tag", "novalue"]).is_err());
        assert!(parse(&["create", "--origin", "OTHER"]).is_err());
    }

    #[test]
    fn key_id_is_an_argument_or_an_option() {
        for args in [&["describe", "k1"][..], &["describe", "--key-id", "k1"]] {
            let KeyCommand::Describe(k) = parse(args).unwrap() else {
                panic!("not describe");
            };
            assert_eq!(k.id(), "k1");
        }
        assert!(parse(&["describe"]).is_err());
        assert!(parse(&["describe", "k1", "--key-id", "k2"]).is_err());
    }

    #[test]
    fn schedule_deletion_window_defaults_to_30_and_is_7_to_366() {
        let KeyCommand::ScheduleDeletion {
            key,
            pending_window_days,
        } = parse(&["schedule-deletion", "--key-id", "k1"]).unwrap()
        else {
            panic!("not schedule-deletion");
        };
        assert_eq!((key.id().as_str(), pending_window_days), ("k1", 30));
        assert!(parse(&["schedule-deletion", "k1", "--pending-window-days", "7"]).is_ok());
        assert!(parse(&["schedule-deletion", "k1", "--pending-window-days", "366"]).is_ok());
        assert!(parse(&["schedule-deletion", "k1", "--pending-window-days", "6"]).is_err());
        assert!(parse(&["schedule-deletion", "k1", "--pending-window-days", "367"]).is_err());
    }

    #[test]
    fn rotation_set_needs_an_interval_or_disable() {
        let KeyCommand::Rotation(RotationCommand::Set {
            interval, disable, ..
        }) = parse(&["rotation", "set", "--key-id", "k1", "--interval", "30d"]).unwrap()
        else {
            panic!("not rotation set");
        };
        assert_eq!((interval, disable), (Some(30 * 86_400), false));
        assert!(parse(&["rotation", "set", "k1", "--disable"]).is_ok());
        assert!(parse(&["rotation", "set", "k1"]).is_err());
        assert!(parse(&["rotation", "set", "k1", "--disable", "--interval", "30d"]).is_err());
    }

    #[test]
    fn tag_and_untag_take_lists() {
        let KeyCommand::Tag { key_id, tags } =
            parse(&["tag", "--key-id", "k1", "a=1", "b=2"]).unwrap()
        else {
            panic!("not tag");
        };
        assert_eq!((key_id.as_str(), tags.len()), ("k1", 2));
        assert!(parse(&["tag", "--key-id", "k1"]).is_err());
        assert!(parse(&["tag", "--key-id", "k1", "a"]).is_err());
        let KeyCommand::Untag { tag_keys, .. } =
            parse(&["untag", "--key-id", "k1", "a", "b"]).unwrap()
        else {
            panic!("not untag");
        };
        assert_eq!(tag_keys, ["a", "b"]);
    }

    #[test]
    fn a_key_that_protects_secrets_warns_and_names_them() {
        let m = KeyMetadata {
            key_id: "k1".into(),
            deletion_date: "2030-01-08T00:00:00Z".into(),
            ..Default::default()
        };
        assert_eq!(protected_secrets_warning(&m, &[]), None);
        let w = protected_secrets_warning(&m, &["db/orders".into(), "aigw!t".into()]).unwrap();
        for part in [
            "2 secret(s): db/orders, aigw!t",
            "2030-01-08",
            "cancel-deletion --key-id k1",
        ] {
            assert!(w.contains(part), "{w}");
        }
    }

    #[test]
    fn every_command_and_option_has_help() {
        use clap::CommandFactory;
        crate::cli::data_io::assert_all_helped(KeyCli::command());
    }
}
