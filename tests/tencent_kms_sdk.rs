//! Tencent's KMS API (`2019-01-18`) as a whole, through a real gateway: the actions that
//! describe the appliance, the actions hkms does not serve (`UnsupportedOperation` with the
//! reason) and names that are no action (`InvalidAction`), listings and refusals for an
//! application that holds only some keys; and the official Python SDK making every served
//! action.

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;
#[path = "support/tencent_kms.rs"]
mod tencent_kms;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use serde_json::{json, Value};
use support::{GatewayProc, Instance};
use tencent::now;
use tencent_kms::{admin, b64, ids, wrap, Tc};

#[test]
fn the_appliance_describes_itself_and_refuses_what_it_does_not_serve() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let admin_key = admin(&inst, "tc-all");
    let mut tc = Tc::new(&gw, &inst, &admin_key);
    let mine = tc.create("mine", "ENCRYPT_DECRYPT");
    let theirs = tc.create("theirs", "ENCRYPT_DECRYPT");

    let r = tc.ok("ListAlgorithms", json!({}));
    assert_eq!(
        r["SymmetricAlgorithms"],
        json!([{"KeyUsage": "ENCRYPT_DECRYPT", "Algorithm": "AES_256"}])
    );
    assert_eq!(
        r["AsymmetricAlgorithms"][0]["KeyUsage"],
        "ASYMMETRIC_DECRYPT_RSA_2048"
    );
    assert_eq!(
        r["AsymmetricSignVerifyAlgorithms"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(tc.ok("GetServiceStatus", json!({}))["ServiceEnabled"], true);
    assert_eq!(tc.ok("GetRegions", json!({}))["Regions"], json!(["local"]));
    assert_eq!(
        tc.code("ListAlgorithms", json!({"Limit": 1})),
        "UnknownParameter"
    );

    // The post-quantum actions and the other actions of the SDK: UnsupportedOperation,
    // saying why; names that are no action: InvalidAction.
    for action in [
        "PostQuantumCryptoEncrypt",
        "PostQuantumCryptoDecrypt",
        "PostQuantumCryptoSign",
        "PostQuantumCryptoVerify",
    ] {
        let (code, message) = tc.error(action, json!({"KeyId": mine, "PlainText": "eA=="}));
        assert_eq!(code, "UnsupportedOperation", "{action}");
        assert!(
            message.contains("ML-KEM") && message.contains(action),
            "{message}"
        );
    }
    for action in [
        "ArchiveKey",
        "ListDataKeys",
        "CreateWhiteBoxKey",
        "AsymmetricSm2Decrypt",
    ] {
        let (code, message) = tc.error(action, json!({}));
        assert_eq!(code, "UnsupportedOperation", "{action}");
        assert!(message.contains(action), "{message}");
    }
    for action in ["GetSecretValue", "encrypt", "DeleteKey"] {
        assert_eq!(tc.code(action, json!({})), "InvalidAction", "{action}");
    }

    // An application that may only use one key sees only that key and manages none.
    let user = tencent::tc_app(
        &inst,
        "tc-user",
        "CryptoServiceKeyUser",
        &format!("key/{mine}"),
        None,
    );
    let mut u = Tc::new(&gw, &inst, &user);
    let r = u.ok("ListKeys", json!({}));
    assert_eq!(ids(&r, "Keys"), [mine.as_str()]);
    assert_eq!(r["TotalCount"], 1);
    let r = u.ok("ListKeyDetail", json!({}));
    assert_eq!(ids(&r, "KeyMetadatas"), [mine.as_str()]);
    assert_eq!(u.meta(&mine)["Alias"], "mine");
    assert_eq!(u.ok("GetServiceStatus", json!({}))["ServiceEnabled"], true);
    u.ok(
        "Encrypt",
        json!({"KeyId": mine, "Plaintext": B64.encode(b"x")}),
    );
    for (action, params) in [
        ("DescribeKey", json!({ "KeyId": theirs })),
        (
            "Encrypt",
            json!({"KeyId": theirs, "Plaintext": B64.encode(b"x")}),
        ),
        ("CreateKey", json!({"Alias": "not-mine"})),
        ("DisableKey", json!({ "KeyId": mine })),
        ("UpdateAlias", json!({"KeyId": mine, "Alias": "renamed"})),
        (
            "ScheduleKeyDeletion",
            json!({"KeyId": mine, "PendingWindowInDays": 7}),
        ),
        ("EnableKeyRotation", json!({ "KeyId": mine })),
        ("RotateKey", json!({ "KeyId": mine })),
        (
            "DescribeKey",
            json!({"KeyId": uuid::Uuid::new_v4().to_string()}),
        ),
    ] {
        assert_eq!(
            u.code(action, params.clone()),
            "AuthFailure.UnauthorizedOperation",
            "{action} {params}"
        );
    }

    // The actions that describe the appliance are authorised too: not for a role that
    // grants no key operation, nor from outside the policy's network rules (the test
    // connects from 127.0.0.1).
    let secrets_only = tencent::tc_app(
        &inst,
        "tc-secrets",
        "CryptoServiceSecretUser",
        "secret/*",
        None,
    );
    let outside = tencent::tc_app(
        &inst,
        "tc-outside",
        "CryptoServiceKeyUser",
        "key/*",
        Some(("127.0.0.2", "Private")),
    );
    for key in [&secrets_only, &outside] {
        let mut o = Tc::new(&gw, &inst, key);
        for action in ["ListAlgorithms", "GetServiceStatus", "GetRegions"] {
            assert_eq!(
                o.code(action, json!({})),
                "AuthFailure.UnauthorizedOperation",
                "{action}"
            );
        }
    }
}

#[test]
fn the_official_sdk_makes_every_served_action() {
    let Some(python) = tencent::tencent_python() else {
        return;
    };
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let endpoint = format!("localhost:{}", gw.port);
    let key = admin(&inst, "tc-sdk");
    let kms = |action: &str, params: Value| tencent::sdk_call("kms", action, params);
    let run = |calls: Value| tencent::run_sdk(&python, &inst, &endpoint, &key, &calls, 0);

    let r = run(json!([
        kms("CreateKey", json!({"Alias": "sdk-aes", "Description": "d"})),
        kms(
            "CreateKey",
            json!({"Alias": "sdk-ecc", "KeyUsage": "ASYMMETRIC_SIGN_VERIFY_ECC"})
        ),
        kms(
            "CreateKey",
            json!({"Alias": "sdk-rsa", "KeyUsage": "ASYMMETRIC_DECRYPT_RSA_2048"})
        ),
        kms("CreateKey", json!({"Alias": "sdk-ext", "Type": 2})),
        kms("CreateKey", json!({"Alias": "sdk-aes"})),
    ]));
    let id = |i: usize| tencent::ok(&r[i])["KeyId"].as_str().unwrap().to_owned();
    let (aes, ecc, rsa, ext) = (id(0), id(1), id(2), id(3));
    assert_eq!(
        tencent::err(&r[4]),
        "InvalidParameterValue.AliasAlreadyExists"
    );

    let msg = B64.encode(b"signed by the sdk");
    let r = run(json!([
        kms("DescribeKey", json!({"KeyId": aes})),
        kms("DescribeKeys", json!({"KeyIds": [aes, ecc]})),
        kms("ListKeys", json!({"Limit": 10})),
        kms("ListKeyDetail", json!({"KeyUsage": "ALL", "OrderType": 1})),
        kms(
            "Encrypt",
            json!({"KeyId": aes, "Plaintext": B64.encode(b"sdk"),
                              "EncryptionContext": "{\"k\":\"v\"}"})
        ),
        kms(
            "GenerateDataKey",
            json!({"KeyId": aes, "KeySpec": "AES_128"})
        ),
        kms("GenerateRandom", json!({"NumberOfBytes": 8})),
        kms("GetPublicKey", json!({"KeyId": ecc})),
        kms(
            "SignByAsymmetricKey",
            json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": msg})
        ),
        kms("ListAlgorithms", json!({})),
        kms("GetServiceStatus", json!({})),
        kms("GetRegions", json!({})),
        kms(
            "GetParametersForImport",
            json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_1",
                                             "WrappingKeySpec": "RSA_2048"})
        ),
        kms("UpdateAlias", json!({"KeyId": aes, "Alias": "sdk-aes-2"})),
        kms(
            "UpdateKeyDescription",
            json!({"KeyId": aes, "Description": "d2"})
        ),
        kms("EnableKeyRotation", json!({"KeyId": aes, "RotateDays": 90})),
        kms("GetKeyRotationStatus", json!({"KeyId": aes})),
        kms("DisableKeyRotation", json!({"KeyId": aes})),
        kms("RotateKey", json!({"KeyId": aes})),
        kms("DisableKey", json!({"KeyId": ecc})),
        kms("EnableKey", json!({"KeyId": ecc})),
        kms("DisableKeys", json!({"KeyIds": [rsa]})),
        kms("EnableKeys", json!({"KeyIds": [rsa]})),
        kms(
            "PostQuantumCryptoEncrypt",
            json!({"KeyId": aes, "PlainText": "eA=="})
        ),
        kms("Decrypt", json!({"CiphertextBlob": B64.encode(b"garbage")})),
    ]));
    for (i, v) in r.iter().enumerate().take(23) {
        tencent::ok(v);
        assert!(v.get("ok").is_some(), "call {i}: {v}");
    }
    let described = tencent::ok(&r[0]);
    assert_eq!(described["KeyMetadata"]["Alias"], "sdk-aes");
    assert_eq!(described["KeyMetadata"]["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(
        tencent::ok(&r[1])["KeyMetadatas"].as_array().unwrap().len(),
        2
    );
    assert_eq!(tencent::ok(&r[2])["TotalCount"], 4);
    let detail = tencent::ok(&r[3])["KeyMetadatas"].clone();
    let external = detail
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["KeyId"] == ext.as_str())
        .unwrap();
    assert_eq!(external["Origin"], "EXTERNAL", "{detail}");
    assert_eq!(external["KeyState"], "PendingImport", "{detail}");
    let blob = tencent::ok(&r[4])["CiphertextBlob"].clone();
    let data_key = tencent::ok(&r[5]).clone();
    assert_eq!(b64(&data_key["Plaintext"]).len(), 16);
    assert_eq!(b64(&tencent::ok(&r[6])["Plaintext"]).len(), 8);
    let signature = tencent::ok(&r[8])["Signature"].clone();
    assert_eq!(tencent::ok(&r[10])["ServiceEnabled"], true);
    let params = tencent::ok(&r[12]).clone();
    assert_eq!(tencent::ok(&r[16])["KeyRotationEnabled"], true);
    assert!(!tencent::ok(&r[18])["TaskId"].as_str().unwrap().is_empty());
    assert_eq!(tencent::err(&r[23]), "UnsupportedOperation");
    assert_eq!(
        tencent::err(&r[24]),
        "InvalidParameterValue.InvalidCiphertext"
    );

    // The RSA public key encrypts here; the HSM decrypts.
    let r = run(json!([kms("GetPublicKey", json!({"KeyId": rsa}))]));
    let pk = PKey::public_key_from_der(&b64(&tencent::ok(&r[0])["PublicKey"])).unwrap();
    let rsa_pk = pk.rsa().unwrap();
    let mut ct = vec![0u8; rsa_pk.size() as usize];
    let n = rsa_pk
        .public_encrypt(b"to the hsm", &mut ct, Padding::PKCS1_OAEP)
        .unwrap();
    ct.truncate(n);

    let r = run(json!([
        kms(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": "{\"k\":\"v\"}"})
        ),
        kms(
            "Decrypt",
            json!({"CiphertextBlob": data_key["CiphertextBlob"]})
        ),
        kms(
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "SourceEncryptionContext": "{\"k\":\"v\"}",
                                "DestinationKeyId": aes})
        ),
        kms(
            "VerifyByAsymmetricKey",
            json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1",
                                            "Message": msg, "SignatureValue": signature})
        ),
        kms(
            "AsymmetricRsaDecrypt",
            json!({"KeyId": rsa, "Ciphertext": B64.encode(&ct),
                                           "Algorithm": "RSAES_OAEP_SHA_1"})
        ),
        kms(
            "ImportKeyMaterial",
            json!({"KeyId": ext, "ImportToken": params["ImportToken"],
                                        "EncryptedKeyMaterial": wrap(&params, &[9u8; 32])})
        ),
        kms("DeleteImportedKeyMaterial", json!({"KeyId": ext})),
        kms("DisableKey", json!({"KeyId": ecc})),
        kms(
            "ScheduleKeyDeletion",
            json!({"KeyId": ecc, "PendingWindowInDays": 7})
        ),
        kms("CancelKeyDeletion", json!({"KeyId": ecc})),
        kms("CancelKeyDeletion", json!({"KeyId": ecc})),
    ]));
    for v in r.iter().take(10) {
        tencent::ok(v);
    }
    assert_eq!(b64(&tencent::ok(&r[0])["Plaintext"]), b"sdk");
    assert_eq!(
        b64(&tencent::ok(&r[1])["Plaintext"]),
        b64(&data_key["Plaintext"])
    );
    assert_eq!(tencent::ok(&r[2])["ReEncrypted"], true);
    assert_eq!(tencent::ok(&r[3])["SignatureValid"], true);
    assert_eq!(b64(&tencent::ok(&r[4])["Plaintext"]), b"to the hsm");
    assert!(tencent::ok(&r[8])["DeletionDate"].as_i64().unwrap() > now());
    assert_eq!(
        tencent::err(&r[10]),
        "ResourceUnavailable.CmkNotPendingDelete"
    );
}
