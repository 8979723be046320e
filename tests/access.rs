//! Access control end to end: operators by peer credentials, the access-management CLI,
//! and signed application requests relayed through the application service, on a real
//! hkmsd with SoftHSM2 tokens.

mod common;

use common::{Daemon, GATEWAY_UID};
use hkms::access::clientkey;
use hkms::front::instance::auth::{http_date, sign_request};
use hkms::instance_api as api;
use hkms::proto::*;
use openssl::pkey::{PKey, Private};
use prost::Message;
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn create_key(d: &Daemon) -> String {
    s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]).to_owned()
}

/// A ClientKey made by `hkms client-key create`, loaded back from its files.
struct AppKey {
    id: String,
    key: PKey<Private>,
}

fn client_key(d: &Daemon, aap: &str) -> AppKey {
    let dir = d.path(&format!("keys-{aap}"));
    let out = d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        aap,
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    let ck = &out["ClientKey"];
    let id = s(&ck["ClientKeyId"]).to_owned();
    let json = std::fs::read_to_string(s(&ck["ClientKeyFile"])).unwrap();
    let password = std::fs::read_to_string(s(&ck["PasswordFile"])).unwrap();
    let (file_id, key, _cert) = clientkey::load(&json, &password).unwrap();
    assert_eq!(file_id, id);
    AppKey { id, key }
}

struct Relayed {
    status: u32,
    code: String,
    body: Vec<u8>,
}

async fn relay(d: &Daemon, headers: Vec<(String, String)>, body: Vec<u8>, source: &str) -> Relayed {
    relay_on(d, "instance", headers, body, source).await
}

/// Relays a request as the test gateway (uid [`GATEWAY_UID`]) does that received it on
/// `endpoint`.
async fn relay_on(
    d: &Daemon,
    endpoint: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source: &str,
) -> Relayed {
    relay_as(d, GATEWAY_UID, endpoint, headers, body, source).await
}

/// Relays a request from a peer with uid `uid`.
async fn relay_as(
    d: &Daemon,
    uid: u32,
    endpoint: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source: &str,
) -> Relayed {
    let r = d
        .client_as(uid)
        .await
        .application
        .call(ApplicationCallRequest {
            endpoint: endpoint.into(),
            method: "POST".into(),
            path: "/".into(),
            headers: headers
                .into_iter()
                .map(|(name, value)| HttpHeader { name, value })
                .collect(),
            body,
            source_address: source.into(),
        })
        .await
        .unwrap()
        .into_inner();
    if r.http_status != 200 {
        let e = api::Error::decode(r.body.as_slice()).expect("error bodies are protobuf Error");
        assert_eq!(e.error_code, r.error_code);
        assert_eq!(e.status_code as u32, r.http_status);
        assert!(!e.request_id.is_empty());
    }
    Relayed {
        status: r.http_status,
        code: r.error_code,
        body: r.body,
    }
}

fn now() -> i64 {
    clientkey::now_unix()
}

fn signed(k: &AppKey, api_name: &str, body: &[u8], date_offset: i64) -> Vec<(String, String)> {
    sign_request(
        &k.key,
        &k.id,
        api_name,
        body,
        &http_date(now() + date_offset),
    )
    .unwrap()
}

async fn call(d: &Daemon, k: &AppKey, api_name: &str, body: Vec<u8>, source: &str) -> Relayed {
    relay(d, signed(k, api_name, &body, 0), body, source).await
}

