//! The actions on secrets rather than values: UpdateDescription, DescribeSecret,
//! ListSecrets, ListSecretVersionIds, DeleteSecret, RestoreSecret, EnableSecret and
//! DisableSecret.

use super::super::json::Fields;
use super::errors::{ssm_error, table, Exists};
use super::fields::status;
use super::fields::{flag, int, missing, refuse_unless_default, required, tag_filters, TagFilter};
use crate::front::tencent::errors::TcError;
use crate::front::tencent::json::{fields, unix};
use crate::ops::{self, Ctx};
use crate::secrets::manage::{Deletion, Filter, MAX_RECOVERY_DAYS, MIN_RECOVERY_DAYS};
use crate::secrets::names::managed_product;
use crate::secrets::stages::MAX_VERSIONS;
use crate::store::records::SecretRecord;
use serde::Deserialize;
use serde_json::{json, Value};

/// The fields of DescribeSecret, ListSecretVersionIds, RestoreSecret, EnableSecret and
/// DisableSecret: the secret's name only.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct SecretNameRequest {
    secret_name: Option<String>,
}

/// UpdateDescription's fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct UpdateDescriptionRequest {
    secret_name: Option<String>,
    description: Option<String>,
}

/// ListSecrets' fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ListSecretsRequest {
    #[serde(default, deserialize_with = "int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    order_type: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    state: Option<i64>,
    search_secret_name: Option<String>,
    tag_filters: Option<Vec<TagFilter>>,
    #[serde(default, deserialize_with = "int")]
    secret_type: Option<i64>,
    product_name: Option<String>,
    #[serde(default, deserialize_with = "int")]
    encrypt_type: Option<i64>,
    #[serde(rename = "InstanceID")]
    instance_id: Option<String>,
}

/// DeleteSecret's fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct DeleteSecretRequest {
    secret_name: Option<String>,
    #[serde(default, deserialize_with = "int")]
    recovery_window_in_days: Option<i64>,
    #[serde(default, deserialize_with = "flag")]
    #[serde(rename = "CleanSSHKey")]
    clean_ssh_key: Option<bool>,
    #[serde(default, deserialize_with = "int")]
    delete_mode: Option<i64>,
}

/// Limit of ListSecrets when none (or 0) is given.
const DEFAULT_LIMIT: i64 = 20;
/// Largest Limit of ListSecrets.
const MAX_LIMIT: i64 = 1000;

fn name_only(name: &str) -> Fields {
    fields(json!({ "SecretName": name }))
}

/// UpdateDescription.
pub(super) fn update_description(
    ctx: Ctx<'_>,
    r: UpdateDescriptionRequest,
) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let Some(description) = r.description.as_deref() else {
        return Err(missing("Description"));
    };
    let rec = ops::secrets::update(ctx, name, Some(description), None)
        .map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    Ok(name_only(&rec.name))
}

/// The fields DescribeSecret and ListSecrets share.
fn common(rec: &SecretRecord) -> Fields {
    fields(json!({
        "SecretName": rec.name,
        "Description": rec.description,
        "KmsKeyId": rec.kms_key_id,
        "CreateUin": 0,
        "CreateUinString": "",
        "Status": status(rec),
        "DeleteTime": rec.planned_delete_unix,
        "CreateTime": unix(&rec.create_time),
        "SecretType": 0,
        // The managing product of a managed secret (`<product>!<id>`).
        "ProductName": managed_product(&rec.name).unwrap_or(""),
        "ResourceID": "",
        "ResourceName": "",
        "ProjectID": 0,
        "AssociatedInstanceIDs": [],
        "TargetUin": 0,
        "TargetUinString": "",
        "RotationFrequency": 0,
        "EncryptType": 0,
        "EncryptSwitching": false,
    }))
}

/// DescribeSecret.
pub(super) fn describe(ctx: Ctx<'_>, r: SecretNameRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let rec =
        ops::secrets::describe(ctx, name).map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    let mut out = common(&rec);
    out.insert("RotationStatus".into(), false.into());
    out.insert("AdditionalConfig".into(), rec.extended_config.into());
    out.insert("AccountInfoList".into(), json!([]));
    Ok(out)
}

/// A secret in a ListSecrets answer.
fn listed(rec: &SecretRecord) -> Value {
    let mut out = common(rec);
    out.insert("KmsKeyType".into(), "CUSTOMER".into());
    out.insert("RotationStatus".into(), 0.into());
    out.insert("NextRotationTime".into(), 0.into());
    out.insert("RotationBeginTime".into(), "".into());
    Value::Object(out)
}

/// What ListSecrets keeps of the secrets the caller may list.
#[derive(Debug, Default)]
struct Wanted {
    /// The Tencent state (`State` 1..3); `None` for all. `Some("")` matches none (states
    /// of cloud product secrets, which hkms does not keep).
    state: Option<&'static str>,
    search: String,
    tags: Vec<(String, Vec<String>)>,
    /// `SecretType` or `EncryptType` other than 0: no hkms secret is such.
    none: bool,
}

