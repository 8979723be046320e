//! The SSM codec (`2019-09-23`): one handler per action, each a call of
//! [`crate::ops::secrets`] (which authorises it for the caller's AAP), on hkms's secrets.
//!
//! How Tencent's secrets map onto hkms's:
//! - A secret's state is `Enabled`, `Disabled` or `PendingDelete`; times are Unix seconds.
//!   Every hkms secret is a user-defined secret (`SecretType` 0) encrypted under a KMS key
//!   of the caller's choosing (`KmsKeyType` `CUSTOMER`, `EncryptType` 0): hkms has no
//!   default key for secrets, so `KmsKeyId` is required; nothing rotates automatically.
//! - hkms's versions carry stages. A secret's current version (`ACSCurrent`) is what
//!   Tencent calls `SSM_Current`: GetSecretValue and UpdateSecret read or write it when
//!   asked for VersionId `SSM_Current`, and a new version (CreateSecret, PutSecretValue)
//!   becomes current; the one it replaces keeps its id and can still be read by it.
//!   CreateSecret without a VersionId (or with `SSM_Current`) gets a generated one.
//! - UpdateSecret replaces the value of an existing version, as Tencent's does: the version
//!   keeps its id and its stages, and its old value is gone ([`crate::secrets::replace_value`]).
//!   It is authorised as hkms's `UpdateSecret` (the lifecycle), not `PutSecretValue`.
//!   UpdateDescription is hkms's UpdateSecret of the description.
//! - DeleteSecret deletes only a disabled secret, as Tencent's does: `RecoveryWindowInDays`
//!   0 (the default) deletes every version now; 7 to 30 schedules the deletion
//!   (`PendingDelete`), which RestoreSecret cancels, leaving the secret disabled.
//! - A disabled secret refuses reads and writes of its values
//!   (`ResourceUnavailable.ResourceDisabled`), PutSecretValue included (Tencent accepts a new
//!   version of a disabled secret; hkms writes no value while a secret is disabled).
//!
//! The other actions of the SDK (rotation, product, SSH key pair and API key secrets,
//! DeleteSecretVersion, service and region queries) answer `UnsupportedOperation` with what
//! hkms offers instead; a name that is no SSM action answers `InvalidAction`.

mod errors;
mod fields;
mod manage;
mod values;

use super::errors::TcError;
use super::Fields;
use crate::ops::Ctx;
use crate::store::records::SecretRecord;
use fields::Req;
use serde_json::{Map, Value};

/// Tencent's name for the current version.
pub const SSM_CURRENT: &str = "SSM_Current";

/// Runs `action` with the request's fields.
pub async fn run(ctx: Ctx<'_>, action: &str, body: Map<String, Value>) -> Result<Fields, TcError> {
    let r = Req(&body);
    match action {
        "CreateSecret" => values::create(ctx, &r).await,
        "GetSecretValue" => values::get(ctx, &r).await,
        "PutSecretValue" => values::put(ctx, &r).await,
        "UpdateSecret" => values::update(ctx, &r).await,
        "UpdateDescription" => manage::update_description(ctx, &r),
        "DescribeSecret" => manage::describe(ctx, &r),
        "ListSecrets" => manage::list(ctx, &r),
        "ListSecretVersionIds" => manage::list_versions(ctx, &r),
        "DeleteSecret" => manage::delete(ctx, &r),
        "RestoreSecret" => manage::restore(ctx, &r),
        "EnableSecret" => manage::set_enabled(ctx, &r, true),
        "DisableSecret" => manage::set_enabled(ctx, &r, false),
        other => Err(match unsupported(other) {
            Some(why) => TcError::new(
                "UnsupportedOperation",
                format!("{other} is not supported by hkms: {why}"),
            ),
            None => TcError::new(
                "InvalidAction",
                format!("the action {other:?} is not an action of SSM 2019-09-23"),
            ),
        }),
    }
}

/// Why an action of the SSM SDK that hkms does not serve is not served; `None` for a name
/// that is no SSM action.
fn unsupported(action: &str) -> Option<&'static str> {
    Some(match action {
        "CreateProductSecret" | "RotateProductSecret" | "DescribeSupportedProducts"
        | "DescribeAsyncRequestInfo" => {
            "hkms manages no cloud product's credentials; keep them as secrets of your own (CreateSecret)"
        }
        "CreateSSHKeyPairSecret" | "GetSSHKeyPairValue" => {
            "hkms creates no SSH key pairs; keep a key pair you made as a secret (CreateSecret with SecretBinary)"
        }
        "UpdateRotationStatus" | "DescribeRotationDetail" | "DescribeRotationHistory" => {
            "hkms does not rotate secrets; add a version with PutSecretValue (it becomes SSM_Current)"
        }
        "DeleteSecretVersion" => {
            "hkms keeps a secret's versions until the secret is deleted (the oldest without a stage go past 100); replace a version's value with UpdateSecret"
        }
        "CreateService" | "GetServiceStatus" | "GetRegions" => {
            "an hkms appliance serves secrets as soon as it is initialised, in its one region"
        }
        _ => return None,
    })
}

fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Tencent's state of a secret.
fn status(rec: &SecretRecord) -> &'static str {
    if rec.planned_delete_unix != 0 {
        "PendingDelete"
    } else if rec.disabled {
        "Disabled"
    } else {
        "Enabled"
    }
}

/// Unix seconds of hkms's `YYYY-MM-DDTHH:MM:SSZ` (0 when it is not such a time).
fn unix(t: &str) -> i64 {
    let parse = || -> Option<i64> {
        let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
        let day = crate::clock::date_to_unix(date).ok()?;
        let hms: Vec<i64> = time
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [h, m, s] = hms.as_slice() else {
            return None;
        };
        Some(day + h * 3600 + m * 60 + s)
    };
    parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds() {
        for t in [0, 1_700_000_000, 1_767_225_599, 4_102_444_800] {
            assert_eq!(unix(&crate::clock::rfc3339(t)), t);
        }
        assert_eq!(unix("2026-01-31"), 0);
        assert_eq!(unix(""), 0);
    }

    #[test]
    fn states_are_tencents() {
        let mut rec = SecretRecord::default();
        assert_eq!(status(&rec), "Enabled");
        rec.disabled = true;
        assert_eq!(status(&rec), "Disabled");
        rec.planned_delete_unix = 1;
        assert_eq!(status(&rec), "PendingDelete");
    }

    #[test]
    fn every_other_action_of_the_sdk_is_unsupported_with_a_reason() {
        // The actions of tencentcloud-sdk-python-ssm 3.1.194 (ssm_client.py) hkms does not
        // serve.
        for a in [
            "CreateProductSecret",
            "CreateSSHKeyPairSecret",
            "CreateService",
            "DeleteSecretVersion",
            "DescribeAsyncRequestInfo",
            "DescribeRotationDetail",
            "DescribeRotationHistory",
            "DescribeSupportedProducts",
            "GetRegions",
            "GetSSHKeyPairValue",
            "GetServiceStatus",
            "RotateProductSecret",
            "UpdateRotationStatus",
        ] {
            assert!(unsupported(a).is_some(), "{a}");
        }
        for a in ["CreateKey", "Encrypt", "getsecretvalue", ""] {
            assert!(unsupported(a).is_none(), "{a}");
        }
    }
}
