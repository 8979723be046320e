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
}

/// Authenticated, but the AAP's policies (or network rules) do not allow the request.
pub const UNAUTHORIZED: &str = "AuthFailure.UnauthorizedOperation";

/// hkmsd's stable codes to KMS codes (`tencentcloud/kms/v20190118/errorcodes.py`). A
/// handler may choose a sharper code for an error it understands better (the key's state
/// decides between `ResourceUnavailable.CmkShouldBeDisabled` and
/// `.CmkNotPendingDelete`, an import's failure is `InvalidImportKeyMaterial`...).
impl From<KmsError> for TcError {
    fn from(e: KmsError) -> TcError {
        let code = match e.code {
            ErrorCode::InvalidParameter => "InvalidParameterValue",
            ErrorCode::KeyNotFound => "ResourceUnavailable.CmkNotFound",
            ErrorCode::KeyDisabled => "ResourceUnavailable.CmkDisabled",
            ErrorCode::KeyPendingDeletion => "ResourceUnavailable.KeyPendingDelete",
            // No material (never imported, deleted or expired).
            ErrorCode::KeyPendingImport => "ResourceUnavailable.CmkStateNotSupport",
            ErrorCode::InvalidCiphertext => "InvalidParameterValue.InvalidCiphertext",
            // Encrypt with a signing key, Sign with an AES key...
            ErrorCode::IncorrectKeyUsage => "InvalidParameterValue.InvalidKeyUsage",
            // A spec or algorithm no member (or hkms) offers.
            ErrorCode::UnsupportedKeySpec | ErrorCode::UnsupportedAlgorithm => {
                "UnsupportedOperation"
            }
            ErrorCode::InvalidState => "ResourceUnavailable.CmkStateNotSupport",
            // The key changed while the request decided: the client may try again.
            ErrorCode::Conflict => "FailedOperation",
            // Deletion protection, which Tencent's API cannot turn off: the message says how.
            ErrorCode::DeletionProtected => "FailedOperation",
            ErrorCode::MaterialNotMatch => "InvalidParameterValue.MaterialNotMatch",
            ErrorCode::ImportTokenExpired => "ResourceUnavailable.TokenExpired",
            ErrorCode::Forbidden => UNAUTHORIZED,
            ErrorCode::Unauthenticated => "AuthFailure",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::ResourceExists => "ResourceInUse",
            ErrorCode::ResourceInUse => "ResourceInUse",
            ErrorCode::SecretPendingDeletion | ErrorCode::SecretDisabled => "OperationDenied",
            ErrorCode::HsmUnavailable => "InternalError",
            // The audit trail cannot be written; the message names the stable code.
            ErrorCode::AuditUnavailable => {
                return TcError::new("FailedOperation", format!("{}: {}", e.code, e.message))
            }
            ErrorCode::NotInitialized => "ResourceUnavailable",
            _ => {
                tracing::error!("Tencent API request failed: {e}");
                return TcError::new("InternalError", "Internal error.");
            }
        };
        TcError::new(code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_errors_take_kms_codes() {
        let code = |c: ErrorCode| TcError::from(KmsError::new(c, "m")).code;
        assert_eq!(
            code(ErrorCode::KeyNotFound),
            "ResourceUnavailable.CmkNotFound"
        );
        assert_eq!(
            code(ErrorCode::KeyDisabled),
            "ResourceUnavailable.CmkDisabled"
        );
        assert_eq!(
            code(ErrorCode::KeyPendingDeletion),
            "ResourceUnavailable.KeyPendingDelete"
        );
        assert_eq!(
            code(ErrorCode::InvalidCiphertext),
            "InvalidParameterValue.InvalidCiphertext"
        );
        assert_eq!(
            code(ErrorCode::IncorrectKeyUsage),
            "InvalidParameterValue.InvalidKeyUsage"
        );
        assert_eq!(code(ErrorCode::Forbidden), UNAUTHORIZED);
        assert_eq!(
            code(ErrorCode::UnsupportedAlgorithm),
            "UnsupportedOperation"
        );
        let internal = TcError::from(KmsError::new(ErrorCode::StoreError, "disk /x full"));
        assert_eq!(internal.code, "InternalError");
        assert!(
            !internal.message.contains("/x"),
            "no internals for the caller"
        );
        let kept = TcError::from(KmsError::invalid("KeyId is required"));
        assert_eq!(kept.message, "KeyId is required");
    }
}
