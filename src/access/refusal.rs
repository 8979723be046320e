//! How access control refuses: one message for every denied caller (the reason is logged,
//! never told), and the check that only operators pass.

use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};

/// The message every denied caller gets.
pub const FORBIDDEN_MESSAGE: &str = "This operation is forbidden by permission system.";

pub(super) fn forbidden() -> KmsError {
    KmsError::new(ErrorCode::Forbidden, FORBIDDEN_MESSAGE)
}

/// Requires an operator (administrative operations).
pub fn require_operator(caller: &Caller, operation: &str) -> Result<(), KmsError> {
    match caller {
        Caller::Operator { .. } => Ok(()),
        other => {
            tracing::warn!(caller = %other, operation, "denied: only operators may do this");
            Err(forbidden())
        }
    }
}
