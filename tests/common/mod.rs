//! Test harness: a real hkmsd on fresh SoftHSM2 tokens in a temporary directory.
#![allow(dead_code)]

use hkms::client::Client;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const USER_PIN: &str = "87654321";
pub const SO_PIN: &str = "12348765";

/// The uid test gateways run as, and the only gateway uid of test instances: a gateway is
/// never an operator, so it cannot share root's uid (the operator of tests) and hkmsd
/// refuses a configuration that lists one uid as both. It needs no account; it reaches the
/// socket through root's group (gid 0), which keeps the socket's default mode 0660.
pub const GATEWAY_UID: u32 = 61043;

/// A SoftHSM2 token directory with its configuration file.
pub struct Tokens {
    pub conf: PathBuf,
}

impl Tokens {
    /// Creates `labels` as fresh tokens under `dir`.
    pub fn create(dir: &Path, labels: &[&str]) -> Tokens {
        let token_dir = dir.join("tokens");
        std::fs::create_dir_all(&token_dir).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                token_dir.display()
            ),
        )
        .unwrap();
        for label in labels {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
                .output()
                .expect("softhsm2-util is installed (scripts/install-deps.sh)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tokens { conf }
    }
}

/// A SoftHSM2 member built directly (no hkmsd) on the token labelled `label`, its PIN in a
/// file under `dir`, connected with no domain key: for tests that look at the tokens through
/// PKCS#11 themselves.
pub fn softhsm_member(dir: &Path, name: &str, label: &str) -> hkms::hsm::Member {
    let m = hkms::hsm::Member::new(&softhsm_member_config(dir, name, label));
    m.connect(None).unwrap();
    m
}

/// The configuration of a SoftHSM2 member on token `label`, its PIN file written in `dir`.
pub fn softhsm_member_config(dir: &Path, name: &str, label: &str) -> hkms::config::MemberConfig {
    let pin_file = dir.join(format!("pin-{name}"));
    std::fs::write(&pin_file, USER_PIN).unwrap();
    hkms::config::MemberConfig {
        name: name.into(),
        module: SOFTHSM_MODULE.into(),
        token_label: Some(label.into()),
        token_serial: None,
        pin_file,
        profile: "softhsm2".into(),
        max_sessions: 2,
        inline_calls: None,
    }
}

/// One member as written to the config file.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub name: String,
    pub module: String,
    pub label: String,
    pub pin: String,
    /// HSM profile (`profile = ...`); none: hkmsd's default.
    pub profile: Option<String>,
}

impl MemberSpec {
    pub fn softhsm(name: &str, label: &str) -> MemberSpec {
        MemberSpec {
            name: name.into(),
            module: SOFTHSM_MODULE.into(),
            label: label.into(),
            pin: USER_PIN.into(),
            profile: None,
        }
    }
}

/// A running hkmsd with its own tokens, store and socket.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub tokens: Tokens,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub extra_env: Vec<(String, String)>,
    /// Extra lines for the `[limits]` table.
    pub limits: String,
    /// Extra lines for the `[listen]` table (the TCP listener).
    pub listen: String,
    /// Tables written after the members (e.g. `[hardening]`).
    pub extra_config: String,
    child: Option<Child>,
}

impl Daemon {
    /// `n` SoftHSM2 members (tokens m0..), started but not initialised.
    pub fn start(n: usize) -> Daemon {
        let specs: Vec<MemberSpec> = (0..n)
            .map(|i| MemberSpec::softhsm(&format!("hsm-{i}"), &format!("m{i}")))
            .collect();
        Daemon::start_with(&specs, &[])
    }

    /// Started and initialised with `n` members.
    pub fn initialised(n: usize) -> Daemon {
        let d = Daemon::start(n);
        d.init_ok();
        d
    }

    pub fn start_with(members: &[MemberSpec], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_custom(members, env, "")
    }

    /// Like [`Daemon::start_with`], with extra `[limits]` lines.
    pub fn start_custom(members: &[MemberSpec], env: &[(&str, &str)], limits: &str) -> Daemon {
        Daemon::start_config(members, env, limits, "")
    }

