//! Which user hkmsd (and hkms-gateway) runs as.
//!
//! hkmsd never serves as root. Started as root, it switches to the configured service user
//! (`[hardening] run_as`) before it opens the store or loads any PKCS#11 library, so vendor
//! code never runs with root's identity and every file it creates belongs to the service
//! user. `--allow-root` keeps uid 0 (all capabilities are still dropped) for disposable test
//! instances only; it is logged as a warning and shown by `--check-hardening`. The gateway
//! applies the same policy right after binding its listeners.

use nix::unistd::{self, Gid, Uid, User};

/// The identity hkmsd serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Started as an unprivileged user (the systemd unit's `User=`).
    Unprivileged { uid: u32 },
    /// Started as root and switched to the service user.
    Switched { user: String, uid: u32, gid: u32 },
    /// Root, explicitly allowed with `--allow-root`.
    RootAllowed,
}

/// Applies the run-as policy. Call it before any thread is started.
pub fn settle(run_as: Option<&str>, allow_root: bool) -> Result<Identity, String> {
    let euid = Uid::effective();
    let ruid = Uid::current();
    if !euid.is_root() && !ruid.is_root() {
        if let Some(name) = run_as {
            let user = lookup(name)?;
            if user.uid != euid {
                return Err(format!(
                    "running as uid {euid} but [hardening] run_as is {name:?} (uid {}); \
                     start as root to switch, or as {name:?}",
                    user.uid
                ));
            }
        }
        return Ok(Identity::Unprivileged { uid: euid.as_raw() });
    }
    match run_as {
        Some(name) => switch_to(name),
        None if allow_root => Ok(Identity::RootAllowed),
        None => Err(
            "refusing to run as root. Set [hardening] run_as in the configuration to the \
             service user (\"hkms\" for hkmsd, \"hkms-gateway\" for the gateway) to switch \
             at start, start as that user (the systemd units do), or pass --allow-root for \
             a disposable test instance"
                .into(),
        ),
    }
}

fn lookup(name: &str) -> Result<User, String> {
    User::from_name(name)
        .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
        .ok_or_else(|| format!("[hardening] run_as: no user {name:?} on this system"))
}

fn switch_to(name: &str) -> Result<Identity, String> {
    let user = lookup(name)?;
    if user.uid.is_root() {
        return Err(format!(
            "[hardening] run_as = {name:?} is root; name an unprivileged service user"
        ));
    }
    let gid: Gid = user.gid;
    // The bounding set can only shrink while CAP_SETPCAP is held, that is before the switch.
    caps::clear(None, caps::CapSet::Bounding)
        .map_err(|e| format!("cannot clear the capability bounding set: {e}"))?;
    // Supplementary groups first (needs root), then the group, then the user: after
    // setuid the process can no longer change its groups. The user's groups from the group
    // database, as systemd's User= gives them: hkms-gateway reaches hkmsd's socket through
    // its membership of group hkms.
    let cname = std::ffi::CString::new(name)
        .map_err(|_| format!("[hardening] run_as = {name:?} is not a user name"))?;
    unistd::initgroups(&cname, gid).map_err(|e| format!("initgroups({name}) failed: {e}"))?;
    unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid({gid}) failed: {e}"))?;
    unistd::setresuid(user.uid, user.uid, user.uid)
        .map_err(|e| format!("setresuid({}) failed: {e}", user.uid))?;
    // The switch must be irreversible.
    if unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::setgid(Gid::from_raw(0)).is_ok() {
        return Err("could regain root after switching users; refusing to continue".into());
    }
    Ok(Identity::Switched {
        user: name.to_owned(),
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
    })
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Unprivileged { uid } => write!(f, "uid {uid}"),
            Identity::Switched { user, uid, gid } => {
                write!(f, "{user} (uid {uid}, gid {gid}, switched from root)")
            }
            Identity::RootAllowed => write!(f, "root (--allow-root)"),
        }
    }
}
