//! The actions that carry values: CreateSecret, GetSecretValue, PutSecretValue and
//! UpdateSecret.

use super::super::json::Fields;
use super::errors::{ssm_error, table, Exists};
use super::fields::SSM_CURRENT;
use super::fields::{
    int, missing, refuse_unless_default, required, required_value, secret, tags, Tag,
};
use crate::front::tencent::errors::TcError;
use crate::front::tencent::json::fields;
use crate::ops::{self, Ctx};
use crate::secrets::names::CURRENT;
use crate::secrets::{NewSecret, NewVersion};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

/// CreateSecret's fields.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct CreateSecretRequest {
    secret_name: Option<String>,
    version_id: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "int")]
    secret_type: Option<i64>,
    #[serde(default, deserialize_with = "secret")]
    secret_binary: Option<Zeroizing<String>>,
    #[serde(default, deserialize_with = "secret")]
    secret_string: Option<Zeroizing<String>>,
    additional_config: Option<String>,
    tags: Option<Vec<Tag>>,
    kms_hsm_cluster_id: Option<String>,
    #[serde(default, deserialize_with = "int")]
    encrypt_type: Option<i64>,
}

/// GetSecretValue's fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GetSecretValueRequest {
    secret_name: Option<String>,
    version_id: Option<String>,
    encryption_public_key: Option<String>,
    encryption_algorithm: Option<String>,
}

/// The fields of PutSecretValue and of UpdateSecret (the same in the SDK).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct VersionValueRequest {
    secret_name: Option<String>,
    version_id: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    secret_binary: Option<Zeroizing<String>>,
    #[serde(default, deserialize_with = "secret")]
    secret_string: Option<Zeroizing<String>>,
}

/// `SecretType`, `EncryptType`: only 0 (a user-defined secret, under a KMS key).
fn only_zero(name: &str, value: Option<i64>, why: &str) -> Result<(), TcError> {
    refuse_unless_default(name, value, 0, "UnsupportedOperation", why)
}

/// CreateSecret: the secret and its first version, which is current (`SSM_Current`).
pub(super) async fn create(ctx: Ctx<'_>, r: CreateSecretRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    only_zero(
        "SecretType",
        r.secret_type,
        "hkms keeps user-defined secrets (SecretType 0) only",
    )?;
    only_zero(
        "EncryptType",
        r.encrypt_type,
        "hkms encrypts every secret under a KMS key inside its HSMs (EncryptType 0)",
    )?;
    refuse_unless_default(
        "KmsHsmClusterId",
        r.kms_hsm_cluster_id.as_deref(),
        "",
        "InvalidParameterValue",
        "the appliance's HSM members form one pool without cluster ids; leave it out and name the key in KmsKeyId",
    )?;
    let key = r.kms_key_id.as_deref().unwrap_or("");
    if key.is_empty() {
        return Err(TcError::new(
            "MissingParameter",
            "KmsKeyId is required: hkms has no default key for secrets; name the KeyId of an enabled ENCRYPT_DECRYPT key",
        ));
    }
    let value = required_value(r.secret_string, r.secret_binary)?;
    let version_id = match r.version_id.as_deref().unwrap_or("") {
        SSM_CURRENT => "",
        v => v,
    };
    let new = NewSecret {
        name: name.to_owned(),
        data: value.data,
        data_type: value.data_type.into(),
        version_id: version_id.to_owned(),
        encryption_key_id: key.to_owned(),
        description: r.description.unwrap_or_default(),
        tags: tags(r.tags)?,
        extended_config: r.additional_config.unwrap_or_default(),
    };
    let rec = ops::secrets::create(ctx, new)
        .await
        .map_err(|e| table(Exists::Secret, e))?;
    let version_id = crate::secrets::stages::holder(&rec, CURRENT).unwrap_or_default();
    Ok(fields(json!({
        "SecretName": rec.name,
        "VersionId": version_id,
        "TagCode": 0,
        "TagMsg": "",
    })))
}

/// GetSecretValue: the value of VersionId (required), or of the current version for
/// `SSM_Current`. Text comes back in SecretString, binary in SecretBinary (base64).
pub(super) async fn get(ctx: Ctx<'_>, r: GetSecretValueRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let version_id = r.version_id.as_deref().unwrap_or("");
    if version_id.is_empty() {
        return Err(TcError::new(
            "MissingParameter",
            format!("VersionId is required ({SSM_CURRENT} names the current version)"),
        ));
    }
    for (field, value) in [
        ("EncryptionPublicKey", &r.encryption_public_key),
        ("EncryptionAlgorithm", &r.encryption_algorithm),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(TcError::new(
                "UnsupportedOperation",
                format!("{field} is not supported by hkms: it does not encrypt values for the caller (EncryptionPublicKey, EncryptionAlgorithm); the value travels under TLS"),
            ));
        }
    }
    let (stage, id) = match version_id {
        SSM_CURRENT => (CURRENT, ""),
        id => ("", id),
    };
    let v = ops::secrets::get_value(ctx, name, stage, id)
        .await
        .map_err(|e| ssm_error(ctx, name, Exists::Version, e))?;
    let mut out = fields(json!({
        "SecretName": v.secret.name,
        "VersionId": v.version_id,
    }));
    // `v` (and the value it holds) is wiped when it drops; the copy in the answer goes to
    // the transport.
    let (field, data) = if v.data_type == "binary" {
        ("SecretBinary", B64.encode(&*v.data))
    } else {
        let text = std::str::from_utf8(&v.data).map_err(|_| {
            tracing::error!(secret = name, "a stored text value is not UTF-8");
            TcError::new("InternalError", "Internal error.")
        })?;
        ("SecretString", text.to_owned())
    };
    out.insert(field.into(), data.into());
    Ok(out)
}

/// PutSecretValue: a new version, which becomes current.
pub(super) async fn put(ctx: Ctx<'_>, r: VersionValueRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let version_id = r.version_id.as_deref().unwrap_or("");
    if version_id == SSM_CURRENT {
        return Err(TcError::invalid(format!(
            "VersionId {SSM_CURRENT} names the current version: a new version needs an id of its own (it becomes {SSM_CURRENT})"
        )));
    }
    let value = required_value(r.secret_string, r.secret_binary)?;
    let new = NewVersion {
        data: value.data,
        data_type: value.data_type.into(),
        version_id: version_id.to_owned(),
        stages: Vec::new(),
    };
    let (rec, version_id) = ops::secrets::put_value(ctx, name, new)
        .await
        .map_err(|e| ssm_error(ctx, name, Exists::Version, e))?;
    Ok(fields(json!({
        "SecretName": rec.name,
        "VersionId": version_id,
    })))
}

/// UpdateSecret: replaces the value of VersionId (the current version for `SSM_Current`).
pub(super) async fn update(ctx: Ctx<'_>, r: VersionValueRequest) -> Result<Fields, TcError> {
    let name = required("SecretName", &r.secret_name)?;
    let version_id = r.version_id.as_deref().unwrap_or("");
    if version_id.is_empty() {
        return Err(missing("VersionId"));
    }
    let value = required_value(r.secret_string, r.secret_binary)?;
    let (stage, id) = match version_id {
        SSM_CURRENT => (CURRENT, ""),
        id => ("", id),
    };
    let (rec, version_id) =
        ops::secrets::replace_value(ctx, name, stage, id, &value.data, value.data_type)
            .await
            .map_err(|e| ssm_error(ctx, name, Exists::Version, e))?;
    Ok(fields(json!({
        "SecretName": rec.name,
        "VersionId": version_id,
    })))
}
