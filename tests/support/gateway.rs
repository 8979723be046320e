//! Test harness for hkms-gateway: an initialised hkmsd (tests/common) with its instance CA,
//! a gateway certificate for localhost/127.0.0.1, gateways on loopback ports, and a small
//! HTTPS client that verifies the gateway with the exported CA bundle.
#![allow(dead_code)]

use crate::common::{Daemon, GATEWAY_UID};
use hkms::access::clientkey;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An instance with its CA and a gateway certificate.
pub struct Instance {
    pub d: Daemon,
    pub ca_dir: PathBuf,
    pub bundle: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl Instance {
    pub fn new() -> Instance {
        // Test instances run hkmsd as root.
        std::env::set_var("HKMSD_ALLOW_ROOT", "1");
        Instance::on(Daemon::initialised(1))
    }

    /// An instance on an initialised hkmsd started by the caller (other members).
    pub fn on(d: Daemon) -> Instance {
        let ca_dir = d.path("ca");
        let offline = d.path("offline");
        std::fs::create_dir_all(&offline).unwrap();
        d.cli_json(&[
            "ca",
            "init",
            "--dir",
            ca_dir.to_str().unwrap(),
            "--root-key-out",
            offline.join("root.key").to_str().unwrap(),
        ]);
        let cert = d.path("gw/gateway.pem");
        let key = d.path("gw/gateway.key");
        let inst = Instance {
            bundle: PathBuf::new(),
            ca_dir,
            cert,
            key,
            d,
        };
        inst.issue();
        let out = inst.d.cli_json(&[
            "ca",
            "export",
            "--dir",
            inst.ca_dir.to_str().unwrap(),
            "--output-dir",
            inst.d.path("").to_str().unwrap(),
        ]);
        Instance {
            bundle: PathBuf::from(s(&out["CaBundleFile"])),
            ..inst
        }
    }

    /// Issues (or renews) the gateway certificate; returns its serial (hex).
    pub fn issue(&self) -> String {
        let out = self.d.cli_json(&[
            "ca",
            "issue-gateway",
            "--dir",
            self.ca_dir.to_str().unwrap(),
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--cert-out",
            self.cert.to_str().unwrap(),
            "--key-out",
            self.key.to_str().unwrap(),
        ]);
        self.hand_to_gateway();
        s(&out["Serial"])
    }

    /// Gives the gateway user the files under `gw/` (its certificates and keys, created
    /// mode 0600 by root's `hkms ca` commands), as a production install gives them to
    /// hkms-gateway. Root's group keeps read access (mode 0640) for gateways started as
    /// root, which drop the capabilities that would let them read any file.
    pub fn hand_to_gateway(&self) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.d.path("gw");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            std::os::unix::fs::chown(&path, Some(GATEWAY_UID), Some(0)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
    }

    pub fn key_id(&self, out: &Value) -> String {
        s(&out["KeyMetadata"]["KeyId"])
    }

    pub fn create_key(&self) -> String {
        let out = self.d.cli_json(&["key", "create"]);
        self.key_id(&out)
    }

    /// Names `key_id` `alias` (`alias/<name>`) with `hkms alias create`.
    pub fn create_alias(&self, alias: &str, key_id: &str) {
        self.d
            .cli_json(&["alias", "create", "--alias-name", alias, "--key-id", key_id]);
    }

    /// Runs `f` with an operator's gRPC client, for calls the CLI does not make (secrets).
    pub fn grpc<T>(&self, f: impl AsyncFnOnce(&mut hkms::client::Client) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = self.d.client().await;
            f(&mut c).await
        })
    }

    /// Creates secret `name` (over gRPC, as the operator) under the CMK `key_id`; returns
    /// its first version's id.
    pub fn create_secret(
        &self,
        name: &str,
        data: &[u8],
        data_type: &str,
        key_id: &str,
        extended_config: &str,
    ) -> String {
        let req = hkms::proto::CreateSecretRequest {
            secret_name: name.into(),
            secret_data: data.to_vec(),
            secret_data_type: data_type.into(),
            encryption_key_id: key_id.into(),
            extended_config: extended_config.into(),
            ..Default::default()
        };
        self.grpc(async |c| c.secrets.create_secret(req).await)
            .unwrap_or_else(|e| panic!("CreateSecret {name}: {e}"))
            .into_inner()
            .version_id
    }

    /// A ClientKey of `aap`: (id, file, password file).
    pub fn client_key(&self, aap: &str) -> ClientKeyFiles {
        let dir = self
            .d
            .path(&format!("keys-{aap}-{}", uuid::Uuid::new_v4().simple()));
        let out = self.d.cli_json(&[
            "client-key",
            "create",
            "--aap",
            aap,
            "--output-dir",
            dir.to_str().unwrap(),
        ]);
        let ck = &out["ClientKey"];
        ClientKeyFiles {
            id: s(&ck["ClientKeyId"]),
            file: PathBuf::from(s(&ck["ClientKeyFile"])),
            password_file: PathBuf::from(s(&ck["PasswordFile"])),
        }
    }

    /// A policy on `resources` for a new AAP `aap`, with optional network rule sources.
    pub fn app(&self, aap: &str, resources: &str, sources: Option<&str>) -> ClientKeyFiles {
        self.app_on(aap, resources, sources.map(|s| (s, "Private")))
    }

    /// Like [`Instance::app`], with the network rule's addresses and network type
    /// (`Private`, `VPC` or `Public`).
    pub fn app_on(&self, aap: &str, resources: &str, rule: Option<(&str, &str)>) -> ClientKeyFiles {
        self.app_as(aap, "CryptoServiceKeyUser", resources, rule)
    }

    /// Like [`Instance::app_on`], with the policy's RBAC role (`CryptoServiceSecretUser` for
    /// `secret/...` resources...).
    pub fn app_as(
        &self,
        aap: &str,
        role: &str,
        resources: &str,
        rule: Option<(&str, &str)>,
    ) -> ClientKeyFiles {
        self.aap_as(aap, role, resources, rule);
        self.client_key(aap)
    }

    /// The AAP of [`Instance::app_as`], without a credential.
    pub fn aap_as(&self, aap: &str, role: &str, resources: &str, rule: Option<(&str, &str)>) {
        let mut policy = vec![
            "policy".to_owned(),
            "create".into(),
            "--name".into(),
            format!("{aap}-policy"),
            "--role".into(),
            role.into(),
            "--resources".into(),
            resources.into(),
        ];
        if let Some((src, network_type)) = rule {
            let rule = format!("{aap}-net");
            self.d.cli_json(&[
                "network-rule",
                "create",
                "--name",
                &rule,
                "--network-type",
                network_type,
                "--source-ips",
                src,
            ]);
            policy.extend(["--network-rules".into(), rule]);
        }
        let args: Vec<&str> = policy.iter().map(String::as_str).collect();
        self.d.cli_json(&args);
        self.d.cli_json(&[
            "aap",
            "create",
            "--name",
            aap,
            "--policies",
            &format!("{aap}-policy"),
        ]);
    }
}

