//! `[audit]`: where the trail lives, how segments rotate and how long they are kept.

use serde::Deserialize;
use std::path::PathBuf;

/// `[audit]` in hkmsd's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Turning the trail off leaves requests unrecorded; hkmsd warns at start. Only for
    /// measurements and tests.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Directory of the segment files (created 0700; files 0600). Default: `audit` beside
    /// the store (`/var/lib/hkms/audit` for a store in `/var/lib/hkms/store`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A segment is closed and a new one begun past this size...
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// ...or this age.
    #[serde(default = "default_segment_max_age_secs")]
    pub segment_max_age_secs: u64,
    /// Closed segments older than this are deleted (0: kept for ever).
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// Oldest closed segments are deleted while the trail's records take more than this
    /// (0: no limit).
    #[serde(default)]
    pub retention_max_bytes: u64,
    /// How often a checkpoint is signed while records arrive.
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
    /// Append with `O_DIRECT | O_DSYNC` writes where the file system takes them (see
    /// [`super::direct`]); `false`: buffered writes and `fdatasync`.
    #[serde(default = "default_true")]
    pub direct_appends: bool,
}

fn default_true() -> bool {
    true
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
            dir: None,
            segment_max_bytes: default_segment_max_bytes(),
            segment_max_age_secs: default_segment_max_age_secs(),
            retention_days: default_retention_days(),
            retention_max_bytes: 0,
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
            direct_appends: true,
        }
    }
}

impl AuditConfig {
    /// The trail's directory for a store at `store`.
    pub fn dir_for(&self, store: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            store
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("audit")
        })
    }
}
