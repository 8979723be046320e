//! What hardening is in force in a running process, read from `/proc/<pid>`:
//! seccomp mode and filter count, no-new-privileges and capability sets of every thread,
//! the dumpable flag, the core and memlock limits and the locked memory.

use serde::Serialize;
use std::os::unix::fs::MetadataExt;

/// State of one thread.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadState {
    pub tid: u32,
    pub name: String,
    /// 0 off, 1 strict, 2 filter.
    pub seccomp: u32,
    pub seccomp_filters: u32,
    pub no_new_privs: bool,
    pub cap_inheritable: String,
    pub cap_permitted: String,
    pub cap_effective: String,
    pub cap_bounding: String,
    pub cap_ambient: String,
}

impl ThreadState {
    fn holds_capabilities(&self) -> bool {
        [
            &self.cap_inheritable,
            &self.cap_permitted,
            &self.cap_effective,
            &self.cap_ambient,
        ]
        .iter()
        .any(|c| u64::from_str_radix(c, 16) != Ok(0))
    }
}

/// One verdict of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `ok`, `warn` or `fail`.
    pub status: &'static str,
    pub item: &'static str,
    pub detail: String,
}

/// The hardening report of one process.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `Some(false)` when the process is not dumpable; `None` when it cannot be told.
    pub dumpable: Option<bool>,
    pub core_limit: [String; 2],
    pub memlock_limit: [String; 2],
    pub locked_kib: u64,
    pub threads: Vec<ThreadState>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != "fail")
    }

    /// Text for operators.
    pub fn render(&self) -> String {
        let mut out = format!(
            "hkmsd pid {} (uid {}, gid {}), {} threads\n",
            self.pid,
            self.uid,
            self.gid,
            self.threads.len()
        );
        for c in &self.checks {
            out.push_str(&format!("  {:<5} {:<13} {}\n", c.status, c.item, c.detail));
        }
        out.push_str("  threads:\n    tid      name             seccomp filters nnp capeff           capprm           capbnd\n");
        for t in &self.threads {
            out.push_str(&format!(
                "    {:<8} {:<16} {:<7} {:<7} {:<3} {} {} {}\n",
                t.tid,
                t.name,
                t.seccomp,
                t.seccomp_filters,
                u8::from(t.no_new_privs),
                t.cap_effective,
                t.cap_permitted,
                t.cap_bounding
            ));
        }
        out.push_str(if self.passed() {
            "result: hardened\n"
        } else {
            "result: NOT hardened (see the fail lines above)\n"
        });
        out
    }
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn first_number(s: Option<&str>) -> u32 {
    s.and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn limit(limits: &str, name: &str) -> [String; 2] {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|rest| {
            let mut it = rest.split_whitespace();
            [
                it.next().unwrap_or("?").to_owned(),
                it.next().unwrap_or("?").to_owned(),
            ]
        })
        .unwrap_or_else(|| ["?".into(), "?".into()])
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Collects the report of process `pid` (this process when it is our own pid).
pub fn collect(pid: u32) -> Result<Report, String> {
    let base = format!("/proc/{pid}");
    let status = read(&format!("{base}/status"))?;
    let uid = first_number(field(&status, "Uid").map(|u| u.split_whitespace().nth(1).unwrap_or(u)));
    let gid = first_number(field(&status, "Gid").map(|g| g.split_whitespace().nth(1).unwrap_or(g)));
    let locked_kib = first_number(field(&status, "VmLck")) as u64;
    let limits = read(&format!("{base}/limits"))?;
    let core_limit = limit(&limits, "Max core file size");
    let memlock_limit = limit(&limits, "Max locked memory");
    let mut threads = Vec::new();
    let tasks = std::fs::read_dir(format!("{base}/task"))
        .map_err(|e| format!("cannot list {base}/task: {e}"))?;
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A thread may end while we read.
        let Ok(s) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let f = |k| field(&s, k).unwrap_or("?").to_owned();
        threads.push(ThreadState {
            tid,
            name: f("Name"),
            seccomp: first_number(field(&s, "Seccomp")),
            seccomp_filters: first_number(field(&s, "Seccomp_filters")),
            no_new_privs: field(&s, "NoNewPrivs") == Some("1"),
            cap_inheritable: f("CapInh"),
            cap_permitted: f("CapPrm"),
            cap_effective: f("CapEff"),
            cap_bounding: f("CapBnd"),
            cap_ambient: f("CapAmb"),
        });
    }
    threads.sort_by_key(|t| t.tid);
    let dumpable = if pid == std::process::id() {
        nix::sys::prctl::get_dumpable().ok()
    } else if uid == 0 {
        // /proc/<pid> of a non-dumpable process belongs to root, which tells nothing here.
        None
    } else {
        // The files of a non-dumpable process belong to root (proc(5)); the directory
        // itself may keep an older owner, so look at a file in it.
        std::fs::metadata(format!("{base}/status"))
            .ok()
            .map(|m| m.uid() == uid)
    };
    let mut report = Report {
        pid,
        uid,
        gid,
        dumpable,
        core_limit,
        memlock_limit,
        locked_kib,
        threads,
        checks: Vec::new(),
    };
    report.checks = judge(&report);
    Ok(report)
}

