//! The README's run command (`scripts/run-appliance.sh`) from a fresh clone, both ways:
//! - as root, it creates the service users and runs hkmsd as `hkms` and the gateway as
//!   `hkms-gateway`, with the files each needs and no more (and starts again over the same
//!   state);
//! - as an ordinary user (`nobody`), everything runs as that user, who is the operator; the
//!   gateway reaches hkmsd over mutual TLS on loopback.
//!
//! Each time, a signed Encrypt goes through the gateway and hkmsd, `hkms status` answers,
//! and SIGTERM to the script stops both services. The script uses this build's binaries
//! (`HKMS_BIN_DIR`) rather than building release ones.

mod common;
#[path = "support/gateway.rs"]
mod support;

use hkms::instance_api as api;
use prost::Message;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{connect, free_port, post, ClientKeyFiles};

/// This build's binaries, copied where any user may run them.
fn binaries(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, path) in [
        ("hkmsd", env!("CARGO_BIN_EXE_hkmsd")),
        ("hkms", env!("CARGO_BIN_EXE_hkms")),
        ("hkms-gateway", env!("CARGO_BIN_EXE_hkms-gateway")),
    ] {
        std::fs::copy(path, bin.join(name)).unwrap();
    }
    bin
}

/// A fresh clone of this repository in `dir/name`.
fn fresh_clone(dir: &Path, name: &str) -> PathBuf {
    let clone = dir.join(name);
    let ok = Command::new("git")
        .args(["clone", "--quiet", env!("CARGO_MANIFEST_DIR")])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(ok.success(), "git clone");
    clone
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(out.status.success(), "no user {user}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The real uid of a running process.
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Pids of processes whose command line contains `needle`.
fn pids_of(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// The script running in its own process group, with its output in a file.
struct Appliance {
    child: Child,
    out: PathBuf,
}

impl Appliance {
    /// Starts the script (as `user`, or as root) and waits until it says both services run.
    fn start(clone: &Path, user: Option<&str>, env: &[(&str, String)], out: PathBuf) -> Self {
        let log = std::fs::File::create(&out).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", "setsid", "bash", "scripts/run-appliance.sh"]);
                c
            }
            None => {
                let mut c = Command::new("setsid");
                c.args(["bash", "scripts/run-appliance.sh"]);
                c
            }
        };
        cmd.current_dir(clone)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.contains("hkmsd and hkms-gateway are running") {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the script exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the script did not come up:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Appliance { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGTERM to the script's process group; it must stop both services and exit.
    fn stop(mut self, clone: &Path, home: &Path) {
        let text = self.output();
        let script = pids_of("scripts/run-appliance.sh")
            .into_iter()
            .find(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                let cwd = std::fs::read_link(format!("/proc/{p}/cwd")).ok();
                comm.trim() == "bash" && cwd.as_deref() == Some(clone)
            })
            .unwrap_or_else(|| panic!("no script process:\n{text}"));
        Command::new("kill")
            .args(["-TERM", &script.to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the script did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        let config = home.join("hkmsd.toml");
        assert!(
            pids_of(&format!("--config {}", config.display())).is_empty(),
            "hkmsd outlived the script"
        );
        assert!(
            pids_of(&format!("--config {}/gateway/gateway.toml", home.display())).is_empty(),
            "the gateway outlived the script"
        );
    }
}

/// Runs the CLI against the appliance, as `user` (or root); returns its JSON output.
fn cli(bin: &Path, home: &Path, user: Option<&str>, args: &[&str]) -> serde_json::Value {
    let hkms = bin.join("hkms");
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(&hkms);
            c
        }
        None => Command::new(&hkms),
    };
    let out = cmd
        .env("HKMS_SOCKET", home.join("run/hkmsd.sock"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hkms {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An application with a key and a ClientKey, made by the operator; one signed Encrypt
/// through the gateway must come back from hkmsd.
fn encrypt_through_the_gateway(bin: &Path, home: &Path, user: Option<&str>, port: u16) {
    let status = cli(bin, home, user, &["status"]);
    assert_eq!(status["Initialized"], true, "{status}");
    for m in status["Members"].as_array().unwrap() {
        assert_eq!(m["State"], "Up", "{status}");
        assert_eq!(m["UnwrapTemplate"], "Enforced", "{status}");
        assert_eq!(m["Calls"], "Inline", "{status}");
    }
    let key = cli(bin, home, user, &["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = format!("app-{}", &key[..8]);
    cli(
        bin,
        home,
        user,
        &[
            "policy",
            "create",
            "--name",
            &name,
            "--role",
            "CryptoServiceKeyUser",
            "--resources",
            &format!("key/{key}"),
        ],
    );
    cli(
        bin,
        home,
        user,
        &["aap", "create", "--name", &name, "--policies", &name],
    );
    let out_dir = home.join(&name);
    let ck = cli(
        bin,
        home,
        user,
        &[
            "client-key",
            "create",
            "--aap",
            &name,
            "--output-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    let ck = &ck["ClientKey"];
    let files = ClientKeyFiles {
        id: ck["ClientKeyId"].as_str().unwrap().to_owned(),
        file: ck["ClientKeyFile"].as_str().unwrap().into(),
        password_file: ck["PasswordFile"].as_str().unwrap().into(),
    };
    let bundle = std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("PrivateKmsCA_"))
        .expect("the CA bundle");
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"through the appliance".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut conn = connect(port, &bundle);
    let answer = post(&mut conn, "/", &files.signed("Encrypt", &body), &body);
    assert_eq!(answer.status, 200, "{:?}", answer.failure());
    let enc = api::EncryptResponse::decode(answer.body.as_slice()).unwrap();
    assert_eq!(enc.key_id, key);
}

/// One plain-HTTP GET on loopback: the whole answer.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn mode(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.mode() & 0o7777)
}

#[test]
fn the_run_command_works_as_root_and_as_an_ordinary_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: running the script both ways needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = binaries(dir.path());

    // As root: service users, least privilege, and a second start over the same state.
    let clone = fresh_clone(dir.path(), "root");
    let home = dir.path().join("root-home");
    let port = free_port();
    let (metrics, gateway_metrics) = (free_port(), free_port());
    let env = [
        ("HKMS_HOME", home.display().to_string()),
        ("HKMS_BIN_DIR", bin.display().to_string()),
        ("HKMS_GATEWAY_PORT", port.to_string()),
        ("HKMS_METRICS_PORT", metrics.to_string()),
        ("HKMS_GATEWAY_METRICS_PORT", gateway_metrics.to_string()),
    ];
    let run = Appliance::start(&clone, None, &env, dir.path().join("root.log"));
    // Both health endpoints, on loopback, as the written configurations say.
    for (p, metric) in [
        (metrics, "hkms_hsm_member_up"),
        (gateway_metrics, "hkms_gateway_upstream_errors_total"),
    ] {
        assert!(
            http_get(p, "/health/ready").starts_with("HTTP/1.1 200"),
            "{}",
            run.output()
        );
        assert!(http_get(p, "/metrics").contains(metric), "{}", run.output());
    }
    let (hkms, gateway) = (uid_of("hkms"), uid_of("hkms-gateway"));
    let config = home.join("hkmsd.toml");
    let daemons = pids_of(&format!("--config {}", config.display()));
    assert_eq!(daemons.len(), 1, "{}", run.output());
    assert_eq!(process_uid(daemons[0]), hkms, "hkmsd runs as hkms");
    let gateways = pids_of(&format!("--config {}/gateway/gateway.toml", home.display()));
    assert_eq!(gateways.len(), 1);
    assert_eq!(
        process_uid(gateways[0]),
        gateway,
        "the gateway runs as hkms-gateway"
    );
    assert!(run
        .output()
        .contains("hkmsd as hkms, the gateway as hkms-gateway"));
    // Each secret belongs to whoever needs it, and no one else may read it.
    assert_eq!(mode(&home.join("pins/user-1")), (hkms, 0o400));
    assert_eq!(mode(&home.join("pins/so-1")), (0, 0o400));
    assert_eq!(mode(&home.join("tokens")), (hkms, 0o700));
    assert_eq!(mode(&home.join("store")), (hkms, 0o700));
    assert_eq!(mode(&home.join("offline")), (0, 0o700));
    assert_eq!(mode(&home.join("gateway/gateway.key")), (0, 0o640));
    let key_group = std::fs::metadata(home.join("gateway/gateway.key"))
        .unwrap()
        .gid();
    assert_eq!(
        key_group,
        nix::unistd::Group::from_name("hkms-gateway")
            .unwrap()
            .unwrap()
            .gid
            .as_raw()
    );
    encrypt_through_the_gateway(&bin, &home, None, port);
    run.stop(&clone, &home);
    let again = Appliance::start(&clone, None, &env, dir.path().join("root-again.log"));
    assert!(!again.output().contains("initialising the instance"));
    encrypt_through_the_gateway(&bin, &home, None, port);
    again.stop(&clone, &home);
    // A gateway that cannot start (its port is taken) takes hkmsd down with the script.
    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let status = Command::new("bash")
        .arg("scripts/run-appliance.sh")
        .current_dir(&clone)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the script reports the failed gateway");
    assert!(
        pids_of(&format!("--config {}", config.display())).is_empty(),
        "hkmsd outlived a failed start"
    );
    drop(taken);

    // As an ordinary user: the README's defaults (state in ./var).
    let clone = fresh_clone(dir.path(), "user");
    let chown = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(chown.success());
    let home = clone.join("var");
    let port = free_port();
    let env = [
        ("HKMS_BIN_DIR", bin.display().to_string()),
        ("HKMS_GATEWAY_PORT", port.to_string()),
        ("HKMS_HKMSD_PORT", free_port().to_string()),
        ("HKMS_METRICS_PORT", free_port().to_string()),
        ("HKMS_GATEWAY_METRICS_PORT", free_port().to_string()),
    ];
    let run = Appliance::start(&clone, Some("nobody"), &env, dir.path().join("user.log"));
    let nobody = uid_of("nobody");
    let daemons = pids_of(&format!("--config {}/hkmsd.toml", home.display()));
    assert_eq!(daemons.len(), 1, "{}", run.output());
    assert_eq!(process_uid(daemons[0]), nobody);
    let gateways = pids_of(&format!("--config {}/gateway/gateway.toml", home.display()));
    assert_eq!(gateways.len(), 1);
    assert_eq!(process_uid(gateways[0]), nobody);
    assert_eq!(mode(&home), (nobody, 0o700));
    encrypt_through_the_gateway(&bin, &home, Some("nobody"), port);
    assert!(
        run.output().contains("gateway connected over TCP"),
        "the gateway reaches hkmsd over mutual TLS:\n{}",
        run.output()
    );
    run.stop(&clone, &home);
}
