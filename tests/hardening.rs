//! Process hardening of the running hkmsd: seccomp and capabilities on every thread, the
//! forbidden-call self-test, the root policy, the service-user switch, ptrace and core
//! files, and `hkmsd --check-hardening`.

mod common;

use common::{Daemon, MemberSpec, Tokens, USER_PIN};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HKMSD: &str = env!("CARGO_BIN_EXE_hkmsd");
const ALLOW_ROOT: (&str, &str) = ("HKMSD_ALLOW_ROOT", "1");

/// The pid of the hkmsd that owns `socket`.
fn daemon_pid(socket: &Path) -> u32 {
    hkms::hardening::report::socket_owner(socket).unwrap()
}

/// `key: value` of a /proc status file.
fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in\n{status}"))
        .trim()
        .to_owned()
}

/// Status files of every thread of `pid`.
fn thread_statuses(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("status")).ok())
        .collect()
}

fn assert_confined(pid: u32) -> usize {
    let threads = thread_statuses(pid);
    assert!(!threads.is_empty());
    for s in &threads {
        let who = format!("thread {} ({})", field(s, "Pid"), field(s, "Name"));
        assert_eq!(field(s, "Seccomp"), "2", "{who}: seccomp filter mode");
        assert_ne!(field(s, "Seccomp_filters"), "0", "{who}: filters");
        assert_eq!(field(s, "NoNewPrivs"), "1", "{who}: no_new_privs");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(
                field(s, cap),
                "0000000000000000",
                "{who}: {cap} must be empty"
            );
        }
    }
    threads.len()
}

fn cli_round_trip(d: &Daemon) {
    let key = d.cli_json(&["key", "create", "--description", "hardening"]);
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let enc = d.cli_json(&[
        "encrypt",
        "--key-id",
        &key_id,
        "--plaintext",
        "still serving",
    ]);
    let blob = enc["CiphertextBlob"].as_str().unwrap().to_owned();
    let dec = d.cli_json(&["decrypt", "--ciphertext-blob", &blob]);
    // "still serving", base64.
    assert_eq!(dec["Plaintext"].as_str().unwrap(), "c3RpbGwgc2VydmluZw==");
}

