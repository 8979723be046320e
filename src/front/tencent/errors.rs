//! The error table of Tencent Cloud API 3.0: hkmsd's stable codes to Tencent's codes.
//!
//! Every error travels with HTTP 200 in `{"Response": {"Error": {"Code", "Message"},
//! "RequestId"}}`: the SDKs report any other status as a network failure.

use crate::error::{ErrorCode, KmsError};

/// An error as Tencent's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcError {
    pub code: &'static str,
    pub message: String,
}

impl TcError {
    pub fn new(code: &'static str, message: impl Into<String>) -> TcError {
        TcError {
            code,
            message: message.into(),
        }
    }

    /// A missing or malformed request field.
    pub fn invalid(message: impl Into<String>) -> TcError {
        TcError::new("InvalidParameterValue", message)
    }

    /// Whether the request's signature could not be verified (the gateway charges such
    /// requests to their source's budget of unauthenticated requests).
    pub fn is_authentication_failure(&self) -> bool {
        self.code.starts_with("AuthFailure.") && self.code != UNAUTHORIZED
    }
}

/// Authenticated, but the AAP's policies (or network rules) do not allow the request.
pub const UNAUTHORIZED: &str = "AuthFailure.UnauthorizedOperation";

impl From<KmsError> for TcError {
    fn from(e: KmsError) -> TcError {
        let code = match e.code {
            ErrorCode::InvalidParameter => "InvalidParameterValue",
            ErrorCode::KeyNotFound => "ResourceUnavailable.CmkNotFound",
            ErrorCode::KeyDisabled => "ResourceUnavailable.CmkDisabled",
            ErrorCode::KeyPendingDeletion => "ResourceUnavailable.KeyPendingDelete",
            ErrorCode::KeyPendingImport => "ResourceUnavailable.CmkStateNotSupport",
            ErrorCode::InvalidCiphertext => "InvalidParameterValue.InvalidCiphertext",
            ErrorCode::UnsupportedKeySpec | ErrorCode::IncorrectKeyUsage => {
                "InvalidParameterValue.InvalidKeyUsage"
            }
            ErrorCode::UnsupportedAlgorithm => "UnsupportedOperation",
            ErrorCode::InvalidState | ErrorCode::Conflict => {
                "ResourceUnavailable.CmkStateNotSupport"
            }
            ErrorCode::DeletionProtected => "UnsupportedOperation.ServiceTemporaryUnavailable",
            ErrorCode::MaterialNotMatch => "InvalidParameterValue.MaterialNotMatch",
            ErrorCode::ImportTokenExpired => "ResourceUnavailable.TokenExpired",
            ErrorCode::Forbidden => UNAUTHORIZED,
            ErrorCode::Unauthenticated => "AuthFailure",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::ResourceExists => "ResourceInUse",
            ErrorCode::ResourceInUse => "ResourceInUse",
            ErrorCode::SecretPendingDeletion | ErrorCode::SecretDisabled => "OperationDenied",
            ErrorCode::HsmUnavailable => "InternalError",
            ErrorCode::NotInitialized => "ResourceUnavailable",
            _ => {
                tracing::error!("Tencent API request failed: {e}");
                return TcError::new("InternalError", "Internal error.");
            }
        };
        TcError::new(code, e.message)
    }
}
