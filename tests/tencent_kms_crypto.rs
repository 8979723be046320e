//! Tencent's KMS API (`2019-01-18`), cryptography, through a real gateway with requests
//! signed by the test's own TC3 code: Encrypt, Decrypt, GenerateDataKey, ReEncrypt,
//! GenerateRandom, the asymmetric actions (GetPublicKey, SignByAsymmetricKey,
//! VerifyByAsymmetricKey, AsymmetricRsaDecrypt) and imported key material, each action's
//! happy path and at least one refusal with its Tencent code.

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
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use serde_json::json;
use support::{GatewayProc, Instance};
use tencent::now;
use tencent_kms::{admin, b64, wrap, Tc};

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
