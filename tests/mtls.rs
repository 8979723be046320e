//! hkmsd's TCP listener with mutual TLS: applications calling the gRPC API directly with
//! their ClientKey certificate, and a gateway on "another host" relaying over TCP with a
//! gateway client certificate of the instance CA. Real hkmsd on SoftHSM2 tokens, loopback.

mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/mtls.rs"]
mod tcp;

use common::code;
use hkms::access::clientkey::{self, KeyPair};
use hkms::client::{Client, TlsClientFiles};
use hkms::instance_api as api;
use hkms::proto::*;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use prost::Message;
use std::path::{Path, PathBuf};
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};
use tcp::{client_key_pem, endpoint, instance_on_tcp, pem_files};

async fn encrypt(c: &mut Client, key_id: &str, text: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    c.crypto
        .encrypt(EncryptRequest {
            key_id: key_id.into(),
            plaintext: text.to_vec(),
            aad: b"ctx".to_vec(),
        })
        .await
        .map(|r| r.into_inner().ciphertext_blob)
}

/// A call on a connection hkmsd refuses fails in the transport, not with a KMS code.
fn assert_refused_connection(result: Result<Vec<u8>, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert!(
        hkms::error::error_code(&status).is_none(),
        "{what}: expected a failed connection, got {status:?}"
    );
}

