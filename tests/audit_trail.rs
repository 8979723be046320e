//! The audit trail, end to end (a real hkmsd on SoftHSM2 tokens, a real gateway): what a
//! mix of allowed and denied requests leaves in the trail, that no secret byte reaches it,
//! that it survives kill -9 with every acknowledged request recorded, and that a trail that
//! cannot be written refuses requests until it can.

#[path = "support/audit.rs"]
mod audit;
mod common;
#[path = "support/gateway.rs"]
mod support;

use audit::{records, trail_text};
use hkms::instance_api as api;
use prost::Message;
use serde_json::Value;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

const PLAINTEXT: &[u8] = b"plaintext-that-must-never-reach-the-trail-7f3a";
const AAD: &[u8] = b"aad-that-only-appears-hashed-91c2";
const SECRET_VALUE: &str = "secret-value-that-must-never-reach-the-trail-5d1e";

fn encrypt(inst: &Instance, port: u16, ck: &ClientKeyFiles, key: &str) -> support::Answer {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: PLAINTEXT.to_vec(),
        aad: AAD.to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut conn = connect(port, &inst.bundle);
    post(&mut conn, "/", &ck.signed("Encrypt", &body), &body)
}

fn find(records: &[Value], f: impl Fn(&Value) -> bool) -> Vec<&Value> {
    records.iter().filter(|r| f(r)).collect()
}

#[test]
fn allowed_and_denied_requests_are_recorded_with_their_fields_and_no_secret_bytes() {
    let inst = Instance::new();
    let key = inst.create_key();
    let other = inst.create_key();
    let ck = inst.app("audited-app", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");

    let ok = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(ok.status, 200, "{:?}", ok.failure());
    let request_id = ok.header("x-kms-requestid").unwrap().to_owned();
    let denied = encrypt(&inst, gw.port, &ck, &other);
    assert_eq!(denied.failure(), (403, "Forbidden.NoPermission".into()));
    let denied_id = denied.header("x-kms-requestid").unwrap().to_owned();
    // A signature that does not verify.
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: PLAINTEXT.to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut headers = ck.signed("Encrypt", &body);
    let mut tampered = body.clone();
    tampered[2] ^= 1;
    let bad = post(
        &mut connect(gw.port, &inst.bundle),
        "/",
        &headers,
        &tampered,
    );
    let (status, bad_code) = bad.failure();
    assert!(
        status >= 400,
        "a tampered body is refused: {status} {bad_code}"
    );
    headers.clear();

    // Operators over gRPC: a secret and an encryption.
    inst.create_secret("db/audited", SECRET_VALUE.as_bytes(), "text", &key, "");
    let out = inst.d.cli(&["secret", "get", "db/audited"]);
    assert!(out.status.success());

    let records = records(&inst.d);
    let served = find(&records, |r| r["request_id"] == request_id.as_str());
    assert_eq!(served.len(), 1, "one record per request: {served:?}");
    let r = served[0];
    assert_eq!(r["front"], "instance");
    assert_eq!(r["operation"], "Encrypt");
    assert_eq!(r["principal"], "application");
    assert_eq!(r["aap"], "audited-app");
    assert_eq!(r["credential"], ck.id.as_str());
    assert_eq!(r["source"], "127.0.0.1");
    assert_eq!(r["endpoint"], "private");
    assert_eq!(r["gateway"], format!("uid={}", common::GATEWAY_UID));
    assert_eq!(r["key_id"], key.as_str());
    assert!(
        r["key_version_id"].as_str().is_some_and(|v| !v.is_empty()),
        "{r}"
    );
    assert_eq!(r["result"], "OK");
    assert!(r["latency_us"].as_u64().is_some(), "{r}");
    let aad_hash = r["aad_hash"].as_str().unwrap();
    assert!(
        aad_hash.starts_with("hmac-sha256:") && aad_hash.len() == 12 + 64,
        "{r}"
    );
    assert_eq!(
        audit::hash_of(&inst.d, AAD),
        aad_hash,
        "the operator computes the same hash"
    );

    let refused = find(&records, |r| r["request_id"] == denied_id.as_str());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["result"], "Forbidden.NoPermission");
    assert_eq!(refused[0]["key_id"], other.as_str());
    assert_eq!(refused[0]["aap"], "audited-app");

    let unauthenticated = find(&records, |r| {
        r["front"] == "instance" && r["principal"] == "unauthenticated"
    });
    assert_eq!(unauthenticated.len(), 1, "{unauthenticated:?}");
    assert_eq!(unauthenticated[0]["result"], bad_code.as_str());
    assert_eq!(unauthenticated[0]["source"], "127.0.0.1");

    let grpc = find(&records, |r| {
        r["front"] == "grpc" && r["operation"] == "/hkms.v1.SecretsService/GetSecretValue"
    });
    assert_eq!(grpc.len(), 1, "{grpc:?}");
    assert_eq!(grpc[0]["principal"], "operator");
    assert_eq!(grpc[0]["uid"], 0);
    assert_eq!(grpc[0]["secret_name"], "db/audited");
    assert_eq!(grpc[0]["result"], "OK");
    assert!(find(&records, |r| r["operation"] == "Start").len() == 1);

    // No plaintext, AAD, secret value, PIN or private key in any file of the trail.
    let text = trail_text(&inst.d);
    for (what, needle) in [
        ("plaintext", PLAINTEXT.to_vec()),
        ("AAD", AAD.to_vec()),
        ("secret value", SECRET_VALUE.as_bytes().to_vec()),
        ("user PIN", common::USER_PIN.as_bytes().to_vec()),
        (
            "ClientKey password",
            std::fs::read(&ck.password_file).unwrap(),
        ),
    ] {
        assert!(
            !text.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the trail holds the {what}"
        );
    }
}

