//! The seccomp allow-lists of hkmsd and hkms-gateway.
//!
//! Every system call a binary makes after lock-down is listed below ([`HKMSD`], [`GATEWAY`])
//! with the reason it is needed. Anything else fails with EPERM (or, in log mode, is allowed and logged by the
//! kernel), so an attacker who gains code execution inside hkmsd cannot start programs, open
//! network connections, trace processes or load kernel modules. HSM profiles add what their
//! vendor library needs (`[seccomp] extra_syscalls`, see [`super::profile`]).
//!
//! One filter is installed on every thread (TSYNC). It starts with a short prefix that makes
//! `clone3` fail with ENOSYS, so the C library falls back to `clone`, whose flags a filter
//! can inspect (clone3 passes them in memory a filter cannot read). Then comes the
//! allow-list, with argument checks: `mmap`/`mprotect` never with PROT_EXEC, `clone` only
//! for threads, `socketpair` only AF_UNIX, `prctl` only the named operations.

use super::config::SeccompMode;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// How the arguments of an allowed call are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// Any arguments.
    Any,
    /// Argument 2 (`prot`) must not contain PROT_EXEC: no new executable memory.
    NoExec,
    /// Argument 0 (`flags`) must contain CLONE_THREAD: threads, never processes.
    ThreadOnly,
    /// Argument 0 (domain) must be AF_UNIX.
    UnixOnly,
    /// Argument 0 (domain) must be one of these address families.
    Domains(&'static [i32]),
    /// `openat` for reading only: argument 2 (flags) has neither write access nor
    /// O_CREAT, O_TRUNC or O_APPEND.
    ReadOnly,
    /// Argument 0 must be one of these `prctl` options.
    PrctlOps(&'static [i32]),
}

/// One allowed system call.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub name: &'static str,
    pub args: Args,
    pub reason: &'static str,
}

const fn allow(name: &'static str, reason: &'static str) -> Allowed {
    Allowed {
        name,
        args: Args::Any,
        reason,
    }
}

const fn allow_if(name: &'static str, args: Args, reason: &'static str) -> Allowed {
    Allowed { name, args, reason }
}

/// `prctl` operations hkmsd, tokio and the C library use after lock-down.
const PRCTL_OPS: &[i32] = &[
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    libc::PR_GET_DUMPABLE,
    libc::PR_GET_NO_NEW_PRIVS,
    libc::PR_CAPBSET_READ,
    libc::PR_SET_VMA,
];