fn wait_for_log(inst: &Instance, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !inst.d.log_text().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in the hkmsd log:\n{}",
            inst.d.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every thread of the daemon under its seccomp filter, with no capabilities.
fn assert_confined(socket: &Path) {
    let pid = hkms::hardening::report::socket_owner(socket).unwrap();
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert!(tasks.len() >= 2);
    for t in tasks {
        let Ok(status) = std::fs::read_to_string(t.join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .unwrap()
                .trim()
                .to_owned()
        };
        assert_eq!(field("Seccomp"), "2", "{}", t.display());
        assert_eq!(field("CapEff"), "0000000000000000", "{}", t.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_call_the_grpc_api_directly_with_their_client_key() {
    let (inst, port) = instance_on_tcp();
    let key = inst.create_key();
    let other = inst.create_key();
    let ck = inst.app("direct", &format!("key/{key}"), Some("127.0.0.0/8"));
    let files = client_key_pem(&inst, &ck);
    let mut app = Client::connect_tls(&endpoint(port), &files).unwrap();

    // Encrypt and Decrypt with the key its policy grants.
    let blob = encrypt(&mut app, &key, b"over mutual TLS").await.unwrap();
    let plain = app
        .crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob.clone(),
            aad: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.plaintext, b"over mutual TLS");
    assert_eq!(plain.key_id, key);
    // The operator's view of the same ciphertext agrees (one key, one format).
    let mut operator = inst.d.client().await;
    let again = operator
        .crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob,
            aad: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.plaintext, b"over mutual TLS");

    // A key outside the policy, administrative calls and relaying are refused.
    let e = encrypt(&mut app, &other, b"x").await.unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let e = app.admin.get_status(GetStatusRequest {}).await.unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let e = app
        .keys
        .create_key(CreateKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let e = app
        .keys
        .describe_key(DescribeKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let e = app
        .application
        .call(ApplicationCallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    assert!(
        inst.d
            .log_text()
            .contains(&format!("credential={} source=127.0.0.1", ck.id)),
        "the TCP peer's address is the source address:\n{}",
        inst.d.log_text()
    );

    // A network rule that leaves 127.0.0.1 out denies the same kind of application.
    let far = inst.app("far-away", "key/*", Some("10.0.0.0/8"));
    let mut far_app = Client::connect_tls(&endpoint(port), &client_key_pem(&inst, &far)).unwrap();
    let e = encrypt(&mut far_app, &key, b"x").await.unwrap_err();
    assert_eq!(code(e), "Forbidden");

    // A ClientKey that is not valid yet is refused on every call.
    let tomorrow = {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", "+2 days", "+%Y-%m-%d"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let dir = inst.d.path("early-key");
    let out = inst.d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        "direct",
        "--output-dir",
        dir.to_str().unwrap(),
        "--not-before",
        &tomorrow,
    ]);
    let ck_early = ClientKeyFiles {
        id: out["ClientKey"]["ClientKeyId"].as_str().unwrap().into(),
        file: out["ClientKey"]["ClientKeyFile"].as_str().unwrap().into(),
        password_file: out["ClientKey"]["PasswordFile"].as_str().unwrap().into(),
    };
    let mut early =
        Client::connect_tls(&endpoint(port), &client_key_pem(&inst, &ck_early)).unwrap();
    let e = encrypt(&mut early, &key, b"x").await.unwrap_err();
    assert_eq!(code(e), "Unauthenticated");

    // An unregistered self-signed certificate: the connection is dropped after the handshake.
    let now = clientkey::now_unix();
    let stranger = KeyPair::generate("stranger", now - 60, now + 86_400).unwrap();
    let p12 = stranger.pkcs12("stranger-pw-1").unwrap();
    let parsed = openssl::pkcs12::Pkcs12::from_der(&p12)
        .unwrap()
        .parse2("stranger-pw-1")
        .unwrap();
    let stranger_files = pem_files(
        &inst,
        "stranger",
        &parsed.pkey.unwrap(),
        &parsed.cert.unwrap(),
    );
    let mut stranger = Client::connect_tls(&endpoint(port), &stranger_files).unwrap();
    assert_refused_connection(
        encrypt(&mut stranger, &key, b"x").await,
        "unregistered cert",
    );
    wait_for_log(&inst, "is neither a registered ClientKey");

    // No client certificate at all: the handshake fails.
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(&inst.bundle).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        b.build().connect("localhost", tcp).is_err(),
        "a handshake without a client certificate must fail"
    );

    // Deleted: the open connection's next call is refused, and so is a new connection.
    encrypt(&mut app, &key, b"still valid").await.unwrap();
    inst.d.cli_json(&["client-key", "delete", &ck.id]);
    let e = encrypt(&mut app, &key, b"x").await.unwrap_err();
    assert_eq!(code(e), "Unauthenticated");
    let mut fresh = Client::connect_tls(&endpoint(port), &files).unwrap();
    assert_refused_connection(encrypt(&mut fresh, &key, b"x").await, "deleted key");

    // Hardening holds with the TCP listener: every thread confined, the forbidden-call
    // self-test passed, and the operator socket still serves.
    assert_confined(&inst.d.socket);
    let log = inst.d.log_text();
    assert!(
        log.lines().any(|l| l.contains("seccomp probe")
            && l.contains("socket(AF_INET)")
            && l.contains("blocked=true")),
        "{log}"
    );
    encrypt(&mut operator, &key, b"operator").await.unwrap();
}

/// Signs and posts one Encrypt through a gateway; returns the HTTP status and body.
fn gateway_encrypt(
    gw: &GatewayProc,
    inst: &Instance,
    ck: &ClientKeyFiles,
    key: &str,
) -> (u16, Vec<u8>) {
    let body = api::EncryptRequest {
        key_id: key.into(),
        plaintext: b"relayed over TCP".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let headers = ck.signed("Encrypt", &body);
    let mut conn = connect(gw.port, &inst.bundle);
    let a = post(&mut conn, "/", &headers, &body);
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_another_host_relays_over_mutual_tls() {
    let (inst, port) = instance_on_tcp();
    let key = inst.create_key();
    let ck = inst.app("via-gateway", &format!("key/{key}"), Some("127.0.0.0/8"));
    let client_cert = inst.d.path("gw/hkmsd-client.pem");
    let client_key = inst.d.path("gw/hkmsd-client.key");
    let out = inst.d.cli_json(&[
        "ca",
        "issue-gateway-client",
        "--dir",
        inst.ca_dir.to_str().unwrap(),
        "--name",
        "gw-remote",
        "--cert-out",
        client_cert.to_str().unwrap(),
        "--key-out",
        client_key.to_str().unwrap(),
    ]);
    assert_eq!(out["Name"], "gw-remote");
    let hkmsd = |cert: &Path, key: &Path| {
        format!(
            "endpoint = \"{}\"\nclient_cert = {cert:?}\nclient_key = {key:?}\nca = {:?}\n",
            endpoint(port),
            inst.bundle
        )
    };

    // One signed round trip through the gateway, relayed to hkmsd over TCP.
    let gw = GatewayProc::start_to(
        &inst,
        "gw-tcp",
        &hkmsd(&client_cert, &client_key),
        false,
        "",
    );
    let (status, body) = gateway_encrypt(&gw, &inst, &ck, &key);
    assert_eq!(status, 200, "{}\n{}", gw.log_text(), inst.d.log_text());
    let enc = api::EncryptResponse::decode(body.as_slice()).unwrap();
    assert_eq!(enc.key_id, key);
    wait_for_log(&inst, "gateway connected over TCP");
    assert!(inst.d.log_text().contains("CN=gw-remote"));

    // The gateway certificate only relays: no cryptography, no administration.
    let gw_files = TlsClientFiles {
        ca: inst.bundle.clone(),
        cert: client_cert.clone(),
        key: client_key.clone(),
    };
    let mut as_gateway = Client::connect_tls(&endpoint(port), &gw_files).unwrap();
    let e = encrypt(&mut as_gateway, &key, b"x").await.unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let e = as_gateway
        .admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");

    // A gateway client certificate of another CA is refused: the gateway cannot reach
    // hkmsd and answers 503.
    let other_ca = inst.d.path("other-ca");
    let offline = inst.d.path("other-offline");
    std::fs::create_dir_all(&offline).unwrap();
    inst.d.cli_json(&[
        "ca",
        "init",
        "--dir",
        other_ca.to_str().unwrap(),
        "--root-key-out",
        offline.join("root.key").to_str().unwrap(),
    ]);
    let foreign_cert = inst.d.path("gw/foreign.pem");
    let foreign_key = inst.d.path("gw/foreign.key");
    inst.d.cli_json(&[
        "ca",
        "issue-gateway-client",
        "--dir",
        other_ca.to_str().unwrap(),
        "--name",
        "gw-foreign",
        "--cert-out",
        foreign_cert.to_str().unwrap(),
        "--key-out",
        foreign_key.to_str().unwrap(),
    ]);
    let foreign = GatewayProc::start_to(
        &inst,
        "gw-foreign",
        &hkmsd(&foreign_cert, &foreign_key),
        false,
        "",
    );
    let (status, _) = gateway_encrypt(&foreign, &inst, &ck, &key);
    assert_eq!(status, 503, "{}", foreign.log_text());
    wait_for_log(
        &inst,
        "is neither a registered ClientKey nor a gateway certificate",
    );

    // The endpoint (server) certificate of the instance CA is no relay credential.
    let server_files = TlsClientFiles {
        ca: inst.bundle.clone(),
        cert: inst.cert.clone(),
        key: inst.key.clone(),
    };
    let mut server_cert = Client::connect_tls(&endpoint(port), &server_files).unwrap();
    let refused = server_cert
        .application
        .call(ApplicationCallRequest::default())
        .await
        .map(|_| Vec::new());
    assert_refused_connection(refused, "server certificate as a gateway");
}