fn judge(r: &Report) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |ok: bool, warn_only: bool, item, detail: String| {
        checks.push(Check {
            status: if ok {
                "ok"
            } else if warn_only {
                "warn"
            } else {
                "fail"
            },
            item,
            detail,
        })
    };
    let n = r.threads.len();
    let filtered = r
        .threads
        .iter()
        .filter(|t| t.seccomp == 2 && t.seccomp_filters > 0)
        .count();
    let filters: Vec<u32> = r.threads.iter().map(|t| t.seccomp_filters).collect();
    check(
        n > 0 && filtered == n,
        false,
        "seccomp",
        format!(
            "filter mode on {filtered}/{n} threads, filters per thread: {}",
            summarize(&filters)
        ),
    );
    let nnp = r.threads.iter().filter(|t| t.no_new_privs).count();
    check(
        nnp == n,
        false,
        "no_new_privs",
        format!("set on {nnp}/{n} threads"),
    );
    let capped: Vec<u32> = r
        .threads
        .iter()
        .filter(|t| t.holds_capabilities())
        .map(|t| t.tid)
        .collect();
    check(
        capped.is_empty(),
        false,
        "capabilities",
        if capped.is_empty() {
            "none held (permitted, effective, inheritable, ambient) on every thread".into()
        } else {
            format!("held by threads {capped:?}")
        },
    );
    let bounding_empty = r
        .threads
        .iter()
        .all(|t| u64::from_str_radix(&t.cap_bounding, 16) == Ok(0));
    check(
        bounding_empty,
        true,
        "bounding set",
        if bounding_empty {
            "empty".into()
        } else {
            "not empty (harmless with no_new_privs; the systemd unit empties it)".into()
        },
    );
    check(
        r.core_limit == ["0", "0"],
        false,
        "core dumps",
        format!(
            "RLIMIT_CORE soft {} hard {}",
            r.core_limit[0], r.core_limit[1]
        ),
    );
    check(
        r.dumpable != Some(true),
        r.dumpable.is_none(),
        "dumpable",
        match r.dumpable {
            Some(false) => "no (no ptrace or /proc/<pid>/mem access by the same user)".into(),
            Some(true) => "yes".into(),
            None => "cannot be told from outside for a root process; see the start-up log".into(),
        },
    );
    check(
        r.locked_kib > 0,
        true,
        "memory lock",
        format!(
            "{} KiB of address space locked (VmLck), RLIMIT_MEMLOCK soft {} hard {}",
            r.locked_kib, r.memlock_limit[0], r.memlock_limit[1]
        ),
    );
    check(
        r.uid != 0,
        true,
        "user",
        if r.uid == 0 {
            "runs as root (--allow-root); use a service user in production".into()
        } else {
            format!("uid {}", r.uid)
        },
    );
    checks
}

fn summarize(values: &[u32]) -> String {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The pid of the process listening on a Unix socket (SO_PEERCRED).
pub fn socket_owner(path: &std::path::Path) -> Result<u32, String> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("hkmsd is not reachable at {}: {e}", path.display()))?;
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot read the peer of {}: {e}", path.display()))?;
    u32::try_from(cred.pid()).map_err(|_| "the socket peer has no pid".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unhardened_process_fails_the_report() {
        // The test process itself: no seccomp filter, dumpable, core limit as inherited.
        let r = collect(std::process::id()).unwrap();
        assert!(!r.threads.is_empty());
        assert!(r.threads.iter().all(|t| t.seccomp == 0));
        assert_eq!(r.dumpable, Some(true));
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("fail  seccomp"), "{text}");
        assert!(text.contains("NOT hardened"));
    }

    #[test]
    fn proc_fields_parse() {
        let s = "Name:\thkmsd\nSeccomp:\t2\nSeccomp_filters:\t2\nUid:\t0\t998\t998\t998\n";
        assert_eq!(first_number(field(s, "Seccomp")), 2);
        assert_eq!(first_number(field(s, "Seccomp_filters")), 2);
        assert_eq!(field(s, "Name"), Some("hkmsd"));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max core file size        0                    0                    bytes\n\
                      Max locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(limit(limits, "Max core file size"), ["0", "0"]);
        assert_eq!(
            limit(limits, "Max locked memory"),
            ["unlimited", "unlimited"]
        );
    }
}
