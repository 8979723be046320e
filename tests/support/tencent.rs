//! Test harness for the Tencent Cloud API 3.0 front: API keys made with `hkms api-key`,
//! requests signed with TC3-HMAC-SHA256 by this file's own implementation (written from the
//! protocol description, independently of hkmsd's), sent through a real gateway, and the
//! official Python SDKs and tccli (`scripts/install-tencent-sdk-deps.sh`, run when missing).
//!
//! Use with `support/gateway.rs` (as `support`):
//! ```text
//! #[path = "support/gateway.rs"] mod support;
//! #[path = "support/tencent.rs"] mod tencent;
//! ```
#![allow(dead_code)]

use crate::support::{post, Answer, Instance};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const KMS_VERSION: &str = "2019-01-18";
pub const SSM_VERSION: &str = "2019-09-23";

/// An API key as `hkms api-key create` returns it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub secret_id: String,
    pub secret_key: String,
}

/// Creates an API key for `aap` with the CLI.
pub fn api_key(inst: &Instance, aap: &str) -> ApiKey {
    let out = inst.d.cli_json(&["api-key", "create", "--aap", aap]);
    let k = &out["ApiKey"];
    ApiKey {
        secret_id: k["SecretId"].as_str().unwrap().to_owned(),
        secret_key: k["SecretKey"].as_str().unwrap().to_owned(),
    }
}

/// A new AAP `aap` whose policy gives `role` on `resources` (with an optional network
/// rule: addresses and network type), and an API key for it.
pub fn tc_app(
    inst: &Instance,
    aap: &str,
    role: &str,
    resources: &str,
    rule: Option<(&str, &str)>,
) -> ApiKey {
    inst.aap_as(aap, role, resources, rule);
    api_key(inst, aap)
}

/// An AAP whose policies make it both a key administrator and a key user of every key and
/// alias, with an API key.
pub fn key_admin(inst: &Instance, aap: &str) -> ApiKey {
    for (name, role) in [
        ("admin", "CryptoServiceKeyAdministrator"),
        ("user", "CryptoServiceKeyUser"),
    ] {
        inst.d.cli_json(&[
            "policy",
            "create",
            "--name",
            &format!("{aap}-{name}"),
            "--role",
            role,
            "--resources",
            "key/*,alias/*",
        ]);
    }
    inst.d.cli_json(&[
        "aap",
        "create",
        "--name",
        aap,
        "--policies",
        &format!("{aap}-admin,{aap}-user"),
    ]);
    api_key(inst, aap)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let pkey = PKey::hmac(key).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&hash(MessageDigest::sha256(), b).unwrap())
}

/// The service a version belongs to.
pub fn service_of(version: &str) -> &'static str {
    if version == SSM_VERSION {
        "ssm"
    } else {
        "kms"
    }
}

/// How a test request is signed: which headers, which clock, which key.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    pub key: &'a ApiKey,
    pub version: &'a str,
    pub timestamp: i64,
    /// Header names signed, in order (lowercase); `host` and `content-type` at least.
    pub signed: &'a [&'a str],
    /// The credential scope's service; `None`: the version's.
    pub scope_service: Option<&'a str>,
    /// The credential scope's date; `None`: the UTC date of `timestamp`.
    pub scope_date: Option<&'a str>,
    /// Sign the header values lowercased, as Tencent's own examples do.
    pub lowercase_values: bool,
}