/// What hkmsd needs after lock-down, with the reason for each call.
pub const HKMSD: &[Allowed] = &[
    // Files: the store, PIN files re-read on re-login, PKCS#11 token files.
    allow("read", "read files, sockets and the runtime's wake-up fds"),
    allow("write", "write log lines to stderr, files and wake-up fds"),
    allow("readv", "vectored reads by the C library"),
    allow("writev", "vectored writes (log lines, sockets)"),
    allow("pread64", "positioned reads in store and token files"),
    allow("pwrite64", "positioned writes in the store"),
    allow(
        "openat",
        "open store segments, PIN files on re-login, token files",
    ),
    allow("close", "close files and finished connections"),
    allow("newfstatat", "stat files (C library and std)"),
    allow("fstat", "stat open files"),
    allow("statx", "metadata of files (std::fs)"),
    allow("lseek", "seek in store and token files"),
    allow("fsync", "flush acknowledged store writes to disk"),
    allow("fdatasync", "flush store data to disk"),
    allow("fcntl", "file status flags and record locks"),
    allow("flock", "whole-file locks on the store"),
    allow("getdents64", "list directories (store snapshots)"),
    allow("unlinkat", "remove old store snapshot files"),
    allow("renameat", "atomically replace store snapshot files"),
    allow("renameat2", "atomically replace files (std::fs::rename)"),
    allow("ftruncate", "size store files"),
    allow("fallocate", "preallocate store segments"),
    allow("sync_file_range", "the store flushes written ranges"),
    allow("sysinfo", "the store sizes its cache from total memory"),
    allow("readlinkat", "resolve paths (C library)"),
    // Memory.
    allow("brk", "heap growth"),
    allow_if(
        "mmap",
        Args::NoExec,
        "allocations and thread stacks; never executable",
    ),
    allow_if("mprotect", Args::NoExec, "guard pages; never executable"),
    allow("munmap", "free allocations"),
    allow("mremap", "grow large allocations"),
    allow("madvise", "return freed memory to the kernel"),
    // Threads and synchronisation (tokio workers and the blocking pool for HSM calls).
    allow_if(
        "clone",
        Args::ThreadOnly,
        "start threads; processes are refused",
    ),
    allow("futex", "locks and condition variables"),
    allow("set_robust_list", "new threads register robust futexes"),
    allow("rseq", "new threads register restartable sequences"),
    allow("sched_yield", "spin-lock back-off"),
    allow("sched_getaffinity", "size the worker pool"),
    allow("sigaltstack", "per-thread stack for stack-overflow reports"),
    allow("rt_sigprocmask", "thread start and exit mask signals"),
    allow(
        "rt_sigaction",
        "install SIGTERM, SIGINT and SIGHUP handlers",
    ),
    allow("rt_sigreturn", "return from a signal handler"),
    allow(
        "restart_syscall",
        "the kernel resumes a sleep or timed wait through it after the process was stopped and continued (SIGSTOP, a debugger, a cgroup freeze); refused, the sleep fails and the thread panics",
    ),
    allow("gettid", "thread ids in the C library"),
    allow("getpid", "process id (logs, C library)"),
    allow("tgkill", "abort() on a fatal error raises SIGABRT"),
    allow("exit", "a thread ends"),
    allow("exit_group", "the process ends"),
    allow_if(
        "prctl",
        Args::PrctlOps(PRCTL_OPS),
        "thread names and reading own flags",
    ),
    // Event loop and sockets: gRPC over the Unix socket and the optional TCP listener,
    // both bound before lock-down.
    allow("epoll_create1", "the runtime's event loop"),
    allow("epoll_ctl", "register sockets with the event loop"),
    allow("epoll_wait", "wait for events"),
    allow("epoll_pwait", "wait for events (C library variant)"),
    allow("eventfd2", "wake the event loop from other threads"),
    allow("pipe2", "signal delivery to the runtime"),
    allow_if(
        "socketpair",
        Args::UnixOnly,
        "signal delivery to the runtime (AF_UNIX only)",
    ),
    allow(
        "accept4",
        "accept gRPC connections on the Unix socket and the TCP listener",
    ),
    allow("recvfrom", "read requests"),
    allow("recvmsg", "read requests"),
    allow(
        "sendto",
        "write responses; readiness notifications to systemd",
    ),
    allow("sendmsg", "write responses"),
    allow("shutdown", "close connections"),
    allow("getsockopt", "socket errors"),
    allow("setsockopt", "socket options on accepted connections"),
    allow("getsockname", "addresses of accepted connections"),
    allow("getpeername", "addresses of accepted connections"),
    allow("ioctl", "FIONBIO on accepted connections"),
    // Time and randomness.
    allow("clock_gettime", "timestamps when the vDSO is not used"),
    allow("clock_nanosleep", "timers and sleeps"),
    allow("nanosleep", "sleeps between retries (C library)"),
    allow("getrandom", "random IVs, ids and OpenSSL seeding"),
    allow("uname", "C library and OpenSSL platform checks"),
];

/// Flags that make an `openat` write or create (access mode bits included).
const OPEN_WRITE_FLAGS: i32 = libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND;

