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
//!   keeps its id and its stages, and its old value is gone ([`crate::secrets::replace::replace_value`]).
//!   It is authorised as hkms's `UpdateSecret` (the lifecycle), not `PutSecretValue`. When
//!   `SSM_Current` moves to another version while it runs, it replaces nothing and answers
//!   `FailedOperation` (try again).
//!   UpdateDescription is hkms's UpdateSecret of the description.
//! - DeleteSecret deletes only a disabled secret, as Tencent's does: `RecoveryWindowInDays`
//!   0 (the default) deletes every version now; 7 to 30 schedules the deletion
//!   (`PendingDelete`), which RestoreSecret cancels, leaving the secret disabled. Tencent's
//!   1 to 6 are `InvalidParameterValue`: hkms keeps such a secret for a week at least.
//! - A disabled secret refuses reads and writes of its values
//!   (`ResourceUnavailable.ResourceDisabled`), PutSecretValue included (Tencent accepts a new
//!   version of a disabled secret; hkms writes no value while a secret is disabled).
//! - Each action takes exactly the fields of the SDK's request model for it: any other field
//!   is `UnknownParameter` naming it ([`fields`]). The Python SDK does not sign
//!   `X-TC-Action`; this keeps a body made for one action (GetSecretValue's `SecretName`
//!   and `VersionId`) from running as another (DisableSecret, DeleteSecret) unless both
//!   take the same fields (DescribeSecret's `SecretName` alone is a DeleteSecret body).
//!   Fields of the model that hkms does not honour (ListSecrets' `ProductName` and
//!   `InstanceID`, CreateSecret's `KmsHsmClusterId`, GetSecretValue's `EncryptionPublicKey`
//!   and `EncryptionAlgorithm`, `SecretType` and `EncryptType` other than 0...) are refused
//!   when set to anything but their default, never ignored.
//!
//! The other actions of the SDK (rotation, product, SSH key pair and API key secrets,
//! DeleteSecretVersion, service and region queries) answer `UnsupportedOperation` with what
//! hkms offers instead; a name that is no SSM action answers `InvalidAction`.

mod errors;
mod fields;
mod manage;
mod values;

use super::errors::TcError;
use super::json::Fields;
use crate::ops::Ctx;
use fields::parse;
use serde_json::{Map, Value};

pub use fields::SSM_CURRENT;

/// Runs `action` with the request's fields, which must be the action's
/// ([`fields::parse`]).
pub async fn run(ctx: Ctx<'_>, action: &str, body: Map<String, Value>) -> Result<Fields, TcError> {
    let body = Value::Object(body);
    match action {
        "CreateSecret" => values::create(ctx, parse(body)?).await,
        "GetSecretValue" => values::get(ctx, parse(body)?).await,
        "PutSecretValue" => values::put(ctx, parse(body)?).await,
        "UpdateSecret" => values::update(ctx, parse(body)?).await,
        "UpdateDescription" => manage::update_description(ctx, parse(body)?),
        "DescribeSecret" => manage::describe(ctx, parse(body)?),
        "ListSecrets" => manage::list(ctx, parse(body)?),
        "ListSecretVersionIds" => manage::list_versions(ctx, parse(body)?),
        "DeleteSecret" => manage::delete(ctx, parse(body)?),
        "RestoreSecret" => manage::restore(ctx, parse(body)?),
        "EnableSecret" => manage::set_enabled(ctx, parse(body)?, true),
        "DisableSecret" => manage::set_enabled(ctx, parse(body)?, false),
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

#[cfg(test)]
mod tests {
    use super::fields::status;
    use super::*;
    use crate::store::records::SecretRecord;

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