impl<'a> Signing<'a> {
    pub fn new(key: &'a ApiKey, version: &'a str) -> Signing<'a> {
        Signing {
            key,
            version,
            timestamp: now(),
            signed: &["content-type", "host"],
            scope_service: None,
            scope_date: None,
            lowercase_values: false,
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The UTC date (`YYYY-MM-DD`) of a credential scope.
fn utc_date(t: i64) -> String {
    hkms::clock::rfc3339(t)[..10].to_owned()
}

/// The headers of a request for `action` with `body`, signed as `s` says. The host is
/// `localhost`, as [`post`] sends it.
pub fn signed_headers(s: &Signing<'_>, action: &str, body: &[u8]) -> Vec<(String, String)> {
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-tc-action".to_owned(), action.to_owned()),
        ("x-tc-version".to_owned(), s.version.to_owned()),
        ("x-tc-timestamp".to_owned(), s.timestamp.to_string()),
        ("x-tc-region".to_owned(), "ap-guangzhou".to_owned()),
    ];
    let value = |name: &str| -> String {
        if name == "host" {
            return "localhost".into();
        }
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let canonical_headers: String = s
        .signed
        .iter()
        .map(|n| {
            let v = value(n);
            if s.lowercase_values {
                format!("{n}:{}\n", v.to_ascii_lowercase())
            } else {
                format!("{n}:{v}\n")
            }
        })
        .collect();
    let signed = s.signed.join(";");
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        sha256_hex(body)
    );
    let date = s
        .scope_date
        .map(str::to_owned)
        .unwrap_or_else(|| utc_date(s.timestamp));
    let service = s.scope_service.unwrap_or(service_of(s.version));
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{date}/{service}/tc3_request\n{}",
        s.timestamp,
        sha256_hex(canonical.as_bytes())
    );
    let mut k = b"TC3".to_vec();
    k.extend_from_slice(s.key.secret_key.as_bytes());
    let k = hmac(&k, date.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"tc3_request");
    let signature = hex(&hmac(&k, to_sign.as_bytes()));
    let mut out = headers;
    out.push((
        "authorization".into(),
        format!(
            "TC3-HMAC-SHA256 Credential={}/{date}/{service}/tc3_request, SignedHeaders={signed}, Signature={signature}",
            s.key.secret_id
        ),
    ));
    out
}

/// Sends one signed request on `stream` and reads the answer, which must be Tencent's
/// envelope: HTTP 200, `Content-Type: application/json` exactly, a `RequestId`.
pub fn call<S: Read + Write>(
    stream: &mut S,
    s: &Signing<'_>,
    action: &str,
    params: &Value,
) -> Value {
    let body = serde_json::to_vec(params).unwrap();
    let headers = signed_headers(s, action, &body);
    let a = post(stream, "/", &headers, &body);
    envelope(&a)
}

/// The `Response` object of a Tencent answer, after checking the envelope.
pub fn envelope(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "Tencent answers are HTTP 200: {a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    let r = v["Response"].clone();
    assert!(
        r["RequestId"].as_str().is_some_and(|id| !id.is_empty()),
        "no RequestId: {v}"
    );
    r
}

/// The error code of a Tencent answer (`None` on success).
pub fn error_code(r: &Value) -> Option<String> {
    r["Error"]["Code"].as_str().map(str::to_owned)
}

#[path = "../sdk/venv.rs"]
mod venv;

/// Tencent's SDKs and tccli (the probe is the install script's own check).
const TENCENT: venv::Venv = venv::Venv {
    env_var: "HKMS_TENCENT_VENV",
    cache_name: "tencent-venv",
    imports:
        "import tencentcloud.kms.v20190118.kms_client, tencentcloud.ssm.v20190923.ssm_client, tccli",
    installer: "install-tencent-sdk-deps.sh",
    what: "Tencent's SDKs",
};

/// The Python with Tencent's SDKs, installing them first when needed; `None` only when this
/// host cannot create a Python virtual environment (never on CI).
pub fn tencent_python() -> Option<PathBuf> {
    TENCENT.python()
}

/// The SDK driver script.
pub const SDK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/tencent_client.py");

/// Makes `calls` (a JSON array of {"service", "action", "params"}) with the official SDKs;
/// returns one {"ok": ...} or {"error": {"code", ...}} per call.
pub fn run_sdk(
    python: &Path,
    inst: &Instance,
    endpoint: &str,
    key: &ApiKey,
    calls: &Value,
    timestamp_offset: i64,
) -> Vec<Value> {
    let mut child = Command::new(python)
        .arg(SDK_SCRIPT)
        .args(["--endpoint", endpoint, "--secret-id", &key.secret_id])
        .arg("--ca")
        .arg(&inst.bundle)
        .args(["--timestamp-offset", &timestamp_offset.to_string()])
        .env("TC_SECRET_KEY", &key.secret_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array().unwrap().clone()
}

/// One SDK call: `(service, action, params)`.
pub fn sdk_call(service: &str, action: &str, params: Value) -> Value {
    json!({"service": service, "action": action, "params": params})
}

/// The `ok` answer of an SDK call, or a panic naming the error.
pub fn ok(v: &Value) -> &Value {
    assert!(v.get("ok").is_some(), "expected success: {v}");
    &v["ok"]
}

/// The error code of an SDK call, or a panic when it succeeded.
pub fn err(v: &Value) -> String {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {v}"))
        .to_owned()
}

#[test]
fn credential_dates_are_utc_calendar_dates() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(1_551_113_065), "2019-02-25");
    assert_eq!(utc_date(951_782_400), "2000-02-29");
    assert_eq!(utc_date(1_798_761_599), "2026-12-31");
}