/// What hkms-gateway needs after lock-down, with the reason for each call. It holds no key
/// store and loads no PKCS#11 library: it accepts TLS connections, reads its certificate
/// files again on reload, and relays requests to hkmsd's Unix socket.
pub const GATEWAY: &[Allowed] = &[
    // Files: only the certificate and key, read again on SIGHUP or when they change.
    allow("read", "read sockets, certificate files and wake-up fds"),
    allow("write", "write log lines to stderr and wake-up fds"),
    allow("readv", "vectored reads by the C library"),
    allow("writev", "vectored writes (log lines, sockets)"),
    allow_if(
        "openat",
        Args::ReadOnly,
        "read the certificate and key on reload; never for writing",
    ),
    allow("close", "close files and finished connections"),
    allow("newfstatat", "stat files (C library)"),
    allow("fstat", "stat open files (OpenSSL reads of PEM files)"),
    allow("statx", "modification times of the certificate files"),
    allow("lseek", "positioned reads of PEM files by the C library"),
    allow("fcntl", "file descriptor flags"),
    // Memory.
    allow("brk", "heap growth"),
    allow_if(
        "mmap",
        Args::NoExec,
        "allocations and thread stacks; never executable",
    ),
    allow_if("mprotect", Args::NoExec, "guard pages; never executable"),
    allow("munmap", "free allocations"),
    allow("mremap", "grow large allocations"),
    allow("madvise", "return freed memory to the kernel"),
    // Threads and synchronisation (tokio workers and its blocking pool).
    allow_if(
        "clone",
        Args::ThreadOnly,
        "start threads; processes are refused",
    ),
    allow("futex", "locks and condition variables"),
    allow("set_robust_list", "new threads register robust futexes"),
    allow("rseq", "new threads register restartable sequences"),
    allow("sched_yield", "spin-lock back-off"),
    allow("sched_getaffinity", "size the worker pool"),
    allow("sigaltstack", "per-thread stack for stack-overflow reports"),
    allow("rt_sigprocmask", "thread start and exit mask signals"),
    allow(
        "rt_sigaction",
        "install SIGTERM, SIGINT and SIGHUP handlers",
    ),
    allow("rt_sigreturn", "return from a signal handler"),
    allow(
        "restart_syscall",
        "the kernel resumes a sleep or timed wait through it after the process was stopped and continued (SIGSTOP, a debugger, a cgroup freeze); refused, the sleep fails and the thread panics",
    ),
    allow("gettid", "thread ids in the C library"),
    allow("getpid", "process id (logs, C library)"),
    allow("tgkill", "abort() on a fatal error raises SIGABRT"),
    allow("exit", "a thread ends"),
    allow("exit_group", "the process ends"),
    allow_if(
        "prctl",
        Args::PrctlOps(PRCTL_OPS),
        "thread names and reading own flags",
    ),
    // Event loop.
    allow("epoll_create1", "the runtime's event loop"),
    allow("epoll_ctl", "register sockets with the event loop"),
    allow("epoll_wait", "wait for events"),
    allow("epoll_pwait", "wait for events (C library variant)"),
    allow("eventfd2", "wake the event loop from other threads"),
    allow("pipe2", "signal delivery to the runtime"),
    allow_if(
        "socketpair",
        Args::UnixOnly,
        "signal delivery to the runtime (AF_UNIX only)",
    ),
    // HTTPS clients on the listeners bound before lock-down.
    allow("accept4", "accept HTTPS connections"),
    allow("recvfrom", "read requests and TLS records"),
    allow("recvmsg", "read requests and hkmsd's answers"),
    allow(
        "sendto",
        "write responses; readiness notifications to systemd",
    ),
    allow("sendmsg", "write responses and relayed requests"),
    allow("shutdown", "close connections"),
    allow("getsockopt", "socket errors, connect results"),
    allow("setsockopt", "TCP_NODELAY on accepted connections"),
    allow("getsockname", "addresses of accepted connections"),
    allow("getpeername", "client addresses relayed to hkmsd"),
    allow("ioctl", "FIONBIO on sockets"),
    // hkmsd: connections are opened lazily and again after hkmsd restarts.
    allow_if(
        "socket",
        Args::Domains(&[libc::AF_UNIX]),
        "connect to hkmsd's Unix socket (AF_UNIX only)",
    ),
    allow("connect", "connect to hkmsd's socket"),
    // Time and randomness.
    allow("clock_gettime", "timestamps when the vDSO is not used"),
    allow("clock_nanosleep", "timers and sleeps"),
    allow("nanosleep", "sleeps (C library)"),
    allow("getrandom", "TLS randoms, request ids and OpenSSL seeding"),
];

