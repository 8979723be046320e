//! Data key pairs over gRPC on a real SoftHSM2 member: each is a real pair (OpenSSL signs
//! with the private key, the openssl CLI verifies with the public key), its private key
//! comes back from Decrypt with the AAD, and wrong master keys and specs give stable codes.

mod common;
#[path = "support/openssl_cli.rs"]
mod openssl_cli;

use common::{code, create_key_of};
use hkms::proto::*;
use openssl_cli::{openssl, openssl_verifies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_key_pairs_are_real_pairs_encrypted_under_the_master_key() {
    let d = common::Daemon::initialised(1);
    let mut c = d.client().await;
    let dir = d.path("dkp");
    std::fs::create_dir_all(&dir).unwrap();
    let cmk = common::create_key(&mut c).await;
    for (spec, format) in [("RSA_2048", "PEM"), ("EC_P256K", "DER"), ("EC_P384", "")] {
        let r = c
            .asymmetric
            .generate_data_key_pair(GenerateDataKeyPairRequest {
                key_id: cmk.clone(),
                key_pair_spec: spec.into(),
                key_format: format.into(),
                aad: b"ctx".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.key_pair_spec, spec);
        let (private, public) = if r.key_format == "DER" {
            (
                openssl::pkey::PKey::private_key_from_pkcs8(&r.private_key_plaintext).unwrap(),
                openssl::pkey::PKey::public_key_from_der(&r.public_key).unwrap(),
            )
        } else {
            assert!(String::from_utf8_lossy(&r.private_key_plaintext)
                .starts_with("-----BEGIN PRIVATE KEY-----"));
            (
                openssl::pkey::PKey::private_key_from_pem(&r.private_key_plaintext).unwrap(),
                openssl::pkey::PKey::public_key_from_pem(&r.public_key).unwrap(),
            )
        };
        assert!(
            private.public_eq(&public),
            "{spec}: the public key is the private key's"
        );
        // OpenSSL signs with the private key; the CLI verifies with the public key.
        let (key_file, pub_file) = (dir.join("k.pem"), dir.join("p.pem"));
        std::fs::write(&key_file, private.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(&pub_file, public.public_key_to_pem().unwrap()).unwrap();
        let (msg, sig) = (dir.join("m"), dir.join("s"));
        std::fs::write(&msg, b"payload").unwrap();
        let (ok, out) = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            key_file.to_str().unwrap(),
            "-out",
            sig.to_str().unwrap(),
            msg.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let sig = std::fs::read(&sig).unwrap();
        openssl_verifies(&dir, &pub_file, "X_SHA_256", b"payload", false, &sig);
        // The ciphertext decrypts (with the AAD) to the same private key.
        let opened = c
            .crypto
            .decrypt(DecryptRequest {
                ciphertext_blob: r.private_key_ciphertext_blob.clone(),
                aad: b"ctx".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opened.plaintext, r.private_key_plaintext);
    }
    let r = c
        .asymmetric
        .generate_data_key_pair_without_plaintext(GenerateDataKeyPairRequest {
            key_id: cmk.clone(),
            key_pair_spec: "EC_P256".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.private_key_plaintext.is_empty());
    assert!(!r.private_key_ciphertext_blob.is_empty());
    let ec = create_key_of(&mut c, "EC_P256", "").await;
    for (key, spec, want) in [
        (&ec, "EC_P256", "IncorrectKeyUsage"),
        (&cmk, "RSA_1024", "UnsupportedKeySpec"),
        (&cmk, "HMAC_SHA_256", "UnsupportedKeySpec"),
    ] {
        let e = c
            .asymmetric
            .generate_data_key_pair(GenerateDataKeyPairRequest {
                key_id: key.clone(),
                key_pair_spec: spec.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(code(e), want, "{spec}");
    }
}