    /// Like [`Daemon::start_custom`], with `extra_config` (whole tables) after the members.
    pub fn start_config(
        members: &[MemberSpec],
        env: &[(&str, &str)],
        limits: &str,
        extra_config: &str,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // Root's group may pass through to the socket (test gateways run with gid 0).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o710)).unwrap();
        let labels: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
        let tokens = Tokens::create(dir.path(), &labels);
        let mut d = Daemon {
            socket: dir.path().join("hkmsd.sock"),
            config: dir.path().join("hkmsd.toml"),
            log: dir.path().join("hkmsd.log"),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            limits: limits.to_owned(),
            listen: String::new(),
            extra_config: extra_config.to_owned(),
            tokens,
            dir,
            child: None,
        };
        d.write_config(members);
        d.spawn().expect("hkmsd starts");
        d
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rewrites the config with these members (takes effect at the next start).
    pub fn write_config(&self, members: &[MemberSpec]) {
        let mut text = format!(
            "[listen]\nsocket = {:?}\n{}\n[store]\npath = {:?}\n\
             [access]\noperator_uids = [0]\ngateway_uids = [{GATEWAY_UID}]\n\
             [limits]\nsession_wait_secs = 5\n{}\n",
            self.socket,
            self.listen,
            self.dir.path().join("store"),
            self.limits
        );
        for m in members {
            let pin_file = self.dir.path().join(format!("pin-{}", m.name));
            std::fs::write(&pin_file, format!("{}\n", m.pin)).unwrap();
            text.push_str(&format!(
                "[[member]]\nname = {:?}\nmodule = {:?}\ntoken_label = {:?}\npin_file = {:?}\nmax_sessions = 4\n",
                m.name, m.module, m.label, pin_file
            ));
            if let Some(profile) = &m.profile {
                text.push_str(&format!("profile = {profile:?}\n"));
            }
        }
        text.push_str(&self.extra_config);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Starts hkmsd and waits until it answers, or returns its log when it exits.
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hkmsd"));
        // Tests run as root and keep it (capabilities are still dropped, seccomp applies).
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--allow-root")
            .env("SOFTHSM2_CONF", &self.tokens.conf)
            .env("HKMSD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "hkmsd exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if self.socket.exists() && std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "hkmsd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops hkmsd: SIGKILL when `crash`, SIGTERM otherwise.
    pub fn stop(&mut self, crash: bool) {
        if let Some(mut child) = self.child.take() {
            if crash {
                child.kill().unwrap();
            } else {
                Command::new("kill")
                    .arg(child.id().to_string())
                    .status()
                    .unwrap();
            }
            child.wait().unwrap();
        }
    }

    pub fn restart(&mut self) {
        self.stop(false);
        self.spawn().expect("hkmsd restarts");
    }

    /// Replaces the `[access]` table of the config and restarts hkmsd.
    pub fn set_access(&mut self, access: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let start = text.find("[access]").unwrap();
        let end = text[start..].find("[limits]").unwrap() + start;
        let new = format!("{}[access]\n{access}\n{}", &text[..start], &text[end..]);
        std::fs::write(&self.config, new).unwrap();
        self.restart();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// hkmsd's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.unwrap()
    }

    /// A client whose connection hkmsd sees as coming from `uid` (with gid 0): the peer
    /// credentials the kernel records at connect time are those of the connecting thread.
    /// `client_as(GATEWAY_UID)` is a local gateway.
    pub async fn client_as(&self, uid: u32) -> Client {
        let stream = connect_as(&self.socket, uid);
        stream.set_nonblocking(true).unwrap();
        let slot = std::sync::Mutex::new(Some(stream));
        let channel = tonic::transport::Endpoint::from_static("http://hkmsd.local")
            .connect_with_connector(tower::service_fn(move |_| {
                let stream = slot.lock().unwrap().take();
                async move {
                    let stream = stream.ok_or_else(|| {
                        std::io::Error::other("client_as holds one connection; make another")
                    })?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::from_std(stream)?,
                    ))
                }
            }))
            .await
            .unwrap();
        Client::from_channel(channel)
    }

    /// Runs the `hkms` CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, b"")
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_hkms"))
            .args(args)
            .env("HKMS_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `hkms --json ARGS`, parsed; panics with stderr on failure.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "hkms {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `hkms --json ARGS` expected to fail; returns the error code.
    pub fn cli_error(&self, args: &[&str]) -> String {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(!out.status.success(), "hkms {args:?} should fail");
        let v: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        v["Code"].as_str().unwrap().to_owned()
    }

    pub fn so_pin_file(&self) -> PathBuf {
        let p = self.path("so-pin");
        std::fs::write(&p, SO_PIN).unwrap();
        p
    }

    pub fn init_ok(&self) -> serde_json::Value {
        let so = self.so_pin_file();
        self.cli_json(&["init", "--so-pin-file", so.to_str().unwrap()])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// Connects to `socket` from a thread that takes `uid` as its effective user first, so a
/// test running as root can also be a peer of another uid. The thread ends once connected.
#[allow(unsafe_code)]
fn connect_as(socket: &Path, uid: u32) -> std::os::unix::net::UnixStream {
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let unchanged: libc::c_long = -1;
        // SAFETY: a plain system call with integer arguments. Made directly, setresuid(2)
        // changes this thread's credentials only; the C library's wrapper would change
        // every thread of the test process.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_setresuid,
                unchanged,
                libc::c_long::from(uid),
                unchanged,
            )
        };
        assert_eq!(
            rc,
            0,
            "setresuid(-1, {uid}, -1): {}",
            std::io::Error::last_os_error()
        );
        std::os::unix::net::UnixStream::connect(&socket)
            .unwrap_or_else(|e| panic!("connect to {} as uid {uid}: {e}", socket.display()))
    })
    .join()
    .unwrap()
}

/// Creates an AES-256 key and returns its id.
pub async fn create_key(c: &mut Client) -> String {
    c.keys
        .create_key(hkms::proto::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap()
        .key_id
}

/// Creates a key of `spec` and `usage` (empty: the spec's usage) and returns its id.
pub async fn create_key_of(c: &mut Client, spec: &str, usage: &str) -> String {
    c.keys
        .create_key(hkms::proto::CreateKeyRequest {
            key_spec: spec.into(),
            key_usage: usage.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{spec} {usage}: {e}"))
        .into_inner()
        .key_metadata
        .unwrap()
        .key_id
}

/// A key's metadata (by id or alias).
pub async fn describe(c: &mut Client, key_id: &str) -> hkms::proto::KeyMetadata {
    c.keys
        .describe_key(hkms::proto::DescribeKeyRequest {
            key_id: key_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap()
}

/// Stops sending requests to member `name` (or, with `resume`, sends them again).
pub async fn drain(c: &mut Client, name: &str, resume: bool) {
    c.admin
        .drain_member(hkms::proto::DrainMemberRequest {
            name: name.into(),
            resume,
        })
        .await
        .unwrap();
}

/// The stable error code of a failed gRPC call.
pub fn code(status: tonic::Status) -> String {
    hkms::error::error_code(&status).unwrap_or_else(|| format!("no code: {status:?}"))
}

/// `hkms ARGS` (a `--help`), which must succeed: its standard output.
pub fn hkms_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}