/// Replaces the gateway's `socket` entry when it reaches hkmsd over TCP (mutual TLS):
/// AF_INET and AF_INET6 sockets are then needed as well.
pub const GATEWAY_HKMSD_TCP: Allowed = allow_if(
    "socket",
    Args::Domains(&[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6]),
    "connect to hkmsd over its Unix socket or TCP (mutual TLS)",
);

/// Added to the gateway's list when it reaches hkmsd over TCP: resolving hkmsd's host name
/// (the C library's resolver reads /etc/hosts and asks the DNS servers over UDP).
const GATEWAY_RESOLVER: &[Allowed] = &[
    allow("ppoll", "the C library's resolver waits for DNS answers"),
    allow(
        "sendmmsg",
        "the C library's resolver sends A and AAAA queries",
    ),
    #[cfg(target_arch = "x86_64")]
    allow("poll", "the C library's resolver waits for DNS answers"),
];

/// The gateway's allow-list: [`GATEWAY`]; when `hkmsd_over_tcp`, with
/// [`GATEWAY_HKMSD_TCP`] in place of its `socket` entry and the resolver's calls.
pub fn gateway_list(hkmsd_over_tcp: bool) -> Vec<Allowed> {
    let mut list: Vec<Allowed> = GATEWAY
        .iter()
        .map(|a| {
            if hkmsd_over_tcp && a.name == GATEWAY_HKMSD_TCP.name {
                GATEWAY_HKMSD_TCP
            } else {
                *a
            }
        })
        .collect();
    if hkmsd_over_tcp {
        list.extend_from_slice(GATEWAY_RESOLVER);
    }
    list
}

/// The syscall names hkms knows, for allow-lists and HSM profiles.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[(&str, i64)] = syscalls![
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_poll,
    SYS_select,
    SYS_pipe,
    SYS_fork,
    SYS_vfork,
    SYS_rename,
    SYS_unlink,
    SYS_mkdir,
    SYS_rmdir,
    SYS_readlink,
    SYS_epoll_wait,
    SYS_epoll_create,
    SYS_arch_prctl,
    SYS_dup2,
    SYS_alarm,
    SYS_time,
    SYS_getdents,
    SYS_chmod,
    SYS_chown,
    SYS_creat,
    SYS_link,
    SYS_symlink,
    SYS_eventfd,
];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_ONLY: &[(&str, i64)] = &[];

