//! Tencent Cloud's official Python SDK (`tencentcloud-sdk-python-kms`, pinned in its own
//! virtual environment) and `tccli`, unchanged, against hkms through a real gateway with
//! the instance CA: authentication failures as the SDK reports them, authorisation by
//! policy and network rule, and one key used across the Tencent front, the KMS instance API
//! and the CLI.

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkms::instance_api as api;
use prost::Message;
use serde_json::{json, Value};
use std::process::Command;
use support::{connect, GatewayProc, Instance};
use tencent::{err, ok, run_sdk, sdk_call, tc_app, tencent_python, ApiKey};

fn kms(action: &str, params: Value) -> Value {
    sdk_call("kms", action, params)
}

#[test]
fn the_sdk_authenticates_and_is_authorised_like_any_application() {
    let Some(python) = tencent_python() else {
        return;
    };
    let inst = Instance::new();
    let gw = GatewayProc::start(
        &inst,
        "gw",
        false,
        "[throttle]\nunsigned_qps_per_source = 50\n",
    );
    let endpoint = format!("localhost:{}", gw.port);
    let key_a = inst.create_key();
    let key_b = inst.create_key();
    let k = tc_app(
        &inst,
        "sdk-a",
        "CryptoServiceKeyUser",
        &format!("key/{key_a}"),
        None,
    );

    let r = run_sdk(
        &python,
        &inst,
        &endpoint,
        &k,
        &json!([
            kms("GenerateRandom", json!({"NumberOfBytes": 32})),
            kms(
                "Encrypt",
                json!({"KeyId": key_a, "Plaintext": B64.encode(b"over the wire"),
                "EncryptionContext": "{\"app\":\"billing\",\"env\":\"prod\"}"})
            ),
            kms(
                "Encrypt",
                json!({"KeyId": key_b, "Plaintext": B64.encode(b"x")})
            ),
        ]),
        0,
    );
    assert_eq!(
        B64.decode(ok(&r[0])["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let blob = ok(&r[1])["CiphertextBlob"].as_str().unwrap().to_owned();
    assert_eq!(ok(&r[1])["KeyId"], key_a.as_str());
    assert_eq!(err(&r[2]), "AuthFailure.UnauthorizedOperation");

    // Decrypt needs no KeyId; the context's field order does not matter, its values do.
    let r = run_sdk(
        &python,
        &inst,
        &endpoint,
        &k,
        &json!([
            kms(
                "Decrypt",
                json!({"CiphertextBlob": blob,
                "EncryptionContext": "{\"env\":\"prod\",\"app\":\"billing\"}"})
            ),
            kms(
                "Decrypt",
                json!({"CiphertextBlob": blob,
                "EncryptionContext": "{\"app\":\"billing\",\"env\":\"test\"}"})
            ),
        ]),
        0,
    );
    assert_eq!(
        B64.decode(ok(&r[0])["Plaintext"].as_str().unwrap())
            .unwrap(),
        b"over the wire"
    );
    assert_eq!(ok(&r[0])["KeyId"], key_a.as_str());
    assert!(r[1].get("error").is_some(), "{}", r[1]);

    let random = json!([kms("GenerateRandom", json!({"NumberOfBytes": 8}))]);
    let wrong = ApiKey {
        secret_key: "y".repeat(32),
        ..k.clone()
    };
    let r = run_sdk(&python, &inst, &endpoint, &wrong, &random, 0);
    assert_eq!(err(&r[0]), "AuthFailure.SignatureFailure");
    let unknown = ApiKey {
        secret_id: "AKID0000000000000000000000000000none".into(),
        ..k.clone()
    };
    let r = run_sdk(&python, &inst, &endpoint, &unknown, &random, 0);
    assert_eq!(err(&r[0]), "AuthFailure.SecretIdNotFound");
    for offset in [-360, 360] {
        let r = run_sdk(&python, &inst, &endpoint, &k, &random, offset);
        assert_eq!(err(&r[0]), "AuthFailure.SignatureExpire", "{offset}");
    }

    // The SDK connects from 127.0.0.1; this AAP's rule admits 127.0.0.2 only.
    let n = tc_app(
        &inst,
        "sdk-net",
        "CryptoServiceKeyUser",
        "key/*",
        Some(("127.0.0.2", "Private")),
    );
    let r = run_sdk(&python, &inst, &endpoint, &n, &random, 0);
    assert_eq!(err(&r[0]), "AuthFailure.UnauthorizedOperation");
}

/// An AAP whose policies make it both a key administrator and a key user of every key,
/// with an API key and a ClientKey.
fn admin_app(inst: &Instance, aap: &str) -> (ApiKey, support::ClientKeyFiles) {
    (tencent::key_admin(inst, aap), inst.client_key(aap))
}

#[test]
fn one_key_serves_the_tencent_front_the_instance_api_and_the_cli() {
    let Some(python) = tencent_python() else {
        return;
    };
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let endpoint = format!("localhost:{}", gw.port);
    let (k, ck) = admin_app(&inst, "both");

    // Made through Tencent's API, described by the CLI, used by the instance API.
    let r = run_sdk(
        &python,
        &inst,
        &endpoint,
        &k,
        &json!([kms(
            "CreateKey",
            json!({"Alias": "made-by-tencent", "Description": "x"})
        )]),
        0,
    );
    let tc_key = ok(&r[0])["KeyId"].as_str().unwrap().to_owned();
    let d = inst.d.cli_json(&["key", "describe", "--key-id", &tc_key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled", "{d}");
    let r = run_sdk(
        &python,
        &inst,
        &endpoint,
        &k,
        &json!([kms(
            "Encrypt",
            json!({"KeyId": tc_key, "Plaintext": B64.encode(b"from tencent")})
        )]),
        0,
    );
    let blob = B64
        .decode(ok(&r[0])["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    let mut conn = connect(gw.port, &inst.bundle);
    let body = api::AdvanceDecryptRequest {
        ciphertext_blob: blob.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let a = support::post(&mut conn, "/", &ck.signed("AdvanceDecrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let opened = api::AdvanceDecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(opened.plaintext, b"from tencent");
    assert_eq!(opened.key_id, tc_key);
    let out = inst
        .d
        .cli_json(&["decrypt", "--ciphertext-blob", &B64.encode(&blob)]);
    assert_eq!(
        B64.decode(out["Plaintext"].as_str().unwrap_or_default())
            .unwrap_or_default(),
        b"from tencent",
        "{out}"
    );

    // Made by the CLI, encrypted through the instance API, decrypted through Tencent's.
    let cli_key = inst.create_key();
    let body = api::AdvanceEncryptRequest {
        key_id: cli_key.clone(),
        plaintext: b"from the instance api".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let a = support::post(&mut conn, "/", &ck.signed("AdvanceEncrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let sealed = api::AdvanceEncryptResponse::decode(a.body.as_slice()).unwrap();
    let r = run_sdk(
        &python,
        &inst,
        &endpoint,
        &k,
        &json!([
            kms(
                "Decrypt",
                json!({"CiphertextBlob": B64.encode(&sealed.ciphertext_blob)})
            ),
            kms("DescribeKey", json!({"KeyId": cli_key})),
            kms("DisableKey", json!({"KeyId": cli_key})),
            kms(
                "Decrypt",
                json!({"CiphertextBlob": B64.encode(&sealed.ciphertext_blob)})
            ),
        ]),
        0,
    );
    assert_eq!(
        B64.decode(ok(&r[0])["Plaintext"].as_str().unwrap())
            .unwrap(),
        b"from the instance api"
    );
    assert_eq!(ok(&r[1])["KeyMetadata"]["KeyState"], "Enabled");
    ok(&r[2]);
    assert_eq!(err(&r[3]), "ResourceUnavailable.CmkDisabled");
    let d = inst.d.cli_json(&["key", "describe", "--key-id", &cli_key]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled", "{d}");
}

#[test]
fn tccli_runs_against_the_gateway() {
    let Some(python) = tencent_python() else {
        return;
    };
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let k = tc_app(&inst, "cli", "CryptoServiceKeyUser", "key/*", None);
    // tccli verifies servers against certifi's bundle only (it has no CA option): an
    // operator appends the instance CA to that bundle. The test points certifi at the
    // instance CA instead of changing the shared environment's bundle.
    let launcher = format!(
        "import certifi, sys; certifi.where = lambda: {:?}; \
         from tccli.main import main; sys.argv[0] = 'tccli'; sys.exit(main())",
        inst.bundle.to_str().unwrap()
    );
    let out = Command::new(&python)
        .args(["-c", &launcher])
        .args([
            "kms",
            "GenerateRandom",
            "--NumberOfBytes",
            "16",
            "--region",
            "ap-guangzhou",
            "--endpoint",
            &format!("localhost:{}", gw.port),
        ])
        .env("TENCENTCLOUD_SECRET_ID", &k.secret_id)
        .env("TENCENTCLOUD_SECRET_KEY", &k.secret_key)
        .env("HOME", inst.d.path(""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tccli failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}"));
    assert_eq!(
        B64.decode(v["Plaintext"].as_str().unwrap()).unwrap().len(),
        16,
        "{v}"
    );
    assert!(v["RequestId"].as_str().is_some_and(|s| !s.is_empty()));
}
