//! The `[hardening]` tables of hkmsd's and the gateway's configuration, and the settings
//! they name.

use serde::Deserialize;
use std::path::PathBuf;

/// The `[hardening]` table of hkmsd.toml. Every default is the secure choice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardeningConfig {
    /// Service user to switch to when hkmsd is started as root. Without it hkmsd refuses
    /// to run as root (unless `--allow-root` is given for a disposable test instance).
    #[serde(default)]
    pub run_as: Option<String>,
    /// `enforce`: calls outside the allow-list fail with EPERM. `log`: they are allowed and
    /// logged by the kernel (audit, `dmesg`), to discover what a vendor library needs.
    #[serde(default)]
    pub seccomp: SeccompMode,
    /// `auto`: lock all memory (kept out of swap) when RLIMIT_MEMLOCK is unlimited, as the
    /// systemd unit sets it; otherwise warn. `required`: refuse to start unless locked.
    /// `off`: do not lock.
    #[serde(default)]
    pub memory_lock: MemoryLock,
    /// Directory searched first for `<profile>.toml` HSM profiles (their `[seccomp]`
    /// additions); the profiles shipped with hkms are built in.
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: PathBuf,
}

impl Default for HardeningConfig {
    fn default() -> Self {
        HardeningConfig {
            run_as: None,
            seccomp: SeccompMode::default(),
            memory_lock: MemoryLock::default(),
            profiles_dir: default_profiles_dir(),
        }
    }
}

/// The `[hardening]` table of the gateway's configuration. Every default is the secure
/// choice. The gateway loads no PKCS#11 library, so it has no HSM profiles.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayHardeningConfig {
    /// Service user to switch to when hkms-gateway is started as root (after its listeners
    /// are bound, so a root start can listen on port 443). Without it the gateway refuses
    /// to run as root (unless `--allow-root` is given for a disposable test instance).
    #[serde(default)]
    pub run_as: Option<String>,
    /// `enforce` or `log`, as for hkmsd.
    #[serde(default)]
    pub seccomp: SeccompMode,
    /// `auto`, `required` or `off`, as for hkmsd: the TLS private key stays out of swap.
    #[serde(default)]
    pub memory_lock: MemoryLock,
}

impl GatewayHardeningConfig {
    /// The settings [`super::restrict_process`] and [`super::confine`] read.
    pub fn as_process(&self) -> HardeningConfig {
        HardeningConfig {
            run_as: self.run_as.clone(),
            seccomp: self.seccomp,
            memory_lock: self.memory_lock,
            ..HardeningConfig::default()
        }
    }
}

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("/usr/share/hkms/hsm-profiles")
}

/// What a call outside the seccomp allow-list does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// Fails with EPERM; the daemon keeps serving.
    #[default]
    Enforce,
    /// Allowed, and logged by the kernel.
    Log,
}

/// Whether the daemon's memory is locked (kept out of swap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryLock {
    #[default]
    Auto,
    Required,
    Off,
}