impl Wanted {
    fn parse(r: ListSecretsRequest) -> Result<Wanted, TcError> {
        let state = match r.state.unwrap_or(0) {
            0 => None,
            1 => Some("Enabled"),
            2 => Some("Disabled"),
            3 => Some("PendingDelete"),
            4 | 5 => Some(""),
            n => {
                return Err(TcError::invalid(format!(
                "State {n} must be 0 (all), 1 (Enabled), 2 (Disabled), 3 (PendingDelete), 4 or 5"
            )))
            }
        };
        let secret_type = r.secret_type.unwrap_or(0);
        if !(0..=4).contains(&secret_type) {
            return Err(TcError::invalid(format!(
                "SecretType {secret_type} must be 0 to 4"
            )));
        }
        refuse_unless_default(
            "ProductName",
            r.product_name.as_deref(),
            "",
            "UnsupportedOperation",
            "hkms keeps no cloud product secrets (SecretType 1); a secret managed by a product is named <product>!<id>, and SearchSecretName \"<product>!\" lists them",
        )?;
        refuse_unless_default(
            "InstanceID",
            r.instance_id.as_deref(),
            "",
            "UnsupportedOperation",
            "hkms keeps no secrets of cloud product instances; leave it out",
        )?;
        Ok(Wanted {
            state,
            search: r.search_secret_name.unwrap_or_default(),
            tags: tag_filters(r.tag_filters)?,
            none: secret_type != 0 || r.encrypt_type.unwrap_or(0) != 0,
        })
    }

    fn keeps(&self, rec: &SecretRecord) -> bool {
        !self.none
            && self.state.is_none_or(|s| s == status(rec))
            && rec.name.contains(&self.search)
            && self.tags.iter().all(|(key, values)| {
                rec.tags
                    .iter()
                    .any(|t| &t.key == key && (values.is_empty() || values.contains(&t.value)))
            })
    }
}

/// ListSecrets: the secrets the caller may list, filtered, by creation time (newest first
/// unless OrderType 1), from Offset, at most Limit of them, and how many match in all.
pub(super) fn list(ctx: Ctx<'_>, r: ListSecretsRequest) -> Result<Fields, TcError> {
    let offset = r.offset.unwrap_or(0);
    if offset < 0 {
        return Err(TcError::invalid("Offset must be 0 or more"));
    }
    let limit = match r.limit.unwrap_or(0) {
        0 => DEFAULT_LIMIT,
        n if (1..=MAX_LIMIT).contains(&n) => n,
        n => {
            return Err(TcError::invalid(format!(
                "Limit {n} must be 1 to {MAX_LIMIT} (0: {DEFAULT_LIMIT})"
            )))
        }
    };
    let newest_first = match r.order_type.unwrap_or(0) {
        0 => true,
        1 => false,
        n => {
            return Err(TcError::invalid(format!(
                "OrderType {n} must be 0 (newest first) or 1 (oldest first)"
            )))
        }
    };
    let wanted = Wanted::parse(r)?;
    let mut found: Vec<SecretRecord> = ops::secrets::list_all(ctx, &Filter::default())
        .map_err(|e| table(Exists::Secret, e))?
        .into_iter()
        .filter(|rec| wanted.keeps(rec))
        .collect();
    // By creation time, then by name (the listing's order: the sort is stable).
    if newest_first {
        found.sort_by_key(|rec| std::cmp::Reverse(unix(&rec.create_time)));
    } else {
        found.sort_by_key(|rec| unix(&rec.create_time));
    }
    let total = found.len();
    let page: Vec<Value> = found
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(listed)
        .collect();
    Ok(fields(json!({
        "TotalCount": total,
        "SecretMetadatas": page,
    })))
}

/// ListSecretVersionIds: every version of the secret, oldest first.
pub(super) fn list_versions(ctx: Ctx<'_>, r: SecretNameRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let (versions, _, _, _) = ops::secrets::list_versions(ctx, name, true, 1, MAX_VERSIONS as u32)
        .map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"VersionId": v.version_id, "CreateTime": unix(&v.create_time)}))
        .collect();
    Ok(fields(json!({
        "SecretName": name,
        "Versions": versions,
    })))
}