const COMMON: &[(&str, i64)] = syscalls![
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_openat,
    SYS_openat2,
    SYS_close,
    SYS_close_range,
    SYS_newfstatat,
    SYS_fstat,
    SYS_statx,
    SYS_statfs,
    SYS_fstatfs,
    SYS_lseek,
    SYS_fsync,
    SYS_fdatasync,
    SYS_fcntl,
    SYS_flock,
    SYS_getdents64,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_mkdirat,
    SYS_ftruncate,
    SYS_truncate,
    SYS_fallocate,
    SYS_readlinkat,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_linkat,
    SYS_symlinkat,
    SYS_dup,
    SYS_dup3,
    SYS_sync_file_range,
    SYS_utimensat,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_inotify_init1,
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    SYS_brk,
    SYS_mmap,
    SYS_mprotect,
    SYS_munmap,
    SYS_mremap,
    SYS_madvise,
    SYS_mlock,
    SYS_munlock,
    SYS_mlockall,
    SYS_munlockall,
    SYS_mincore,
    SYS_msync,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_clone,
    SYS_clone3,
    SYS_futex,
    SYS_set_robust_list,
    SYS_get_robust_list,
    SYS_rseq,
    SYS_set_tid_address,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_sched_setaffinity,
    SYS_sched_getparam,
    SYS_sched_getscheduler,
    SYS_sigaltstack,
    SYS_rt_sigprocmask,
    SYS_rt_sigaction,
    SYS_rt_sigreturn,
    SYS_restart_syscall,
    SYS_rt_sigtimedwait,
    SYS_gettid,
    SYS_getpid,
    SYS_getppid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getresuid,
    SYS_getresgid,
    SYS_getgroups,
    SYS_tgkill,
    SYS_tkill,
    SYS_kill,
    SYS_exit,
    SYS_exit_group,
    SYS_wait4,
    SYS_waitid,
    SYS_prctl,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_pipe2,
    SYS_socket,
    SYS_socketpair,
    SYS_connect,
    SYS_bind,
    SYS_listen,
    SYS_accept,
    SYS_accept4,
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_recvmmsg,
    SYS_sendto,
    SYS_sendmsg,
    SYS_sendmmsg,
    SYS_shutdown,
    SYS_getsockopt,
    SYS_setsockopt,
    SYS_getsockname,
    SYS_getpeername,
    SYS_ioctl,
    SYS_ppoll,
    SYS_pselect6,
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_gettimeofday,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    SYS_getrandom,
    SYS_uname,
    SYS_sysinfo,
    SYS_getrlimit,
    SYS_prlimit64,
    SYS_getrusage,
    SYS_times,
    SYS_getpriority,
    SYS_setpriority,
    SYS_umask,
    SYS_execve,
    SYS_execveat,
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_seccomp,
    SYS_capget,
    SYS_capset,
    SYS_setuid,
    SYS_setgid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setgroups,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_unshare,
    SYS_setns,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_kexec_load,
    SYS_reboot,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_userfaultfd,
    SYS_pidfd_open,
    SYS_pidfd_getfd,
    SYS_pidfd_send_signal,
    SYS_mknodat,
    SYS_personality,
    SYS_quotactl,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_adjtimex,
    SYS_sethostname,
    SYS_setdomainname,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_get_mempolicy,
    SYS_set_mempolicy,
    SYS_mbind,
    SYS_shmget,
    SYS_shmat,
    SYS_shmdt,
    SYS_shmctl,
    SYS_semget,
    SYS_semop,
    SYS_semctl,
    SYS_msgget,
    SYS_msgsnd,
    SYS_msgrcv,
    SYS_msgctl,
    SYS_mq_open,
    SYS_mq_unlink,
    SYS_mq_timedsend,
    SYS_mq_timedreceive,
    SYS_mq_notify,
    SYS_mq_getsetattr,
    SYS_signalfd4,
    SYS_fanotify_init,
    SYS_fanotify_mark,
    SYS_name_to_handle_at,
    SYS_open_by_handle_at,
    SYS_getcpu,
    SYS_setsid,
    SYS_getsid,
    SYS_setpgid,
    SYS_getpgid,
    SYS_fadvise64,
    SYS_readahead,
    SYS_splice,
    SYS_tee,
    SYS_vmsplice,
    SYS_copy_file_range,
    SYS_sendfile,
    SYS_flistxattr,
    SYS_fgetxattr,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_listxattr,
    SYS_setxattr,
    SYS_fsetxattr,
];

/// The number of a system call by name, for this architecture.
pub fn syscall_number(name: &str) -> Option<i64> {
    COMMON
        .iter()
        .chain(ARCH_ONLY)
        .find(|(n, _)| n.strip_prefix("SYS_") == Some(name))
        .map(|(_, nr)| *nr)
}

/// The name of a system call number, for this architecture.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    COMMON
        .iter()
        .chain(ARCH_ONLY)
        .find(|(_, n)| *n == nr)
        .and_then(|(name, _)| name.strip_prefix("SYS_"))
}

/// Calls the self-test makes on purpose right after lock-down (see [`probe`]).
const PROBE_CALLS: &[&str] = &["execve", "clone", "wait4", "socket", "ptrace"];

