//! The audit trail: every request that reaches hkmsd, whatever its front and outcome, is
//! recorded before it is answered, in an append-only, hash-chained log with checkpoints
//! signed inside the HSMs.
//!
//! - [`record`]: the lines of the trail and of export files, byte for byte, and their hashes;
//! - [`scope`]: the record of the request being served, which the layers it passes through
//!   fill in (caller, operation, resources, result);
//! - [`trail`]: the writer: group commit to segment files, fsync before anything is
//!   answered, rotation, retention, recovery of a torn tail after a crash;
//! - [`checkpoint`]: the signing key, periodic checkpoints and the keyed hashes;
//! - [`export`]: export files (header, records, checkpoints, seal);
//! - [`verify`]: offline verification of an export file, naming the first line that was
//!   altered, removed, reordered or inserted, or a cut tail;
//! - [`layer`]: the gRPC side (a tower layer that records every gRPC call).
//!
//! **Fail closed.** A request's answer waits until its record is on disk. When the trail
//! cannot be written, requests are refused with `AuditUnavailable`, readiness turns red, and
//! the writer retries every second; the first write that succeeds records the outage.

pub mod checkpoint;
pub mod export;
pub mod layer;
pub mod record;
pub mod scope;
pub mod trail;
pub mod verify;

use serde::Deserialize;
use std::path::PathBuf;

pub use trail::{Trail, TrailStatus};

/// `[audit]` in hkmsd's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Turning the trail off leaves requests unrecorded; hkmsd warns at start. Only for
    /// measurements and tests.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Directory of the segment files (created 0700; files 0600).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// A segment is closed and a new one begun past this size...
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// ...or this age.
    #[serde(default = "default_segment_max_age_secs")]
    pub segment_max_age_secs: u64,
    /// Closed segments older than this are deleted (0: kept for ever).
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// Oldest closed segments are deleted while the trail is larger than this (0: no limit).
    #[serde(default)]
    pub retention_max_bytes: u64,
    /// How often a checkpoint is signed while records arrive.
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
}

fn default_true() -> bool {
    true
}

fn default_dir() -> PathBuf {
    PathBuf::from("/var/lib/hkms/audit")
}

fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_segment_max_age_secs() -> u64 {
    24 * 3600
}

fn default_retention_days() -> u64 {
    400
}

fn default_checkpoint_interval_secs() -> u64 {
    60
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            enabled: true,
            dir: default_dir(),
            segment_max_bytes: default_segment_max_bytes(),
            segment_max_age_secs: default_segment_max_age_secs(),
            retention_days: default_retention_days(),
            retention_max_bytes: 0,
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
        }
    }
}
