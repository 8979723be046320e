//! Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial
//! (keys created with Type 2, EXTERNAL).

use super::super::errors::TcError;
use super::super::json::fields;
use super::super::json::Fields;
use super::wire::{self, refine};
use crate::error::{ErrorCode, KmsError};
use crate::ops::{self, Ctx};
use serde::Deserialize;
use serde_json::json;

/// Latest ValidTo Tencent accepts.
const MAX_VALID_TO: i64 = 2_147_443_200;

/// A key that was not created EXTERNAL, or whose state refuses the request.
fn external_refusal(ctx: Ctx<'_>, op: &str, key_id: &str, e: KmsError) -> TcError {
    if !wire::is_state_error(&e) {
        return e.into();
    }
    let external = ops::keys::status(ctx, op, key_id).is_ok_and(|s| s.external);
    refine(e, |_| {
        Some(if external {
            "ResourceUnavailable.CmkStateNotSupport"
        } else {
            "UnsupportedOperation.NotExternalCmk"
        })
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GetParametersForImport {
    key_id: String,
    wrapping_algorithm: String,
    wrapping_key_spec: String,
}

pub(super) async fn get_parameters(
    ctx: Ctx<'_>,
    r: GetParametersForImport,
) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let algorithm = wire::required("WrappingAlgorithm", &r.wrapping_algorithm)?;
    let spec = wire::required("WrappingKeySpec", &r.wrapping_key_spec)?;
    let p = ops::keys::get_parameters_for_import(ctx, key_id, algorithm, spec)
        .await
        .map_err(|e| external_refusal(ctx, "GetParametersForImport", key_id, e))?;
    let token = String::from_utf8(p.import_token)
        .map_err(|_| TcError::new("InternalError", "the import token is not text"))?;
    Ok(fields(json!({
        "KeyId": p.record.key_id,
        "ImportToken": token,
        "PublicKey": wire::b64_encode(&p.record.public_key),
        "ParametersValidTo": p.record.expire_unix,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ImportKeyMaterial {
    encrypted_key_material: String,
    import_token: String,
    key_id: String,
    valid_to: Option<i64>,
}

pub(super) async fn import_material(ctx: Ctx<'_>, r: ImportKeyMaterial) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    let token = wire::required("ImportToken", &r.import_token)?;
    let material = wire::b64(
        "EncryptedKeyMaterial",
        wire::required("EncryptedKeyMaterial", &r.encrypted_key_material)?,
        "InvalidParameterValue.InvalidImportKeyMaterial",
    )?;
    let valid_to = r.valid_to.unwrap_or(0);
    if valid_to != 0 && (valid_to <= crate::clock::now_unix() || valid_to > MAX_VALID_TO) {
        return Err(TcError::invalid(format!(
            "ValidTo must be 0 (never expires) or a Unix time after now and at most \
             {MAX_VALID_TO}; got {valid_to}"
        )));
    }
    ops::keys::import_material(ctx, key_id, &material, token.as_bytes(), valid_to)
        .await
        .map_err(|e| {
            if e.code == ErrorCode::InvalidParameter {
                // The material does not unwrap, has the wrong length, or the token was
                // issued for another key: the message says which.
                return refine(e, |_| {
                    Some("InvalidParameterValue.InvalidImportKeyMaterial")
                });
            }
            external_refusal(ctx, "ImportKeyMaterial", key_id, e)
        })?;
    Ok(Fields::new())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct DeleteImportedKeyMaterial {
    key_id: String,
}

pub(super) async fn delete_material(
    ctx: Ctx<'_>,
    r: DeleteImportedKeyMaterial,
) -> Result<Fields, TcError> {
    let key_id = wire::required("KeyId", &r.key_id)?;
    ops::keys::delete_material(ctx, key_id)
        .await
        .map_err(|e| external_refusal(ctx, "DeleteKeyMaterial", key_id, e))?;
    Ok(Fields::new())
}
