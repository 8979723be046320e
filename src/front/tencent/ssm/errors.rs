//! SSM's error table: where SSM (`tencentcloud/ssm/v20190923/errorcodes.py`) has codes of
//! its own for secrets, hkmsd's codes map to those; the rest follow the KMS table
//! ([`super::super::errors`]).
//!
//! | hkmsd | SSM |
//! |---|---|
//! | ResourceNotFound, the secret | `ResourceNotFound.SecretNotExist` |
//! | ResourceNotFound, a version or stage of it | `ResourceNotFound` |
//! | ResourceExists, CreateSecret | `ResourceInUse.SecretExists` |
//! | ResourceExists, PutSecretValue | `ResourceInUse.VersionIdExists` |
//! | SecretDisabled | `ResourceUnavailable.ResourceDisabled` |
//! | SecretPendingDeletion | `ResourceUnavailable.ResourcePendingDeleted` |
//! | InvalidState (restore of a secret not pending deletion, deletion of an enabled one) | `OperationDenied` |
//! | KeyNotFound (CreateSecret's KmsKeyId) | `InvalidParameterValue` |
//! | KeyDisabled, KeyPendingDeletion, KeyPendingImport, IncorrectKeyUsage, UnsupportedKeySpec (the secret's CMK cannot be used) | `FailedOperation.AccessKmsError` |
//! | Conflict (the secret changed meanwhile) | `FailedOperation` |
//! | Forbidden | `AuthFailure.UnauthorizedOperation` (as for KMS) |
//!
//! A secret that does not exist is reported only to callers allowed to run the operation on
//! its name ([`crate::ops::secrets`] authorises first); others get `Forbidden`.

use super::super::errors::TcError;
use crate::error::{ErrorCode, KmsError};
use crate::ops::{self, Ctx};

/// Whose ResourceExists an operation can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exists {
    Secret,
    Version,
}

/// The SSM error for `e`, an error of an operation on the secret `name` (empty when the
/// operation names none). `exists` says what a ResourceExists is about.
pub fn ssm_error(ctx: Ctx<'_>, name: &str, exists: Exists, e: KmsError) -> TcError {
    let code = match e.code {
        ErrorCode::ResourceNotFound if !name.is_empty() && !ops::secrets::exists(ctx, name) => {
            "ResourceNotFound.SecretNotExist"
        }
        _ => return table(exists, e),
    };
    TcError::new(code, e.message)
}

/// The table, without looking at the store.
pub fn table(exists: Exists, e: KmsError) -> TcError {
    let code = match e.code {
        ErrorCode::ResourceNotFound => "ResourceNotFound",
        ErrorCode::ResourceExists => match exists {
            Exists::Secret => "ResourceInUse.SecretExists",
            Exists::Version => "ResourceInUse.VersionIdExists",
        },
        ErrorCode::SecretDisabled => "ResourceUnavailable.ResourceDisabled",
        ErrorCode::SecretPendingDeletion => "ResourceUnavailable.ResourcePendingDeleted",
        ErrorCode::InvalidState => "OperationDenied",
        ErrorCode::KeyNotFound => "InvalidParameterValue",
        ErrorCode::KeyDisabled
        | ErrorCode::KeyPendingDeletion
        | ErrorCode::KeyPendingImport
        | ErrorCode::IncorrectKeyUsage
        | ErrorCode::UnsupportedKeySpec => "FailedOperation.AccessKmsError",
        ErrorCode::Conflict => "FailedOperation",
        _ => return TcError::from(e),
    };
    TcError::new(code, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(exists: Exists, c: ErrorCode) -> &'static str {
        table(exists, KmsError::new(c, "m")).code
    }

    #[test]
    fn secrets_get_ssm_codes_and_the_rest_the_kms_table() {
        use ErrorCode::*;
        for (c, want) in [
            (ResourceNotFound, "ResourceNotFound"),
            (SecretDisabled, "ResourceUnavailable.ResourceDisabled"),
            (
                SecretPendingDeletion,
                "ResourceUnavailable.ResourcePendingDeleted",
            ),
            (InvalidState, "OperationDenied"),
            (KeyNotFound, "InvalidParameterValue"),
            (KeyDisabled, "FailedOperation.AccessKmsError"),
            (KeyPendingDeletion, "FailedOperation.AccessKmsError"),
            (IncorrectKeyUsage, "FailedOperation.AccessKmsError"),
            (Conflict, "FailedOperation"),
            (InvalidParameter, "InvalidParameterValue"),
            (Forbidden, "AuthFailure.UnauthorizedOperation"),
            (HsmUnavailable, "InternalError"),
            (Internal, "InternalError"),
        ] {
            assert_eq!(code(Exists::Secret, c), want, "{c:?}");
        }
        assert_eq!(
            code(Exists::Secret, ResourceExists),
            "ResourceInUse.SecretExists"
        );
        assert_eq!(
            code(Exists::Version, ResourceExists),
            "ResourceInUse.VersionIdExists"
        );
        let e = table(
            Exists::Secret,
            KmsError::new(SecretDisabled, "secret db is disabled"),
        );
        assert_eq!(
            e.message, "secret db is disabled",
            "the message goes as it is"
        );
    }

    #[test]
    fn every_code_is_one_the_sdk_knows() {
        // errorcodes.py of tencentcloud-sdk-python-ssm 3.1.194, and AuthFailure's own.
        const SDK: &[&str] = &[
            "AuthFailure.UnauthorizedOperation",
            "FailedOperation",
            "FailedOperation.AccessKmsError",
            "InternalError",
            "InvalidParameter",
            "InvalidParameterValue",
            "MissingParameter",
            "OperationDenied",
            "ResourceInUse.SecretExists",
            "ResourceInUse.VersionIdExists",
            "ResourceNotFound",
            "ResourceNotFound.SecretNotExist",
            "ResourceUnavailable",
            "ResourceUnavailable.ResourceDisabled",
            "ResourceUnavailable.ResourcePendingDeleted",
            "UnsupportedOperation",
        ];
        use ErrorCode::*;
        for c in [
            ResourceNotFound,
            ResourceExists,
            SecretDisabled,
            SecretPendingDeletion,
            InvalidState,
            KeyNotFound,
            KeyDisabled,
            Conflict,
            InvalidParameter,
            Forbidden,
            Internal,
            NotInitialized,
        ] {
            for x in [Exists::Secret, Exists::Version] {
                assert!(SDK.contains(&code(x, c)), "{c:?}: {}", code(x, c));
            }
        }
    }
}