/// `GET /health/ready` of hkmsd: status code and body.
fn ready(port: u16) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split(' ').nth(1).unwrap().parse().unwrap();
    (code, text)
}

/// Encrypts over gRPC; the record's request id when acknowledged, the error code otherwise.
async fn grpc_encrypt(c: &mut hkms::client::Client, key: &str) -> Result<String, String> {
    match c
        .crypto
        .encrypt(hkms::proto::EncryptRequest {
            key_id: key.to_owned(),
            plaintext: b"x".to_vec(),
            aad: Vec::new(),
        })
        .await
    {
        Ok(r) => Ok(r
            .metadata()
            .get("x-hkms-request-id")
            .expect("every answer names its record")
            .to_str()
            .unwrap()
            .to_owned()),
        Err(s) => Err(common::code(s)),
    }
}

/// Checks the trail's chain from its first record: consecutive sequence numbers, each
/// naming the hash of the one before, each line's hash right.
fn assert_chained(d: &common::Daemon) {
    let text = String::from_utf8(trail_text(d)).unwrap();
    let mut prev = hkms::audit::record::GENESIS.to_owned();
    let mut seq = 0;
    for line in text.lines() {
        match hkms::audit::record::parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}")) {
            hkms::audit::record::Line::Record(r) => {
                seq += 1;
                assert_eq!(r.seq, seq, "{line}");
                assert_eq!(r.prev, prev, "{line}");
                prev = r.hash;
            }
            hkms::audit::record::Line::Checkpoint(c) => assert!(c.seq <= seq),
            other => panic!("a trail holds records and checkpoints only: {other:?}"),
        }
    }
    assert!(seq > 0);
}

