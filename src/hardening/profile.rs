//! The `[seccomp]` section of HSM profiles: system calls a vendor PKCS#11 library makes after
//! lock-down, beyond the daemon's own allow-list.
//!
//! ```toml
//! [seccomp.allow]
//! statfs = "free-space check before writing a token object"
//! ```
//!
//! Every entry needs a reason. Profiles are found and parsed as [`crate::hsm::profile::load`]
//! says.

use std::collections::BTreeMap;
use std::path::Path;

/// The extra system calls of one profile, with their reasons.
pub fn extra_syscalls(profiles_dir: &Path, name: &str) -> Result<BTreeMap<String, String>, String> {
    let allow = crate::hsm::profile::load(profiles_dir, name)?.seccomp.allow;
    for (call, reason) in &allow {
        if super::seccomp::syscall_number(call).is_none() {
            return Err(format!(
                "HSM profile {name}: [seccomp.allow] unknown system call {call:?}"
            ));
        }
        if reason.trim().is_empty() {
            return Err(format!(
                "HSM profile {name}: [seccomp.allow] {call} needs a reason"
            ));
        }
    }
    Ok(allow)
}

/// The union of the extra system calls of `profiles`.
pub fn extra_for_all<'a>(
    profiles_dir: &Path,
    profiles: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, String> {
    let mut all = Vec::new();
    for p in profiles {
        for call in extra_syscalls(profiles_dir, p)?.into_keys() {
            if !all.contains(&call) {
                all.push(call);
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_softhsm2_profile_has_reasoned_additions() {
        let extra = extra_syscalls(Path::new("/nonexistent"), "softhsm2").unwrap();
        assert!(!extra.is_empty());
        assert!(extra.values().all(|r| !r.trim().is_empty()));
    }

    #[test]
    fn every_built_in_profile_names_only_known_system_calls() {
        for name in crate::hsm::profile::built_in_names() {
            extra_syscalls(Path::new("/nonexistent"), name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn profile_dir_overrides_and_unknown_profiles_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("vendor.toml"),
            "name = \"vendor\"\n[seccomp.allow]\nsocket = \"talks to the HSM over TCP\"\n",
        )
        .unwrap();
        let extra = extra_syscalls(dir.path(), "vendor").unwrap();
        assert_eq!(extra.keys().collect::<Vec<_>>(), ["socket"]);
        assert!(extra_syscalls(dir.path(), "missing")
            .unwrap_err()
            .contains("not found"));
        assert!(extra_syscalls(dir.path(), "../etc/passwd").is_err());
        std::fs::write(
            dir.path().join("bad.toml"),
            "[seccomp.allow]\nnot_a_call = \"x\"\n",
        )
        .unwrap();
        assert!(extra_syscalls(dir.path(), "bad")
            .unwrap_err()
            .contains("not_a_call"));
    }
}