fn encrypt_body(key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    api::EncryptRequest {
        key_id: key_id.into(),
        plaintext: plaintext.to_vec(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn only_configured_peers_may_use_the_socket_and_gateways_may_not_administer() {
    let mut d = Daemon::initialised(1);
    let owner = d
        .client()
        .await
        .access
        .get_instance_owner(GetInstanceOwnerRequest {})
        .await
        .unwrap()
        .into_inner()
        .owner
        .unwrap();
    assert_eq!(
        owner.uid, 0,
        "hkms init recorded who initialised the instance"
    );

    // Root is neither an operator nor a gateway: everything is refused.
    d.set_access("operator_uids = [4242]\ngateway_uids = [4343]");
    assert_eq!(d.cli_error(&["status"]), "Forbidden");
    assert_eq!(d.cli_error(&["key", "list"]), "Forbidden");
    assert_eq!(d.cli_error(&["aap", "list"]), "Forbidden");
    assert!(d.log_text().contains("refused a local peer"));

    // Root as a gateway only: may relay, may not administer or use crypto directly.
    d.set_access("operator_uids = [4242]\ngateway_uids = [0]");
    assert_eq!(d.cli_error(&["status"]), "Forbidden");
    assert_eq!(d.cli_error(&["key", "create"]), "Forbidden");
    assert_eq!(d.cli_error(&["generate-random"]), "Forbidden");
    assert_eq!(d.cli_error(&["network-rule", "list"]), "Forbidden");
    let r = relay_as(&d, 0, "instance", vec![], vec![], "10.0.0.1").await;
    assert_eq!((r.status, r.code.as_str()), (400, "InvalidApiVersion"));
    // Over a relay stream, each request is answered on its own and in order; a malformed
    // relay message ends the stream with its error.
    let request = |headers: &[(&str, &str)], endpoint: &str| ApplicationCallRequest {
        endpoint: endpoint.into(),
        method: "POST".into(),
        path: "/".into(),
        headers: headers
            .iter()
            .map(|(n, v)| HttpHeader {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        body: vec![],
        source_address: "10.0.0.1".into(),
    };
    let mut answers = d
        .client_as(0)
        .await
        .application
        .relay(tokio_stream::iter(vec![
            request(&[], "instance"),
            request(&[("x-kms-apiversion", "dkms-gcs-0.2")], "instance"),
            request(&[], "instance"),
            request(&[], "elsewhere"),
            request(&[], "instance"),
        ]))
        .await
        .unwrap()
        .into_inner();
    let mut codes = Vec::new();
    let end = loop {
        match answers.message().await {
            Ok(Some(a)) => codes.push(a.error_code),
            Ok(None) => break None,
            Err(s) => break Some(common::code(s)),
        }
    };
    assert_eq!(
        codes,
        ["InvalidApiVersion", "InvalidApiName", "InvalidApiVersion"]
    );
    assert_eq!(end.as_deref(), Some("InvalidParameter"));

    // Root by group only is an operator too.
    d.set_access("operator_uids = []\noperator_gids = [0]");
    d.cli_json(&["status"]);
    // An operator that is not a gateway may not relay.
    let err = d
        .client()
        .await
        .application
        .call(ApplicationCallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(common::code(err), "Forbidden");
    let err = d
        .client()
        .await
        .application
        .relay(tokio_stream::iter(vec![ApplicationCallRequest::default()]))
        .await
        .unwrap_err();
    assert_eq!(common::code(err), "Forbidden");
}

#[tokio::test]
async fn cli_manages_rules_policies_aaps_and_client_keys() {
    let d = Daemon::initialised(1);
    let key = create_key(&d);

    let r = d.cli_json(&[
        "network-rule",
        "create",
        "--name",
        "office",
        "--network-type",
        "Private",
        "--source-ips",
        "10.0.0.0/8,fd00::/8",
        "--description",
        "office networks",
    ]);
    assert_eq!(r["NetworkRule"]["SourcePrivateIp"][1], "fd00::/8");
    assert_eq!(
        d.cli_error(&[
            "network-rule",
            "create",
            "--name",
            "office",
            "--source-ips",
            "10.0.0.1"
        ]),
        "ResourceExists"
    );
    assert_eq!(
        d.cli_error(&[
            "network-rule",
            "create",
            "--name",
            "bad",
            "--source-ips",
            "10.0.0.1/8"
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "network-rule",
            "create",
            "--name",
            "bad",
            "--network-type",
            "Internet",
            "--source-ips",
            "10.0.0.1"
        ]),
        "InvalidParameter"
    );
    let r = d.cli_json(&[
        "network-rule",
        "update",
        "office",
        "--source-ips",
        "10.0.0.0/8,192.168.0.0/16",
    ]);
    assert_eq!(r["NetworkRule"]["SourcePrivateIp"][1], "192.168.0.0/16");
    assert_eq!(r["NetworkRule"]["Description"], "office networks");
    assert_eq!(
        d.cli_json(&["network-rule", "list"])["NetworkRules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let key_resource = format!("key/{key}");
    let p = d.cli_json(&[
        "policy",
        "create",
        "--name",
        "k",
        "--role",
        "CryptoServiceKeyUser",
        "--resources",
        &key_resource,
        "--network-rules",
        "office",
    ]);
    assert_eq!(p["Policy"]["RbacRole"], "CryptoServiceKeyUser");
    assert_eq!(
        p["Policy"]["AccessControlRules"]["NetworkRules"][0],
        "office"
    );
    assert_eq!(
        d.cli_error(&[
            "policy",
            "create",
            "--name",
            "x",
            "--role",
            "Admin",
            "--resources",
            "key/*"
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "policy",
            "create",
            "--name",
            "x",
            "--role",
            "SecretUser",
            "--resources",
            "keys/*"
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "policy",
            "create",
            "--name",
            "x",
            "--role",
            "SecretUser",
            "--resources",
            "secret/*",
            "--network-rules",
            "nowhere"
        ]),
        "ResourceNotFound"
    );
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "s",
        "--role",
        "CryptoServiceSecretUser",
        "--resources",
        "secret/rds-ibm*",
    ]);
    assert_eq!(
        d.cli_error(&["network-rule", "delete", "office"]),
        "ResourceInUse"
    );

    let a = d.cli_json(&["aap", "create", "--name", "billing", "--policies", "k,s"]);
    assert_eq!(
        a["ApplicationAccessPoint"]["AuthenticationMethod"],
        "ClientKey"
    );
    for n in ["t1", "t2"] {
        d.cli_json(&[
            "policy",
            "create",
            "--name",
            n,
            "--role",
            "SecretUser",
            "--resources",
            "secret/*",
        ]);
    }
    assert_eq!(
        d.cli_error(&["aap", "create", "--name", "big", "--policies", "k,s,t1,t2"]),
        "InvalidParameter"
    );
    assert_eq!(d.cli_error(&["policy", "delete", "k"]), "ResourceInUse");

    // A ClientKey: two files, mode 0600, loadable with the password; hkmsd has only the cert.
    let dir = d.path("out");
    let pw = d.path("pw");
    std::fs::write(&pw, "weakpassword\n").unwrap();
    assert_eq!(
        d.cli_error(&[
            "client-key",
            "create",
            "--aap",
            "billing",
            "--output-dir",
            dir.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap()
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "client-key",
            "create",
            "--aap",
            "billing",
            "--output-dir",
            dir.to_str().unwrap(),
            "--validity-days",
            "1900"
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "client-key",
            "create",
            "--aap",
            "nobody",
            "--output-dir",
            dir.to_str().unwrap()
        ]),
        "ResourceNotFound"
    );
    std::fs::write(&pw, "Str0ng-pass\n").unwrap();
    let ck = d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        "billing",
        "--output-dir",
        dir.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--validity-days",
        "20",
    ])["ClientKey"]
        .clone();
    let id = s(&ck["ClientKeyId"]).to_owned();
    assert!(clientkey::is_id(&id), "{id}");
    let json_path = dir.join(format!("clientKey_{id}.json"));
    let pw_path = dir.join(format!("clientKey_{id}_Password.txt"));
    assert_eq!(s(&ck["ClientKeyFile"]), json_path.to_str().unwrap());
    use std::os::unix::fs::PermissionsExt;
    for p in [&json_path, &pw_path] {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(std::fs::read_to_string(&pw_path).unwrap(), "Str0ng-pass");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(file["KeyId"], id.as_str());
    clientkey::load(&std::fs::read_to_string(&json_path).unwrap(), "Str0ng-pass").unwrap();
    assert_eq!(ck["State"], "ExpiringSoon");
    // 20 days from now: 20 whole days left, 19 once a second has passed.
    let days_left = |v: &Value| v.as_i64().unwrap();
    assert!((19..=20).contains(&days_left(&ck["DaysLeft"])), "{ck}");

    // Expiry shows in `aap list` (days left), `client-key list`, `status` and the log.
    let list = d.cli_json(&["aap", "list"]);
    let billing = &list["ApplicationAccessPoints"][0];
    assert_eq!(billing["Name"], "billing");
    assert_eq!(billing["ClientKeyCount"], 1);
    assert!(
        (19..=20).contains(&days_left(&billing["DaysLeft"])),
        "{billing}"
    );
    let text = String::from_utf8(d.cli(&["aap", "list"]).stdout).unwrap();
    assert!(
        text.contains("DAYS LEFT") && text.contains("change its ClientKey soon"),
        "{text}"
    );
    let keys = d.cli_json(&["client-key", "list", "--aap", "billing"]);
    assert_eq!(keys["ClientKeys"][0]["ClientKeyId"], id.as_str());
    let status = d.cli_json(&["status"]);
    assert!(s(&status["Warnings"][0]).contains(&id), "{status}");
    assert!(d.log_text().contains("ClientKey needs changing"));
    let described = d.cli_json(&["aap", "describe", "billing"]);
    assert_eq!(described["ClientKeys"][0]["ClientKeyId"], id.as_str());

    // In-use records cannot be deleted; removing them in order works.
    assert_eq!(d.cli_error(&["aap", "delete", "billing"]), "ResourceInUse");
    d.cli_json(&["client-key", "delete", &id]);
    assert_eq!(
        d.cli_error(&["client-key", "delete", &id]),
        "ResourceNotFound"
    );
    let a = d.cli_json(&["aap", "update", "billing", "--policies", "s"]);
    assert_eq!(
        a["ApplicationAccessPoint"]["Policies"],
        serde_json::json!(["s"])
    );
    d.cli_json(&["policy", "update", "k", "--clear-network-rules"]);
    d.cli_json(&["network-rule", "delete", "office"]);
    d.cli_json(&["policy", "delete", "k"]);
    d.cli_json(&["aap", "delete", "billing"]);
    assert_eq!(
        d.cli_error(&["aap", "describe", "billing"]),
        "ResourceNotFound"
    );
}

#[tokio::test]
async fn signed_requests_are_authenticated_then_authorised() {
    let d = Daemon::initialised(1);
    let k1 = create_key(&d);
    let k2 = create_key(&d);
    d.cli_json(&[
        "network-rule",
        "create",
        "--name",
        "office",
        "--source-ips",
        "10.0.0.0/8,fd00::/8",
    ]);
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "k1-office",
        "--role",
        "CryptoServiceKeyUser",
        "--resources",
        &format!("key/{k1}"),
        "--network-rules",
        "office",
    ]);
    d.cli_json(&["aap", "create", "--name", "app", "--policies", "k1-office"]);
    let app = client_key(&d, "app");

    // Allowed: Encrypt, Decrypt, GenerateDataKey, GenerateRandom with k1 from the office.
    let r = call(&d, &app, "Encrypt", encrypt_body(&k1, b"hello"), "10.1.2.3").await;
    assert_eq!(r.status, 200, "{}", r.code);
    let enc = api::EncryptResponse::decode(r.body.as_slice()).unwrap();
    assert_eq!(enc.key_id, k1);
    assert!(!enc.request_id.is_empty());
    let body = api::DecryptRequest {
        ciphertext_blob: enc.ciphertext_blob.clone(),
        key_id: k1.clone(),
        iv: enc.iv.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let r = call(&d, &app, "Decrypt", body, "fd00::9").await;
    assert_eq!(r.status, 200, "{}", r.code);
    assert_eq!(
        api::DecryptResponse::decode(r.body.as_slice())
            .unwrap()
            .plaintext,
        b"hello"
    );
    let body = api::GenerateDataKeyRequest {
        key_id: k1.clone(),
        number_of_bytes: 16,
        ..Default::default()
    }
    .encode_to_vec();
    let r = call(&d, &app, "GenerateDataKey", body, "::ffff:10.0.0.1").await;
    assert_eq!(r.status, 200, "{}", r.code);
    let dk = api::GenerateDataKeyResponse::decode(r.body.as_slice()).unwrap();
    assert_eq!(dk.plaintext.len(), 16);
    let body = api::GenerateRandomRequest { length: 24 }.encode_to_vec();
    let r = call(&d, &app, "GenerateRandom", body, "10.0.0.1").await;
    assert_eq!(
        api::GenerateRandomResponse::decode(r.body.as_slice())
            .unwrap()
            .random
            .len(),
        24
    );

    // Denied: another key, another network, a ciphertext of another key. The caller learns
    // only that it is forbidden; the log names the missing grant.
    let r = call(&d, &app, "Encrypt", encrypt_body(&k2, b"x"), "10.1.2.3").await;
    assert_eq!((r.status, r.code.as_str()), (403, "Forbidden.NoPermission"));
    let e = api::Error::decode(r.body.as_slice()).unwrap();
    assert_eq!(
        e.error_message,
        "This operation is forbidden by permission system."
    );
    assert!(!e.error_message.contains(&k2));
    let r = call(&d, &app, "Encrypt", encrypt_body(&k1, b"x"), "192.0.2.7").await;
    assert_eq!((r.status, r.code.as_str()), (403, "Forbidden.NoPermission"));
    let log = d.log_text();
    assert!(
        log.contains(&format!("CryptoServiceKeyUser on key/{k2} from 10.1.2.3")),
        "{log}"
    );
    assert!(
        log.contains("policy k1-office allows only network rules [office]"),
        "{log}"
    );
    let mut c = d.client().await;
    let other_blob = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: k2.clone(),
            plaintext: b"x".to_vec(),
            aad: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext_blob;
    let body = api::DecryptRequest {
        ciphertext_blob: other_blob,
        ..Default::default()
    }
    .encode_to_vec();
    let r = call(&d, &app, "Decrypt", body, "10.0.0.1").await;
    assert_eq!(r.code, "Forbidden.NoPermission");
    // GetSecretValue without a SecretName.
    let r = call(&d, &app, "GetSecretValue", vec![], "10.0.0.1").await;
    assert_eq!((r.status, r.code.as_str()), (400, "InvalidParameter"));
    let r = call(
        &d,
        &app,
        "Encrypt",
        encrypt_body("not-a-key", b"x"),
        "10.0.0.1",
    )
    .await;
    assert_eq!(
        r.code, "Forbidden.NoPermission",
        "unknown keys are not granted either"
    );

    // Tampering is refused with the protocol's codes.
    let body = encrypt_body(&k1, b"hello");
    let r = relay(
        &d,
        signed(&app, "Encrypt", &body, 16 * 60),
        body.clone(),
        "10.0.0.1",
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (400, "RequestTimeTooSkewed"));
    let r = relay(
        &d,
        signed(&app, "Encrypt", &body, -16 * 60),
        body.clone(),
        "10.0.0.1",
    )
    .await;
    assert_eq!(r.code, "RequestTimeTooSkewed");
    let r = relay(
        &d,
        signed(&app, "Encrypt", &body, 0),
        encrypt_body(&k1, b"HELLO"),
        "10.0.0.1",
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (400, "InvalidParam"));
    let mut h = signed(&app, "Encrypt", &body, 0);
    h.iter_mut().find(|(n, _)| n == "x-kms-apiname").unwrap().1 = "GenerateRandom".into();
    let r = relay(&d, h, body.clone(), "10.0.0.1").await;
    assert_eq!((r.status, r.code.as_str()), (401, "SignatureNotMatch"));

    // Signed with another ClientKey's private key under this id.
    let other = client_key(&d, "app");
    let h = sign_request(&other.key, &app.id, "Encrypt", &body, &http_date(now())).unwrap();
    assert_eq!(
        relay(&d, h, body.clone(), "10.0.0.1").await.code,
        "SignatureNotMatch"
    );
    assert_eq!(
        call(&d, &other, "Encrypt", body.clone(), "10.0.0.1")
            .await
            .status,
        200
    );

    // A deleted ClientKey is unknown.
    d.cli_json(&["client-key", "delete", &app.id]);
    let r = call(&d, &app, "Encrypt", body.clone(), "10.0.0.1").await;
    assert_eq!((r.status, r.code.as_str()), (404, "Unauthorized"));

    // A ClientKey that is not valid yet is refused (after its signature verified).
    let start = now() + 3 * 86_400;
    let pair = clientkey::KeyPair::generate("later", start, start + 86_400).unwrap();
    let later = c
        .access
        .create_client_key(CreateClientKeyRequest {
            aap_name: "app".into(),
            certificate: pair.certificate_der().unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .client_key
        .unwrap();
    assert_eq!(later.state, "NotYetValid");
    let p12 = pair.pkcs12("Later-123").unwrap();
    let p = openssl::pkcs12::Pkcs12::from_der(&p12)
        .unwrap()
        .parse2("Later-123")
        .unwrap();
    let later_key = AppKey {
        id: later.client_key_id,
        key: p.pkey.unwrap(),
    };
    let r = call(&d, &later_key, "Encrypt", body.clone(), "10.0.0.1").await;
    assert_eq!((r.status, r.code.as_str()), (401, "ClientKeyNotYetValid"));

    // Removing the AAP's policy takes the grant away at once.
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "secrets",
        "--role",
        "CryptoServiceSecretUser",
        "--resources",
        "secret/*",
    ]);
    d.cli_json(&["aap", "update", "app", "--policies", "secrets"]);
    let r = call(&d, &other, "Encrypt", body, "10.0.0.1").await;
    assert_eq!(r.code, "Forbidden.NoPermission");
}

#[tokio::test]
async fn network_rule_types_decide_which_endpoint_they_admit() {
    let d = Daemon::initialised(1);
    let key = create_key(&d);
    d.cli_json(&["instance", "internet", "enable"]);
    // Rules of each type over the same addresses; `both` names a Private and a Public rule.
    for (rule, network_type) in [("lan", "Private"), ("vpc", "VPC"), ("wan", "Public")] {
        d.cli_json(&[
            "network-rule",
            "create",
            "--name",
            rule,
            "--network-type",
            network_type,
            "--source-ips",
            "198.51.100.0/24",
        ]);
    }
    let described = d.cli_json(&["network-rule", "describe", "wan"]);
    assert_eq!(
        described["NetworkRule"]["NetworkType"], "Public",
        "{described}"
    );
    for (aap, rules) in [
        ("lan-app", "lan"),
        ("vpc-app", "vpc"),
        ("wan-app", "wan"),
        ("both-app", "lan,wan"),
    ] {
        d.cli_json(&[
            "policy",
            "create",
            "--name",
            aap,
            "--role",
            "CryptoServiceKeyUser",
            "--resources",
            "key/*",
            "--network-rules",
            rules,
        ]);
        d.cli_json(&["aap", "create", "--name", aap, "--policies", aap]);
    }
    let body = encrypt_body(&key, b"x");
    for (aap, private_ok, internet_ok) in [
        ("lan-app", true, false),
        ("vpc-app", true, false),
        ("wan-app", false, true),
        ("both-app", true, true),
    ] {
        let k = client_key(&d, aap);
        for (endpoint, want) in [("private", private_ok), ("internet", internet_ok)] {
            let h = signed(&k, "Encrypt", &body, 0);
            let r = relay_on(&d, endpoint, h, body.clone(), "198.51.100.7").await;
            let got = (r.status, r.code.as_str());
            if want {
                assert_eq!(got, (200, ""), "{aap} over {endpoint}");
            } else {
                assert_eq!(
                    got,
                    (403, "Forbidden.NoPermission"),
                    "{aap} over {endpoint}"
                );
            }
            // The addresses still count on the rule's own endpoint.
            let h = signed(&k, "Encrypt", &body, 0);
            let r = relay_on(&d, endpoint, h, body.clone(), "203.0.113.7").await;
            assert_eq!(r.code, "Forbidden.NoPermission", "{aap} over {endpoint}");
        }
    }
    let log = d.log_text();
    assert!(
        log.contains("from 198.51.100.7 over the internet endpoint"),
        "{log}"
    );
    assert!(
        log.contains(
            "policy vpc-app has no network rule for the internet endpoint among [vpc (VPC)]"
        ),
        "{log}"
    );
}