#[test]
fn every_acknowledged_request_survives_kill_9() {
    let mut d = common::Daemon::initialised(1);
    let out = d.cli_json(&["key", "create"]);
    let key = out["KeyMetadata"]["KeyId"]
        .as_str()
        .or(out["KeyId"].as_str())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    // The crash below hits direct appends (O_DIRECT | O_DSYNC), not buffered ones.
    let status = d.cli_json(&["audit", "status"]);
    assert_eq!(status["Appends"], "direct", "{status}");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let socket = d.socket.clone();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let acked = acked.clone();
            let key = key.clone();
            let socket = socket.clone();
            rt.spawn(async move {
                let Ok(mut c) = hkms::client::Client::connect(&socket).await else {
                    return;
                };
                while let Ok(id) = grpc_encrypt(&mut c, &key).await {
                    acked.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    // Let requests flow, then crash hkmsd in the middle of them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while acked.lock().unwrap().len() < 300 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.stop(true);
    rt.block_on(async {
        for w in workers {
            let _ = w.await;
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} requests before the crash",
        acked.len()
    );

    d.spawn().expect("hkmsd restarts after kill -9");
    let records = records(&d);
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged requests missing: {lost:?}",
        lost.len()
    );
    assert_eq!(
        records.iter().filter(|r| r["operation"] == "Start").count(),
        2,
        "one start record per start"
    );
    assert_chained(&d);
    // The restarted hkmsd extends the same chain.
    rt.block_on(async {
        let mut c = d.client().await;
        grpc_encrypt(&mut c, &key).await.unwrap();
    });
    assert_chained(&d);
}

#[test]
fn an_unwritable_trail_refuses_requests_until_it_can_be_written_again() {
    let mut inst = Instance::new();
    // hkmsd's health endpoint, on a port of its own.
    let port = support::free_port();
    let mut config = std::fs::read_to_string(&inst.d.config).unwrap();
    config.push_str(&format!("[observability]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&inst.d.config, config).unwrap();
    inst.d.restart();
    assert_eq!(ready(port).0, 200);
    let key = inst.create_key();
    let ck = inst.app("fail-closed-app", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    assert_eq!(encrypt(&inst, gw.port, &ck, &key).status, 200);

    // An immutable file refuses every write, even through a descriptor opened before
    // (EPERM): the active segment cannot be appended to.
    let active = audit::segments(&inst.d).pop().unwrap();
    let chattr = |flag: &str| {
        let out = std::process::Command::new("chattr")
            .args([flag, active.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chattr {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    chattr("+i");

    let refused = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(refused.status, 503, "{:?}", refused.failure());
    assert_eq!(refused.failure().0, 503);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("AuditUnavailable"),
        "the message names the code"
    );
    let status = inst.grpc(async |c| {
        let refused = grpc_encrypt(c, &key).await;
        let status = c
            .audit
            .get_audit_status(hkms::proto::GetAuditStatusRequest {})
            .await
            .map(|r| r.into_inner());
        (refused, status)
    });
    assert_eq!(status.0, Err("AuditUnavailable".to_owned()));
    // Asking about the trail is a request too: refused while nothing can be recorded.
    let e = status.1.unwrap_err();
    assert_eq!(common::code(e), "AuditUnavailable", "{}", inst.d.log_text());
    assert!(inst
        .d
        .log_text()
        .contains("the audit trail cannot be written"));
    let (code, body) = ready(port);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("audit"), "readiness names the trail: {body}");

    // Writable again: the trail retries on its own, without a request to carry the
    // attempt, so readiness comes back first; it records the outage, and requests are
    // served again.
    chattr("-i");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, body) = ready(port);
        if code == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not ready: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let a = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let records = records(&inst.d);
    let recovered = find(&records, |r| r["operation"] == "TrailRecovered");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let detail = recovered[0]["detail"].as_str().unwrap();
    assert!(detail.contains("Operation not permitted"), "{detail}");
    assert!(detail.contains("requests were refused"), "{detail}");
    let status = inst
        .grpc(async |c| {
            c.audit
                .get_audit_status(hkms::proto::GetAuditStatusRequest {})
                .await
        })
        .unwrap()
        .into_inner();
    assert!(status.writable && status.error.is_empty(), "{status:?}");
    assert_eq!(ready(port).0, 200);
    assert_chained(&inst.d);
}

/// `hkms --json audit verify FILE [--public-key PEM]`: exit code and the JSON answer.
fn verify(
    d: &common::Daemon,
    file: &std::path::Path,
    trusted: Option<&std::path::Path>,
) -> (i32, Value) {
    let mut args = vec!["--json", "audit", "verify", file.to_str().unwrap()];
    if let Some(t) = trusted {
        args.extend(["--public-key", t.to_str().unwrap()]);
    }
    let out = d.cli(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

#[test]
fn an_export_verifies_offline_and_each_kind_of_tampering_is_found_and_located() {
    let mut d = common::Daemon::initialised(1);
    // Checkpoints every second, so that an export holds several.
    let mut config = std::fs::read_to_string(&d.config).unwrap();
    config.push_str("[audit]\ncheckpoint_interval_secs = 1\n");
    std::fs::write(&d.config, config).unwrap();
    d.restart();
    let out = d.cli_json(&["key", "create"]);
    let key = out["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    for round in 0..3 {
        for _ in 0..4 {
            d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
        }
        if round < 2 {
            std::thread::sleep(std::time::Duration::from_millis(1300));
        }
    }
    let file = d.path("trail.export");
    let out = d.cli(&["audit", "export", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["type"], "header");
    let checkpoints: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("{\"type\":\"checkpoint\""))
        .collect();
    assert!(
        checkpoints.len() >= 2,
        "checkpoints signed while records arrived: {text}"
    );
    let records: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("{\"type\":\"record\""))
        .collect();
    assert!(records.len() >= 15, "{}", records.len());
    assert!(lines.last().unwrap().starts_with("{\"type\":\"seal\""));

    // The audit public key, kept apart as an operator would.
    let pems: Vec<&str> = header["public_keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    let trusted = d.path("audit-public.pem");
    std::fs::write(&trusted, pems[0]).unwrap();

    let (code, answer) = verify(&d, &file, None);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["Valid"], true);
    assert_eq!(verify(&d, &file, Some(&trusted)).0, 0);

    let write = |name: &str, lines: &[String]| {
        let p = d.path(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let expect = |name: &str, tampered: Vec<String>, kind: &str, line: usize| {
        let p = write(name, &tampered);
        let (code, answer) = verify(&d, &p, Some(&trusted));
        assert_eq!(code, 1, "{name}: {answer}");
        assert_eq!(answer["Kind"], kind, "{name}: {answer}");
        assert_eq!(answer["Line"], line, "{name}: {answer}");
    };

    // One byte changed in a record in the middle.
    let target = records[records.len() / 2];
    let mut edited = owned.clone();
    edited[target] = edited[target].replacen("\"result\":\"OK\"", "\"result\":\"OL\"", 1);
    assert_ne!(edited[target], owned[target]);
    expect("edited", edited, "AlteredRecord", target + 1);

    // A record removed: the next one no longer follows.
    let mut dropped = owned.clone();
    dropped.remove(target);
    expect("dropped", dropped, "MissingRecord", target + 1);

    // Two records swapped.
    let (a, b) = (records[3], records[4]);
    let mut swapped = owned.clone();
    swapped.swap(a, b);
    expect("swapped", swapped, "OutOfOrder", a + 1);

    // The tail cut off (the seal and the last records).
    let cut: Vec<String> = owned[..owned.len() - 3].to_vec();
    let (code, answer) = verify(&d, &write("cut", &cut), Some(&trusted));
    assert_eq!(
        (code, answer["Kind"].as_str()),
        (1, Some("TruncatedTail")),
        "{answer}"
    );

    // A checkpoint signed with another key.
    let forger = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let forger = openssl::pkey::PKey::from_ec_key(forger).unwrap();
    let c = checkpoints[0];
    let mut checkpoint: Value = serde_json::from_str(&owned[c]).unwrap();
    let message = hkms::audit::record::checkpoint_message(
        checkpoint["seq"].as_u64().unwrap(),
        checkpoint["head"].as_str().unwrap(),
        checkpoint["time"].as_str().unwrap(),
    );
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &forger).unwrap();
    let forged = signer.sign_oneshot_to_vec(&message).unwrap();
    use base64::Engine;
    checkpoint["signature"] = base64::engine::general_purpose::STANDARD
        .encode(forged)
        .into();
    let mut forged_lines = owned.clone();
    forged_lines[c] = serde_json::to_string(&checkpoint).unwrap();
    let p = write("forged", &forged_lines);
    let (code, answer) = verify(&d, &p, Some(&trusted));
    assert_eq!(code, 1, "{answer}");
    assert_eq!(answer["Line"], c + 1, "{answer}");
    let (code, answer) = verify(&d, &p, None);
    assert_eq!(
        (code, answer["Kind"].as_str()),
        (1, Some("BadSignature")),
        "{answer}"
    );
}
