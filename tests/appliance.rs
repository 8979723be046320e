//! End-to-end tests: the real hkmsd on SoftHSM2 tokens, driven through gRPC and the CLI.

mod common;

use common::{code, create_key, Daemon, MemberSpec};
use hkms::client::Client;
use hkms::proto::*;

async fn encrypt(c: &mut Client, key_id: &str, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    c.crypto
        .encrypt(EncryptRequest {
            key_id: key_id.into(),
            plaintext: plaintext.to_vec(),
            aad: aad.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext_blob
}

async fn decrypt(c: &mut Client, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    c.crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            aad: aad.to_vec(),
        })
        .await
        .map(|r| r.into_inner().plaintext)
        .map_err(code)
}

#[tokio::test]
async fn round_trips_with_and_without_aad_and_refuses_altered_ciphertexts() {
    let d = Daemon::initialised(2);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;

    for (pt, aad) in [
        (&b"hello"[..], &b""[..]),
        (b"", b"ctx"),
        (&[0u8; 4096][..], b"tenant=42"),
    ] {
        let blob = encrypt(&mut c, &key, pt, aad).await;
        assert_eq!(blob.len(), 48 + pt.len() + 16, "header + data + tag");
        assert_eq!(decrypt(&mut c, &blob, aad).await.unwrap(), pt);
    }
    // Same input twice gives different ciphertexts (fresh IV each time).
    let a = encrypt(&mut c, &key, b"same", b"").await;
    let b = encrypt(&mut c, &key, b"same", b"").await;
    assert_ne!(a, b);
    assert_ne!(a[36..48], b[36..48], "IVs differ");

    let blob = encrypt(&mut c, &key, b"secret data", b"right").await;
    assert_eq!(
        decrypt(&mut c, &blob, b"wrong").await.unwrap_err(),
        "InvalidCiphertext"
    );
    assert_eq!(
        decrypt(&mut c, &blob, b"").await.unwrap_err(),
        "InvalidCiphertext"
    );
    // Flip one bit in every part: magic, version, algorithm, key version, IV, body, tag.
    for i in [0, 2, 3, 25, 40, 50, blob.len() - 1] {
        let mut t = blob.clone();
        t[i] ^= 0x01;
        let err = decrypt(&mut c, &t, b"right").await.unwrap_err();
        assert!(err == "InvalidCiphertext", "byte {i} flipped gave {err}");
    }
    // A flipped key-id byte names another key: unknown.
    let mut t = blob.clone();
    t[10] ^= 0x01;
    assert_eq!(
        decrypt(&mut c, &t, b"right").await.unwrap_err(),
        "KeyNotFound"
    );
    for len in [0, 10, 48, 63, blob.len() - 1] {
        let err = decrypt(&mut c, &blob[..len], b"right").await.unwrap_err();
        assert_eq!(err, "InvalidCiphertext", "truncated to {len}");
    }
    // Nothing above disturbed the key.
    assert_eq!(
        decrypt(&mut c, &blob, b"right").await.unwrap(),
        b"secret data"
    );
    // Tampered ciphertexts are the client's fault, not the HSM's: no member went down.
    let status = c
        .admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.members.iter().all(|m| m.state == "Up"), "{status:?}");
}

