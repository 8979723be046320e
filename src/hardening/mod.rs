//! Process hardening of the hkms daemons.
//!
//! hkmsd starts in this order (see `src/bin/hkmsd.rs`):
//! 1. load the configuration, then settle its identity ([`identity`]): refuse root unless it
//!    switches to the service user (`[hardening] run_as`) or `--allow-root` was given;
//! 2. [`restrict_process`]: no core dumps, not dumpable, memory locked where the limits
//!    allow, no new privileges, every capability dropped. This comes before the store opens
//!    because the store starts threads of its own and capabilities are per thread;
//! 3. open the store, load the PKCS#11 libraries, log in and open the first sessions, bind the
//!    socket, on a start-up runtime that is shut down afterwards;
//! 4. [`confine`]: the seccomp allow-list of the binary ([`seccomp`]) on every thread (TSYNC),
//!    then a self-test of forbidden calls;
//! 5. the serving runtime is built: its threads inherit all of the above.
//!
//! `hkmsd --check-hardening` ([`report`]) shows what is in force in the running daemon.
//!
//! hkms-gateway (`src/bin/hkms-gateway.rs`) uses the same steps in its own order: load the
//! configuration and certificate, bind every listener (a root start may bind port 443),
//! settle the identity, [`restrict_process`], [`confine`] with its own allow-list
//! ([`seccomp::GATEWAY`]), then build the serving runtime.

pub mod identity;
pub mod notify;
pub mod privileges;
pub mod profile;
pub mod report;
pub mod seccomp;

pub use privileges::MemoryLock;
pub use seccomp::SeccompMode;

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
    /// The settings [`restrict_process`] and [`confine`] read.
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

/// What [`restrict_process`] and [`confine`] did, for the start-up log.
#[derive(Debug, Clone)]
pub struct LockdownSummary {
    pub memory_locked: bool,
    pub memory_note: String,
    pub seccomp_mode: SeccompMode,
    pub allowed_syscalls: usize,
    pub probes: Vec<seccomp::ProbeResult>,
}

/// Step 1 of lock-down, right after the identity is settled and before the store is opened
/// (the store starts its own threads, and capabilities are per thread): no core dumps, not
/// dumpable, memory locked where the limits allow, no new privileges, no capabilities.
/// Returns whether memory is locked and a note for the log.
pub fn restrict_process(config: &HardeningConfig) -> Result<(bool, String), String> {
    privileges::disable_core_dumps()?;
    let memory = privileges::lock_memory(config.memory_lock)?;
    privileges::set_no_new_privs()?;
    privileges::drop_capabilities()?;
    Ok(memory)
}

/// Step 2 of lock-down, after the start-up work that needs files, libraries and sockets and
/// before the serving runtime starts: checks that no thread holds a capability, installs
/// the seccomp filters on every thread and tries forbidden calls.
pub fn confine(
    config: &HardeningConfig,
    filter: &seccomp::CompiledFilter,
    memory: (bool, String),
) -> Result<LockdownSummary, String> {
    let holders = privileges::threads_with_capabilities()?;
    if !holders.is_empty() {
        return Err(format!(
            "threads {holders:?} hold capabilities after they were dropped; refusing to serve"
        ));
    }
    seccomp::install(filter)?;
    let probes = seccomp::probe(filter);
    if config.seccomp == SeccompMode::Enforce {
        if let Some(p) = probes.iter().find(|p| !p.blocked) {
            return Err(format!(
                "seccomp self-test failed: {} was not blocked ({})",
                p.call, p.outcome
            ));
        }
    }
    Ok(LockdownSummary {
        memory_locked: memory.0,
        memory_note: memory.1,
        seccomp_mode: config.seccomp,
        allowed_syscalls: filter.allowed.len(),
        probes,
    })
}
