//! What reaches hkmsd through a gateway, end to end (a real hkmsd on SoftHSM2 tokens, real
//! gateways on loopback ports): which endpoint a policy serves, which operation names the
//! instance API knows, and that a gateway's identity only ever relays.

mod common;
#[path = "support/gateway.rs"]
mod support;

use common::GATEWAY_UID;
use hkms::instance_api as api;
use hkms::proto::*;
use prost::Message;
use std::process::Command;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

/// One signed Encrypt of `key` through the gateway on `port`.
fn encrypt(inst: &Instance, port: u16, ck: &ClientKeyFiles, key: &str) -> support::Answer {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut conn = connect(port, &inst.bundle);
    post(&mut conn, "/", &ck.signed("Encrypt", &body), &body)
}

#[test]
fn a_policy_without_network_rules_serves_the_private_endpoint_only() {
    let inst = Instance::new();
    let key = inst.create_key();
    inst.d.cli_json(&["instance", "internet", "enable"]);
    let ck = inst.app("open-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");

    let a = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(a.status, 200, "private endpoint: {:?}", a.failure());
    let a = encrypt(&inst, gw.internet_port, &ck, &key);
    assert_eq!(
        a.failure(),
        (403, "Forbidden.NoPermission".into()),
        "Internet endpoint without a Public rule"
    );
    let log = inst.d.log_text();
    assert!(
        log.contains(
            "policy open-app-policy names no network rule, so it serves the private endpoint only"
        ),
        "{log}"
    );

    // Naming a Public rule opens the Internet endpoint (and, as the only rule, closes the
    // private one).
    inst.d.cli_json(&[
        "network-rule",
        "create",
        "--name",
        "wan",
        "--network-type",
        "Public",
        "--source-ips",
        "127.0.0.0/8,::1",
    ]);
    inst.d.cli_json(&[
        "policy",
        "update",
        "open-app-policy",
        "--network-rules",
        "wan",
    ]);
    let a = encrypt(&inst, gw.internet_port, &ck, &key);
    assert_eq!(a.status, 200, "Internet endpoint: {:?}", a.failure());
    let a = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(a.failure(), (403, "Forbidden.NoPermission".into()));
}

#[test]
fn operations_the_instance_api_does_not_define_answer_invalid_api_name() {
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("names-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let body = api::GenerateDataKeyRequest {
        key_id: key.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut conn = connect(gw.port, &inst.bundle);
    // Operations of hkmsd's gRPC API that the instance API does not define.
    for name in ["GenerateDataKeyWithoutPlaintext", "ReEncrypt"] {
        let a = post(&mut conn, "/", &ck.signed(name, &body), &body);
        assert_eq!(a.failure(), (400, "InvalidApiName".into()), "{name}");
        let e = api::Error::decode(a.body.as_slice()).unwrap();
        assert_eq!(
            e.error_message,
            format!("The ApiName \"{name}\" is invalid.")
        );
    }
    // An operation the instance API defines, served: this AAP is granted keys, not secrets.
    let a = post(&mut conn, "/", &ck.signed("GetSecretValue", &body), &body);
    assert_eq!(a.failure(), (403, "Forbidden.NoPermission".into()));
    // A defined and served operation on the same connection.
    let a = post(&mut conn, "/", &ck.signed("GenerateDataKey", &body), &body);
    assert_eq!(a.status, 200, "{:?}", a.failure());
}

#[test]
fn hkmsd_refuses_a_uid_listed_as_operator_and_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hkmsd.toml");
    let base = format!(
        "[listen]\nsocket = {:?}\n[store]\npath = {:?}\n\
         [[member]]\nname = \"hsm-0\"\nmodule = {:?}\ntoken_label = \"m0\"\npin_file = {:?}\n",
        dir.path().join("hkmsd.sock"),
        dir.path().join("store"),
        common::SOFTHSM_MODULE,
        dir.path().join("pin"),
    );
    // Explicitly, and through operator_uids' default of [0].
    for (access, uids) in [
        ("operator_uids = [0, 1000]\ngateway_uids = [1000]", "1000"),
        ("gateway_uids = [0]", "0"),
    ] {
        std::fs::write(&config, format!("[access]\n{access}\n{base}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hkmsd"))
            .arg("--config")
            .arg(&config)
            .arg("--allow-root")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(78),
            "EX_CONFIG for {access:?}: {err}"
        );
        assert!(
            err.contains(&format!(
                "uid {uids} is listed both in operator_uids and in gateway_uids"
            )),
            "{err}"
        );
        assert!(err.contains("[OperatorIsGateway]"), "stable code: {err}");
        assert!(err.contains("run_as"), "the message names the fix: {err}");
        assert!(
            !dir.path().join("store").exists(),
            "refused before opening the store"
        );
    }
}

/// The stable code of a set of administrative calls and one direct cryptographic call,
/// made by `c`.
async fn codes(c: &mut hkms::client::Client) -> Vec<(&'static str, String)> {
    let code = |r: Result<(), tonic::Status>| match r {
        Ok(()) => "OK".to_owned(),
        Err(s) => common::code(s),
    };
    vec![
        (
            "CreateKey",
            code(
                c.keys
                    .create_key(CreateKeyRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListKeys",
            code(c.keys.list_keys(ListKeysRequest::default()).await.map(drop)),
        ),
        (
            "GetStatus",
            code(
                c.admin
                    .get_status(GetStatusRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "CreatePolicy",
            code(
                c.access
                    .create_policy(CreatePolicyRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "SetInternetAccess",
            code(
                c.access
                    .set_internet_access(SetInternetAccessRequest { enabled: true })
                    .await
                    .map(drop),
            ),
        ),
        (
            "SetInternetSecretAccess",
            code(
                c.access
                    .set_internet_secret_access(SetInternetSecretAccessRequest { enabled: false })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GenerateRandom",
            code(
                c.crypto
                    .generate_random(GenerateRandomRequest::default())
                    .await
                    .map(drop),
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_is_never_an_operator() {
    let mut inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("root-app", "key/*", None);
    // The test gateway's uid: every administrative (and direct cryptographic) call refused.
    let mut gateway = inst.d.client_as(GATEWAY_UID).await;
    for (call, code) in codes(&mut gateway).await {
        assert_eq!(code, "Forbidden", "{call} from the gateway uid");
    }

    // Root as the gateway, with root's group among the operators' groups: uid 0 is a
    // gateway and nothing else. A gateway started as root relays...
    inst.d
        .set_access("operator_uids = []\noperator_gids = [0]\ngateway_uids = [0]");
    let gw = GatewayProc::start_as_root(&inst, "root-gw");
    let a = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    // ...and uid 0 administers nothing.
    let mut root = inst.d.client().await;
    for (call, code) in codes(&mut root).await {
        assert_eq!(code, "Forbidden", "{call} from root listed as gateway");
    }
    assert_eq!(inst.d.cli_error(&["status"]), "Forbidden");
    assert_eq!(inst.d.cli_error(&["key", "create"]), "Forbidden");
    drop(gw);
}