#[tokio::test]
async fn disabled_and_unknown_keys_are_refused() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    let blob = encrypt(&mut c, &key, b"x", b"").await;

    c.keys
        .disable_key(DisableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap();
    let err = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: key.clone(),
            plaintext: b"x".to_vec(),
            aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), "KeyDisabled");
    assert_eq!(
        decrypt(&mut c, &blob, b"").await.unwrap_err(),
        "KeyDisabled"
    );
    let desc = c
        .keys
        .describe_key(DescribeKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(desc.key_state, "Disabled");

    c.keys
        .enable_key(EnableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap();
    assert_eq!(decrypt(&mut c, &blob, b"").await.unwrap(), b"x");

    for (id, want) in [
        ("00000000-0000-4000-8000-000000000000", "KeyNotFound"),
        ("not-a-key", "KeyNotFound"),
        ("", "InvalidParameter"),
    ] {
        let err = c
            .crypto
            .encrypt(EncryptRequest {
                key_id: id.into(),
                plaintext: b"x".to_vec(),
                aad: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(code(err), want, "{id:?}");
        let err = c
            .keys
            .enable_key(EnableKeyRequest { key_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(code(err), want, "{id:?}");
    }
    let err = c
        .keys
        .create_key(CreateKeyRequest {
            key_spec: "RSA_1024".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), "UnsupportedKeySpec");
    let err = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: key.clone(),
            plaintext: vec![0; 2 * 1024 * 1024 + 1],
            aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidParameter");
}

#[tokio::test]
async fn data_keys_work_with_and_without_plaintext() {
    use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
    let d = Daemon::initialised(2);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;

    let dk = c
        .crypto
        .generate_data_key(GenerateDataKeyRequest {
            key_id: key.clone(),
            aad: b"app=billing".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(dk.key_id, key);
    // The blob decrypts to the data key.
    assert_eq!(
        decrypt(&mut c, &dk.ciphertext_blob, b"app=billing")
            .await
            .unwrap(),
        dk.plaintext
    );
    // The data key works as an AES-256-GCM key on the client side.
    let iv = [9u8; 12];
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        &dk.plaintext,
        Some(&iv),
        b"",
        b"payload",
        &mut tag,
    )
    .unwrap();
    let again = decrypt(&mut c, &dk.ciphertext_blob, b"app=billing")
        .await
        .unwrap();
    let pt = decrypt_aead(Cipher::aes_256_gcm(), &again, Some(&iv), b"", &ct, &tag).unwrap();
    assert_eq!(pt, b"payload");

    let small = c
        .crypto
        .generate_data_key(GenerateDataKeyRequest {
            key_id: key.clone(),
            key_spec: "AES_128".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(small.plaintext.len(), 16);

    let blind = c
        .crypto
        .generate_data_key_without_plaintext(GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: 48,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decrypt(&mut c, &blind.ciphertext_blob, b"")
            .await
            .unwrap()
            .len(),
        48
    );

    for bad in [
        GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: 1025,
            ..Default::default()
        },
        GenerateDataKeyRequest {
            key_id: key.clone(),
            key_spec: "AES_512".into(),
            ..Default::default()
        },
    ] {
        let err = c.crypto.generate_data_key(bad).await.unwrap_err();
        assert_eq!(code(err), "InvalidParameter");
    }
}

#[tokio::test]
async fn re_encrypt_moves_ciphertexts_between_keys() {
    let d = Daemon::initialised(2);
    let mut c = d.client().await;
    let k1 = create_key(&mut c).await;
    let k2 = create_key(&mut c).await;
    let blob = encrypt(&mut c, &k1, b"move me", b"old").await;

    let r = c
        .crypto
        .re_encrypt(ReEncryptRequest {
            source_ciphertext_blob: blob.clone(),
            source_aad: b"old".to_vec(),
            destination_key_id: k2.clone(),
            destination_aad: b"new".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.source_key_id.as_str(), r.key_id.as_str()),
        (k1.as_str(), k2.as_str())
    );
    assert_eq!(
        decrypt(&mut c, &r.ciphertext_blob, b"new").await.unwrap(),
        b"move me"
    );
    assert_eq!(
        decrypt(&mut c, &r.ciphertext_blob, b"old")
            .await
            .unwrap_err(),
        "InvalidCiphertext"
    );

    let wrong_aad = c
        .crypto
        .re_encrypt(ReEncryptRequest {
            source_ciphertext_blob: blob.clone(),
            source_aad: b"bad".to_vec(),
            destination_key_id: k2.clone(),
            destination_aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(wrong_aad), "InvalidCiphertext");

    c.keys
        .disable_key(DisableKeyRequest { key_id: k2.clone() })
        .await
        .unwrap();
    let disabled = c
        .crypto
        .re_encrypt(ReEncryptRequest {
            source_ciphertext_blob: blob,
            source_aad: b"old".to_vec(),
            destination_key_id: k2,
            destination_aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(disabled), "KeyDisabled");
}

#[tokio::test]
async fn random_bytes_come_in_the_asked_lengths() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let mut seen = Vec::new();
    for len in [1u32, 32, 1024] {
        let r = c
            .crypto
            .generate_random(GenerateRandomRequest { length: len })
            .await
            .unwrap()
            .into_inner()
            .random;
        assert_eq!(r.len(), len as usize);
        seen.push(r);
    }
    let again = c
        .crypto
        .generate_random(GenerateRandomRequest { length: 32 })
        .await
        .unwrap()
        .into_inner()
        .random;
    assert_ne!(again, seen[1]);
    for len in [0u32, 1025] {
        let err = c
            .crypto
            .generate_random(GenerateRandomRequest { length: len })
            .await
            .unwrap_err();
        assert_eq!(code(err), "InvalidParameter");
    }
}

#[tokio::test]
async fn keys_survive_restart_and_crash() {
    let mut d = Daemon::initialised(2);
    let mut made = Vec::new();
    {
        let mut c = d.client().await;
        for i in 0..5 {
            let k = create_key(&mut c).await;
            let pt = format!("message {i}").into_bytes();
            made.push((k.clone(), encrypt(&mut c, &k, &pt, b"").await, pt));
        }
        c.keys
            .disable_key(DisableKeyRequest {
                key_id: made[0].0.clone(),
            })
            .await
            .unwrap();
    }
    d.restart();
    {
        let mut c = d.client().await;
        assert_eq!(decrypt(&mut c, &made[1].1, b"").await.unwrap(), made[1].2);
        assert_eq!(
            decrypt(&mut c, &made[0].1, b"").await.unwrap_err(),
            "KeyDisabled"
        );
        // A key created and acknowledged just before a crash is there after it.
        let k = create_key(&mut c).await;
        made.push((
            k.clone(),
            encrypt(&mut c, &k, b"last", b"").await,
            b"last".to_vec(),
        ));
        c.keys
            .enable_key(EnableKeyRequest {
                key_id: made[0].0.clone(),
            })
            .await
            .unwrap();
    }
    d.stop(true);
    d.spawn().unwrap();
    let mut c = d.client().await;
    for (key, blob, pt) in &made {
        assert_eq!(&decrypt(&mut c, blob, b"").await.unwrap(), pt, "key {key}");
    }
    let list = c
        .keys
        .list_keys(ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Every key made here, and besides them only hkmsd's own (the audit trail's signing key).
    for (key, ..) in &made {
        assert!(list.keys.iter().any(|k| &k.key_id == key), "{key} listed");
    }
    assert_eq!(made.len(), 6);
    for other in list
        .keys
        .iter()
        .filter(|k| !made.iter().any(|(m, ..)| *m == k.key_id))
    {
        let d = c
            .keys
            .describe_key(DescribeKeyRequest {
                key_id: other.key_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            d.key_metadata.unwrap().internal,
            "{} is hkmsd's own",
            other.key_id
        );
    }
    let status = c
        .admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.initialized);
}

#[tokio::test]
async fn every_member_decrypts_what_another_encrypted() {
    let members = [
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
    ];
    let mut d = Daemon::start_with(&members, &[]);
    d.init_ok();
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    let mut blobs = Vec::new();
    for i in 0..4u8 {
        blobs.push((vec![i; 10], encrypt(&mut c, &key, &[i; 10], b"").await));
    }
    // Round-robin spread the work over both members.
    let status = c
        .admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.members.iter().all(|m| m.operations > 0),
        "{status:?}"
    );
    drop(c);

    // Only one member at a time: each decrypts everything, and its own encryptions decrypt
    // on the other.
    let mut from_single = Vec::new();
    for only in &members {
        d.stop(false);
        d.write_config(std::slice::from_ref(only));
        d.spawn().unwrap();
        let mut c = d.client().await;
        for (pt, blob) in &blobs {
            assert_eq!(
                &decrypt(&mut c, blob, b"").await.unwrap(),
                pt,
                "on {}",
                only.name
            );
        }
        from_single.push(encrypt(&mut c, &key, only.name.as_bytes(), b"").await);
    }
    d.stop(false);
    d.write_config(&members[..1]);
    d.spawn().unwrap();
    let mut c = d.client().await;
    assert_eq!(
        decrypt(&mut c, &from_single[1], b"").await.unwrap(),
        b"hsm-1"
    );
}

#[tokio::test]
async fn list_keys_pages() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let mut created = Vec::new();
    for _ in 0..12 {
        created.push(create_key(&mut c).await);
    }
    let mut listed = Vec::new();
    for page in 1..=3 {
        let r = c
            .keys
            .list_keys(ListKeysRequest {
                page_number: page,
                page_size: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.total_count, 12);
        assert_eq!(r.keys.len(), if page < 3 { 5 } else { 2 });
        listed.extend(r.keys.into_iter().map(|k| k.key_id));
    }
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
    let err = c
        .keys
        .list_keys(ListKeysRequest {
            page_number: 1,
            page_size: 101,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidParameter");
}

#[test]
fn cli_covers_the_operations_with_json_field_names() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let b64 = base64::engine::general_purpose::STANDARD;
    let d = Daemon::start(2);
    let status = d.cli_json(&["status"]);
    assert_eq!(status["Initialized"], false);
    assert_eq!(d.cli_error(&["key", "create"]), "NotInitialized");
    // Two members need the SO PIN to copy the domain key.
    assert_eq!(d.cli_error(&["init"]), "InvalidParameter");
    let init = d.init_ok();
    assert!(init["InstanceId"].as_str().unwrap().starts_with("hkms-"));
    assert_eq!(init["Members"].as_array().unwrap().len(), 2);
    assert_eq!(
        d.cli_error(&["init", "--so-pin-file", d.so_pin_file().to_str().unwrap()]),
        "AlreadyInitialized"
    );

    let created = d.cli_json(&["key", "create", "--description", "orders db"]);
    let meta = &created["KeyMetadata"];
    let key = meta["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(meta["KeySpec"], "Aliyun_AES_256");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["ProtectionLevel"], "HSM");
    assert_eq!(meta["Description"], "orders db");
    let described = d.cli_json(&["key", "describe", &key]);
    assert_eq!(described["KeyMetadata"]["KeyId"], key.as_str());
    let list = d.cli_json(&["key", "list"]);
    assert_eq!(list["Keys"][0]["KeyId"], key.as_str());
    assert_eq!(list["TotalCount"], 1);

    // Plaintext from stdin, AAD as text.
    let mut args = vec!["--json", "encrypt", "--key-id", &key, "--aad", "ctx"];
    let out = d.cli_stdin(&args, b"from stdin");
    assert!(out.status.success());
    let enc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let blob = enc["CiphertextBlob"].as_str().unwrap().to_owned();
    assert_eq!(enc["KeyId"], key.as_str());
    assert!(enc["KeyVersionId"].is_string());
    // Without --json, decrypt writes the raw plaintext.
    let out = d.cli(&["decrypt", "--ciphertext-blob", &blob, "--aad", "ctx"]);
    assert_eq!(out.stdout, b"from stdin");
    // --output replaces a file that others could read with one only its owner reads.
    let written = d.dir.path().join("plaintext");
    std::fs::write(&written, "old, longer content").unwrap();
    std::fs::set_permissions(&written, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = written.to_str().unwrap();
    let out = d.cli(&[
        "decrypt",
        "--ciphertext-blob",
        &blob,
        "--aad",
        "ctx",
        "--output",
        file,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&written).unwrap(), b"from stdin");
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dec = d.cli_json(&["decrypt", "--ciphertext-blob", &blob, "--aad", "ctx"]);
    assert_eq!(
        b64.decode(dec["Plaintext"].as_str().unwrap()).unwrap(),
        b"from stdin"
    );
    assert_eq!(
        d.cli_error(&["decrypt", "--ciphertext-blob", &blob, "--aad", "other"]),
        "InvalidCiphertext"
    );
    assert_eq!(
        d.cli_error(&["decrypt", "--ciphertext-blob", "!!not base64!!"]),
        "InvalidParameter"
    );

    let gdk = d.cli_json(&["generate-data-key", "--key-id", &key]);
    let dk = b64.decode(gdk["Plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(dk.len(), 32);
    let dec = d.cli_json(&[
        "decrypt",
        "--ciphertext-blob",
        gdk["CiphertextBlob"].as_str().unwrap(),
    ]);
    assert_eq!(b64.decode(dec["Plaintext"].as_str().unwrap()).unwrap(), dk);
    let blind = d.cli_json(&["generate-data-key-without-plaintext", "--key-id", &key]);
    assert!(blind.get("Plaintext").is_none());

    let k2 = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let re = d.cli_json(&[
        "re-encrypt",
        "--ciphertext-blob",
        &blob,
        "--source-aad",
        "ctx",
        "--destination-key-id",
        &k2,
    ]);
    assert_eq!(re["SourceKeyId"], key.as_str());
    assert_eq!(re["KeyId"], k2.as_str());
    let out = d.cli(&[
        "decrypt",
        "--ciphertext-blob",
        re["CiphertextBlob"].as_str().unwrap(),
    ]);
    assert_eq!(out.stdout, b"from stdin");

    let rnd = d.cli_json(&["generate-random", "--length", "24"]);
    assert_eq!(
        b64.decode(rnd["Random"].as_str().unwrap()).unwrap().len(),
        24
    );
    assert_eq!(
        d.cli_error(&["generate-random", "--length", "0"]),
        "InvalidParameter"
    );

    assert_eq!(
        d.cli_json(&["key", "disable", &key])["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    args[1] = "encrypt";
    assert_eq!(
        d.cli_error(&["encrypt", "--key-id", &key, "--plaintext", "x"]),
        "KeyDisabled"
    );
    assert_eq!(
        d.cli_json(&["key", "enable", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );

    // Text output is for people: labelled fields.
    let out = d.cli(&["key", "describe", &key]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("KeyState:          Enabled"));
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hsm-0") && text.contains("hsm-1") && text.contains("Up"));
}

#[test]
fn cli_reports_a_missing_daemon_clearly() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["--socket", "/nonexistent/hkmsd.sock", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no hkmsd socket at /nonexistent/hkmsd.sock"),
        "{err}"
    );
}
