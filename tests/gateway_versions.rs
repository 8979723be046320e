//! The instance API across key versions: after a rotation, plain Encrypt and Decrypt keep
//! using the key's first version (their ciphertexts carry no version), the Advance
//! operations use the primary version, and both kinds of older ciphertexts still decrypt,
//! including Decrypt by the migration key version header (real hkmsd on SoftHSM2, the
//! gateway on loopback, signed raw requests over TLS).

mod common;
#[path = "support/gateway.rs"]
mod support;

use hkms::instance_api as api;
use prost::Message;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

const MIGRATION: &str = "x-kms-migrationkeyversionid";
type Conn = openssl::ssl::SslStream<std::net::TcpStream>;

fn call(conn: &mut Conn, ck: &ClientKeyFiles, api_name: &str, body: Vec<u8>) -> support::Answer {
    let a = post(conn, "/", &ck.signed(api_name, &body), &body);
    assert_eq!(a.status, 200, "{api_name}: {:?}", a.failure());
    a
}

fn rotate(inst: &Instance, key: &str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = inst.d.client().await;
        c.keys
            .create_key_version(hkms::proto::CreateKeyVersionRequest { key_id: key.into() })
            .await
            .unwrap()
            .into_inner()
            .key_version
            .unwrap()
            .key_version_id
    })
}

#[test]
fn plain_operations_keep_the_first_version_and_advance_ones_follow_rotation() {
    let inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("versions", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);
    let aad = b"tenant=9".to_vec();

    let encrypt = |conn: &mut Conn, text: &[u8]| {
        let a = call(
            conn,
            &ck,
            "Encrypt",
            api::EncryptRequest {
                key_id: key.clone(),
                plaintext: text.to_vec(),
                aad: aad.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let version = a.header(MIGRATION).unwrap().to_owned();
        (
            api::EncryptResponse::decode(a.body.as_slice()).unwrap(),
            version,
        )
    };
    let advance_encrypt = |conn: &mut Conn, text: &[u8]| {
        let a = call(
            conn,
            &ck,
            "AdvanceEncrypt",
            api::AdvanceEncryptRequest {
                key_id: key.clone(),
                plaintext: text.to_vec(),
                aad: aad.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        api::AdvanceEncryptResponse::decode(a.body.as_slice()).unwrap()
    };

    let (plain_before, v1) = encrypt(&mut conn, b"plain before");
    let advance_before = advance_encrypt(&mut conn, b"advance before");
    assert_eq!(advance_before.key_version_id, v1);

    let v2 = rotate(&inst, &key);
    assert_ne!(v2, v1);

    let (plain_after, version_after) = encrypt(&mut conn, b"plain after");
    assert_eq!(version_after, v1, "plain Encrypt keeps the first version");
    let advance_after = advance_encrypt(&mut conn, b"advance after");
    assert_eq!(
        advance_after.key_version_id, v2,
        "AdvanceEncrypt follows rotation"
    );

    // Every ciphertext decrypts: bare ones by KeyId and by the migration header.
    for (enc, text) in [
        (&plain_before, "plain before"),
        (&plain_after, "plain after"),
    ] {
        let body = api::DecryptRequest {
            ciphertext_blob: enc.ciphertext_blob.clone(),
            key_id: key.clone(),
            iv: enc.iv.clone(),
            aad: aad.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let a = call(&mut conn, &ck, "Decrypt", body);
        let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
        assert_eq!(dec.plaintext, text.as_bytes());

        let body = api::DecryptRequest {
            ciphertext_blob: enc.ciphertext_blob.clone(),
            iv: enc.iv.clone(),
            aad: aad.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let headers = ck.signed_with("Decrypt", &body, &[(MIGRATION, &v1)]);
        let a = post(&mut conn, "/", &headers, &body);
        assert_eq!(a.status, 200, "{:?}", a.failure());
        let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
        assert_eq!(dec.plaintext, text.as_bytes());
    }
    for (enc, version, text) in [
        (&advance_before, &v1, "advance before"),
        (&advance_after, &v2, "advance after"),
    ] {
        let a = call(
            &mut conn,
            &ck,
            "AdvanceDecrypt",
            api::AdvanceDecryptRequest {
                ciphertext_blob: enc.ciphertext_blob.clone(),
                aad: aad.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let dec = api::AdvanceDecryptResponse::decode(a.body.as_slice()).unwrap();
        assert_eq!(dec.plaintext, text.as_bytes());
        assert_eq!(&dec.key_version_id, version);
    }

    // AdvanceGenerateDataKey follows rotation too.
    let a = call(
        &mut conn,
        &ck,
        "AdvanceGenerateDataKey",
        api::AdvanceGenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: 32,
            aad: aad.clone(),
        }
        .encode_to_vec(),
    );
    let dk = api::AdvanceGenerateDataKeyResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(dk.key_version_id, v2);
    let a = call(
        &mut conn,
        &ck,
        "AdvanceDecrypt",
        api::AdvanceDecryptRequest {
            ciphertext_blob: dk.ciphertext_blob.clone(),
            aad: aad.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let dec = api::AdvanceDecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(dec.plaintext, dk.plaintext);
}
