//! The Tencent Cloud API 3.0 front through a real gateway: routing by `X-TC-Action` on the
//! instance API's port, the envelope (HTTP 200, `application/json`, RequestId), TC3
//! authentication with API keys, authorisation by the AAP's policies and network rules, and
//! API keys' lifecycle (`hkms api-key`), with requests signed by the test's own TC3 code.

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;

use serde_json::json;
use support::{connect, connect_from, GatewayProc, Instance};
use tencent::{call, error_code, signed_headers, tc_app, ApiKey, Signing, KMS_VERSION};

fn random_of(r: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(r["Plaintext"].as_str().unwrap_or_else(|| panic!("{r}")))
        .unwrap()
}

#[test]
fn tc3_requests_are_authenticated_and_refusals_say_why() {
    let inst = Instance::new();
    // A budget of unauthenticated requests that the refusals below do not use up.
    let gw = GatewayProc::start(
        &inst,
        "gw",
        false,
        "[throttle]\nunsigned_qps_per_source = 50\n",
    );
    let key = tc_app(&inst, "tc", "CryptoServiceKeyUser", "key/*", None);
    let mut s = connect(gw.port, &inst.bundle);
    let body = json!({"NumberOfBytes": 24});

    // Signed as the Python SDK signs (content-type;host), then with X-TC-Action signed too.
    let r = call(
        &mut s,
        &Signing::new(&key, KMS_VERSION),
        "GenerateRandom",
        &body,
    );
    assert_eq!(error_code(&r), None, "{r}");
    assert_eq!(random_of(&r).len(), 24);
    let with_action = Signing {
        signed: &["content-type", "host", "x-tc-action"],
        ..Signing::new(&key, KMS_VERSION)
    };
    let r = call(&mut s, &with_action, "GenerateRandom", &body);
    assert_eq!(error_code(&r), None, "{r}");

    let refused = |s: &mut _, signing: &Signing<'_>| {
        error_code(&call(s, signing, "GenerateRandom", &body)).unwrap_or_default()
    };
    let wrong = ApiKey {
        secret_key: "x".repeat(32),
        ..key.clone()
    };
    assert_eq!(
        refused(&mut s, &Signing::new(&wrong, KMS_VERSION)),
        "AuthFailure.SignatureFailure"
    );
    let unknown = ApiKey {
        secret_id: "AKIDnotanapikeyofthisinstance0000000".into(),
        ..key.clone()
    };
    assert_eq!(
        refused(&mut s, &Signing::new(&unknown, KMS_VERSION)),
        "AuthFailure.SecretIdNotFound"
    );
    for skew in [-360, 360] {
        let late = Signing {
            timestamp: tencent::now() + skew,
            ..Signing::new(&key, KMS_VERSION)
        };
        assert_eq!(
            refused(&mut s, &late),
            "AuthFailure.SignatureExpire",
            "{skew}"
        );
    }
    let near = Signing {
        timestamp: tencent::now() - 200,
        ..Signing::new(&key, KMS_VERSION)
    };
    assert_eq!(refused(&mut s, &near), "", "200 s off is within the window");
    let other_service = Signing {
        scope_service: Some("ssm"),
        ..Signing::new(&key, KMS_VERSION)
    };
    assert_eq!(
        refused(&mut s, &other_service),
        "AuthFailure.InvalidAuthorization"
    );
    let yesterday = Signing {
        scope_date: Some("2020-01-01"),
        ..Signing::new(&key, KMS_VERSION)
    };
    assert_eq!(refused(&mut s, &yesterday), "AuthFailure.SignatureFailure");
    // Values lowercased, as Tencent's examples sign them (`x-tc-action:generaterandom`).
    let lowercased = Signing {
        signed: &["content-type", "host", "x-tc-action"],
        lowercase_values: true,
        ..Signing::new(&key, KMS_VERSION)
    };
    assert_eq!(refused(&mut s, &lowercased), "");
    let host_unsigned = Signing {
        signed: &["content-type"],
        ..Signing::new(&key, KMS_VERSION)
    };
    assert_eq!(
        refused(&mut s, &host_unsigned),
        "AuthFailure.SignatureFailure"
    );

    // The body is signed: a body changed after signing is refused.
    let signing = Signing::new(&key, KMS_VERSION);
    let headers = signed_headers(&signing, "GenerateRandom", br#"{"NumberOfBytes":24}"#);
    let a = support::post(&mut s, "/", &headers, br#"{"NumberOfBytes":25}"#);
    let r = tencent::envelope(&a);
    assert_eq!(
        error_code(&r).as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
    // A header the signature depends on, sent twice, is refused whichever copy is signed.
    let mut twice = signed_headers(&signing, "GenerateRandom", br#"{"NumberOfBytes":24}"#);
    twice.push(("x-tc-timestamp".into(), (tencent::now() - 100).to_string()));
    let r = tencent::envelope(&support::post(
        &mut s,
        "/",
        &twice,
        br#"{"NumberOfBytes":24}"#,
    ));
    assert_eq!(
        error_code(&r).as_deref(),
        Some("AuthFailure.SignatureFailure"),
        "{r}"
    );
    assert!(r["Error"]["Message"]
        .as_str()
        .unwrap()
        .contains("more than once"));
    // ... and an unsigned body is not accepted at all.
    let mut headers = signed_headers(&signing, "GenerateRandom", b"UNSIGNED-PAYLOAD");
    headers.push(("x-tc-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
    let a = support::post(&mut s, "/", &headers, br#"{"NumberOfBytes":24}"#);
    let r = tencent::envelope(&a);
    assert_eq!(
        error_code(&r).as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
    assert!(r["Error"]["Message"]
        .as_str()
        .unwrap()
        .contains("unsigned request bodies"));

    // Shape errors: content type, version, action.
    let mut headers = signed_headers(&signing, "GenerateRandom", b"{}");
    headers[0].1 = "application/x-www-form-urlencoded".into();
    let r = tencent::envelope(&support::post(&mut s, "/", &headers, b"{}"));
    assert_eq!(error_code(&r).as_deref(), Some("InvalidParameter"), "{r}");
    let old = Signing::new(&key, "2017-03-12");
    assert_eq!(
        error_code(&call(&mut s, &old, "GenerateRandom", &body)).as_deref(),
        Some("NoSuchVersion")
    );
    assert_eq!(
        error_code(&call(&mut s, &signing, "NoSuchAction", &json!({}))).as_deref(),
        Some("InvalidAction")
    );
    // The instance API still answers on the same port (its own envelope).
    let a = support::post(&mut s, "/", &[], b"");
    assert_ne!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/x-protobuf"));
}

#[test]
fn api_keys_are_authorised_like_client_keys_and_their_secret_is_never_stored_in_clear() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key_a = inst.create_key();
    let key_b = inst.create_key();
    let mut s = connect(gw.port, &inst.bundle);

    // A policy on key A only.
    let k = tc_app(
        &inst,
        "only-a",
        "CryptoServiceKeyUser",
        &format!("key/{key_a}"),
        None,
    );
    let signing = Signing::new(&k, KMS_VERSION);
    let pt = json!({"Plaintext": "aGVsbG8="});
    let enc = |s: &mut _, key: &str| {
        let mut p = pt.clone();
        p["KeyId"] = json!(key);
        call(s, &signing, "Encrypt", &p)
    };
    let r = enc(&mut s, &key_a);
    assert_eq!(error_code(&r), None, "{r}");
    assert_eq!(
        error_code(&enc(&mut s, &key_b)).as_deref(),
        Some("AuthFailure.UnauthorizedOperation")
    );

    // A network rule that admits 127.0.0.2 only.
    let n = tc_app(
        &inst,
        "netonly",
        "CryptoServiceKeyUser",
        "key/*",
        Some(("127.0.0.2", "Private")),
    );
    let ns = Signing::new(&n, KMS_VERSION);
    let body = json!({"NumberOfBytes": 8});
    assert_eq!(
        error_code(&call(&mut s, &ns, "GenerateRandom", &body)).as_deref(),
        Some("AuthFailure.UnauthorizedOperation"),
        "127.0.0.1 is outside the rule"
    );
    let mut from2 = connect_from("127.0.0.2".parse().unwrap(), gw.port, &inst.bundle);
    assert_eq!(
        error_code(&call(&mut from2, &ns, "GenerateRandom", &body)),
        None
    );

    // The SecretKey appears nowhere in the store's files.
    let mut found = Vec::new();
    for entry in walk(&inst.d.path("store")) {
        let bytes = std::fs::read(&entry).unwrap();
        if bytes
            .windows(k.secret_key.len())
            .any(|w| w == k.secret_key.as_bytes())
        {
            found.push(entry);
        }
    }
    assert!(found.is_empty(), "SecretKey in clear in {found:?}");

    // Listing, the AAP kept while it has keys, deletion.
    let list = inst.d.cli_json(&["api-key", "list", "--aap", "only-a"]);
    let keys = list["ApiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["SecretId"], k.secret_id.as_str());
    assert_eq!(keys[0]["State"], "Valid");
    assert!(keys[0].get("SecretKey").is_none());
    assert!(!list.to_string().contains(&k.secret_key));
    assert_eq!(
        inst.d.cli_error(&["aap", "delete", "only-a"]),
        "ResourceInUse"
    );
    let out = inst.d.cli(&["aap", "delete", "only-a"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("API key"), "{e}");
    inst.d.cli_json(&["api-key", "delete", &k.secret_id]);
    assert_eq!(
        error_code(&enc(&mut s, &key_a)).as_deref(),
        Some("AuthFailure.SecretIdNotFound")
    );
    let e = inst.d.cli_error(&["api-key", "create", "--aap", "nobody"]);
    assert_eq!(e, "ResourceNotFound");
    let e = inst.d.cli_error(&[
        "api-key",
        "create",
        "--aap",
        "netonly",
        "--validity-days",
        "1826",
    ]);
    assert_eq!(e, "InvalidParameter");

    // --output-file: mode 0600, never overwritten.
    let file = inst.d.path("netonly-key.json");
    let out = inst.d.cli_json(&[
        "api-key",
        "create",
        "--aap",
        "netonly",
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert!(out["ApiKey"].get("SecretKey").is_none(), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["SecretId"], out["ApiKey"]["SecretId"]);
    assert_eq!(written["SecretKey"].as_str().unwrap().len(), 32);
    let e = inst.d.cli_error(&[
        "api-key",
        "create",
        "--aap",
        "netonly",
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(e, "InvalidParameter");
    assert!(std::fs::read(&file).unwrap() == serde_json::to_vec_pretty(&written).unwrap());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
