//! The actions that carry values: CreateSecret, GetSecretValue, PutSecretValue and
//! UpdateSecret.

use super::errors::{ssm_error, table, Exists};
use super::fields::{missing, Req};
use super::{fields, Fields, SSM_CURRENT};
use crate::front::tencent::errors::TcError;
use crate::ops::{self, Ctx};
use crate::secrets::names::CURRENT;
use crate::secrets::{NewSecret, NewVersion};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::json;

/// `SecretType`, `EncryptType`: only 0 (a user-defined secret, under a KMS key).
fn only_zero(r: &Req<'_>, name: &str, why: &str) -> Result<(), TcError> {
    match r.int(name)? {
        None | Some(0) => Ok(()),
        Some(n) => Err(TcError::new(
            "UnsupportedOperation",
            format!("{name} {n} is not supported by hkms: {why}"),
        )),
    }
}

/// CreateSecret: the secret and its first version, which is current (`SSM_Current`).
pub async fn create(ctx: Ctx<'_>, r: &Req<'_>) -> Result<Fields, TcError> {
    let name = r.required("SecretName")?;
    only_zero(
        r,
        "SecretType",
        "hkms keeps user-defined secrets (SecretType 0) only",
    )?;
    only_zero(
        r,
        "EncryptType",
        "hkms encrypts every secret under a KMS key inside its HSMs (EncryptType 0)",
    )?;
    let key = r.string("KmsKeyId")?.unwrap_or("");
    if key.is_empty() {
        return Err(TcError::new(
            "MissingParameter",
            "KmsKeyId is required: hkms has no default key for secrets; name the KeyId of an enabled ENCRYPT_DECRYPT key",
        ));
    }
    let value = r.required_value()?;
    let version_id = match r.text("VersionId")? {
        SSM_CURRENT => "",
        v => v,
    };
    let new = NewSecret {
        name: name.to_owned(),
        data: value.data,
        data_type: value.data_type.into(),
        version_id: version_id.to_owned(),
        encryption_key_id: key.to_owned(),
        description: r.text("Description")?.to_owned(),
        tags: r.tags("Tags")?,
        extended_config: r.text("AdditionalConfig")?.to_owned(),
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
pub async fn get(ctx: Ctx<'_>, r: &Req<'_>) -> Result<Fields, TcError> {
    let name = r.required("SecretName")?;
    let version_id = r.string("VersionId")?.unwrap_or("");
    if version_id.is_empty() {
        return Err(TcError::new(
            "MissingParameter",
            format!("VersionId is required ({SSM_CURRENT} names the current version)"),
        ));
    }
    if !r.text("EncryptionPublicKey")?.is_empty() {
        return Err(TcError::new(
            "UnsupportedOperation",
            "hkms does not encrypt values for the caller (EncryptionPublicKey): the value travels under TLS",
        ));
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
pub async fn put(ctx: Ctx<'_>, r: &Req<'_>) -> Result<Fields, TcError> {
    let name = r.required("SecretName")?;
    let version_id = r.text("VersionId")?;
    if version_id == SSM_CURRENT {
        return Err(TcError::invalid(format!(
            "VersionId {SSM_CURRENT} names the current version: a new version needs an id of its own (it becomes {SSM_CURRENT})"
        )));
    }
    let value = r.required_value()?;
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
pub async fn update(ctx: Ctx<'_>, r: &Req<'_>) -> Result<Fields, TcError> {
    let name = r.required("SecretName")?;
    let version_id = r.string("VersionId")?.unwrap_or("");
    if version_id.is_empty() {
        return Err(missing("VersionId"));
    }
    let value = r.required_value()?;
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
