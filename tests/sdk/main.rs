//! Interoperability with the official KMS instance SDK for Python
//! (`alibabacloud-dkms-gcs==1.0.2`): a ClientKey file made by `hkms client-key create` loads
//! in the SDK, the requests the SDK signs verify in hkmsd, and the SDK reads secrets.
//!
//! A minimal HTTP relay stands in for hkms-gateway: it hands every request, as received, to
//! hkmsd's application service and returns hkmsd's answer. The SDK lives in its own virtual
//! environment, installed by `scripts/install-sdk-test-deps.sh` (run here when missing).

#[path = "../common/mod.rs"]
mod common;
mod venv;

use common::{Daemon, GATEWAY_UID};
use hkms::client::Client;
use hkms::instance_api as api;
use hkms::proto::{
    ApplicationCallRequest, CreateKeyRequest, CreateSecretRequest, HttpHeader, KeyMetadata,
    PutSecretValueRequest, VerifyMacRequest,
};
use prost::Message;
use serde_json::Value;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Captured = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// Reads one HTTP/1.1 request (headers and a Content-Length body).
async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let method = lines.next()?.split(' ').next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, headers, body))
}

/// Serves HTTP on a local port by relaying each request to hkmsd; keeps a copy of each.
async fn start_relay(client: Client, captured: Captured) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, peer)) = listener.accept().await else {
                return;
            };
            let mut client = client.clone();
            let captured = captured.clone();
            tokio::spawn(async move {
                let Some((method, headers, body)) = read_request(&mut stream).await else {
                    return;
                };
                captured
                    .lock()
                    .unwrap()
                    .push((headers.clone(), body.clone()));
                let r = client
                    .application
                    .call(ApplicationCallRequest {
                        endpoint: "instance".into(),
                        method,
                        path: "/".into(),
                        headers: headers
                            .into_iter()
                            .map(|(name, value)| HttpHeader { name, value })
                            .collect(),
                        body,
                        source_address: peer.ip().to_string(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    r.http_status,
                    r.body.len()
                );
                for h in &r.headers {
                    out.push_str(&format!("{}: {}\r\n", h.name, h.value));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&r.body);
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

async fn replay(d: &Daemon, headers: Vec<(String, String)>, body: Vec<u8>) -> (u32, String) {
    let r = d
        .client_as(GATEWAY_UID)
        .await
        .application
        .call(ApplicationCallRequest {
            endpoint: "instance".into(),
            method: "POST".into(),
            path: "/".into(),
            headers: headers
                .into_iter()
                .map(|(name, value)| HttpHeader { name, value })
                .collect(),
            body,
            source_address: "127.0.0.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    (r.http_status, r.error_code)
}

async fn create_key(c: &mut Client, spec: &str, usage: &str) -> KeyMetadata {
    c.keys
        .create_key(CreateKeyRequest {
            key_spec: spec.into(),
            key_usage: usage.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap()
}

/// Secrets the SDK reads: `sdk-db` (text, with extended configuration: "first", then
/// "second" as version v2) and `sdk-blob` (binary). Returns `sdk-db`'s first version.
async fn create_secrets(c: &mut Client, key: &str) -> String {
    let created = c
        .secrets
        .create_secret(CreateSecretRequest {
            secret_name: "sdk-db".into(),
            secret_data: b"first".to_vec(),
            encryption_key_id: key.into(),
            extended_config: r#"{"app":"sdk"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    c.secrets
        .put_secret_value(PutSecretValueRequest {
            secret_name: "sdk-db".into(),
            secret_data: b"second".to_vec(),
            version_id: "v2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.secrets
        .create_secret(CreateSecretRequest {
            secret_name: "sdk-blob".into(),
            secret_data: vec![0x00, 0xff, 0x10],
            secret_data_type: "binary".into(),
            encryption_key_id: key.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    created.version_id
}

/// Sign, Verify and GetPublicKey (the SDK client checked the signatures with the PEM), the
/// data key pairs, and keys whose usage does not allow the operation.
fn check_asymmetric(v: &Value, key: &str, rsa: &KeyMetadata, ec: &KeyMetadata) {
    let s = &v["signing"];
    for (alg, key_id) in [
        ("RSA_PSS_SHA_256", &rsa.key_id),
        ("RSA_PKCS1_SHA_256", &rsa.key_id),
        ("ECDSA_SHA_256", &ec.key_id),
    ] {
        assert_eq!(s[alg]["key_id"], key_id.as_str(), "{s}");
        assert_eq!(s[alg]["algorithm"], alg, "{s}");
        assert_eq!(
            s[alg]["message_types"],
            serde_json::json!(["RAW", "DIGEST", "DIGEST"]),
            "{s}"
        );
        assert_eq!(
            s[alg]["verify"],
            serde_json::json!([true, true, false]),
            "{s}"
        );
        assert_eq!(s[alg]["verify_message_type"], "RAW", "{s}");
    }
    assert_eq!(s["both_digest_and_message"], "InvalidParameter", "{s}");
    assert_eq!(s["by_version_key_id"], rsa.key_id.as_str(), "{s}");

    let p = &v["data_key_pairs"];
    for case in ["RSA_2048_PEM", "EC_P256_DER"] {
        let c = &p[case];
        let spec = case.rsplit_once('_').unwrap().0;
        assert_eq!(c["key_ids"], serde_json::json!([key, key, key, key]), "{c}");
        assert_eq!(
            c["specs"],
            serde_json::json!([spec, spec, spec, spec]),
            "{c}"
        );
        assert_eq!(
            c["algorithms"],
            serde_json::json!(["AES_GCM", "AES_GCM", "AES_GCM", "AES_GCM"]),
            "{c}"
        );
        assert_eq!(c["iv_lens"], serde_json::json!([12, 12, 12, 12]), "{c}");
        assert_eq!(c["plaintext_decrypts"], true, "{c}");
        assert_eq!(c["advance_plaintext_decrypts"], true, "{c}");
        assert_eq!(
            c["pairs_match"],
            serde_json::json!([true, true, true, true]),
            "{c}"
        );
        let versions = c["advance_versions"].as_array().unwrap();
        assert!(!versions[0].as_str().unwrap().is_empty(), "{c}");
        assert!(versions.iter().all(|x| *x == versions[0]), "{c}");
    }
    assert_eq!(p["algorithm_cbc"], "InvalidParameter", "{p}");

    let w = &v["wrong_usage"];
    for case in [
        "sign_with_aes",
        "encrypt_with_rsa",
        "pair_under_rsa",
        "hmac_with_aes",
        "public_key_of_aes",
    ] {
        assert_eq!(w[case], "InvalidParameter", "{case}: {w}");
    }
}

/// Hmac (sent by the SDK's request machinery): the same message gives the same MAC, another
/// message another, and the MAC verifies over gRPC.
async fn check_hmac(c: &mut Client, v: &Value, key_id: &str) {
    let h = v["hmac"].as_array().unwrap();
    let mac = |i: usize| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(h[i]["mac"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(h[0]["key_id"], key_id, "{h:?}");
    assert!(!h[0]["request_id"].as_str().unwrap().is_empty());
    assert_eq!(mac(0).len(), 32);
    assert_eq!(mac(0), mac(1));
    assert_ne!(mac(0), mac(2));
    for (message, i) in [(&b"mac me"[..], 0), (b"other", 2)] {
        let r = c
            .asymmetric
            .verify_mac(VerifyMacRequest {
                key_id: key_id.into(),
                message: message.to_vec(),
                mac: mac(i),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.value, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_loads_the_client_key_and_its_signatures_verify() {
    let Some(python) = venv::sdk_python() else {
        return;
    };
    let d = Daemon::initialised(1);
    let key = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = d.client().await;
    let rsa = create_key(&mut c, "RSA_2048", "SIGN/VERIFY").await;
    let ec = create_key(&mut c, "EC_P256", "SIGN/VERIFY").await;
    let hmac = create_key(&mut c, "HMAC_SHA_256", "").await;
    d.cli_json(&[
        "network-rule",
        "create",
        "--name",
        "local",
        "--source-ips",
        "127.0.0.0/8,::1",
    ]);
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "one-key",
        "--role",
        "CryptoServiceKeyUser",
        "--resources",
        &format!(
            "key/{key},key/{},key/{},key/{}",
            rsa.key_id, ec.key_id, hmac.key_id
        ),
        "--network-rules",
        "local",
    ]);
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "sdk-secrets",
        "--role",
        "CryptoServiceSecretUser",
        "--resources",
        "secret/sdk-*",
        "--network-rules",
        "local",
    ]);
    d.cli_json(&[
        "aap",
        "create",
        "--name",
        "sdk-app",
        "--policies",
        "one-key,sdk-secrets",
    ]);
    let first = create_secrets(&mut c, &key).await;
    let dir = d.path("client-keys");
    let ck = d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        "sdk-app",
        "--output-dir",
        dir.to_str().unwrap(),
    ])["ClientKey"]
        .clone();

    let captured: Captured = Arc::default();
    let port = start_relay(d.client_as(GATEWAY_UID).await, captured.clone()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/sdk_client.py");
    let args: Vec<String> = vec![
        script.into(),
        "--endpoint".into(),
        format!("127.0.0.1:{port}"),
        "--client-key-file".into(),
        ck["ClientKeyFile"].as_str().unwrap().into(),
        "--password-file".into(),
        ck["PasswordFile"].as_str().unwrap().into(),
        "--key-id".into(),
        key.clone(),
        "--denied-key-id".into(),
        denied.clone(),
        "--rsa-key-id".into(),
        rsa.key_id.clone(),
        "--rsa-version".into(),
        rsa.primary_key_version.clone(),
        "--ec-key-id".into(),
        ec.key_id.clone(),
        "--hmac-key-id".into(),
        hmac.key_id.clone(),
        "--secret-name".into(),
        "sdk-db".into(),
        "--binary-secret-name".into(),
        "sdk-blob".into(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK client failed:\n{}\nhkmsd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["encrypt_key_id"], key.as_str(), "{v}");
    assert_eq!(v["decrypted"], "hello from the sdk");
    assert_eq!(v["data_key_len"], 32);
    assert_eq!(v["random_len"], 48);
    assert_eq!(v["denied_code"], "Forbidden.NoPermission", "{v}");
    assert!(!v["encrypt_request_id"].as_str().unwrap().is_empty());
    check_asymmetric(&v, &key, &rsa, &ec);
    check_hmac(&mut c, &v, &hmac.key_id).await;
    let s = &v["secrets"];
    assert_eq!(
        s["current"],
        serde_json::json!(["second", "v2", ["ACSCurrent"], r#"{"app":"sdk"}"#]),
        "{s}"
    );
    assert_eq!(
        s["previous"],
        serde_json::json!(["first", first, ["ACSPrevious"]]),
        "{s}"
    );
    assert_eq!(s["binary"], serde_json::json!(["binary", "00ff10"]), "{s}");

    // The SDK's own Encrypt request, replayed with one thing changed, is refused.
    let (headers, body) = captured
        .lock()
        .unwrap()
        .iter()
        .find(|(h, _)| {
            h.iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("x-kms-apiname") && v == "Encrypt")
        })
        .cloned()
        .unwrap();
    let ua = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
        .unwrap();
    assert!(ua.1.contains("kms-gcs-python-sdk-version/1.0.2"), "{ua:?}");
    assert_eq!(
        replay(&d, headers.clone(), body.clone()).await,
        (200, String::new())
    );
    let with = |name: &str, value: String| {
        let mut h = headers.clone();
        h.iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1 = value;
        h
    };
    let date = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("date"))
        .unwrap()
        .1
        .clone();
    let when = httpdate::parse_http_date(&date).unwrap();
    let skewed = httpdate::fmt_http_date(when + std::time::Duration::from_secs(16 * 60));
    assert_eq!(
        replay(&d, with("date", skewed), body.clone()).await,
        (400, "RequestTimeTooSkewed".into())
    );
    let mut other = api::EncryptRequest::decode(body.as_slice()).unwrap();
    other.plaintext = b"something else".to_vec();
    assert_eq!(
        replay(&d, headers.clone(), other.encode_to_vec()).await,
        (400, "InvalidParam".into())
    );
    assert_eq!(
        replay(
            &d,
            with("x-kms-apiname", "GenerateRandom".into()),
            body.clone()
        )
        .await,
        (401, "SignatureNotMatch".into())
    );
}