/// The files of a ClientKey as `hkms client-key create` writes them.
pub struct ClientKeyFiles {
    pub id: String,
    pub file: PathBuf,
    pub password_file: PathBuf,
}

impl ClientKeyFiles {
    /// The private key, loaded like an SDK does.
    pub fn private_key(&self) -> PKey<Private> {
        let json = std::fs::read_to_string(&self.file).unwrap();
        let password = std::fs::read_to_string(&self.password_file).unwrap();
        clientkey::load(&json, password.trim_end_matches(['\r', '\n']))
            .unwrap()
            .1
    }

    /// Signed request headers for `api_name` with `body`, as the SDKs send them.
    pub fn signed(&self, api_name: &str, body: &[u8]) -> Vec<(String, String)> {
        self.signed_at(api_name, body, hkms::access::clientkey::now_unix())
    }

    /// Like [`ClientKeyFiles::signed`], dated `now` (Unix seconds; a moved test clock).
    pub fn signed_at(&self, api_name: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
        hkms::front::instance::auth::sign_request(
            &self.private_key(),
            &self.id,
            api_name,
            body,
            &hkms::front::instance::auth::http_date(now),
        )
        .unwrap()
    }

    /// Signed request headers with `extra` headers added before signing (the SDKs sign
    /// every `x-kms-*` header they send, such as the transfer SDK's
    /// `x-kms-migrationkeyversionid`).
    pub fn signed_with(
        &self,
        api_name: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        use base64::Engine;
        let mut headers = self.signed(api_name, body);
        headers.retain(|(n, _)| n != "authorization");
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let to_sign = hkms::front::instance::auth::string_to_sign(
            &hkms::front::instance::auth::Headers::new(headers.clone()),
        )
        .unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.private_key())
                .unwrap();
        signer
            .set_rsa_padding(openssl::rsa::Padding::PKCS1)
            .unwrap();
        signer.update(to_sign.as_bytes()).unwrap();
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
        headers.push(("authorization".into(), format!("Bearer {signature}")));
        headers
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running hkms-gateway.
pub struct GatewayProc {
    child: Option<Child>,
    pub port: u16,
    pub internet_port: u16,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl GatewayProc {
    /// Starts a gateway named `name` for `inst`, with extra config (`[throttle]`...) and
    /// `enable_tls13`; waits until it accepts connections.
    pub fn start(inst: &Instance, name: &str, tls13: bool, extra: &str) -> GatewayProc {
        let hkmsd = format!("socket = {:?}\n", inst.d.socket);
        GatewayProc::start_to(inst, name, &hkmsd, tls13, extra)
    }

    /// Like [`GatewayProc::start`], with these lines in the `[hkmsd]` table (how the
    /// gateway reaches hkmsd).
    pub fn start_to(
        inst: &Instance,
        name: &str,
        hkmsd: &str,
        tls13: bool,
        extra: &str,
    ) -> GatewayProc {
        GatewayProc::spawn(inst, name, hkmsd, tls13, extra, false)
    }

    /// Like [`GatewayProc::start`], running as root (`--allow-root`): hkmsd sees uid 0.
    pub fn start_as_root(inst: &Instance, name: &str) -> GatewayProc {
        let hkmsd = format!("socket = {:?}\n", inst.d.socket);
        GatewayProc::spawn(inst, name, &hkmsd, false, "", true)
    }

    fn spawn(
        inst: &Instance,
        name: &str,
        hkmsd: &str,
        tls13: bool,
        extra: &str,
        as_root: bool,
    ) -> GatewayProc {
        let port = free_port();
        let internet_port = free_port();
        let config = inst.d.path(&format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[hkmsd]\n{hkmsd}[tls]\ncertificate = {:?}\nprivate_key = {:?}\n\
                 enable_tls13 = {tls13}\nreload_check_secs = 0\n[private]\nlisten = \"127.0.0.1:{port}\"\n\
                 [internet]\nlisten = \"127.0.0.1:{internet_port}\"\n{extra}",
                inst.cert, inst.key
            ),
        )
        .unwrap();
        let log = inst.d.path(&format!("{name}.log"));
        inst.hand_to_gateway();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hkms-gateway"));
        if as_root {
            cmd.arg("--allow-root");
        } else {
            // Its own uid, as hkmsd requires: a gateway is never an operator.
            cmd.uid(GATEWAY_UID).gid(0);
        }
        let child = cmd
            .arg("--config")
            .arg(&config)
            .env("HKMS_GATEWAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut g = GatewayProc {
            child: Some(child),
            port,
            internet_port,
            log,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = g.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hkms-gateway exited ({status}): {}", g.log_text());
            }
            assert!(Instant::now() < deadline, "hkms-gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        g
    }

    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGHUP (reload the certificate).
    pub fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TLS 1.2+ connection to the gateway, verified with the CA bundle and host name.
pub fn connect(port: u16, bundle: &Path) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(bundle).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    b.build().connect("localhost", tcp).unwrap()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// A failed answer's HTTP status and the error code of its protobuf `Error` body,
    /// which must repeat the status.
    pub fn failure(&self) -> (u16, String) {
        use prost::Message;
        let e = hkms::instance_api::Error::decode(self.body.as_slice()).unwrap();
        assert_eq!(e.status_code, i32::from(self.status), "{e:?}");
        (self.status, e.error_code)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request on a kept-alive connection and reads the answer.
pub fn post<S: Read + Write>(
    stream: &mut S,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: localhost\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !headers.iter().any(|(n, _)| n == "content-length") {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    read_answer(stream)
}

pub fn read_answer<S: Read>(stream: &mut S) -> Answer {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// A TCP connection to the gateway from the loopback address `local` (e.g. 127.0.0.2), so
/// that the gateway sees another source address.
pub fn tcp_from(local: std::net::Ipv4Addr, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let tcp = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind((local, 0).into())?;
            s.connect(([127, 0, 0, 1], port).into()).await
        })
        .unwrap()
        .into_std()
        .unwrap();
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp
}

/// Like [`connect`], from the loopback address `local`.
pub fn connect_from(local: std::net::Ipv4Addr, port: u16, bundle: &Path) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(bundle).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.build()
        .connect("localhost", tcp_from(local, port))
        .unwrap()
}

/// The official Python SDK's driver script.
pub const SDK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/gateway_client.py");

/// Runs the SDK script in `mode` with the interpreter `python`; returns its JSON output.
pub fn run_sdk(
    python: &Path,
    inst: &Instance,
    endpoint: &str,
    ck: &ClientKeyFiles,
    mode: &str,
    extra: &[&str],
) -> Value {
    let out = Command::new(python)
        .arg(SDK_SCRIPT)
        .arg(mode)
        .args(["--endpoint", endpoint])
        .arg("--ca")
        .arg(&inst.bundle)
        .arg("--client-key-file")
        .arg(&ck.file)
        .arg("--password-file")
        .arg(&ck.password_file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
