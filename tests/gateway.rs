//! hkms-gateway end to end: a real hkmsd on SoftHSM2 tokens, its instance CA, and the
//! gateway on loopback ports, driven by the official Python SDK over HTTPS (exported CA
//! bundle, host name checked), by raw HTTP requests, and by `openssl s_client`.

mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "sdk/venv.rs"]
mod venv;

use hkms::front::instance::auth::{http_date, sign_request};
use hkms::instance_api as api;
use prost::Message;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{connect, post, run_sdk, ClientKeyFiles, GatewayProc, Instance};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn official_sdk_runs_every_operation_over_https() {
    let Some(python) = venv::sdk_python() else {
        return;
    };
    let inst = Instance::new();
    let key = inst.create_key();
    let denied = inst.create_key();
    inst.create_alias("alias/orders", &key);
    let listed = inst.d.cli_json(&["alias", "list", "--key-id", &key]);
    assert_eq!(listed["Aliases"][0]["AliasName"], "alias/orders");
    let ck = inst.app("sdk-app", &format!("key/{key}"), Some("127.0.0.0/8"));
    let gw = GatewayProc::start(&inst, "gw", false, "");

    let v = run_sdk(
        &python,
        &inst,
        &gw.endpoint(),
        &ck,
        "ops",
        &[
            "--key-id",
            &key,
            "--alias",
            "alias/orders",
            "--denied-key-id",
            &denied,
        ],
    );
    assert!(v.get("error").is_none(), "{v}\n{}", inst.d.log_text());
    let enc = &v["encrypt"];
    assert_eq!(enc["key_id"], key.as_str());
    assert_eq!(enc["algorithm"], "AES_GCM");
    assert_eq!(enc["iv_len"], 12);
    assert_eq!(enc["blob_len"], 10 + 16, "bare ciphertext and tag: {v}");
    assert!(!enc["request_id"].as_str().unwrap().is_empty());
    assert_eq!(enc["header_request_id"], enc["request_id"], "{v}");
    assert_eq!(enc["header_version"].as_str().unwrap().len(), 36);
    assert_eq!(v["decrypt"], "gcm secret");
    assert_eq!(v["decrypt_wrong_aad"], "InvalidParameter");
    assert_eq!(v["advance_decrypt_of_encrypt"], "gcm secret");
    assert_eq!(v["alias_key_id"], key.as_str());
    assert_eq!(v["alias_decrypt"], "by alias");
    assert_eq!(v["cbc_pkcs7"]["iv_len"], 16);
    assert_eq!(
        v["cbc_pkcs7"]["blob_len"], 32,
        "16 bytes padded to two blocks"
    );
    assert_eq!(v["cbc_pkcs7"]["padding"], "PKCS7_PADDING");
    assert_eq!(v["cbc_pkcs7"]["plaintext"], "cbc with padding");
    assert_eq!(v["cbc_nopad"]["blob_len"], 32);
    assert_eq!(
        v["cbc_nopad"]["plaintext"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(v["cbc_nopad_partial_block"], "InvalidParameter");
    assert_eq!(v["advance_encrypt"]["iv_len"], 12);
    assert_eq!(v["advance_decrypt"], "advance secret");
    assert_eq!(
        v["advance_decrypt_version"],
        v["advance_encrypt"]["key_version_id"]
    );
    let acbc = &v["advance_cbc_pkcs7"];
    assert_eq!(acbc["algorithm"], "AES_CBC", "{v}");
    assert_eq!(acbc["padding"], "PKCS7_PADDING");
    assert_eq!(acbc["iv_len"], 16);
    assert_eq!(
        acbc["blob_len"],
        52 + 16,
        "header and one padded block: {v}"
    );
    assert_eq!(
        acbc["key_version_id"],
        v["advance_encrypt"]["key_version_id"]
    );
    assert_eq!(acbc["plaintext"], "advance cbc");
    assert_eq!(acbc["decrypted_algorithm"], "AES_CBC");
    assert_eq!(acbc["decrypted_padding"], "PKCS7_PADDING");
    assert_eq!(acbc["decrypt_plaintext"], "advance cbc");
    assert_eq!(v["advance_cbc_nopad"]["padding"], "NO_PADDING");
    assert_eq!(v["advance_cbc_nopad"]["blob_len"], 52 + 32);
    assert_eq!(
        v["advance_cbc_nopad"]["plaintext"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(v["advance_cbc_nopad_partial_block"], "InvalidParameter");
    assert_eq!(v["advance_cbc_with_aad"], "InvalidParameter");
    assert_eq!(v["advance_decrypt_cbc_with_aad"], "InvalidParameter");
    assert_eq!(v["migration_decrypt"]["key_id"], key.as_str(), "{v}");
    assert_eq!(v["migration_decrypt"]["plaintext"], "gcm secret");
    assert_eq!(v["data_key"]["len"], 32);
    assert_eq!(v["data_key"]["round_trip"], true);
    assert_eq!(v["advance_data_key"]["len"], 16);
    assert_eq!(v["advance_data_key"]["round_trip"], true);
    assert_eq!(v["random_len"], 48);
    assert_eq!(
        v["sign"], "InvalidParameter",
        "an ENCRYPT/DECRYPT key does not sign"
    );
    assert_eq!(
        v["get_secret_value"], "Forbidden.NoPermission",
        "no secret granted"
    );
    assert_eq!(v["denied"], "Forbidden.NoPermission");
    assert_eq!(v["unknown_alias"], "Forbidden.NoPermission");

    // A wrong ClientKey password: the SDK cannot open its key, nothing is sent.
    let v = run_sdk(
        &python,
        &inst,
        &gw.endpoint(),
        &ck,
        "encrypt",
        &["--key-id", &key, "--password", "not-the-password"],
    );
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["error"]["http"].is_null(), "refused locally: {v}");

    // A ClientKey hkmsd does not know (deleted).
    let gone = inst.client_key("sdk-app");
    inst.d.cli_json(&["client-key", "delete", &gone.id]);
    let v = run_sdk(
        &python,
        &inst,
        &gw.endpoint(),
        &gone,
        "encrypt",
        &["--key-id", &key],
    );
    assert_eq!(code(&v), "Unauthorized", "{v}");
    assert_eq!(v["error"]["http"], 404);

    // A source address outside the AAP's network rule.
    let far = inst.app("far-app", "key/*", Some("10.0.0.0/8"));
    let v = run_sdk(
        &python,
        &inst,
        &gw.endpoint(),
        &far,
        "encrypt",
        &["--key-id", &key],
    );
    assert_eq!(code(&v), "Forbidden.NoPermission", "{v}");
    assert_eq!(v["error"]["http"], 403);
    assert!(
        inst.d.log_text().contains("from 127.0.0.1"),
        "hkmsd judged the client's address"
    );

    // Hostname checks: the certificate names localhost and 127.0.0.1 only.
    let v = run_sdk(
        &python,
        &inst,
        &format!("127.0.0.1:{}", gw.port),
        &ck,
        "encrypt",
        &["--key-id", &key],
    );
    assert_eq!(v["ok"], true, "IP SAN: {v}");
}

/// Signed request headers as the SDKs send them.
fn signed(ck: &ClientKeyFiles, api_name: &str, body: &[u8]) -> Vec<(String, String)> {
    let key = ck.private_key();
    let now = hkms::access::clientkey::now_unix();
    sign_request(&key, &ck.id, api_name, body, &http_date(now)).unwrap()
}

#[test]
fn protocol_framing_limits_and_request_ids() {
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("raw-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);

    // Keep-alive: several requests on one connection; mixed-case header names.
    for i in 0..3 {
        let body = api::EncryptRequest {
            key_id: key.clone(),
            plaintext: format!("message {i}").into_bytes(),
            ..Default::default()
        }
        .encode_to_vec();
        let headers: Vec<(String, String)> = signed(&ck, "Encrypt", &body)
            .into_iter()
            .map(|(n, v)| {
                let upper = n
                    .split('-')
                    .map(|p| {
                        let mut c = p.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join("-");
                (upper, v)
            })
            .collect();
        let a = post(&mut conn, "/", &headers, &body);
        assert_eq!(a.status, 200, "{:?}", api::Error::decode(a.body.as_slice()));
        let r = api::EncryptResponse::decode(a.body.as_slice()).unwrap();
        assert_eq!(a.header("x-kms-requestid"), Some(r.request_id.as_str()));
        assert_eq!(a.header("content-type"), Some("application/x-protobuf"));
    }

    // Every failure has a protobuf Error body and a request id, in the body and header.
    let check_error = |a: &support::Answer, status: u16, code: &str| {
        assert_eq!(a.status, status, "{a:?}");
        let e = api::Error::decode(a.body.as_slice()).unwrap();
        assert_eq!(e.error_code, code);
        assert_eq!(e.status_code, i32::from(status));
        assert!(!e.request_id.is_empty());
        assert_eq!(a.header("x-kms-requestid"), Some(e.request_id.as_str()));
    };
    // Validation order: version, then signature method, date, digest, key id, signature.
    let body = api::GenerateRandomRequest { length: 8 }.encode_to_vec();
    let base = signed(&ck, "GenerateRandom", &body);
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        base.iter()
            .map(|(n, v)| {
                if n == name {
                    (n.clone(), value.to_owned())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect()
    };
    let mut bad_everything = with("x-kms-apiversion", "dkms-gcs-0.1");
    bad_everything.retain(|(n, _)| n != "date");
    check_error(
        &post(&mut conn, "/", &bad_everything, &body),
        400,
        "InvalidApiVersion",
    );
    check_error(
        &post(
            &mut conn,
            "/",
            &with("x-kms-signaturemethod", "HMAC"),
            &body,
        ),
        400,
        "InvalidParam",
    );
    check_error(
        &post(&mut conn, "/", &with("date", "yesterday"), &body),
        400,
        "InvalidParam",
    );
    check_error(
        &post(
            &mut conn,
            "/",
            &with("content-sha256", &"0".repeat(64)),
            &body,
        ),
        400,
        "InvalidParam",
    );
    check_error(
        &post(
            &mut conn,
            "/",
            &with(
                "x-kms-acccesskeyid",
                "KAAP.00000000-0000-0000-0000-000000000000",
            ),
            &body,
        ),
        404,
        "Unauthorized",
    );
    check_error(
        &post(&mut conn, "/", &with("authorization", "Bearer AAAA"), &body),
        401,
        "SignatureNotMatch",
    );
    // Unknown operation names, and a GetSecretValue without its SecretName.
    let secret_body = api::GetSecretValueRequest::default().encode_to_vec();
    check_error(
        &post(
            &mut conn,
            "/",
            &signed(&ck, "GetSecretValue", &secret_body),
            &secret_body,
        ),
        400,
        "InvalidParameter",
    );
    check_error(
        &post(&mut conn, "/", &signed(&ck, "Frobnicate", &body), &body),
        400,
        "InvalidApiName",
    );
    check_error(
        &post(&mut conn, "/other", &base, &body),
        404,
        "InvalidParameter",
    );

    // 3 MB body limit, whether declared or not (a fresh connection each: 413 may close it).
    let big = vec![0u8; 3 * 1024 * 1024 + 1];
    // Declared too large: refused from the headers, before any of the body is sent.
    let mut c2 = connect(gw.port, &inst.bundle);
    check_error(
        &post_raw(&mut c2, &signed(&ck, "Encrypt", &big), b""),
        413,
        "InvalidParameter",
    );
    let mut c3 = connect(gw.port, &inst.bundle);
    let mut chunked = signed(&ck, "Encrypt", &big);
    chunked.retain(|(n, _)| n != "content-length");
    chunked.push(("transfer-encoding".into(), "chunked".into()));
    let mut framed = format!("{:x}\r\n", big.len()).into_bytes();
    framed.extend_from_slice(&big);
    framed.extend_from_slice(b"\r\n0\r\n\r\n");
    let a = post_raw(&mut c3, &chunked, &framed);
    check_error(&a, 413, "InvalidParameter");
    // Exactly 3 MB passes framing (hkmsd then judges it: too long a plaintext).
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: vec![1u8; 3 * 1024 * 1024 - 64],
        ..Default::default()
    }
    .encode_to_vec();
    assert!(body.len() <= 3 * 1024 * 1024);
    let a = post(&mut conn, "/", &signed(&ck, "Encrypt", &body), &body);
    check_error(&a, 400, "InvalidParameter");
}

/// A request whose body is sent exactly as given (no content-length added).
fn post_raw(
    s: &mut openssl::ssl::SslStream<std::net::TcpStream>,
    headers: &[(String, String)],
    body: &[u8],
) -> support::Answer {
    use std::io::Write;
    let mut req = "POST / HTTP/1.1\r\nhost: localhost\r\n".to_owned();
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let _ = s.flush();
    support::read_answer(s)
}

/// Runs `openssl s_client` against the gateway; true when the handshake completed.
fn s_client(port: u16, bundle: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-CAfile")
        .arg(bundle)
        .args(["-verify_return_error", "-brief"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success() && text.contains("CONNECTION ESTABLISHED");
    (ok, text)
}

#[test]
fn tls_12_only_with_ecdhe_aead_suites() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let (ok, text) = s_client(gw.port, &inst.bundle, &["-tls1_2"]);
    assert!(ok, "{text}");
    assert!(text.contains("Protocol version: TLSv1.2"), "{text}");
    assert!(text.contains("ECDHE"), "{text}");
    let (ok, text) = s_client(
        gw.port,
        &inst.bundle,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    );
    assert!(ok, "an ECDHE AEAD suite is accepted: {text}");
    // Refusals. The client is made to offer the old versions (SECLEVEL=0), so what
    // refuses is the server: it answers with a protocol_version or handshake alert.
    for (args, why) in [
        (&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..], "TLS 1.0"),
        (&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..], "TLS 1.1"),
        (&["-tls1_3"][..], "TLS 1.3 (off by default)"),
        (
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"][..],
            "non-AEAD suite",
        ),
        (&["-tls1_2", "-cipher", "AES128-GCM-SHA256"][..], "no ECDHE"),
    ] {
        let (ok, text) = s_client(gw.port, &inst.bundle, args);
        assert!(!ok, "{why} must be refused: {text}");
        assert!(
            text.contains("alert protocol version") || text.contains("alert handshake failure"),
            "{why}: the server refused with an alert: {text}"
        );
    }
    // TLS 1.3 when the configuration enables it.
    let gw13 = GatewayProc::start(&inst, "gw13", true, "");
    let (ok, text) = s_client(gw13.port, &inst.bundle, &["-tls1_3"]);
    assert!(ok, "{text}");
    assert!(text.contains("Protocol version: TLSv1.3"), "{text}");
    let (ok, text) = s_client(
        gw13.port,
        &inst.bundle,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    assert!(!ok, "{text}");
}

fn served_serial(port: u16, bundle: &std::path::Path) -> String {
    let mut s = connect(port, bundle);
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
    let _ = s.shutdown();
    serial
}

#[test]
fn certificate_renewal_without_downtime() {
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("renew-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let before = served_serial(gw.port, &inst.bundle);
    // A kept-alive connection opened before the renewal.
    let mut open = connect(gw.port, &inst.bundle);
    let body = api::GenerateRandomRequest { length: 4 }.encode_to_vec();
    assert_eq!(
        post(&mut open, "/", &signed(&ck, "GenerateRandom", &body), &body).status,
        200
    );

    let renewed = inst.issue();
    assert_ne!(renewed, before);
    gw.hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = served_serial(gw.port, &inst.bundle);
        if now.eq_ignore_ascii_case(&renewed) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still serving {now}, not {renewed}\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection from before is still served.
    let body = api::EncryptRequest {
        key_id: key,
        plaintext: b"after renewal".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(
        post(&mut open, "/", &signed(&ck, "Encrypt", &body), &body).status,
        200
    );
    assert!(gw.log_text().contains("TLS certificate reloaded"));

    // A broken pair is refused and the served certificate stays.
    std::fs::write(&inst.key, b"not a key").unwrap();
    gw.hup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(served_serial(gw.port, &inst.bundle).eq_ignore_ascii_case(&renewed));
    assert!(gw.log_text().contains("not reloaded"), "{}", gw.log_text());
}

#[test]
fn throttling_and_the_internet_endpoint() {
    let Some(python) = venv::sdk_python() else {
        return;
    };
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("busy-app", "key/*", None);
    // The Internet endpoint admits requests only through a Public network rule.
    let wan = inst.app_on("busy-wan", "key/*", Some(("127.0.0.0/8,::1", "Public")));
    // One request every 2 s on the private endpoint, every 5 s over the Internet.
    let gw = GatewayProc::start(
        &inst,
        "gw",
        false,
        "[throttle]\ntier_qps = 0.5\ninternet_crypto_qps = 0.2\n",
    );
    let private = gw.endpoint();
    let internet = format!("localhost:{}", gw.internet_port);
    let enc = |endpoint: &str| {
        let ck = if endpoint == internet { &wan } else { &ck };
        run_sdk(&python, &inst, endpoint, ck, "encrypt", &["--key-id", &key])
    };

    let v = enc(&private);
    assert_eq!(v["ok"], true, "{v}");
    // Over the cap: 429 Rejected.Throttling, which the SDK retries after 1 s until a token
    // is free again.
    let v = enc(&private);
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["seconds"].as_f64().unwrap() >= 0.9,
        "the SDK waited and retried: {v}"
    );

    // The Internet endpoint answers only once the owner enables it.
    let v = enc(&internet);
    assert_eq!(code(&v), "Forbidden.InternetAccessDisabled", "{v}");
    assert_eq!(v["error"]["http"], 403);
    let on = inst.d.cli_json(&["instance", "internet", "enable"]);
    assert_eq!(on["InternetAccess"], true);
    // The refused call spent the Internet endpoint's token: four attempts over about 3 s
    // all meet the cap, and the SDK finally reports Rejected.Throttling.
    let v = enc(&internet);
    assert_eq!(code(&v), "Rejected.Throttling", "{v}");
    assert_eq!(v["error"]["http"], 429);
    assert!(v["seconds"].as_f64().unwrap() >= 2.9, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let v = enc(&internet);
    assert_eq!(v["ok"], true, "{v}");
    let off = inst.d.cli_json(&["instance", "internet", "disable"]);
    assert_eq!(off["InternetAccess"], false);
    std::thread::sleep(Duration::from_secs(5));
    let v = enc(&internet);
    assert_eq!(code(&v), "Forbidden.InternetAccessDisabled", "{v}");
    let status = inst.d.cli_json(&["instance", "internet", "status"]);
    assert_eq!(status["InternetAccess"], false);
}

/// The protocol error of a failed answer: (HTTP status, error code).
fn failure(a: &support::Answer) -> (u16, String) {
    let e = api::Error::decode(a.body.as_slice()).unwrap();
    assert_eq!(e.status_code, i32::from(a.status), "{e:?}");
    (a.status, e.error_code)
}

#[test]
fn decrypt_finds_the_key_from_the_migration_key_version_header() {
    const HEADER: &str = "x-kms-migrationkeyversionid";
    let inst = Instance::new();
    let key = inst.create_key();
    let other = inst.create_key();
    inst.create_alias("alias/migrated", &key);
    let one = inst.app("one-key", &format!("key/{key}"), None);
    let every = inst.app("every-key", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);
    let aad = b"sha256 of the encryption context".to_vec();

    // Encrypt reports the key version it used; the transfer SDK keeps it beside Iv and
    // ciphertext, and sends it back instead of the KeyId.
    let encrypt = |conn: &mut _, ck: &ClientKeyFiles, key_id: &str| {
        let body = api::EncryptRequest {
            key_id: key_id.into(),
            plaintext: b"classic secret".to_vec(),
            aad: aad.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let a = post(conn, "/", &signed(ck, "Encrypt", &body), &body);
        assert_eq!(a.status, 200, "{:?}", failure(&a));
        let version = a.header(HEADER).unwrap().to_owned();
        (
            api::EncryptResponse::decode(a.body.as_slice()).unwrap(),
            version,
        )
    };
    let (enc, version) = encrypt(&mut conn, &one, &key);
    assert_eq!(version.len(), 36);
    let (other_enc, other_version) = encrypt(&mut conn, &every, &other);
    let decrypt_body = |enc: &api::EncryptResponse, key_id: &str, aad: &[u8]| {
        api::DecryptRequest {
            ciphertext_blob: enc.ciphertext_blob.clone(),
            key_id: key_id.into(),
            iv: enc.iv.clone(),
            aad: aad.to_vec(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let mut decrypt = |ck: &ClientKeyFiles, api_name: &str, body: &[u8], version: &str| {
        post(
            &mut conn,
            "/",
            &ck.signed_with(api_name, body, &[(HEADER, version)]),
            body,
        )
    };

    // No KeyId: the version names the key and the version to decrypt with.
    let body = decrypt_body(&enc, "", &aad);
    let a = decrypt(&one, "Decrypt", &body, &version);
    assert_eq!(a.status, 200, "{:?}\n{}", failure(&a), inst.d.log_text());
    let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(dec.plaintext, b"classic secret");
    assert_eq!(dec.key_id, key);
    assert_eq!(dec.algorithm, "AES_GCM");
    // The version id in another spelling (upper case) is the same version.
    let a = decrypt(&one, "Decrypt", &body, &version.to_ascii_uppercase());
    assert_eq!(a.status, 200, "{:?}", failure(&a));
    // AdvanceDecrypt takes the header the same way, and reports the version.
    let a = decrypt(&one, "AdvanceDecrypt", &body, &version);
    assert_eq!(a.status, 200, "{:?}", failure(&a));
    let adec = api::AdvanceDecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(adec.plaintext, b"classic secret");
    assert_eq!(adec.key_version_id, version);
    // A KeyId sent as well must name the version's key (by id or alias).
    for key_ref in [key.as_str(), "alias/migrated"] {
        let a = decrypt(
            &one,
            "Decrypt",
            &decrypt_body(&enc, key_ref, &aad),
            &version,
        );
        assert_eq!(a.status, 200, "{key_ref}: {:?}", failure(&a));
    }
    let a = decrypt(
        &every,
        "Decrypt",
        &decrypt_body(&enc, &other, &aad),
        &version,
    );
    assert_eq!(failure(&a), (404, "Forbidden.KeyNotFound".into()));
    // The AAD is still checked.
    let a = decrypt(&one, "Decrypt", &decrypt_body(&enc, "", b"other"), &version);
    assert_eq!(failure(&a), (400, "InvalidParameter".into()));

    // The version's key is authorised like any key: a version of a key the caller may not
    // use is forbidden, and so is one that does not exist, unless the caller may use every
    // key (then it learns the key is not found).
    let a = decrypt(
        &one,
        "Decrypt",
        &decrypt_body(&other_enc, "", &aad),
        &other_version,
    );
    assert_eq!(failure(&a), (403, "Forbidden.NoPermission".into()));
    let unknown = uuid::Uuid::new_v4().to_string();
    for ghost in [unknown.as_str(), "not-a-version"] {
        let a = decrypt(&one, "Decrypt", &body, ghost);
        assert_eq!(
            failure(&a),
            (403, "Forbidden.NoPermission".into()),
            "{ghost}"
        );
        let a = decrypt(&every, "Decrypt", &body, ghost);
        assert_eq!(
            failure(&a),
            (404, "Forbidden.KeyNotFound".into()),
            "{ghost}"
        );
    }
    let a = decrypt(
        &every,
        "Decrypt",
        &decrypt_body(&other_enc, "", &aad),
        &other_version,
    );
    assert_eq!(a.status, 200, "{:?}", failure(&a));

    // The header is signed: added after signing, it breaks the signature.
    let mut unsigned = signed(&one, "Decrypt", &body);
    unsigned.push((HEADER.into(), version.clone()));
    let a = post(&mut connect(gw.port, &inst.bundle), "/", &unsigned, &body);
    assert_eq!(failure(&a), (401, "SignatureNotMatch".into()));

    // A disabled key refuses, as with a KeyId.
    inst.d.cli_json(&["key", "disable", &key]);
    let a = decrypt(&one, "Decrypt", &body, &version);
    assert_eq!(failure(&a), (400, "Forbidden.KeyNotEnabled".into()));
}

#[test]
fn network_rules_admit_requests_only_on_the_endpoint_of_their_type() {
    let inst = Instance::new();
    let key = inst.create_key();
    inst.d.cli_json(&["instance", "internet", "enable"]);
    // The same addresses in a rule of each network type, each in its own AAP.
    let client_keys: Vec<_> = [
        ("lan-app", "Private"),
        ("vpc-app", "VPC"),
        ("wan-app", "Public"),
    ]
    .into_iter()
    .map(|(aap, network_type)| inst.app_on(aap, "key/*", Some(("127.0.0.0/8,::1", network_type))))
    .collect();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    for ((aap, private_ok, internet_ok), ck) in [
        ("lan-app", true, false),
        ("vpc-app", true, false),
        ("wan-app", false, true),
    ]
    .into_iter()
    .zip(&client_keys)
    {
        for (port, want) in [(gw.port, private_ok), (gw.internet_port, internet_ok)] {
            let mut conn = connect(port, &inst.bundle);
            let a = post(&mut conn, "/", &signed(ck, "Encrypt", &body), &body);
            if want {
                assert_eq!(a.status, 200, "{aap} on port {port}: {:?}", failure(&a));
            } else {
                assert_eq!(
                    failure(&a),
                    (403, "Forbidden.NoPermission".into()),
                    "{aap} on port {port}"
                );
            }
        }
    }
    let log = inst.d.log_text();
    assert!(
        log.contains("from 127.0.0.1 over the internet endpoint"),
        "{log}"
    );
    assert!(
        log.contains(
            "policy lan-app-policy has no network rule for the internet endpoint among [lan-app-net (Private)]"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "policy wan-app-policy has no network rule for the private endpoint among [wan-app-net (Public)]"
        ),
        "{log}"
    );
}

#[test]
fn help_teaches_both_ways_to_reach_hkmsd() {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms-gateway"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for taught in [
        "socket = \"/run/hkms/hkmsd.sock\"",
        "[access] gateway_uids",
        "endpoint = \"https://",
        "mutual TLS",
        "client_cert",
        "client_key",
        "[listen] gateway_ca",
        "hkms ca issue-gateway-client",
        "[listen] tcp",
    ] {
        assert!(help.contains(taught), "--help lacks {taught:?}:\n{help}");
    }
}
