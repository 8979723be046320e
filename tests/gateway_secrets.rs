//! GetSecretValue through hkms-gateway, end to end: a real hkmsd on SoftHSM2 tokens, secrets
//! created over gRPC by the operator, the gateway on loopback ports, and the official Python
//! SDK and Alibaba's Secrets Manager Client for Python reading them over HTTPS. Text and
//! binary values, stages and version ids, extended configuration, the refusals (unknown
//! secret, version or stage, pending deletion, disabled CMK, no grant), and the Internet
//! endpoint's switches and network rules.

mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "sdk/venv.rs"]
mod venv;

use hkms::instance_api as api;
use hkms::proto::{DeleteSecretRequest, PutSecretValueRequest, RestoreSecretRequest};
use prost::Message;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::{connect, post, run_sdk, ClientKeyFiles, GatewayProc, Instance};

const SECRET_USER: &str = "CryptoServiceSecretUser";
const LOOPBACK: &str = "127.0.0.0/8,::1";
/// The bytes of the binary secret: not UTF-8, with a NUL.
const BLOB: &[u8] = &[0x00, 0xff, 0xfe, 0x10, 0x80, 0x7f, 0xc3, 0x28];

/// Puts a new value (ACSCurrent) of text secret `name` as the operator; returns its version.
fn put_value(inst: &Instance, name: &str, data: &str, version_id: &str) -> String {
    let req = PutSecretValueRequest {
        secret_name: name.into(),
        secret_data: data.as_bytes().to_vec(),
        secret_data_type: "text".into(),
        version_id: version_id.into(),
        ..Default::default()
    };
    inst.grpc(async |c| c.secrets.put_secret_value(req).await)
        .unwrap()
        .into_inner()
        .version_id
}

