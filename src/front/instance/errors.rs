//! The error table of the KMS instance API: hkmsd's stable codes
//! ([`crate::error::ErrorCode`]) to the API's `ErrorCode` and HTTP status, and the refusals
//! the front makes itself (malformed bodies, unknown or unsupported operations, the
//! Internet endpoint closed). Errors travel as the protocol's `Error` message with the
//! status they name.

use crate::access;
use crate::error::{ErrorCode, KmsError};

/// A refusal in the instance API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub http_status: u16,
    /// The protocol's ErrorCode (`SignatureNotMatch`, `InvalidParam`...).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(http_status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            http_status,
            code,
            message: message.into(),
        }
    }

    /// A request field or header the authenticator cannot accept.
    pub(super) fn param(name: &str) -> ApiError {
        ApiError::new(400, "InvalidParam", format!("The Param {name} is invalid."))
    }

    /// A parameter error: what is wrong is in the message.
    pub(super) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidParameter", message)
    }

    /// A failure the client cannot act on; the cause is logged, never sent.
    pub(super) fn internal() -> ApiError {
        ApiError::new(500, "InternalFailure", "Internal Failure")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.http_status, self.code, self.message)
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> ApiError {
        api_error(e)
    }
}

/// The instance API's view of an hkmsd error.
pub(super) fn api_error(e: KmsError) -> ApiError {
    match e.code {
        ErrorCode::Forbidden => {
            ApiError::new(403, "Forbidden.NoPermission", access::FORBIDDEN_MESSAGE)
        }
        ErrorCode::KeyNotFound => ApiError::new(
            404,
            "Forbidden.KeyNotFound",
            "The specified Key is not found.",
        ),
        ErrorCode::KeyDisabled | ErrorCode::KeyPendingDeletion | ErrorCode::KeyPendingImport => {
            ApiError::new(400, "Forbidden.KeyNotEnabled", e.message)
        }
        // The instance API documents no code of its own for a key whose usage or spec does
        // not allow the operation, nor for algorithms and specs it does not offer: they are
        // invalid parameters, told apart by the message.
        ErrorCode::InvalidParameter
        | ErrorCode::UnsupportedKeySpec
        | ErrorCode::UnsupportedAlgorithm
        | ErrorCode::IncorrectKeyUsage => ApiError::invalid(e.message),
        ErrorCode::InvalidCiphertext => ApiError::invalid(e.message),
        // The instance API's error table names no code for secrets. A secret that does not
        // exist gets the code the service documents for it in its secrets API
        // (`Forbidden.ResourceNotFound`, which secrets clients test for), with 404 like
        // `Forbidden.KeyNotFound`. A version or stage the secret lacks is told apart in
        // [`super::secrets`] (a parameter error).
        ErrorCode::ResourceNotFound => ApiError::new(
            404,
            "Forbidden.ResourceNotFound",
            "The specified resource is not found.",
        ),
        // No documented code exists for a secret scheduled for deletion (none in the
        // instance API's table, the SDKs or the Secrets Manager Client): it is refused as an
        // invalid request, and the message says when the deletion becomes final and that
        // RestoreSecret cancels it.
        ErrorCode::SecretPendingDeletion => ApiError::invalid(e.message),
        ErrorCode::HsmUnavailable => ApiError::new(
            503,
            "ServiceUnavailableTemporary",
            "Service Unavailable Temporary.",
        ),
        // The audit trail cannot be written: the SDKs retry this code.
        ErrorCode::AuditUnavailable => ApiError::new(
            503,
            "ServiceUnavailableTemporary",
            format!("Service Unavailable Temporary. ({}: {})", e.code, e.message),
        ),
        _ => {
            tracing::error!("application request failed: {e}");
            ApiError::internal()
        }
    }
}

/// A body that is not the operation's protobuf request.
pub(super) fn malformed_body() -> ApiError {
    ApiError::invalid("The specified parameter is not valid.")
}

/// A request without the KeyId its operation needs.
pub(super) fn key_id_required() -> ApiError {
    ApiError::invalid("KeyId is required.")
}

/// An operation of the instance API that this build does not run.
pub(super) fn unsupported() -> ApiError {
    ApiError::new(400, "UnsupportedOperation", "Rejected.UnsupportedOperation")
}

/// A name that is no operation of the instance API.
pub(super) fn invalid_api_name(name: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidApiName",
        format!("The ApiName \"{name}\" is invalid."),
    )
}

/// The signed request names another operation than the one read before authentication.
pub(super) fn api_name_mismatch() -> ApiError {
    ApiError::invalid("The header x-kms-apiname is not valid.")
}

/// A request on the Internet endpoint while the switch that governs it is off; `why` says
/// which.
pub(super) fn internet_access_disabled(why: impl Into<String>) -> ApiError {
    ApiError::new(403, "Forbidden.InternetAccessDisabled", why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkmsd_codes_map_to_the_documented_codes_and_statuses() {
        let cases = [
            (ErrorCode::Forbidden, 403, "Forbidden.NoPermission"),
            (ErrorCode::KeyNotFound, 404, "Forbidden.KeyNotFound"),
            (ErrorCode::KeyDisabled, 400, "Forbidden.KeyNotEnabled"),
            (ErrorCode::IncorrectKeyUsage, 400, "InvalidParameter"),
            (
                ErrorCode::ResourceNotFound,
                404,
                "Forbidden.ResourceNotFound",
            ),
            (
                ErrorCode::HsmUnavailable,
                503,
                "ServiceUnavailableTemporary",
            ),
            (ErrorCode::Internal, 500, "InternalFailure"),
        ];
        for (code, status, name) in cases {
            let e = api_error(KmsError::new(code, "detail"));
            assert_eq!((e.http_status, e.code), (status, name), "{code:?}");
        }
        // Parameter errors keep hkmsd's message; the others never carry internal detail.
        assert_eq!(api_error(KmsError::invalid("why")).message, "why");
        assert_eq!(
            api_error(KmsError::new(ErrorCode::Internal, "secret detail")).message,
            "Internal Failure"
        );
    }
}
