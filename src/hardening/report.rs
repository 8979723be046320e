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
    /// The process name (`/proc/<pid>/comm`): hkmsd or hkms-gateway.
    pub name: String,
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
            "{} pid {} (uid {}, gid {}), {} threads\n",
            self.name,
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
    let name = std::fs::read_to_string(format!("{base}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into());
    let mut report = Report {
        pid,
        name,
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

/// The pid of the process that holds the TCP listening socket bound to `addr` (found
/// through `/proc/net/tcp*` and the file descriptors in `/proc/*/fd`).
pub fn tcp_listener_owner(addr: std::net::SocketAddr) -> Result<u32, String> {
    let inode = listening_inode(addr)?
        .ok_or_else(|| format!("nothing listens on {addr} (or it is not visible here)"))?;
    let target = format!("socket:[{inode}]");
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    let mut systemd_holds = false;
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*target))
        {
            // systemd keeps the socket it passed to the gateway (hkms-gateway.socket).
            if pid == 1 {
                systemd_holds = true;
                continue;
            }
            return Ok(pid);
        }
    }
    if systemd_holds {
        return Err(format!(
            "only systemd holds the listener on {addr}: the gateway is not running"
        ));
    }
    Err(format!(
        "no process visible here holds the listener on {addr} (run as root or as its user)"
    ))
}

/// `/proc/net/tcp*` notation of an address: the address in host byte order words, then
/// the port, in hexadecimal.
fn proc_net_address(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        std::net::SocketAddr::V6(a) => {
            let words: String = a
                .ip()
                .octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            format!("{words}:{:04X}", a.port())
        }
    }
}

/// The inode of the listening socket on `addr`, from `/proc/net/tcp` or `/proc/net/tcp6`.
/// A wildcard address also matches a dual-stack `[::]` socket on the same port (what
/// systemd binds for `ListenStream=443`).
fn listening_inode(addr: std::net::SocketAddr) -> Result<Option<u64>, String> {
    let mut wanted = vec![addr];
    if addr.ip().is_unspecified() {
        wanted.push(std::net::SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            addr.port(),
        )));
    }
    for a in wanted {
        let file = if a.is_ipv4() {
            "/proc/net/tcp"
        } else {
            "/proc/net/tcp6"
        };
        // No IPv6 in the kernel: no tcp6 table.
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(inode) = parse_listener(&table, &proc_net_address(a)) {
            return Ok(Some(inode));
        }
    }
    read("/proc/net/tcp").map(|_| None)
}

/// The inode of the line of a `/proc/net/tcp*` table with local address `local` in state
/// LISTEN (0A).
fn parse_listener(table: &str, local: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1].eq_ignore_ascii_case(local) && f[3] == "0A")
            .then(|| f[9].parse().ok())
            .flatten()
    })
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
    fn the_owner_of_a_tcp_listener_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(tcp_listener_owner(addr).unwrap(), std::process::id());
        drop(l);
        assert!(tcp_listener_owner(addr).is_err());
        // A wildcard IPv4 address is also served by a dual-stack [::] listener.
        if let Ok(l6) = std::net::TcpListener::bind("[::]:0") {
            let port = l6.local_addr().unwrap().port();
            let any4 = std::net::SocketAddr::from(([0, 0, 0, 0], port));
            assert_eq!(tcp_listener_owner(any4).unwrap(), std::process::id());
        }
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 4242 1\n\
            1: 0100007F:20FC 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   998        0 4243 1\n";
        assert_eq!(parse_listener(table, "0100007F:20FB"), Some(4242));
        assert_eq!(
            parse_listener(table, "0100007F:20FC"),
            None,
            "not listening"
        );
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