/// The SDK's GetSecretValue for each of `reads` (see `secrets` in gateway_client.py).
fn sdk_reads(
    python: &std::path::Path,
    inst: &Instance,
    endpoint: &str,
    ck: &ClientKeyFiles,
    reads: Value,
) -> Vec<Value> {
    let v = run_sdk(
        python,
        inst,
        endpoint,
        ck,
        "secrets",
        &["--reads", &reads.to_string()],
    );
    v["reads"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .clone()
}

/// (HTTP status, error code) of a failed SDK read.
fn refusal(r: &Value) -> (u64, String) {
    assert_eq!(r["ok"], false, "{r}");
    (
        r["error"]["http"].as_u64().unwrap_or(0),
        r["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// One signed GetSecretValue of `name` through the gateway on `port`.
fn raw_read(inst: &Instance, port: u16, ck: &ClientKeyFiles, name: &str) -> support::Answer {
    let body = api::GetSecretValueRequest {
        secret_name: name.into(),
        ..Default::default()
    }
    .encode_to_vec();
    post(
        &mut connect(port, &inst.bundle),
        "/",
        &ck.signed("GetSecretValue", &body),
        &body,
    )
}

#[test]
fn the_sdk_reads_text_and_binary_secrets_by_stage_and_version() {
    let Some(python) = venv::sdk_python() else {
        return;
    };
    let inst = Instance::new();
    let key = inst.create_key();
    let config = r#"{"DBHost":"db.internal","DBPort":5432}"#;
    let v1 = inst.create_secret(
        "db-password",
        "first pässword".as_bytes(),
        "text",
        &key,
        config,
    );
    let blob_version = inst.create_secret("tls-blob", BLOB, "binary", &key, "");
    let v2 = put_value(&inst, "db-password", "second pässword", "v2");
    assert_eq!(v2, "v2");
    inst.create_secret("other-secret", b"not granted", "text", &key, "");
    let ck = inst.app_as(
        "secret-app",
        SECRET_USER,
        "secret/db-*,secret/tls-*",
        Some((LOOPBACK, "Private")),
    );
    let keys_only = inst.app("keys-app", "key/*", Some(LOOPBACK));
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let ep = gw.endpoint();

    let r = sdk_reads(
        &python,
        &inst,
        &ep,
        &ck,
        json!([
            {"name": "db-password"},
            {"name": "db-password", "stage": "ACSPrevious"},
            {"name": "db-password", "version": v1},
            {"name": "db-password", "version": "v2", "stage": "ACSCurrent"},
            {"name": "db-password", "fetch_extended_config": false},
            {"name": "tls-blob"},
            {"name": "db-password", "version": v1, "stage": "ACSCurrent"},
            {"name": "db-password", "stage": "NoSuchStage"},
            {"name": "db-password", "version": "v9"},
            {"name": "db-missing"},
            {"name": "other-secret"},
        ]),
    );
    // ACSCurrent: the value put last, with everything the instance API answers.
    let cur = &r[0];
    assert_eq!(cur["ok"], true, "{cur}\n{}", inst.d.log_text());
    assert_eq!(cur["secret_name"], "db-password");
    assert_eq!(cur["secret_type"], "Generic");
    assert_eq!(cur["secret_data"], "second pässword");
    assert_eq!(cur["secret_data_type"], "text");
    assert_eq!(cur["version_id"], "v2");
    assert_eq!(cur["version_stages"], json!(["ACSCurrent"]));
    assert_eq!(cur["extended_config"], config, "{cur}");
    assert_eq!(cur["automatic_rotation"], "Disabled");
    assert_eq!(cur["next_rotation_date"], "");
    assert!(cur["create_time"].as_str().unwrap().ends_with('Z'), "{cur}");
    assert!(!cur["request_id"].as_str().unwrap().is_empty());
    // By stage and by version id: the first value, now ACSPrevious.
    for prev in [&r[1], &r[2]] {
        assert_eq!(prev["secret_data"], "first pässword", "{prev}");
        assert_eq!(prev["version_id"], v1.as_str());
        assert_eq!(prev["version_stages"], json!(["ACSPrevious"]));
        assert_eq!(prev["extended_config"], config);
    }
    assert_eq!(r[3]["secret_data"], "second pässword", "{}", r[3]);
    // FetchExtendedConfig cannot be sent false by the SDK; the configuration comes anyway.
    assert_eq!(r[4]["extended_config"], config, "{}", r[4]);
    // A binary value is Base64 text in SecretData.
    let blob = &r[5];
    assert_eq!(blob["secret_data_type"], "binary", "{blob}");
    assert_eq!(blob["binary_hex"], hex(BLOB), "{blob}");
    assert_eq!(blob["version_id"], blob_version.as_str());
    assert_eq!(blob["extended_config"], "");
    // A version or stage the secret lacks is a parameter error; an unknown secret is not
    // found; a secret outside the AAP's grant is forbidden, whether it exists or not.
    for bad in &r[6..9] {
        assert_eq!(refusal(bad), (400, "InvalidParameter".into()), "{bad}");
    }
    assert!(r[6]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not in stage ACSCurrent"));
    assert!(r[7]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("NoSuchStage"));
    assert_eq!(refusal(&r[9]), (404, "Forbidden.ResourceNotFound".into()));
    assert_eq!(refusal(&r[10]), (403, "Forbidden.NoPermission".into()));

    // An AAP whose policies grant keys only reads no secret, and learns nothing of them.
    let r = sdk_reads(
        &python,
        &inst,
        &ep,
        &keys_only,
        json!([{"name": "db-password"}, {"name": "db-missing"}]),
    );
    for denied in &r {
        assert_eq!(
            refusal(denied),
            (403, "Forbidden.NoPermission".into()),
            "{denied}"
        );
    }

    // A secret scheduled for deletion is not read until it is restored.
    let del = DeleteSecretRequest {
        secret_name: "db-password".into(),
        recovery_window_in_days: 7,
        ..Default::default()
    };
    inst.grpc(async |c| c.secrets.delete_secret(del).await)
        .unwrap();
    let r = sdk_reads(&python, &inst, &ep, &ck, json!([{"name": "db-password"}]));
    assert_eq!(refusal(&r[0]), (400, "InvalidParameter".into()));
    assert!(
        r[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scheduled for deletion"),
        "{}",
        r[0]
    );
    let restore = RestoreSecretRequest {
        secret_name: "db-password".into(),
    };
    inst.grpc(async |c| c.secrets.restore_secret(restore).await)
        .unwrap();

    // A disabled CMK: the key's own refusal, in the instance API's words.
    inst.d.cli_json(&["key", "disable", &key]);
    let r = sdk_reads(
        &python,
        &inst,
        &ep,
        &ck,
        json!([{"name": "db-password"}, {"name": "tls-blob"}]),
    );
    for off in &r {
        assert_eq!(
            refusal(off),
            (400, "Forbidden.KeyNotEnabled".into()),
            "{off}"
        );
    }
    inst.d.cli_json(&["key", "enable", &key]);
    let r = sdk_reads(&python, &inst, &ep, &ck, json!([{"name": "db-password"}]));
    assert_eq!(r[0]["secret_data"], "second pässword", "{}", r[0]);

    // No value reaches a log.
    for log in [inst.d.log_text(), gw.log_text()] {
        assert!(
            !log.contains("pässword") && !log.contains("AP/+EIB/wyg="),
            "{log}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_secrets_manager_client_reads_caches_and_refreshes() {
    let Some(python) = venv::sdk_python() else {
        return;
    };
    let inst = Instance::new();
    let key = inst.create_key();
    let config = r#"{"SecretSubType":"Generic","CustomData":{"app":"orders"}}"#;
    let v1 = inst.create_secret("orders-db", b"old value", "text", &key, config);
    inst.create_secret("orders-blob", BLOB, "binary", &key, "");
    let ck = inst.app_as(
        "orders-app",
        SECRET_USER,
        "secret/orders-*",
        Some((LOOPBACK, "Private")),
    );
    let gw = GatewayProc::start(&inst, "gw", false, "");

    // From an empty directory: the client would read a secretsmanager.properties there.
    let cwd = inst.d.path("smc-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut child = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/secrets_manager_client.py"
        ))
        .args(["--endpoint", &gw.endpoint()])
        .arg("--ca")
        .arg(&inst.bundle)
        .arg("--client-key-file")
        .arg(&ck.file)
        .arg("--password-file")
        .arg(&ck.password_file)
        .args([
            "--text-secret",
            "orders-db",
            "--binary-secret",
            "orders-blob",
        ])
        .args(["--missing-secret", "orders-none"])
        .current_dir(&cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(inst.d.path("smc.log")).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut phase = |what: &str| -> Value {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "{what}: not JSON: {line:?}\nclient log:\n{}\nhkmsd log:\n{}",
                std::fs::read_to_string(inst.d.path("smc.log")).unwrap_or_default(),
                inst.d.log_text()
            )
        })
    };

    let first = phase("first reads");
    assert_eq!(first["text_value"], "old value", "{first}");
    assert_eq!(first["text"]["version_id"], v1.as_str());
    assert_eq!(first["text"]["secret_data_type"], "text");
    assert_eq!(first["text"]["extended_config"], config);
    assert_eq!(first["binary"]["secret_data_type"], "binary");
    assert_eq!(first["binary_hex"], hex(BLOB), "{first}");
    assert_eq!(
        first["missing"]["code"], "Forbidden.ResourceNotFound",
        "{first}"
    );

    // The operator puts a new value; the client serves its cache until it refreshes.
    let v2 = put_value(&inst, "orders-db", "new value", "");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"put\n").unwrap();
    stdin.flush().unwrap();
    let second = phase("after the put");
    assert_eq!(second["cached"], "old value", "{second}");
    assert_eq!(second["refreshed_ok"], true, "{second}");
    assert_eq!(second["refreshed"]["secret_value"], "new value");
    assert_eq!(second["refreshed"]["version_id"], v2.as_str());
    // A client caching ACSPrevious reads the value the put replaced.
    assert_eq!(second["previous"]["secret_value"], "old value", "{second}");
    assert_eq!(second["previous"]["version_id"], v1.as_str());
    assert!(child.wait().unwrap().success());

    let log = inst.d.log_text();
    assert!(
        !log.contains("old value") && !log.contains("new value"),
        "{log}"
    );
}

#[test]
fn secret_reads_over_the_internet_have_their_own_switch_and_need_a_public_rule() {
    let inst = Instance::new();
    let key = inst.create_key();
    inst.create_secret("api-token", b"t0ken", "text", &key, "");
    let wan = inst.app_as(
        "wan-app",
        SECRET_USER,
        "secret/*",
        Some((LOOPBACK, "Public")),
    );
    let lan = inst.app_as(
        "lan-app",
        SECRET_USER,
        "secret/*",
        Some((LOOPBACK, "Private")),
    );
    let open = inst.app_as("open-app", SECRET_USER, "secret/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let (private, internet) = (gw.port, gw.internet_port);
    let status = inst.d.cli_json(&["instance", "internet", "status"]);
    assert_eq!(
        status,
        json!({"InternetAccess": false, "InternetSecretReads": true})
    );

    // Internet access for cryptography is off, yet a secret read over the Internet is
    // answered, through a Public rule only.
    let a = raw_read(&inst, internet, &wan, "api-token");
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let v = api::GetSecretValueResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(v.secret_data, "t0ken");
    for ck in [&lan, &open] {
        let a = raw_read(&inst, internet, ck, "api-token");
        assert_eq!(a.failure(), (403, "Forbidden.NoPermission".into()));
    }
    // On the private endpoint, the other way round.
    assert_eq!(raw_read(&inst, private, &lan, "api-token").status, 200);
    assert_eq!(raw_read(&inst, private, &open, "api-token").status, 200);
    assert_eq!(
        raw_read(&inst, private, &wan, "api-token").failure(),
        (403, "Forbidden.NoPermission".into())
    );
    // A cryptographic operation over the Internet is refused before authentication.
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let enc = |port| {
        post(
            &mut connect(port, &inst.bundle),
            "/",
            &wan.signed("Encrypt", &body),
            &body,
        )
    };
    assert_eq!(
        enc(internet).failure(),
        (403, "Forbidden.InternetAccessDisabled".into())
    );

    // The official SDK over the Internet endpoint.
    if let Some(python) = venv::sdk_python() {
        let ep = format!("localhost:{internet}");
        let r = sdk_reads(&python, &inst, &ep, &wan, json!([{"name": "api-token"}]));
        assert_eq!(r[0]["secret_data"], "t0ken", "{}", r[0]);
    }

    // The owner turns secret reads over the Internet off: refused before authentication,
    // while the private endpoint keeps serving them.
    let off = inst
        .d
        .cli_json(&["instance", "internet", "secrets", "disable"]);
    assert_eq!(off, json!({"InternetSecretReads": false}));
    let a = raw_read(&inst, internet, &wan, "api-token");
    assert_eq!(
        a.failure(),
        (403, "Forbidden.InternetAccessDisabled".into())
    );
    let e = api::Error::decode(a.body.as_slice()).unwrap();
    assert!(
        e.error_message.contains("Secret reads over the Internet"),
        "{e:?}"
    );
    assert_eq!(raw_read(&inst, private, &lan, "api-token").status, 200);
    // The switches are independent: cryptography on, secret reads still off.
    inst.d.cli_json(&["instance", "internet", "enable"]);
    assert_eq!(
        enc(internet).failure(),
        (403, "Forbidden.NoPermission".into()),
        "no key grant"
    );
    assert_eq!(
        raw_read(&inst, internet, &wan, "api-token").failure(),
        (403, "Forbidden.InternetAccessDisabled".into())
    );
    let status = inst.d.cli_json(&["instance", "internet", "status"]);
    assert_eq!(
        status,
        json!({"InternetAccess": true, "InternetSecretReads": false})
    );
    let on = inst
        .d
        .cli_json(&["instance", "internet", "secrets", "enable"]);
    assert_eq!(on, json!({"InternetSecretReads": true}));
    assert_eq!(raw_read(&inst, internet, &wan, "api-token").status, 200);
    let text = String::from_utf8(
        inst.d
            .cli(&["instance", "internet", "secrets", "status"])
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("Secret reads over the Internet: enabled"),
        "{text}"
    );
}

#[test]
fn internet_secret_help_says_what_each_switch_does() {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["instance", "internet", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("secrets") && help.contains("Secret reads"),
        "{help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["instance", "internet", "secrets", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for taught in ["Public", "secret_qps", "GetSecretValue"] {
        assert!(help.contains(taught), "lacks {taught:?}:\n{help}");
    }
}
