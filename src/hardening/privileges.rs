//! Core dumps, dumpability, memory locking, no-new-privileges and capabilities.

use super::config::MemoryLock;
use caps::CapSet;
use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::prctl;
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// Threads of this process that hold any capability.
pub fn threads_with_capabilities() -> Result<Vec<u32>, String> {
    let tasks = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot list /proc/self/task: {e}"))?;
    let mut holders = Vec::new();
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let held = status.lines().any(|l| {
            ["CapPrm:", "CapEff:", "CapInh:", "CapAmb:"]
                .iter()
                .any(|k| {
                    l.strip_prefix(k)
                        .is_some_and(|v| u64::from_str_radix(v.trim(), 16) != Ok(0))
                })
        });
        if held {
            holders.push(tid);
        }
    }
    Ok(holders)
}

/// RLIMIT_CORE 0 (soft and hard) and not dumpable: a crash leaves no core file with secrets
/// in it, and no process of the same user can ptrace hkmsd or read its memory.
pub fn disable_core_dumps() -> Result<(), String> {
    // Skipped when already 0 (the systemd unit sets LimitCORE=0 and denies @resources).
    if getrlimit(Resource::RLIMIT_CORE) != Ok((0, 0)) {
        setrlimit(Resource::RLIMIT_CORE, 0, 0)
            .map_err(|e| format!("cannot set RLIMIT_CORE to 0: {e}"))?;
    }
    prctl::set_dumpable(false).map_err(|e| format!("prctl(PR_SET_DUMPABLE, 0) failed: {e}"))?;
    Ok(())
}

/// Locks current and future memory when the limits allow it. Returns whether memory is
/// locked and a note for the log.
///
/// Locking with a finite RLIMIT_MEMLOCK would depend on CAP_IPC_LOCK, which is dropped right
/// after: every later allocation beyond the limit would then fail. So memory is locked only
/// when the limit is unlimited (the systemd unit sets `LimitMEMLOCK=infinity`).
pub fn lock_memory(mode: MemoryLock) -> Result<(bool, String), String> {
    if mode == MemoryLock::Off {
        return Ok((
            false,
            "memory locking is off ([hardening] memory_lock)".into(),
        ));
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_MEMLOCK)
        .map_err(|e| format!("cannot read RLIMIT_MEMLOCK: {e}"))?;
    if soft != RLIM_INFINITY {
        let note = format!(
            "memory not locked: RLIMIT_MEMLOCK is {} KiB, not unlimited \
             (the systemd unit sets LimitMEMLOCK=infinity)",
            soft / 1024
        );
        if mode == MemoryLock::Required {
            return Err(format!("[hardening] memory_lock = \"required\": {note}"));
        }
        return Ok((false, note));
    }
    match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
        Ok(()) => Ok((true, "all memory locked (current and future)".into())),
        Err(e) if mode == MemoryLock::Auto => Ok((false, format!("mlockall failed: {e}"))),
        Err(e) => Err(format!(
            "[hardening] memory_lock = \"required\": mlockall failed: {e}"
        )),
    }
}

/// PR_SET_NO_NEW_PRIVS: no execve can ever grant privileges again (also required to install
/// a seccomp filter without CAP_SYS_ADMIN).
pub fn set_no_new_privs() -> Result<(), String> {
    prctl::set_no_new_privs().map_err(|e| format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {e}"))
}

/// Empties the ambient, bounding (when permitted), inheritable, effective and permitted sets
/// of the calling thread; threads started later inherit the empty sets.
pub fn drop_capabilities() -> Result<(), String> {
    let err = |what: &str, e: caps::errors::CapsError| format!("cannot clear {what}: {e}");
    if !caps::read(None, CapSet::Ambient)
        .map_err(|e| err("ambient capabilities", e))?
        .is_empty()
    {
        caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient capabilities", e))?;
    }
    // Shrinking the bounding set needs CAP_SETPCAP; an unprivileged start (systemd unit with
    // an empty CapabilityBoundingSet=) has nothing to shrink.
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| err("bounding set", e))?;
    if !bounding.is_empty()
        && caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false)
    {
        caps::clear(None, CapSet::Bounding).map_err(|e| err("bounding set", e))?;
    }
    let held = |set| caps::read(None, set).map(|s| !s.is_empty()).unwrap_or(true);
    // capset is refused under a systemd SystemCallFilter without @privileged; skip it when
    // there is nothing to clear.
    if held(CapSet::Inheritable) || held(CapSet::Effective) || held(CapSet::Permitted) {
        caps::clear(None, CapSet::Inheritable).map_err(|e| err("inheritable set", e))?;
        caps::clear(None, CapSet::Effective).map_err(|e| err("effective set", e))?;
        caps::clear(None, CapSet::Permitted).map_err(|e| err("permitted set", e))?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        let left = caps::read(None, set).map_err(|e| err("capabilities", e))?;
        if !left.is_empty() {
            return Err(format!(
                "capabilities left in {set:?} after dropping: {left:?}"
            ));
        }
    }
    Ok(())
}