/// DeleteSecret: a disabled secret, now (RecoveryWindowInDays 0) or after 7 to 30 days.
///
/// Without RecoveryWindowInDays, Tencent deletes at once; hkms schedules the deletion
/// after [`MAX_RECOVERY_DAYS`] instead, so that only a request that asks for an immediate,
/// unrecoverable deletion in so many words gets one. (The Python SDK does not sign
/// `X-TC-Action`: a relay could send another action's `{"SecretName"}` body as DeleteSecret.)
pub(super) fn delete(ctx: Ctx<'_>, r: DeleteSecretRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let days = r
        .recovery_window_in_days
        .unwrap_or(i64::from(MAX_RECOVERY_DAYS));
    let (min, max) = (i64::from(MIN_RECOVERY_DAYS), i64::from(MAX_RECOVERY_DAYS));
    if days != 0 && !(min..=max).contains(&days) {
        // Tencent allows 1 to 6 days too; hkms keeps a secret it deletes later for a week
        // at least, so that a mistaken deletion can still be undone.
        let shorter = if (1..min).contains(&days) {
            format!(
                "hkms keeps a secret whose deletion is scheduled for at least {min} days, so that RestoreSecret can still undo it; "
            )
        } else {
            String::new()
        };
        return Err(TcError::invalid(format!(
            "RecoveryWindowInDays {days}: {shorter}send {min} to {max} to schedule the deletion, or 0 to delete the secret and every version of it at once"
        )));
    }
    if r.clean_ssh_key.unwrap_or(false) {
        return Err(TcError::invalid(
            "CleanSSHKey applies to SSH key pair secrets, which hkms does not keep",
        ));
    }
    if let Some(mode) = r.delete_mode.filter(|m| *m != 0) {
        return Err(TcError::new(
            "UnsupportedOperation",
            format!("DeleteMode {mode} is not supported by hkms: it deletes secrets, never accounts (DeleteMode 0)"),
        ));
    }
    let how = Deletion {
        recovery_window_in_days: u32::try_from(days).unwrap_or(0),
        force: days == 0,
        only_disabled: true,
    };
    let due = ops::secrets::delete(ctx, name, how)
        .map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    Ok(fields(json!({
        "SecretName": name,
        "DeleteTime": due.unwrap_or_else(crate::clock::now_unix),
    })))
}

/// RestoreSecret: cancels a pending deletion; the secret is disabled, as it was when it was
/// deleted (EnableSecret enables it).
pub(super) fn restore(ctx: Ctx<'_>, r: SecretNameRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let rec =
        ops::secrets::restore(ctx, name).map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    Ok(name_only(&rec.name))
}

/// EnableSecret (`enabled`) or DisableSecret.
pub(super) fn set_enabled(
    ctx: Ctx<'_>,
    r: SecretNameRequest,
    enabled: bool,
) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let rec = ops::secrets::set_enabled(ctx, name, enabled)
        .map_err(|e| ssm_error(ctx, name, Exists::Secret, e))?;
    Ok(name_only(&rec.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::TagRecord;

    fn rec(name: &str, tags: &[(&str, &str)]) -> SecretRecord {
        SecretRecord {
            name: name.into(),
            create_time: "2026-01-02T03:04:05Z".into(),
            tags: tags
                .iter()
                .map(|(k, v)| TagRecord {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn wanted(v: Value) -> Result<Wanted, TcError> {
        Wanted::parse(super::super::fields::parse(v)?)
    }

    #[test]
    fn list_filters_by_state_name_and_tags() {
        let db = rec("prod-db", &[("team", "db"), ("env", "prod")]);
        let mut off = rec("old-web", &[("team", "web")]);
        off.disabled = true;
        let keeps = |v: Value, r: &SecretRecord| wanted(v).unwrap().keeps(r);
        assert!(keeps(json!({}), &db) && keeps(json!({}), &off));
        assert!(keeps(json!({"State": 1}), &db) && !keeps(json!({"State": 1}), &off));
        assert!(keeps(json!({"State": 2}), &off) && !keeps(json!({"State": 3}), &off));
        assert!(!keeps(json!({"State": 4}), &db));
        assert!(keeps(json!({"SearchSecretName": "db"}), &db));
        assert!(!keeps(json!({"SearchSecretName": "db"}), &off));
        let team = |values: Value| json!({"TagFilters": [{"TagKey": "team", "TagValue": values}]});
        assert!(keeps(team(json!(["db", "web"])), &db) && keeps(team(json!(["db", "web"])), &off));
        assert!(keeps(team(json!(["db"])), &db) && !keeps(team(json!(["db"])), &off));
        assert!(keeps(team(json!([])), &off));
        let env = json!({"TagFilters": [{"TagKey": "env"}]});
        assert!(keeps(env.clone(), &db) && !keeps(env, &off));
        assert!(!keeps(json!({"SecretType": 1}), &db));
        assert!(!keeps(json!({"EncryptType": 1}), &db));
        for bad in [
            json!({"State": 6}),
            json!({"SecretType": 9}),
            json!({"State": "x"}),
        ] {
            assert!(wanted(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_described_in_tencents_fields() {
        let mut r = rec("aigw!token", &[]);
        r.kms_key_id = "k1".into();
        r.planned_delete_unix = 1_800_000_000;
        let d = Value::Object(common(&r));
        assert_eq!(d["Status"], "PendingDelete");
        assert_eq!(d["DeleteTime"], 1_800_000_000);
        assert_eq!(d["CreateTime"], unix("2026-01-02T03:04:05Z"));
        assert_eq!(d["KmsKeyId"], "k1");
        assert_eq!(d["SecretType"], 0);
        assert_eq!(d["ProductName"], "aigw");
        let l = listed(&rec("db", &[]));
        assert_eq!(
            (&l["Status"], &l["KmsKeyType"]),
            (&json!("Enabled"), &json!("CUSTOMER"))
        );
        assert_eq!(l["ProductName"], "");
    }
}
