//! Process hardening of the running hkms-gateway: its own seccomp allow-list and no
//! capabilities on every thread, the forbidden-call self-test, service after lock-down
//! (requests relayed to hkmsd, certificate reload), the root policy, the systemd
//! notifications and `hkms-gateway --check-hardening`.

mod common;
#[path = "support/gateway.rs"]
mod support;

use hkms::front::instance::auth::{http_date, sign_request};
use hkms::instance_api as api;
use prost::Message;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

const GATEWAY: &str = env!("CARGO_BIN_EXE_hkms-gateway");

/// `key: value` of a /proc status file.
fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in\n{status}"))
        .trim()
        .to_owned()
}

/// Every thread of `pid` is in seccomp filter mode with no_new_privs and no capability.
fn assert_confined(pid: u32) -> usize {
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("status")).ok())
        .collect();
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

/// The listener accepts from bind on; lock-down is complete at "hkms-gateway ready".
fn wait_ready(gw: &GatewayProc) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = plain(&gw.log_text());
        if log.contains("hkms-gateway ready") {
            return log;
        }
        assert!(Instant::now() < deadline, "no ready line in:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signed(ck: &ClientKeyFiles, api_name: &str, body: &[u8]) -> Vec<(String, String)> {
    let key = ck.private_key();
    let now = hkms::access::clientkey::now_unix();
    sign_request(&key, &ck.id, api_name, body, &http_date(now)).unwrap()
}

/// An Encrypt and a Decrypt relayed through the gateway, on one kept-alive connection.
fn round_trip(inst: &Instance, port: u16, ck: &ClientKeyFiles, key: &str) {
    let mut conn = connect(port, &inst.bundle);
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: b"through the hardened gateway".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let a = post(&mut conn, "/", &signed(ck, "Encrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", api::Error::decode(a.body.as_slice()));
    let enc = api::EncryptResponse::decode(a.body.as_slice()).unwrap();
    let body = api::DecryptRequest {
        key_id: key.to_owned(),
        ciphertext_blob: enc.ciphertext_blob,
        iv: enc.iv,
        algorithm: enc.algorithm,
        ..Default::default()
    }
    .encode_to_vec();
    let a = post(&mut conn, "/", &signed(ck, "Decrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", api::Error::decode(a.body.as_slice()));
    let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(dec.plaintext, b"through the hardened gateway");
}

#[test]
fn every_thread_is_confined_forbidden_calls_fail_and_service_goes_on() {
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("hardened-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let log = wait_ready(&gw);
    let before = assert_confined(gw.pid());

    // The self-test at start-up: every forbidden call failed with EPERM, or the gateway
    // would have refused to serve.
    for call in [
        "execve",
        "fork (clone without CLONE_THREAD)",
        "socket(AF_INET)",
        "ptrace(PTRACE_ATTACH)",
        "openat(O_WRONLY|O_CREAT)",
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
    assert!(log.contains("seccomp=Enforce"), "{log}");

    // Requests reach hkmsd (a lazily opened Unix socket connection, after lock-down).
    round_trip(&inst, gw.port, &ck, &key);
    // Reload reads the certificate files again under the filter.
    let renewed = inst.issue();
    gw.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log_text().contains("TLS certificate reloaded") {
        assert!(Instant::now() < deadline, "no reload:\n{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = connect(gw.port, &inst.bundle);
    let serial = s
        .ssl()
        .peer_certificate()
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    assert!(
        serial.eq_ignore_ascii_case(&renewed),
        "{serial} vs {renewed}"
    );
    round_trip(&inst, gw.port, &ck, &key);

    let after = assert_confined(gw.pid());
    assert!(
        after >= 2,
        "a multi-thread runtime serves ({before} -> {after})"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid())).unwrap();
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
fn check_hardening_finds_the_gateway_by_its_listener() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    wait_ready(&gw);
    let out = Command::new(GATEWAY)
        .args(["--check-hardening", "--json", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pid"].as_u64().unwrap() as u32, gw.pid());
    assert_eq!(r["name"], "hkms-gateway");
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
    // Test gateways run as their own uid, as hkmsd requires of a gateway.
    assert_eq!(status("user"), "ok", "a gateway uid, not root");

    let out = Command::new(GATEWAY)
        .args(["--check-hardening", "--pid", &gw.pid().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("hkms-gateway pid"), "{text}");
    assert!(text.contains("result: hardened"), "{text}");
}

#[test]
fn root_is_refused_without_a_service_user() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    wait_ready(&gw);
    // Same configuration, other ports: only the root policy can stop it.
    let text = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace(&gw.port.to_string(), &support::free_port().to_string())
        .replace(
            &gw.internet_port.to_string(),
            &support::free_port().to_string(),
        );
    let config = inst.d.path("root.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(GATEWAY)
        .arg("--config")
        .arg(&config)
        .env_remove("HKMS_GATEWAY_ALLOW_ROOT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(err.contains("run_as"), "the message names the fix: {err}");
}

/// A gateway started like systemd starts a `Type=notify` service with a watchdog.
struct Notified {
    child: Child,
    socket: UnixDatagram,
    log: std::path::PathBuf,
}

impl Notified {
    fn start(inst: &Instance, config: &Path) -> Notified {
        let path = inst.d.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let log = inst.d.path("notified.log");
        let child = Command::new(GATEWAY)
            .arg("--config")
            .arg(config)
            .arg("--allow-root")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Notified { child, socket, log }
    }

    /// The next notification other than a watchdog keep-alive; counts those on the way.
    fn next(&self, keepalives: &mut usize) -> String {
        let mut buf = [0u8; 512];
        loop {
            let n = self.socket.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "no notification ({e}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg == "WATCHDOG=1" {
                *keepalives += 1;
            } else {
                return msg;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let inst = Instance::new();
    // A configuration from the harness, on ports of its own.
    let template = GatewayProc::start(&inst, "template", false, "");
    let text = std::fs::read_to_string(&template.config)
        .unwrap()
        .replace(
            &template.port.to_string(),
            &support::free_port().to_string(),
        )
        .replace(
            &template.internet_port.to_string(),
            &support::free_port().to_string(),
        );
    drop(template);
    let config = inst.d.path("notified.toml");
    std::fs::write(&config, text).unwrap();

    let mut g = Notified::start(&inst, &config);
    let mut keepalives = 0;
    let ready = g.next(&mut keepalives);
    assert!(ready.starts_with("READY=1"), "{ready}");
    // Ready means hardened: the filter is on every thread already.
    assert_confined(g.child.id());
    // Keep-alives every half watchdog period (200 ms).
    std::thread::sleep(Duration::from_millis(900));
    g.signal("-HUP");
    let reloading = g.next(&mut keepalives);
    assert!(reloading.starts_with("RELOADING=1"), "{reloading}");
    let ready = g.next(&mut keepalives);
    assert!(ready.starts_with("READY=1"), "{ready}");
    assert!(ready.contains("certificate reloaded"), "{ready}");
    assert!(keepalives >= 2, "{keepalives} keep-alives");
    g.signal("-TERM");
    let stopping = g.next(&mut keepalives);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    let status = g.child.wait().unwrap();
    assert!(status.success(), "{status}");
}
