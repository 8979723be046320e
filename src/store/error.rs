//! Store failures, and how hkmsd reports them to callers.

use crate::error::{ErrorCode, KmsError};

/// The store schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A store failure. The message never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("store record {0} is corrupt")]
    Corrupt(String),
    #[error("store schema version {found} is not supported (this build uses {SCHEMA_VERSION})")]
    Schema { found: u32 },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A compare-and-swap found another record than the one expected (nothing was written).
    #[error("the record changed meanwhile")]
    Conflict,
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> KmsError {
        match e {
            StoreError::Conflict => KmsError::new(
                ErrorCode::Conflict,
                "the key changed while this request was deciding; try again",
            ),
            other => KmsError::new(ErrorCode::StoreError, other.to_string()),
        }
    }
}
