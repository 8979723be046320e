//! The errors callers see: a stable code, a message, and one mapping to gRPC status.
//!
//! The stable code travels in the `hkms-error-code` metadata entry of every failed call, so
//! clients (the CLI, the gateway) match on it rather than on message text. The layers below
//! say how their own failures read here (`crate::hsm::HsmError`, `crate::store::StoreError`),
//! so this module needs none of them.

/// gRPC metadata key that carries [`ErrorCode`].
pub const ERROR_CODE_METADATA: &str = "hkms-error-code";

/// Stable error codes. Names never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameter,
    KeyNotFound,
    KeyDisabled,
    InvalidCiphertext,
    UnsupportedKeySpec,
    NotInitialized,
    AlreadyInitialized,
    MemberNotFound,
    InvalidState,
    HsmUnavailable,
    HsmError,
    StoreError,
    Internal,
    /// The caller is known but not allowed to do this.
    Forbidden,
    /// The caller could not be identified (unknown peer, no valid ClientKey).
    Unauthenticated,
    /// A network rule, policy, AAP, ClientKey, secret or secret version that does not exist.
    ResourceNotFound,
    /// A network rule, policy, AAP, secret or secret version with this name exists already.
    ResourceExists,
    /// The record is still referenced (a rule by a policy, a policy by an AAP...).
    ResourceInUse,
    /// A stored key token is not the token of the key and version it is stored under (it
    /// was moved or altered in the store): refused, never used.
    TokenBinding,
    /// A key scheduled for deletion: every use is refused until the deletion is cancelled.
    KeyPendingDeletion,
    /// An imported key without material (never imported, deleted or expired).
    KeyPendingImport,
    /// Deletion protection (the key's or the instance's) refuses to schedule a deletion.
    DeletionProtected,
    /// Material imported into a key that had other material before.
    MaterialNotMatch,
    /// Import parameters past their 24 hours, or unknown.
    ImportTokenExpired,
    /// An algorithm that the HSM members (or hkms) do not offer.
    UnsupportedAlgorithm,
    /// The key changed while the request was deciding; try again.
    Conflict,
    /// The key's spec or usage does not allow the operation (signing with an encryption
    /// key, Encrypt with an RSA key...).
    IncorrectKeyUsage,
    /// A secret scheduled for deletion: its values cannot be read or changed until it is
    /// restored.
    SecretPendingDeletion,
    /// A disabled secret: its values cannot be read or changed until it is enabled.
    SecretDisabled,
    /// The audit trail cannot be written: the request was not run (or its answer was
    /// withheld), since nothing is answered before its record is durable.
    AuditUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameter => "InvalidParameter",
            ErrorCode::KeyNotFound => "KeyNotFound",
            ErrorCode::KeyDisabled => "KeyDisabled",
            ErrorCode::InvalidCiphertext => "InvalidCiphertext",
            ErrorCode::UnsupportedKeySpec => "UnsupportedKeySpec",
            ErrorCode::NotInitialized => "NotInitialized",
            ErrorCode::AlreadyInitialized => "AlreadyInitialized",
            ErrorCode::MemberNotFound => "MemberNotFound",
            ErrorCode::InvalidState => "InvalidState",
            ErrorCode::HsmUnavailable => "HsmUnavailable",
            ErrorCode::HsmError => "HsmError",
            ErrorCode::StoreError => "StoreError",
            ErrorCode::Internal => "Internal",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::Unauthenticated => "Unauthenticated",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::ResourceExists => "ResourceExists",
            ErrorCode::ResourceInUse => "ResourceInUse",
            ErrorCode::TokenBinding => "TokenBinding",
            ErrorCode::KeyPendingDeletion => "KeyPendingDeletion",
            ErrorCode::KeyPendingImport => "KeyPendingImport",
            ErrorCode::DeletionProtected => "DeletionProtected",
            ErrorCode::MaterialNotMatch => "MaterialNotMatch",
            ErrorCode::ImportTokenExpired => "ImportTokenExpired",
            ErrorCode::UnsupportedAlgorithm => "UnsupportedAlgorithm",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::IncorrectKeyUsage => "IncorrectKeyUsage",
            ErrorCode::SecretPendingDeletion => "SecretPendingDeletion",
            ErrorCode::SecretDisabled => "SecretDisabled",
            ErrorCode::AuditUnavailable => "AuditUnavailable",
        }
    }

    fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            ErrorCode::InvalidParameter
            | ErrorCode::InvalidCiphertext
            | ErrorCode::UnsupportedKeySpec => Code::InvalidArgument,
            ErrorCode::KeyNotFound | ErrorCode::MemberNotFound => Code::NotFound,
            ErrorCode::InvalidState => Code::FailedPrecondition,
            ErrorCode::KeyDisabled | ErrorCode::NotInitialized => Code::FailedPrecondition,
            ErrorCode::AlreadyInitialized => Code::AlreadyExists,
            ErrorCode::HsmUnavailable => Code::Unavailable,
            ErrorCode::HsmError | ErrorCode::StoreError | ErrorCode::Internal => Code::Internal,
            ErrorCode::Forbidden => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::ResourceNotFound => Code::NotFound,
            ErrorCode::ResourceExists => Code::AlreadyExists,
            ErrorCode::ResourceInUse => Code::FailedPrecondition,
            ErrorCode::TokenBinding => Code::DataLoss,
            ErrorCode::KeyPendingDeletion
            | ErrorCode::KeyPendingImport
            | ErrorCode::DeletionProtected => Code::FailedPrecondition,
            ErrorCode::MaterialNotMatch | ErrorCode::UnsupportedAlgorithm => Code::InvalidArgument,
            ErrorCode::ImportTokenExpired => Code::FailedPrecondition,
            ErrorCode::AuditUnavailable => Code::Unavailable,
            ErrorCode::Conflict => Code::Aborted,
            ErrorCode::IncorrectKeyUsage
            | ErrorCode::SecretPendingDeletion
            | ErrorCode::SecretDisabled => Code::FailedPrecondition,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error returned to a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for KmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for KmsError {}

impl KmsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> KmsError {
        KmsError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> KmsError {
        KmsError::new(ErrorCode::InvalidParameter, message)
    }

    pub fn key_not_found(key_id: &str) -> KmsError {
        KmsError::new(
            ErrorCode::KeyNotFound,
            format!("key {key_id:?} does not exist"),
        )
    }

    pub fn invalid_ciphertext() -> KmsError {
        // One message for every failure, so callers learn nothing about which check failed.
        KmsError::new(
            ErrorCode::InvalidCiphertext,
            "the ciphertext is malformed, was altered, or does not match the AAD",
        )
    }
}

impl From<KmsError> for tonic::Status {
    fn from(e: KmsError) -> tonic::Status {
        let mut status = tonic::Status::new(e.code.grpc_code(), e.to_string());
        if let Ok(v) = e.code.as_str().parse() {
            status.metadata_mut().insert(ERROR_CODE_METADATA, v);
        }
        status
    }
}

/// Reads the stable code back from a status (client side).
pub fn error_code(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_the_stable_code() {
        let s: tonic::Status = KmsError::key_not_found("k1").into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(error_code(&s).as_deref(), Some("KeyNotFound"));
        assert!(s.message().starts_with("KeyNotFound: "));
        let s: tonic::Status = KmsError::new(ErrorCode::HsmUnavailable, "no member").into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(error_code(&s).as_deref(), Some("HsmUnavailable"));
    }
}