/// Reads kernel log text (`journalctl -k`, `dmesg`) and counts the system calls that
/// seccomp logged for processes named `comm` (log mode, SECCOMP_RET_LOG records, audit
/// type 1326). Returns (name, count, made by the self-test), most frequent first.
pub fn calls_in_kernel_log(text: &str, comm: &str) -> Vec<(String, usize, bool)> {
    let needle = format!("comm=\"{comm}\"");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        if !line.contains("type=1326") || !line.contains(&needle) {
            continue;
        }
        let Some(nr) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("syscall="))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let name = syscall_name(nr).map_or_else(|| format!("#{nr}"), str::to_owned);
        *counts.entry(name).or_default() += 1;
    }
    let mut out: Vec<_> = counts
        .into_iter()
        .map(|(n, c)| {
            let probe = PROBE_CALLS.contains(&n.as_str());
            (n, c, probe)
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A compiled filter and the system calls it allows.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub mode: SeccompMode,
    /// Syscall names allowed (the binary's list plus profile additions).
    pub allowed: Vec<String>,
    /// Whether AF_INET sockets may be created (decides which calls [`probe`] tries).
    pub inet_sockets: bool,
    /// Whether files may be opened for writing.
    pub open_for_writing: bool,
    program: BpfProgram,
}

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| format!("seccomp: bad condition: {e}"))
}

fn rules_for(args: Args) -> Result<Vec<SeccompRule>, String> {
    let rule = |c: Vec<SeccompCondition>| {
        SeccompRule::new(c).map_err(|e| format!("seccomp: bad rule: {e}"))
    };
    Ok(match args {
        Args::Any => vec![],
        Args::NoExec => vec![rule(vec![cond(
            2,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?],
        Args::ThreadOnly => vec![rule(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?])?],
        Args::UnixOnly => vec![rule(vec![cond(
            0,
            SeccompCmpOp::Eq,
            libc::AF_UNIX as u64,
        )?])?],
        Args::Domains(families) => families
            .iter()
            .map(|f| rule(vec![cond(0, SeccompCmpOp::Eq, *f as u64)?]))
            .collect::<Result<_, _>>()?,
        Args::ReadOnly => vec![rule(vec![cond(
            2,
            SeccompCmpOp::MaskedEq(OPEN_WRITE_FLAGS as u64),
            0,
        )?])?],
        Args::PrctlOps(ops) => ops
            .iter()
            .map(|op| rule(vec![cond(0, SeccompCmpOp::Eq, *op as u64)?]))
            .collect::<Result<_, _>>()?,
    })
}

/// Compiles `base` plus `extra` syscall names (from HSM profiles) into filters.
pub fn compile(
    base: &[Allowed],
    extra: &[String],
    mode: SeccompMode,
) -> Result<CompiledFilter, String> {
    let arch = target_arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut allowed = Vec::new();
    let widened = |name: &str| extra.iter().any(|e| e == name);
    let inet_sockets = widened("socket")
        || base.iter().any(|a| {
            a.name == "socket"
                && match a.args {
                    Args::Any => true,
                    Args::Domains(f) => f.contains(&libc::AF_INET),
                    _ => false,
                }
        });
    let open_for_writing = widened("openat")
        || base
            .iter()
            .any(|a| a.name == "openat" && a.args != Args::ReadOnly);
    for a in base {
        let nr = syscall_number(a.name)
            .ok_or_else(|| format!("seccomp: unknown system call {:?}", a.name))?;
        rules.insert(nr, rules_for(a.args)?);
        allowed.push(a.name.to_owned());
    }
    for name in extra {
        let nr = syscall_number(name)
            .ok_or_else(|| format!("seccomp: HSM profile names an unknown system call {name:?}"))?;
        if name == "clone3" {
            return Err("seccomp: clone3 cannot be allowed (clone is used instead)".into());
        }
        // A profile widens a call to any arguments.
        rules.insert(nr, vec![]);
        if !allowed.contains(name) {
            allowed.push(name.clone());
        }
    }
    let mismatch = match mode {
        SeccompMode::Enforce => SeccompAction::Errno(libc::EPERM as u32),
        SeccompMode::Log => SeccompAction::Log,
    };
    let allow_list: BpfProgram = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch)
        .and_then(TryInto::try_into)
        .map_err(|e| format!("seccomp: cannot build the allow-list: {e}"))?;
    let mut program = clone3_enosys_prefix()?;
    program.extend(allow_list);
    Ok(CompiledFilter {
        mode,
        allowed,
        inet_sockets,
        open_for_writing,
        program,
    })
}

/// `AUDIT_ARCH_*` of the build target (linux/audit.h).
fn audit_arch() -> Result<u32, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(62 | 0x8000_0000 | 0x4000_0000),
        "aarch64" => Ok(183 | 0x8000_0000 | 0x4000_0000),
        other => Err(format!("seccomp: unsupported architecture {other}")),
    }
}

