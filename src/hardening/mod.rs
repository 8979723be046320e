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

pub mod config;
pub mod identity;
pub mod notify;
pub mod privileges;
pub mod profile;
pub mod report;
pub mod seccomp;

pub use config::{GatewayHardeningConfig, HardeningConfig, MemoryLock, SeccompMode};

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
