//! Every action of Tencent's KMS API (`2019-01-18`) that hkms serves, through a real gateway
//! with requests signed by the test's own TC3 code: each action's happy path and at least
//! one refusal with its Tencent code; the actions hkms does not serve (`UnsupportedOperation`
//! with the reason) and names that are no action (`InvalidAction`); listings and refusals
//! for an application that holds only some keys; and the official Python SDK making every
//! served action.

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::ssl::SslStream;
use serde_json::{json, Value};
use std::net::TcpStream;
use support::{connect, GatewayProc, Instance};
use tencent::{call, error_code, ApiKey, Signing, KMS_VERSION};

/// Signed KMS requests of one API key on one connection.
struct Tc<'a> {
    s: SslStream<TcpStream>,
    key: &'a ApiKey,
}

impl<'a> Tc<'a> {
    fn new(gw: &GatewayProc, inst: &Instance, key: &'a ApiKey) -> Tc<'a> {
        Tc {
            s: connect(gw.port, &inst.bundle),
            key,
        }
    }

    fn call(&mut self, action: &str, params: Value) -> Value {
        call(
            &mut self.s,
            &Signing::new(self.key, KMS_VERSION),
            action,
            &params,
        )
    }

    /// The answer of an action that must succeed.
    fn ok(&mut self, action: &str, params: Value) -> Value {
        let r = self.call(action, params);
        assert!(r.get("Error").is_none(), "{action} failed: {r}");
        r
    }

    /// The error code of an action that must fail.
    fn code(&mut self, action: &str, params: Value) -> String {
        let r = self.call(action, params);
        error_code(&r).unwrap_or_else(|| panic!("{action} succeeded: {r}"))
    }

    /// The error of an action that must fail, as (code, message).
    fn error(&mut self, action: &str, params: Value) -> (String, String) {
        let r = self.call(action, params);
        let code = error_code(&r).unwrap_or_else(|| panic!("{action} succeeded: {r}"));
        (code, r["Error"]["Message"].as_str().unwrap().to_owned())
    }

    fn create(&mut self, alias: &str, usage: &str) -> String {
        let r = self.ok("CreateKey", json!({"Alias": alias, "KeyUsage": usage}));
        r["KeyId"].as_str().unwrap().to_owned()
    }

    fn meta(&mut self, key_id: &str) -> Value {
        self.ok("DescribeKey", json!({ "KeyId": key_id }))["KeyMetadata"].clone()
    }
}

/// An AAP that administers and uses every key (its policies cover `key/*` and `alias/*`),
/// and an API key for it.
fn admin(inst: &Instance, aap: &str) -> ApiKey {
    for (name, role) in [
        ("admin", "CryptoServiceKeyAdministrator"),
        ("user", "CryptoServiceKeyUser"),
    ] {
        inst.d.cli_json(&[
            "policy",
            "create",
            "--name",
            &format!("{aap}-{name}"),
            "--role",
            role,
            "--resources",
            "key/*,alias/*",
        ]);
    }
    inst.d.cli_json(&[
        "aap",
        "create",
        "--name",
        aap,
        "--policies",
        &format!("{aap}-admin,{aap}-user"),
    ]);
    tencent::api_key(inst, aap)
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .unwrap()
}

fn now() -> i64 {
    tencent::now()
}

fn ids(listing: &Value, field: &str) -> Vec<String> {
    listing[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn keys_are_created_described_listed_and_managed() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key = admin(&inst, "tc-admin");
    let mut tc = Tc::new(&gw, &inst, &key);

    // CreateKey, and what it refuses.
    let before = now();
    let r = tc.ok(
        "CreateKey",
        json!({"Alias": "orders", "Description": "orders db",
               "Tags": [{"TagKey": "team", "TagValue": "payments"}]}),
    );
    let k1 = r["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(r["Alias"], "orders");
    assert_eq!(r["KeyState"], "Enabled");
    assert_eq!(r["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(r["Description"], "orders db");
    assert!(r["CreateTime"].as_i64().unwrap() >= before - 1, "{r}");
    let k2 = tc.create("billing", "ENCRYPT_DECRYPT");
    let signing = tc.create("release-signing", "ASYMMETRIC_SIGN_VERIFY_ECC");
    for (params, code) in [
        (
            json!({"Alias": "orders"}),
            "InvalidParameterValue.AliasAlreadyExists",
        ),
        (
            json!({"Alias": "two words"}),
            "InvalidParameterValue.InvalidAlias",
        ),
        (
            json!({"Alias": "kms-cbs"}),
            "InvalidParameterValue.InvalidAlias",
        ),
        (json!({"Description": "no alias"}), "MissingParameter"),
        (
            json!({"Alias": "sm2", "KeyUsage": "ASYMMETRIC_SIGN_VERIFY_SM2"}),
            "UnsupportedOperation.UnsupportedKeyUsageInCurrentRegion",
        ),
        (
            json!({"Alias": "u", "KeyUsage": "SIGN_VERIFY"}),
            "InvalidParameterValue.InvalidKeyUsage",
        ),
        (
            json!({"Alias": "t", "Type": 3}),
            "InvalidParameterValue.InvalidType",
        ),
        (json!({"Alias": "t", "Type": "1"}), "InvalidParameterValue"),
        (json!({"Alias": "c", "Colour": "red"}), "UnknownParameter"),
        (
            json!({"Alias": "h", "HsmClusterId": "cls-1"}),
            "InvalidParameterValue.InvalidHsmClusterId",
        ),
    ] {
        assert_eq!(tc.code("CreateKey", params.clone()), code, "{params}");
    }

    // DescribeKey by id and by alias; DescribeKeys.
    let m = tc.meta(&k1);
    assert_eq!(m["KeyId"], k1.as_str());
    assert_eq!(m["Alias"], "orders");
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["Origin"], "TENCENT_KMS");
    assert_eq!(m["KeyRotationEnabled"], false);
    assert_eq!(m["DeletionDate"], 0);
    assert_eq!(tc.meta("alias/orders")["KeyId"], k1.as_str());
    assert_eq!(
        tc.code(
            "DescribeKey",
            json!({"KeyId": uuid::Uuid::new_v4().to_string()})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.code("DescribeKey", json!({})), "MissingParameter");
    let r = tc.ok("DescribeKeys", json!({"KeyIds": [k1, k2]}));
    let metas = r["KeyMetadatas"].as_array().unwrap();
    assert_eq!(metas.len(), 2);
    assert_eq!(metas[1]["Alias"], "billing");
    assert_eq!(
        tc.code("DescribeKeys", json!({"KeyIds": [k1, k1]})),
        "InvalidParameterValue.DuplicatedKeyId"
    );
    assert_eq!(
        tc.code("DescribeKeys", json!({"KeyIds": []})),
        "InvalidParameterValue"
    );

    // ListKeys and ListKeyDetail.
    let r = tc.ok("ListKeys", json!({"Limit": 200}));
    assert_eq!(r["TotalCount"], 3, "{r}");
    let listed = ids(&r, "Keys");
    for k in [&k1, &k2, &signing] {
        assert!(listed.contains(k), "{k}");
    }
    let r = tc.ok("ListKeys", json!({"Offset": 1, "Limit": 1}));
    assert_eq!(ids(&r, "Keys").len(), 1);
    assert_eq!(r["TotalCount"], 3);
    assert_eq!(
        tc.ok("ListKeys", json!({"Role": 1}))["TotalCount"],
        0,
        "no keys of cloud products"
    );
    assert_eq!(
        tc.code("ListKeys", json!({"Limit": 201})),
        "InvalidParameterValue"
    );
    // Without KeyUsage, ListKeyDetail lists ENCRYPT_DECRYPT keys (as Tencent documents),
    // newest first (OrderType 0) or oldest first (1); keys made in the same second come in
    // key id order.
    let r = tc.ok("ListKeyDetail", json!({}));
    assert_eq!(r["TotalCount"], 2, "{r}");
    let mut symmetric = [k1.clone(), k2.clone()];
    symmetric.sort();
    let newest_first = ids(&r, "KeyMetadatas");
    let mut sorted = newest_first.clone();
    sorted.sort();
    assert_eq!(sorted, symmetric);
    let times: Vec<i64> = r["KeyMetadatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["CreateTime"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{r}");
    let r = tc.ok("ListKeyDetail", json!({"OrderType": 1}));
    let mut oldest_first = ids(&r, "KeyMetadatas");
    oldest_first.reverse();
    assert_eq!(oldest_first, newest_first);
    let r = tc.ok("ListKeyDetail", json!({"KeyUsage": "ALL"}));
    assert_eq!(r["TotalCount"], 3, "{r}");
    let r = tc.ok(
        "ListKeyDetail",
        json!({"KeyUsage": "ASYMMETRIC_SIGN_VERIFY_ECC"}),
    );
    assert_eq!(ids(&r, "KeyMetadatas"), [signing.as_str()]);
    let r = tc.ok("ListKeyDetail", json!({"SearchKeyAlias": "ord"}));
    assert_eq!(ids(&r, "KeyMetadatas"), [k1.as_str()]);
    assert_eq!(r["KeyMetadatas"][0]["Description"], "orders db");
    let r = tc.ok(
        "ListKeyDetail",
        json!({"TagFilters": [{"TagKey": "team", "TagValue": ["payments"]}]}),
    );
    assert_eq!(ids(&r, "KeyMetadatas"), [k1.as_str()]);
    let r = tc.ok("ListKeyDetail", json!({"Origin": "EXTERNAL"}));
    assert_eq!(r["TotalCount"], 0);
    assert_eq!(
        tc.code("ListKeyDetail", json!({"KeyState": 9})),
        "InvalidParameterValue"
    );

    // UpdateKeyDescription.
    tc.ok(
        "UpdateKeyDescription",
        json!({"KeyId": k1, "Description": "orders, v2"}),
    );
    assert_eq!(tc.meta(&k1)["Description"], "orders, v2");
    assert_eq!(
        tc.code(
            "UpdateKeyDescription",
            json!({"KeyId": k1, "Description": "x".repeat(1025)})
        ),
        "InvalidParameterValue"
    );

    // UpdateAlias renames the key's alias.
    tc.ok("UpdateAlias", json!({"KeyId": k1, "Alias": "orders-v2"}));
    assert_eq!(tc.meta(&k1)["Alias"], "orders-v2");
    assert_eq!(
        tc.code("DescribeKey", json!({"KeyId": "alias/orders"})),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.meta("alias/orders-v2")["KeyId"], k1.as_str());
    assert_eq!(
        tc.code("UpdateAlias", json!({"KeyId": k1, "Alias": "billing"})),
        "InvalidParameterValue.AliasAlreadyExists"
    );
    assert_eq!(
        tc.code("UpdateAlias", json!({"KeyId": k1, "Alias": "a/b"})),
        "InvalidParameterValue.InvalidAlias"
    );
    // A key made by the CLI has no alias until UpdateAlias gives it one.
    let cli_key = inst.create_key();
    assert_eq!(tc.meta(&cli_key)["Alias"], "");
    tc.ok(
        "UpdateAlias",
        json!({"KeyId": cli_key, "Alias": "from-cli"}),
    );
    assert_eq!(tc.meta(&cli_key)["Alias"], "from-cli");
    let aliases = inst.d.cli_json(&["alias", "list", "--key-id", &cli_key]);
    assert!(aliases.to_string().contains("alias/from-cli"), "{aliases}");

    // DisableKey, EnableKey, and the batch forms.
    let pt = json!({"KeyId": k1, "Plaintext": B64.encode(b"x")});
    tc.ok("DisableKey", json!({ "KeyId": k1 }));
    assert_eq!(tc.meta(&k1)["KeyState"], "Disabled");
    assert_eq!(
        tc.code("Encrypt", pt.clone()),
        "ResourceUnavailable.CmkDisabled"
    );
    tc.ok("EnableKey", json!({ "KeyId": k1 }));
    tc.ok("Encrypt", pt.clone());
    for action in ["EnableKey", "DisableKey"] {
        assert_eq!(
            tc.code(action, json!({"KeyId": uuid::Uuid::new_v4().to_string()})),
            "ResourceUnavailable.CmkNotFound"
        );
    }
    tc.ok("DisableKeys", json!({"KeyIds": [k1, k2]}));
    assert_eq!(tc.meta(&k2)["KeyState"], "Disabled");
    tc.ok("EnableKeys", json!({"KeyIds": [k1, k2]}));
    assert_eq!(tc.meta(&k1)["KeyState"], "Enabled");
    // Every key is checked before any changes.
    assert_eq!(
        tc.code(
            "DisableKeys",
            json!({"KeyIds": [k1, uuid::Uuid::new_v4().to_string()]})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.meta(&k1)["KeyState"], "Enabled");
    assert_eq!(
        tc.code("EnableKeys", json!({"KeyIds": "k1"})),
        "InvalidParameterValue"
    );

    // ScheduleKeyDeletion and CancelKeyDeletion.
    assert_eq!(
        tc.code(
            "ScheduleKeyDeletion",
            json!({"KeyId": k2, "PendingWindowInDays": 7})
        ),
        "ResourceUnavailable.CmkShouldBeDisabled"
    );
    for days in [6, 31] {
        assert_eq!(
            tc.code(
                "ScheduleKeyDeletion",
                json!({"KeyId": k2, "PendingWindowInDays": days})
            ),
            "InvalidParameter.InvalidPendingWindowInDays"
        );
    }
    tc.ok("DisableKey", json!({ "KeyId": k2 }));
    let r = tc.ok(
        "ScheduleKeyDeletion",
        json!({"KeyId": k2, "PendingWindowInDays": 7}),
    );
    assert_eq!(r["KeyId"], k2.as_str());
    let due = r["DeletionDate"].as_i64().unwrap();
    assert!((due - (now() + 7 * 86_400)).abs() < 60, "{r}");
    let m = tc.meta(&k2);
    assert_eq!(m["KeyState"], "PendingDelete");
    assert_eq!(m["DeletionDate"], due);
    assert_eq!(
        tc.code(
            "Encrypt",
            json!({"KeyId": k2, "Plaintext": B64.encode(b"x")})
        ),
        "ResourceUnavailable.KeyPendingDelete"
    );
    assert_eq!(
        tc.code("EnableKey", json!({ "KeyId": k2 })),
        "ResourceUnavailable.KeyPendingDelete"
    );
    let r = tc.ok("CancelKeyDeletion", json!({ "KeyId": k2 }));
    assert_eq!(r["KeyId"], k2.as_str());
    assert_eq!(tc.meta(&k2)["KeyState"], "Disabled");
    assert_eq!(
        tc.code("CancelKeyDeletion", json!({ "KeyId": k2 })),
        "ResourceUnavailable.CmkNotPendingDelete"
    );

    // Rotation.
    assert_eq!(
        tc.ok("GetKeyRotationStatus", json!({ "KeyId": k1 }))["KeyRotationEnabled"],
        false
    );
    tc.ok("EnableKeyRotation", json!({"KeyId": k1, "RotateDays": 30}));
    assert_eq!(
        tc.ok("GetKeyRotationStatus", json!({ "KeyId": k1 }))["KeyRotationEnabled"],
        true
    );
    let m = tc.meta(&k1);
    assert_eq!(m["KeyRotationEnabled"], true);
    assert_eq!(m["RotateDays"], 30);
    let next = m["NextRotateTime"].as_i64().unwrap();
    assert!((next - (now() + 30 * 86_400)).abs() < 60, "{m}");
    for days in [6, 366] {
        assert_eq!(
            tc.code(
                "EnableKeyRotation",
                json!({"KeyId": k1, "RotateDays": days})
            ),
            "InvalidParameterValue"
        );
    }
    tc.ok("DisableKeyRotation", json!({ "KeyId": k1 }));
    assert_eq!(tc.meta(&k1)["KeyRotationEnabled"], false);
    assert_eq!(
        tc.code(
            "GetKeyRotationStatus",
            json!({"KeyId": uuid::Uuid::new_v4().to_string()})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.code("DisableKeyRotation", json!({})), "MissingParameter");

    // RotateKey: a new primary version; what the old one encrypted still decrypts.
    let old = tc.ok("Encrypt", pt.clone())["CiphertextBlob"].clone();
    let before = tc.meta(&k1)["LastRotateTime"].as_i64().unwrap();
    let r = tc.ok("RotateKey", json!({ "KeyId": k1 }));
    assert!(!r["TaskId"].as_str().unwrap().is_empty(), "{r}");
    assert!(tc.meta(&k1)["LastRotateTime"].as_i64().unwrap() >= before);
    let versions = inst.d.cli_json(&["key", "versions", &k1]);
    assert!(
        versions.to_string().contains(r["TaskId"].as_str().unwrap()),
        "{versions}"
    );
    let opened = tc.ok("Decrypt", json!({ "CiphertextBlob": old }));
    assert_eq!(b64(&opened["Plaintext"]), b"x");
    assert_eq!(
        tc.code("RotateKey", json!({ "KeyId": k2 })),
        "ResourceUnavailable.CmkDisabled"
    );
}

#[test]
fn data_is_encrypted_with_encryption_contexts_and_data_keys() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key = admin(&inst, "tc-crypto");
    let mut tc = Tc::new(&gw, &inst, &key);
    let k1 = tc.create("one", "ENCRYPT_DECRYPT");
    let k2 = tc.create("two", "ENCRYPT_DECRYPT");

    // Encrypt and Decrypt: the context's field order does not matter, its content does.
    let r = tc.ok(
        "Encrypt",
        json!({"KeyId": k1, "Plaintext": B64.encode(b"card 4111"),
               "EncryptionContext": "{\"tenant\":\"42\",\"app\":\"shop\"}"}),
    );
    assert_eq!(r["KeyId"], k1.as_str());
    let blob = r["CiphertextBlob"].clone();
    let r = tc.ok(
        "Decrypt",
        json!({"CiphertextBlob": blob,
               "EncryptionContext": "{ \"app\": \"shop\", \"tenant\": \"42\" }"}),
    );
    assert_eq!(b64(&r["Plaintext"]), b"card 4111");
    assert_eq!(r["KeyId"], k1.as_str());
    // Another API of hkms decrypts it with the canonical context as its AAD.
    let out = inst.d.cli_json(&[
        "decrypt",
        "--ciphertext-blob",
        blob.as_str().unwrap(),
        "--aad",
        r#"{"app":"shop","tenant":"42"}"#,
    ]);
    assert_eq!(b64(&out["Plaintext"]), b"card 4111", "{out}");
    for (params, code) in [
        (
            json!({"CiphertextBlob": blob, "EncryptionContext": "{\"tenant\":\"43\",\"app\":\"shop\"}"}),
            "InvalidParameterValue.InvalidCiphertext",
        ),
        (
            json!({"CiphertextBlob": blob}),
            "InvalidParameterValue.InvalidCiphertext",
        ),
        (
            json!({"CiphertextBlob": "not base64!"}),
            "InvalidParameterValue.InvalidCiphertext",
        ),
        (
            json!({"CiphertextBlob": B64.encode(b"not a ciphertext of hkms")}),
            "InvalidParameterValue.InvalidCiphertext",
        ),
        (
            json!({"CiphertextBlob": blob, "EncryptionContext": "tenant=42"}),
            "InvalidParameterValue",
        ),
        (
            json!({"CiphertextBlob": blob, "EncryptionPublicKey": "-----BEGIN PUBLIC KEY-----"}),
            "UnsupportedOperation",
        ),
        (json!({}), "MissingParameter"),
    ] {
        assert_eq!(tc.code("Decrypt", params.clone()), code, "{params}");
    }
    for (params, code) in [
        (
            json!({"KeyId": k1, "Plaintext": "%%%"}),
            "InvalidParameterValue.InvalidPlaintext",
        ),
        (
            json!({"KeyId": k1, "Plaintext": B64.encode(vec![0u8; 4097])}),
            "InvalidParameterValue.InvalidPlaintext",
        ),
        (
            json!({"KeyId": k1, "Plaintext": B64.encode(b"x"), "EncryptionContext": "{\"a\":1}"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": "alias/nothing", "Plaintext": B64.encode(b"x")}),
            "ResourceUnavailable.CmkNotFound",
        ),
        (json!({"KeyId": k1}), "MissingParameter"),
    ] {
        assert_eq!(tc.code("Encrypt", params.clone()), code, "{params}");
    }
    let by_alias = tc.ok(
        "Encrypt",
        json!({"KeyId": "alias/two", "Plaintext": B64.encode(b"y")}),
    );
    assert_eq!(by_alias["KeyId"], k2.as_str());

    // GenerateDataKey.
    let r = tc.ok(
        "GenerateDataKey",
        json!({"KeyId": k1, "KeySpec": "AES_256", "EncryptionContext": "{\"f\":\"1\"}"}),
    );
    let data_key = b64(&r["Plaintext"]);
    assert_eq!(data_key.len(), 32);
    let opened = tc.ok(
        "Decrypt",
        json!({"CiphertextBlob": r["CiphertextBlob"], "EncryptionContext": "{\"f\":\"1\"}"}),
    );
    assert_eq!(b64(&opened["Plaintext"]), data_key);
    let r = tc.ok(
        "GenerateDataKey",
        json!({"KeyId": k1, "KeySpec": "AES_256", "NumberOfBytes": 7}),
    );
    assert_eq!(b64(&r["Plaintext"]).len(), 7, "NumberOfBytes wins");
    let r = tc.ok(
        "GenerateDataKey",
        json!({"KeyId": k1, "KeySpec": "AES_128"}),
    );
    assert_eq!(b64(&r["Plaintext"]).len(), 16);
    for (params, code) in [
        (json!({"KeyId": k1}), "MissingParameter"),
        (
            json!({"KeyId": k1, "NumberOfBytes": 1025}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": k1, "KeySpec": "AES_512"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": k1, "KeySpec": "AES_256", "IsHostedByKms": 1, "DataKeyName": "d"}),
            "UnsupportedOperation",
        ),
    ] {
        assert_eq!(tc.code("GenerateDataKey", params.clone()), code, "{params}");
    }

    // ReEncrypt to another key and context, and under the same key.
    let r = tc.ok(
        "ReEncrypt",
        json!({"CiphertextBlob": blob, "DestinationKeyId": k2,
               "SourceEncryptionContext": "{\"app\":\"shop\",\"tenant\":\"42\"}",
               "DestinationEncryptionContext": "{\"moved\":\"yes\"}"}),
    );
    assert_eq!(r["KeyId"], k2.as_str());
    assert_eq!(r["SourceKeyId"], k1.as_str());
    assert_eq!(r["ReEncrypted"], true);
    let opened = tc.ok(
        "Decrypt",
        json!({"CiphertextBlob": r["CiphertextBlob"], "EncryptionContext": "{\"moved\":\"yes\"}"}),
    );
    assert_eq!(b64(&opened["Plaintext"]), b"card 4111");
    assert_eq!(opened["KeyId"], k2.as_str());
    let r = tc.ok(
        "ReEncrypt",
        json!({"CiphertextBlob": blob,
               "SourceEncryptionContext": "{\"app\":\"shop\",\"tenant\":\"42\"}"}),
    );
    assert_eq!(r["KeyId"], k1.as_str(), "no DestinationKeyId: the same key");
    assert_ne!(r["CiphertextBlob"], blob);
    assert_eq!(
        tc.code(
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "DestinationKeyId": k2})
        ),
        "InvalidParameterValue.InvalidCiphertext"
    );

    // GenerateRandom.
    let r = tc.ok("GenerateRandom", json!({"NumberOfBytes": 1024}));
    assert_eq!(b64(&r["Plaintext"]).len(), 1024);
    for (params, code) in [
        (json!({"NumberOfBytes": 0}), "InvalidParameterValue"),
        (json!({"NumberOfBytes": 1025}), "InvalidParameterValue"),
        (json!({"NumberOfBytes": -1}), "InvalidParameterValue"),
        (json!({}), "MissingParameter"),
    ] {
        assert_eq!(tc.code("GenerateRandom", params.clone()), code, "{params}");
    }
}

fn public_key(tc: &mut Tc<'_>, key_id: &str) -> PKey<Public> {
    let r = tc.ok("GetPublicKey", json!({ "KeyId": key_id }));
    assert_eq!(r["KeyId"], key_id);
    let from_pem =
        PKey::public_key_from_pem(r["PublicKeyPem"].as_str().unwrap().as_bytes()).unwrap();
    let der = b64(&r["PublicKey"]);
    assert_eq!(from_pem.public_key_to_der().unwrap(), der);
    PKey::public_key_from_der(&der).unwrap()
}

fn verifies(
    pk: &PKey<Public>,
    md: MessageDigest,
    pss: bool,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let mut v = Verifier::new(md, pk).unwrap();
    if pss {
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
    }
    v.update(message).unwrap();
    v.verify(signature).unwrap_or(false)
}

#[test]
fn asymmetric_keys_sign_verify_and_decrypt() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key = admin(&inst, "tc-asym");
    let mut tc = Tc::new(&gw, &inst, &key);
    let ecc = tc.create("ecc", "ASYMMETRIC_SIGN_VERIFY_ECC");
    let p384 = tc.create("p384", "ASYMMETRIC_SIGN_VERIFY_ECDSA384");
    let rsa_sign = tc.create("rsa-sign", "ASYMMETRIC_SIGN_VERIFY_RSA_2048");
    let rsa_enc = tc.create("rsa-enc", "ASYMMETRIC_DECRYPT_RSA_2048");
    let aes = tc.create("aes", "ENCRYPT_DECRYPT");
    assert_eq!(
        tc.meta(&p384)["KeyUsage"],
        "ASYMMETRIC_SIGN_VERIFY_ECDSA384"
    );
    let message = b"release 1.2.3".to_vec();
    let digest = openssl::hash::hash(MessageDigest::sha256(), &message).unwrap();

    // Signatures made inside the HSMs verify with the public key, here and with OpenSSL.
    for (key_id, algorithm, md, pss) in [
        (&ecc, "ECC_P256_R1", MessageDigest::sha256(), false),
        (&p384, "ECDSA_SHA_384", MessageDigest::sha384(), false),
        (&rsa_sign, "RSA_PSS_SHA_256", MessageDigest::sha256(), true),
        (
            &rsa_sign,
            "RSA_PKCS1_SHA_256",
            MessageDigest::sha256(),
            false,
        ),
    ] {
        let pk = public_key(&mut tc, key_id);
        let r = tc.ok(
            "SignByAsymmetricKey",
            json!({"KeyId": key_id, "Algorithm": algorithm, "Message": B64.encode(&message)}),
        );
        let sig = b64(&r["Signature"]);
        assert!(verifies(&pk, md, pss, &message, &sig), "{algorithm}");
        let v = |tc: &mut Tc<'_>, m: &[u8]| {
            tc.ok(
                "VerifyByAsymmetricKey",
                json!({"KeyId": key_id, "Algorithm": algorithm, "Message": B64.encode(m),
                       "SignatureValue": B64.encode(&sig), "MessageType": "RAW"}),
            )["SignatureValid"]
                .clone()
        };
        assert_eq!(v(&mut tc, &message), true, "{algorithm}");
        assert_eq!(v(&mut tc, b"release 1.2.4"), false, "{algorithm}");
    }
    // DIGEST: the caller hashed the message.
    let r = tc.ok(
        "SignByAsymmetricKey",
        json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": B64.encode(digest),
               "MessageType": "DIGEST"}),
    );
    let pk = public_key(&mut tc, &ecc);
    assert!(verifies(
        &pk,
        MessageDigest::sha256(),
        false,
        &message,
        &b64(&r["Signature"])
    ));
    let r = tc.ok(
        "VerifyByAsymmetricKey",
        json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": B64.encode(digest),
               "MessageType": "DIGEST", "SignatureValue": r["Signature"]}),
    );
    assert_eq!(r["SignatureValid"], true);
    for (params, code) in [
        (
            json!({"KeyId": rsa_sign, "Algorithm": "ECC_P256_R1", "Message": B64.encode(&message)}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": ecc, "Algorithm": "SM2DSA", "Message": B64.encode(&message)}),
            "UnsupportedOperation",
        ),
        (
            json!({"KeyId": aes, "Algorithm": "ECC_P256_R1", "Message": B64.encode(&message)}),
            "InvalidParameterValue.InvalidKeyUsage",
        ),
        (
            json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": B64.encode(&message),
                   "MessageType": "HASH"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": B64.encode(b"short"),
                   "MessageType": "DIGEST"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": ecc, "Message": B64.encode(&message)}),
            "MissingParameter",
        ),
    ] {
        assert_eq!(
            tc.code("SignByAsymmetricKey", params.clone()),
            code,
            "{params}"
        );
    }
    assert_eq!(
        tc.code(
            "VerifyByAsymmetricKey",
            json!({"KeyId": ecc, "Algorithm": "ECC_P256_R1", "Message": B64.encode(&message),
                   "SignatureValue": "%%"}),
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        tc.code("GetPublicKey", json!({ "KeyId": aes })),
        "InvalidParameterValue.InvalidKeyUsage"
    );

    // AsymmetricRsaDecrypt of what the public key encrypted (OAEP with SHA-1: SoftHSM2
    // decrypts OAEP with SHA-1 only).
    let pk = public_key(&mut tc, &rsa_enc);
    let rsa = pk.rsa().unwrap();
    let mut ct = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(b"session key", &mut ct, Padding::PKCS1_OAEP)
        .unwrap();
    ct.truncate(n);
    let r = tc.ok(
        "AsymmetricRsaDecrypt",
        json!({"KeyId": rsa_enc, "Ciphertext": B64.encode(&ct), "Algorithm": "RSAES_OAEP_SHA_1"}),
    );
    assert_eq!(b64(&r["Plaintext"]), b"session key");
    assert_eq!(r["KeyId"], rsa_enc.as_str());
    for (params, code) in [
        (
            json!({"KeyId": rsa_enc, "Ciphertext": B64.encode(vec![7u8; 256]),
                   "Algorithm": "RSAES_OAEP_SHA_1"}),
            "FailedOperation.DecryptError",
        ),
        (
            json!({"KeyId": rsa_enc, "Ciphertext": B64.encode(&ct), "Algorithm": "RSAES_PKCS1_V1_5"}),
            "UnsupportedOperation",
        ),
        (
            json!({"KeyId": rsa_enc, "Ciphertext": B64.encode(&ct), "Algorithm": "RSA_OAEP"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": rsa_sign, "Ciphertext": B64.encode(&ct), "Algorithm": "RSAES_OAEP_SHA_1"}),
            "InvalidParameterValue.InvalidKeyUsage",
        ),
        (
            json!({"KeyId": rsa_enc, "Ciphertext": B64.encode(&ct)}),
            "MissingParameter",
        ),
    ] {
        assert_eq!(
            tc.code("AsymmetricRsaDecrypt", params.clone()),
            code,
            "{params}"
        );
    }
}

/// `material` encrypted with the import parameters' public key (RSAES-OAEP with SHA-1).
fn wrap(params: &Value, material: &[u8]) -> String {
    let pk = PKey::public_key_from_der(&b64(&params["PublicKey"])).unwrap();
    let rsa = pk.rsa().unwrap();
    let mut out = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(material, &mut out, Padding::PKCS1_OAEP)
        .unwrap();
    out.truncate(n);
    B64.encode(out)
}

#[test]
fn key_material_is_imported_and_deleted() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key = admin(&inst, "tc-import");
    let mut tc = Tc::new(&gw, &inst, &key);
    let r = tc.ok("CreateKey", json!({"Alias": "byok", "Type": 2}));
    let ext = r["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(r["KeyState"], "PendingImport");
    let m = tc.meta(&ext);
    assert_eq!(m["Origin"], "EXTERNAL");
    assert_eq!(m["ValidTo"], 0);
    let generated = tc.create("generated", "ENCRYPT_DECRYPT");
    assert_eq!(
        tc.code(
            "CreateKey",
            json!({"Alias": "ext-ecc", "Type": 2, "KeyUsage": "ASYMMETRIC_SIGN_VERIFY_ECC"})
        ),
        "UnsupportedOperation"
    );

    // GetParametersForImport.
    let params = tc.ok(
        "GetParametersForImport",
        json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
    );
    assert_eq!(params["KeyId"], ext.as_str());
    let valid_to = params["ParametersValidTo"].as_i64().unwrap();
    assert!((valid_to - (now() + 86_400)).abs() < 60, "{params}");
    for (p, code) in [
        (
            json!({"KeyId": generated, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
            "UnsupportedOperation.NotExternalCmk",
        ),
        (
            json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_PKCS1_V1_5", "WrappingKeySpec": "RSA_2048"}),
            "UnsupportedOperation",
        ),
        (
            json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_1024"}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_1"}),
            "MissingParameter",
        ),
    ] {
        assert_eq!(tc.code("GetParametersForImport", p.clone()), code, "{p}");
    }

    // ImportKeyMaterial: the key is Enabled and encrypts.
    let material = [0x42u8; 32];
    let valid = now() + 3 * 86_400;
    tc.ok(
        "ImportKeyMaterial",
        json!({"KeyId": ext, "ImportToken": params["ImportToken"],
               "EncryptedKeyMaterial": wrap(&params, &material), "ValidTo": valid}),
    );
    let m = tc.meta(&ext);
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["ValidTo"], valid);
    let blob = tc.ok(
        "Encrypt",
        json!({"KeyId": ext, "Plaintext": B64.encode(b"imported")}),
    )["CiphertextBlob"]
        .clone();
    let other = tc.ok(
        "GetParametersForImport",
        json!({"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
    );
    for (p, code) in [
        (
            json!({"KeyId": ext, "ImportToken": other["ImportToken"],
                   "EncryptedKeyMaterial": wrap(&other, &[0x43u8; 32])}),
            "InvalidParameterValue.MaterialNotMatch",
        ),
        (
            json!({"KeyId": ext, "ImportToken": other["ImportToken"],
                   "EncryptedKeyMaterial": wrap(&other, &[0x42u8; 16])}),
            "InvalidParameterValue.InvalidImportKeyMaterial",
        ),
        (
            json!({"KeyId": ext, "ImportToken": other["ImportToken"],
                   "EncryptedKeyMaterial": wrap(&params, &material)}),
            "InvalidParameterValue.InvalidImportKeyMaterial",
        ),
        (
            json!({"KeyId": ext, "ImportToken": "00".repeat(16),
                   "EncryptedKeyMaterial": wrap(&other, &material)}),
            "ResourceUnavailable.TokenExpired",
        ),
        (
            json!({"KeyId": ext, "ImportToken": other["ImportToken"],
                   "EncryptedKeyMaterial": wrap(&other, &material), "ValidTo": now() - 10}),
            "InvalidParameterValue",
        ),
        (
            json!({"KeyId": generated, "ImportToken": other["ImportToken"],
                   "EncryptedKeyMaterial": wrap(&other, &material)}),
            "UnsupportedOperation.NotExternalCmk",
        ),
    ] {
        assert_eq!(tc.code("ImportKeyMaterial", p.clone()), code, "{p}");
    }
    assert_eq!(
        tc.code("EnableKeyRotation", json!({ "KeyId": ext })),
        "UnsupportedOperation.ExternalCmkCanNotRotate"
    );
    assert_eq!(
        tc.code("RotateKey", json!({ "KeyId": ext })),
        "UnsupportedOperation.ExternalCmkCanNotRotate"
    );

    // DeleteImportedKeyMaterial: PendingImport until the same material comes back.
    tc.ok("DeleteImportedKeyMaterial", json!({ "KeyId": ext }));
    assert_eq!(tc.meta(&ext)["KeyState"], "PendingImport");
    assert_eq!(
        tc.code("Decrypt", json!({ "CiphertextBlob": blob })),
        "ResourceUnavailable.CmkStateNotSupport"
    );
    assert_eq!(
        tc.code("DeleteImportedKeyMaterial", json!({ "KeyId": generated })),
        "UnsupportedOperation.NotExternalCmk"
    );
    tc.ok(
        "ImportKeyMaterial",
        json!({"KeyId": ext, "ImportToken": other["ImportToken"],
               "EncryptedKeyMaterial": wrap(&other, &material)}),
    );
    let r = tc.ok("Decrypt", json!({ "CiphertextBlob": blob }));
    assert_eq!(b64(&r["Plaintext"]), b"imported");
}

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
