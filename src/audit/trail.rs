//! The trail's writer.

use std::path::PathBuf;

/// What the trail reports to `hkms status`, metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailStatus {
    pub enabled: bool,
    /// Whether the last write (or retry) reached the disk.
    pub writable: bool,
    /// Why it is not writable.
    pub error: Option<String>,
    /// Records submitted and not yet durable.
    pub backlog: u64,
    /// The last durable record (0: none).
    pub last_seq: u64,
    /// When the last checkpoint was signed (RFC 3339).
    pub last_checkpoint: Option<String>,
    pub segments: u64,
    pub bytes: u64,
    pub dir: PathBuf,
}

/// The audit trail of one hkmsd.
#[derive(Debug)]
pub struct Trail {
    status: TrailStatus,
}

impl Trail {
    /// A trail that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Trail {
        Trail {
            status: TrailStatus::default(),
        }
    }

    pub fn status(&self) -> TrailStatus {
        self.status.clone()
    }
}
