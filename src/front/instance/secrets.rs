//! GetSecretValue: a secret's value for an application, by stage, by version id, or
//! ACSCurrent ([`crate::ops::secrets::get_value`], which authorises the caller).
//!
//! `SecretData` is a protobuf string in the instance API (UTF-8 only: the Python SDK refuses
//! to decode anything else): a text value goes as it is, a binary value Base64-encoded
//! (standard alphabet, padded), the form in which the secrets API takes and returns binary
//! values. The SDKs and the Secrets Manager Client hand the string on unchanged, so the
//! application decodes it. `ExtendedConfig` comes whenever the secret has one: the SDKs
//! cannot send `FetchExtendedConfig = false` (a false field is never serialised), so the
//! flag is not read. hkms does not rotate secrets: `AutomaticRotation` is `Disabled` and the
//! rotation dates and interval are empty.

use super::errors::{api_error, ApiError};
use super::{decode, Answer, ApplicationApi, Call};
use crate::error::{ErrorCode, KmsError};
use crate::instance_api as api;
use crate::ops::{self, Ctx};
use crate::secrets::names::DataType;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use prost::Message;
use zeroize::Zeroize;

/// `AutomaticRotation` of every secret hkms keeps.
pub const ROTATION_DISABLED: &str = "Disabled";

impl ApplicationApi {
    pub(super) async fn get_secret_value(&self, call: &Call<'_>) -> Answer {
        let r: api::GetSecretValueRequest = decode(call.body)?;
        if r.secret_name.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "SecretName is required.",
            ));
        }
        let ctx = Ctx::new(&self.0, call.caller);
        let v = ops::secrets::get_value(ctx, &r.secret_name, &r.version_stage, &r.version_id)
            .await
            .map_err(|e| secret_error(ctx, &r.secret_name, e))?;
        let mut resp = api::GetSecretValueResponse {
            secret_name: v.secret.name.clone(),
            secret_type: v.secret.secret_type.clone(),
            // Wiped below once encoded (the value read back is wiped when `v` drops).
            secret_data: secret_data(&v.data_type, &v.data)?,
            secret_data_type: v.data_type.clone(),
            version_stages: v.stages.clone(),
            version_id: v.version_id.clone(),
            create_time: v.create_time.clone(),
            request_id: call.request_id.into(),
            last_rotation_date: String::new(),
            next_rotation_date: String::new(),
            extended_config: v.secret.extended_config.clone(),
            automatic_rotation: ROTATION_DISABLED.into(),
            rotation_interval: String::new(),
        };
        let body = resp.encode_to_vec();
        resp.secret_data.zeroize();
        Ok((body, None))
    }
}

/// The instance API's view of a failed read of secret `name`. A version or stage the secret
/// does not have is a parameter error (the service documents a parameter error for a
/// VersionId and VersionStage that name no version); only a secret that does not exist is
/// `Forbidden.ResourceNotFound`. Either is reported only to callers allowed to read the
/// secret ([`crate::ops::secrets`] authorises first).
///
/// A disabled secret is refused like one pending deletion: the instance API documents no
/// code for either (none in its error table, the SDKs or the Secrets Manager Client), so it
/// is `400 InvalidParameter`, and the message says that the secret is disabled and that
/// EnableSecret enables it again.
fn secret_error(ctx: Ctx<'_>, name: &str, e: KmsError) -> ApiError {
    match e.code {
        ErrorCode::ResourceNotFound if ops::secrets::exists(ctx, name) => {
            ApiError::new(400, "InvalidParameter", e.message)
        }
        ErrorCode::SecretDisabled => ApiError::new(400, "InvalidParameter", e.message),
        _ => api_error(e),
    }
}

/// `SecretData` for a value of `data_type`: text as it is, binary in Base64.
fn secret_data(data_type: &str, data: &[u8]) -> Result<String, ApiError> {
    let internal = |what: &str| {
        tracing::error!("stored secret value is unusable: {what}");
        ApiError::new(500, "InternalFailure", "Internal Failure")
    };
    match DataType::parse(data_type) {
        Ok(DataType::Text) => match std::str::from_utf8(data) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(internal("a text value is not UTF-8")),
        },
        Ok(DataType::Binary) => Ok(B64.encode(data)),
        Err(_) => Err(internal("unknown data type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_goes_as_it_is_and_binary_in_base64() {
        assert_eq!(
            secret_data("text", "pässword".as_bytes()).unwrap(),
            "pässword"
        );
        assert_eq!(secret_data("binary", &[0, 0xff, 0x10]).unwrap(), "AP8Q");
        assert_eq!(
            B64.decode(secret_data("binary", b"\xde\xad\xbe\xef\x00").unwrap())
                .unwrap(),
            b"\xde\xad\xbe\xef\x00"
        );
        assert_eq!(
            secret_data("text", &[0xff]).unwrap_err().code,
            "InternalFailure"
        );
        assert_eq!(
            secret_data("blob", b"x").unwrap_err().code,
            "InternalFailure"
        );
    }
}
