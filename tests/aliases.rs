//! `alias/<name>` is accepted wherever a key id is, over gRPC and in the CLI, and an alias
//! that names nothing is a missing key.

mod common;

use common::{code, Daemon};
use hkms::proto::*;

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_cli_takes_an_alias_wherever_it_takes_a_key_id() {
    let d = Daemon::initialised(1);
    let key = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);
    let other = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);
    d.cli_json(&[
        "alias",
        "create",
        "--alias-name",
        "alias/orders",
        "--key-id",
        &key,
    ]);
    // An alias can name the key of a new alias, too.
    d.cli_json(&[
        "alias",
        "create",
        "--alias-name",
        "alias/orders-2",
        "--key-id",
        "alias/orders",
    ]);
    d.cli_json(&[
        "alias",
        "create",
        "--alias-name",
        "alias/archive",
        "--key-id",
        &other,
    ]);

    let described = d.cli_json(&["key", "describe", "alias/orders"]);
    assert_eq!(s(&described["KeyMetadata"]["KeyId"]), key);
    let listed = d.cli_json(&["alias", "list", "--key-id", "alias/orders-2"]);
    assert_eq!(listed["Aliases"].as_array().unwrap().len(), 2, "{listed}");

    let enc = d.cli_json(&[
        "encrypt",
        "--key-id",
        "alias/orders",
        "--plaintext",
        "by alias",
    ]);
    assert_eq!(s(&enc["KeyId"]), key);
    let blob = s(&enc["CiphertextBlob"]);
    let dk = d.cli_json(&["generate-data-key", "--key-id", "alias/orders-2"]);
    assert_eq!(s(&dk["KeyId"]), key);
    let dk = d.cli_json(&[
        "generate-data-key-without-plaintext",
        "--key-id",
        "alias/orders",
    ]);
    assert_eq!(s(&dk["KeyId"]), key);
    let moved = d.cli_json(&[
        "re-encrypt",
        "--ciphertext-blob",
        &blob,
        "--destination-key-id",
        "alias/archive",
    ]);
    assert_eq!(s(&moved["KeyId"]), other);
    let back = d.cli_json(&["decrypt", "--ciphertext-blob", &s(&moved["CiphertextBlob"])]);
    assert_eq!(s(&back["KeyId"]), other);

    // Disable and enable by alias.
    d.cli_json(&["key", "disable", "alias/orders"]);
    assert_eq!(
        d.cli_error(&["encrypt", "--key-id", &key, "--plaintext", "x"]),
        "KeyDisabled"
    );
    d.cli_json(&["key", "enable", "alias/orders-2"]);
    d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "x"]);

    // An alias that names nothing is a missing key, everywhere.
    for args in [
        &["encrypt", "--key-id", "alias/nothing", "--plaintext", "x"][..],
        &["generate-data-key", "--key-id", "alias/nothing"],
        &["key", "describe", "alias/nothing"],
        &["key", "disable", "alias/nothing"],
        &[
            "re-encrypt",
            "--ciphertext-blob",
            &blob,
            "--destination-key-id",
            "alias/nothing",
        ],
    ] {
        assert_eq!(d.cli_error(args), "KeyNotFound", "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_takes_an_alias_wherever_it_takes_a_key_id() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = common::create_key(&mut c).await;
    c.keys
        .create_alias(CreateAliasRequest {
            alias_name: "alias/payroll".into(),
            key_id: key.clone(),
        })
        .await
        .unwrap();
    let sealed = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: "alias/payroll".into(),
            plaintext: b"salary".to_vec(),
            aad: b"2026".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sealed.key_id, key);
    let opened = c
        .crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: sealed.ciphertext_blob.clone(),
            aad: b"2026".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"salary");
    let dk = c
        .crypto
        .generate_data_key(GenerateDataKeyRequest {
            key_id: "alias/payroll".into(),
            number_of_bytes: 32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dk.key_id, key);
    let re = c
        .crypto
        .re_encrypt(ReEncryptRequest {
            source_ciphertext_blob: sealed.ciphertext_blob,
            source_aad: b"2026".to_vec(),
            destination_key_id: "alias/payroll".into(),
            destination_aad: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(re.key_id, key);
    let meta = c
        .keys
        .describe_key(DescribeKeyRequest {
            key_id: "alias/payroll".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_id, key);
    let err = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: "alias/unknown".into(),
            plaintext: b"x".to_vec(),
            aad: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), "KeyNotFound");
}