/// BPF: on this architecture, `clone3` returns ENOSYS; everything else falls through to the
/// allow-list that follows (which also rejects other architectures).
fn clone3_enosys_prefix() -> Result<Vec<sock_filter>, String> {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const ARCH_OFFSET: u32 = 4;
    const NR_OFFSET: u32 = 0;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    Ok(vec![
        ins(LD_W_ABS, 0, 0, ARCH_OFFSET),
        ins(JEQ_K, 0, 3, audit_arch()?),
        ins(LD_W_ABS, 0, 0, NR_OFFSET),
        ins(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ])
}

/// Installs the filter on every thread of the process.
pub fn install(filter: &CompiledFilter) -> Result<(), String> {
    seccompiler::apply_filter_all_threads(&filter.program)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

/// A forbidden call tried right after lock-down, and what happened.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub call: &'static str,
    pub blocked: bool,
    pub outcome: String,
}

/// A path that can never exist, so an unblocked execve could not replace the process.
const NO_SUCH_PROGRAM: &str = "/proc/self/hkmsd-seccomp-probe/none";

/// Tries calls the allow-list forbids; each must fail with EPERM.
pub fn probe(filter: &CompiledFilter) -> Vec<ProbeResult> {
    use nix::errno::Errno;
    let judge = |call, r: Result<(), Errno>| match r {
        Err(Errno::EPERM) => ProbeResult {
            call,
            blocked: true,
            outcome: "EPERM".into(),
        },
        Err(e) => ProbeResult {
            call,
            blocked: false,
            outcome: format!("{e}"),
        },
        Ok(()) => ProbeResult {
            call,
            blocked: false,
            outcome: "succeeded".into(),
        },
    };
    let path = std::ffi::CString::new(NO_SUCH_PROGRAM).unwrap_or_default();
    let exec = nix::unistd::execv(&path, &[&path]).map(|_| ());
    let spawn = match std::process::Command::new(NO_SUCH_PROGRAM).spawn() {
        Ok(mut child) => {
            let _ = child.wait();
            Ok(())
        }
        Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    };
    let socket = |family, kind| {
        nix::sys::socket::socket(family, kind, nix::sys::socket::SockFlag::SOCK_CLOEXEC, None)
            .map(drop)
    };
    let trace = nix::sys::ptrace::attach(nix::unistd::Pid::from_raw(i32::MAX));
    let mut results = vec![
        judge("execve", exec),
        judge("fork (clone without CLONE_THREAD)", spawn),
    ];
    if filter.inet_sockets {
        // AF_INET is allowed (a client of a TCP service); other families must still fail.
        // Netlink sockets need no privilege, so only the filter can refuse one.
        let netlink = socket(
            nix::sys::socket::AddressFamily::Netlink,
            nix::sys::socket::SockType::Raw,
        );
        results.push(judge("socket(AF_NETLINK)", netlink));
    } else {
        let inet = socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
        );
        results.push(judge("socket(AF_INET)", inet));
    }
    results.push(judge("ptrace(PTRACE_ATTACH)", trace));
    if !filter.open_for_writing {
        // A path that cannot be created, should the call get through.
        let open = nix::fcntl::open(
            NO_SUCH_PROGRAM,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::S_IRUSR,
        )
        .map(drop);
        results.push(judge("openat(O_WRONLY|O_CREAT)", open));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_call_is_known_and_explained() {
        for a in HKMSD {
            assert!(syscall_number(a.name).is_some(), "unknown {}", a.name);
            assert!(a.reason.len() > 8, "{} needs a reason", a.name);
        }
        let mut names: Vec<_> = HKMSD.iter().map(|a| a.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "a syscall is listed twice");
    }

    #[test]
    fn dangerous_calls_are_not_allowed() {
        for name in [
            "execve",
            "execveat",
            "ptrace",
            "socket",
            "connect",
            "clone3",
            "fork",
            "vfork",
            "setuid",
            "capset",
            "mount",
            "bpf",
            "process_vm_readv",
            "init_module",
            "seccomp",
            "kill",
            "chmod",
        ] {
            assert!(
                HKMSD.iter().all(|a| a.name != name),
                "{name} must stay forbidden"
            );
        }
    }

    #[test]
    fn the_gateway_list_is_its_own_and_narrower() {
        for a in GATEWAY {
            assert!(syscall_number(a.name).is_some(), "unknown {}", a.name);
            assert!(a.reason.len() > 8, "{} needs a reason", a.name);
        }
        let mut names: Vec<_> = GATEWAY.iter().map(|a| a.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "a syscall is listed twice");
        // No store, no PKCS#11 library: nothing that writes, renames or removes files.
        for name in [
            "execve",
            "execveat",
            "ptrace",
            "clone3",
            "fork",
            "vfork",
            "setuid",
            "capset",
            "mount",
            "bpf",
            "seccomp",
            "kill",
            "unlinkat",
            "renameat",
            "renameat2",
            "ftruncate",
            "fallocate",
            "pwrite64",
            "fsync",
            "bind",
            "listen",
            "chmod",
        ] {
            assert!(
                GATEWAY.iter().all(|a| a.name != name),
                "{name} must stay forbidden in the gateway"
            );
        }
        let open = GATEWAY.iter().find(|a| a.name == "openat").unwrap();
        assert_eq!(open.args, Args::ReadOnly);

        let unix = compile(&gateway_list(false), &[], SeccompMode::Enforce).unwrap();
        assert!(!unix.inet_sockets && !unix.open_for_writing);
        let tcp = compile(&gateway_list(true), &[], SeccompMode::Enforce).unwrap();
        assert!(tcp.inet_sockets && !tcp.open_for_writing);
        assert!(unix.allowed.iter().all(|n| tcp.allowed.contains(n)));
        assert!(tcp.allowed.iter().any(|n| n == "ppoll"));
        assert!(!unix.allowed.iter().any(|n| n == "ppoll"));
        let daemon = compile(HKMSD, &[], SeccompMode::Enforce).unwrap();
        assert!(!daemon.inet_sockets && daemon.open_for_writing);
    }

    #[test]
    fn kernel_log_records_are_counted_by_name() {
        let log = "\
[ 1.0] audit: type=1326 audit(1:79): uid=0 pid=7 comm=\"hkmsd\" sig=0 arch=c000003e syscall=59 code=0x7ffc0000
[ 1.1] audit: type=1326 audit(1:80): uid=0 pid=7 comm=\"hkmsd\" sig=0 arch=c000003e syscall=137 code=0x7ffc0000
[ 1.2] audit: type=1326 audit(1:81): uid=0 pid=7 comm=\"hkmsd\" sig=0 arch=c000003e syscall=137 code=0x7ffc0000
[ 1.3] audit: type=1326 audit(1:82): uid=0 pid=9 comm=\"other\" sig=0 arch=c000003e syscall=1 code=0x7ffc0000
[ 1.4] eth0: link up";
        let calls = calls_in_kernel_log(log, "hkmsd");
        let statfs = libc::SYS_statfs;
        let name = syscall_name(statfs).unwrap();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                calls,
                [(name.to_owned(), 2, false), ("execve".to_owned(), 1, true)]
            );
        }
        assert_eq!(syscall_number(name), Some(statfs));
    }

    #[test]
    fn profiles_may_not_allow_clone3_or_unknown_calls() {
        assert!(compile(HKMSD, &["clone3".into()], SeccompMode::Enforce).is_err());
        let e = compile(HKMSD, &["no_such_call".into()], SeccompMode::Enforce).unwrap_err();
        assert!(e.contains("no_such_call"), "{e}");
        let ok = compile(HKMSD, &["statfs".into()], SeccompMode::Log).unwrap();
        assert!(ok.allowed.iter().any(|n| n == "statfs"));
    }
}