/// Log text without terminal colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The socket accepts connections from bind on; lock-down is complete at "hkmsd ready".
fn wait_ready(log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !plain(&log()).contains("hkmsd ready") {
        assert!(Instant::now() < deadline, "no ready line in:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn root_daemon() -> Daemon {
    let d = Daemon::start_with(&[MemberSpec::softhsm("hsm-0", "m0")], &[ALLOW_ROOT]);
    wait_ready(|| d.log_text());
    d.init_ok();
    d
}

#[test]
fn every_thread_is_confined_and_holds_no_capabilities() {
    let d = root_daemon();
    let pid = daemon_pid(&d.socket);
    let before = assert_confined(pid);
    // Requests start blocking-pool threads for HSM calls: they inherit everything.
    cli_round_trip(&d);
    let after = assert_confined(pid);
    assert!(
        after >= 2,
        "a multi-thread runtime serves ({before} -> {after})"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
}

#[test]
fn forbidden_calls_fail_with_eperm_and_service_goes_on() {
    let d = root_daemon();
    let log = plain(&d.log_text());
    for call in [
        "execve",
        "fork (clone without CLONE_THREAD)",
        "socket(AF_INET)",
        "ptrace(PTRACE_ATTACH)",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("seccomp probe") && l.contains(&format!("call=\"{call}\"")))
            .unwrap_or_else(|| panic!("no probe of {call} in the log:\n{log}"));
        assert!(
            line.contains("outcome=EPERM") && line.contains("blocked=true"),
            "{line}"
        );
    }
    // The daemon keeps serving after its forbidden calls failed.
    cli_round_trip(&d);
    cli_round_trip(&d);
}

#[test]
fn check_hardening_reports_the_running_daemon() {
    let d = root_daemon();
    let out = Command::new(HKMSD)
        .args(["--check-hardening", "--json", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pid"].as_u64().unwrap() as u32, daemon_pid(&d.socket));
    let threads = r["threads"].as_array().unwrap();
    assert!(threads.len() >= 2);
    assert!(threads.iter().all(|t| t["seccomp"] == 2));
    let status = |item: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["item"] == item)
            .unwrap_or_else(|| panic!("no {item} check"))["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for item in ["seccomp", "no_new_privs", "capabilities", "core dumps"] {
        assert_eq!(status(item), "ok", "{item}");
    }
    assert_eq!(status("user"), "warn", "root is reported");

    // The text form, and a process that is not hardened at all.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let out = Command::new(HKMSD)
        .args(["--check-hardening", "--pid", &sleeper.id().to_string()])
        .output()
        .unwrap();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("fail  seccomp"), "{text}");
    assert!(text.contains("NOT hardened"), "{text}");
}

#[test]
fn log_mode_allows_and_reports_forbidden_calls() {
    let mut d = Daemon::start_with(&[MemberSpec::softhsm("hsm-0", "m0")], &[ALLOW_ROOT]);
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replacen(
        "[[member]]",
        "[hardening]\nseccomp = \"log\"\n[[member]]",
        1,
    );
    std::fs::write(&d.config, text).unwrap();
    d.restart();
    wait_ready(|| d.log_text());
    let log = plain(&d.log_text());
    assert!(log.contains("seccomp=Log"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("call=\"socket(AF_INET)\"") && l.contains("blocked=false")),
        "{log}"
    );
    // The filter is still installed: it logs instead of refusing.
    assert_confined(daemon_pid(&d.socket));
    d.init_ok();
    cli_round_trip(&d);
}

#[test]
fn root_is_refused_without_a_service_user() {
    let d = Daemon::start_with(&[MemberSpec::softhsm("hsm-0", "m0")], &[ALLOW_ROOT]);
    let out = Command::new(HKMSD)
        .arg("--config")
        .arg(&d.config)
        .env("SOFTHSM2_CONF", &d.tokens.conf)
        .env_remove("HKMSD_ALLOW_ROOT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(err.contains("run_as"), "the message names the fix: {err}");
}

/// An hkmsd started as root with `[hardening] run_as`, all of its files owned by that user.
struct ServiceUserDaemon {
    /// Holds tokens, store, socket and log until the daemon is dropped.
    _dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    uid: u32,
    gid: u32,
}

impl ServiceUserDaemon {
    fn start(user: &str, extra_config: &str, cwd: Option<&Path>, core_unlimited: bool) -> Self {
        let u = nix::unistd::User::from_name(user).unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::create(dir.path(), &["m0"]);
        let socket = dir.path().join("hkmsd.sock");
        let pin = dir.path().join("pin");
        std::fs::write(&pin, format!("{USER_PIN}\n")).unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("hkmsd.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\nsocket = {socket:?}\n[store]\npath = {:?}\n\
                 [hardening]\nrun_as = {user:?}\n{extra_config}\n\
                 [[member]]\nname = \"hsm-0\"\nmodule = {:?}\ntoken_label = \"m0\"\npin_file = {pin:?}\n",
                dir.path().join("store"),
                common::SOFTHSM_MODULE,
            ),
        )
        .unwrap();
        let chown = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        if let Some(cwd) = cwd {
            let st = Command::new("chown")
                .arg(format!("{}:{}", u.uid, u.gid))
                .arg(cwd)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let log = std::fs::File::create(dir.path().join("hkmsd.log")).unwrap();
        let mut cmd = if core_unlimited {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("ulimit -c unlimited && exec \"$0\" \"$@\"")
                .arg(HKMSD);
            c
        } else {
            Command::new(HKMSD)
        };
        cmd.arg("--config")
            .arg(&config)
            .env("SOFTHSM2_CONF", &tokens.conf)
            .env_remove("HKMSD_ALLOW_ROOT")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "hkmsd exited ({st}): {}",
                    std::fs::read_to_string(dir.path().join("hkmsd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "hkmsd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_ready(|| std::fs::read_to_string(dir.path().join("hkmsd.log")).unwrap_or_default());
        ServiceUserDaemon {
            _dir: dir,
            child,
            socket,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }

    /// A command run as the service user.
    fn as_user(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.uid(self.uid).gid(self.gid);
        c
    }
}

impl Drop for ServiceUserDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PTRACE_ATTACH` to `pid` from a process of the service user; returns its errno (0 = ok).
fn ptrace_attach_as(d: &ServiceUserDaemon, pid: u32) -> String {
    let script = "import ctypes,os,sys\n\
        libc=ctypes.CDLL(None,use_errno=True)\n\
        r=libc.ptrace(16,int(sys.argv[1]),0,0)\n\
        e=ctypes.get_errno()\n\
        print('attached' if r==0 else os.strerror(e))\n";
    let out = d
        .as_user("/usr/bin/python3")
        .args(["-c", script, &pid.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn service_user() -> &'static str {
    "nobody"
}

#[test]
fn root_start_switches_to_the_service_user_who_cannot_ptrace_it() {
    let d = ServiceUserDaemon::start(service_user(), "", None, false);
    let pid = daemon_pid(&d.socket);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = d.uid.to_string();
    assert_eq!(
        field(&status, "Uid").split_whitespace().collect::<Vec<_>>(),
        [uid.as_str(); 4],
        "real, effective, saved and fs uid switched"
    );
    assert_eq!(field(&status, "Groups"), d.gid.to_string());
    assert_confined(pid);

    // Control: the same user may trace its own dumpable process (unless Yama forbids
    // tracing non-children, which would make the check below prove less).
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "0".into());
    if yama == "0" {
        let mut sleeper = d.as_user("sleep").arg("30").spawn().unwrap();
        let control = ptrace_attach_as(&d, sleeper.id());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(control, "attached", "the control attach must work");
    } else {
        eprintln!("Yama ptrace_scope={yama}: control attach skipped");
    }
    let verdict = ptrace_attach_as(&d, pid);
    assert_eq!(verdict, "Operation not permitted", "hkmsd is not dumpable");
    // Nor can that user read its memory or environment.
    let mem = d
        .as_user("cat")
        .arg(format!("/proc/{pid}/environ"))
        .output()
        .unwrap();
    assert!(!mem.status.success(), "environ must not be readable");

    // The report sees a non-dumpable service-user process.
    let out = Command::new(HKMSD)
        .args(["--check-hardening", "--json", "--pid", &pid.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dumpable"], false);
    assert_eq!(r["uid"], d.uid);
    drop(d);
}

/// Where the kernel writes core files of processes started in `cwd`, when it writes files.
fn core_files(cwd: &Path) -> Option<Vec<PathBuf>> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let pattern = pattern.trim();
    if pattern.starts_with('|') {
        return None;
    }
    let path = Path::new(pattern);
    let dir = match path.parent() {
        Some(p) if path.is_absolute() => p.to_owned(),
        _ => cwd.to_owned(),
    };
    let prefix: String = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take_while(|c| *c != '%')
        .collect();
    Some(
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect(),
    )
}

#[test]
fn a_crash_leaves_no_core_file() {
    let cwd = tempfile::tempdir().unwrap();
    if core_files(cwd.path()).is_none() {
        eprintln!("core_pattern pipes cores to a program: only the limits are checked");
    }
    // Control: a process of the same user with an unlimited core limit does leave one.
    let control_dir = tempfile::tempdir().unwrap();
    let d = ServiceUserDaemon::start(service_user(), "", Some(cwd.path()), true);
    if core_files(control_dir.path()).is_some() {
        Command::new("chown")
            .arg(format!("{}:{}", d.uid, d.gid))
            .arg(control_dir.path())
            .status()
            .unwrap();
        let st = d
            .as_user("sh")
            .args(["-c", "ulimit -c unlimited && kill -ABRT $$"])
            .current_dir(control_dir.path())
            .status()
            .unwrap();
        assert!(!st.success());
        assert!(
            !core_files(control_dir.path()).unwrap().is_empty(),
            "the control crash must leave a core file"
        );
    }
    let pid = daemon_pid(&d.socket);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits.lines().any(
            |l| l.starts_with("Max core file size") && l.split_whitespace().nth(4) == Some("0")
        ),
        "{limits}"
    );
    let mut d = d;
    let killed = Command::new("kill")
        // SIGABRT, as a failed assertion or a panic with panic=abort raises. (A SIGSEGV sent
        // with kill(2) is swallowed by the Rust runtime's stack-overflow handler.)
        .args(["-ABRT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let st = d.child.wait().unwrap();
    assert!(!st.success(), "hkmsd died of SIGABRT: {st}");
    std::thread::sleep(Duration::from_millis(300));
    if let Some(cores) = core_files(cwd.path()) {
        assert!(cores.is_empty(), "core files left: {cores:?}");
    }
}

/// The child side of [`a_sleep_stopped_and_continued_resumes_under_the_filter`]: installs
/// the allow-list named by `HKMS_SECCOMP_SLEEPER` on itself, says so, and sleeps.
fn sleeper_under_filter(list: &str) {
    use hkms::hardening::seccomp::{compile, gateway_list, install, HKMSD};
    let allowed = match list {
        "hkmsd" => HKMSD.to_vec(),
        _ => gateway_list(false),
    };
    let filter = compile(&allowed, &[], hkms::hardening::SeccompMode::Enforce).unwrap();
    install(&filter).unwrap();
    println!("sleeping");
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    // Stopped and continued meanwhile: the kernel resumed the sleep with restart_syscall.
    assert!(started.elapsed() >= Duration::from_millis(800));
    std::process::exit(0);
}

#[test]
fn a_sleep_stopped_and_continued_resumes_under_the_filter() {
    if let Ok(list) = std::env::var("HKMS_SECCOMP_SLEEPER") {
        sleeper_under_filter(&list);
    }
    use std::io::BufRead;
    for list in ["hkmsd", "gateway"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_sleep_stopped_and_continued_resumes_under_the_filter",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HKMS_SECCOMP_SLEEPER", list)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("sleeping") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the child ended early"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        let signal = |name: &str| {
            let sent = Command::new("kill")
                .args([name, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success(), "kill {name}");
        };
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(100));
        signal("-CONT");
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{list}: {status}\n{err}");
    }
}
