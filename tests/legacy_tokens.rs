//! Key versions and ciphertexts written before mode keys existed keep working: a version-0
//! token and ciphertexts made the way earlier releases made them (directly with the
//! version's material, through PKCS#11 on the same SoftHSM2 token) are placed in a stopped
//! instance; at start-up the token is migrated, and every old ciphertext still decrypts
//! while new ones use the new material.
//!
//! One test per process: the PKCS#11 library is initialised once per process with the
//! token directory of that moment.

mod common;
#[path = "support/gcm_attack.rs"]
mod gcm_attack;
#[path = "support/gateway.rs"]
mod support;

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;
use hkms::config::MemberConfig;
use hkms::hsm::Member;
use hkms::instance_api as api;
use hkms::store::records::{KeyRecord, KeyTokenRecord};
use hkms::store::Store;
use prost::Message;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

const KEY: &str = "6b6b6b6b-0000-4000-8000-000000000001";
const VERSION: &str = "76767676-0000-4000-8000-000000000001";

/// What an earlier release stored and handed out for one key version.
struct Legacy {
    token: KeyTokenRecord,
    /// A self-describing AES-GCM blob (format 1) and its AAD.
    gcm_blob: (Vec<u8>, Vec<u8>),
    /// A self-describing AES-CBC blob (format 1, PKCS#7).
    cbc_blob: Vec<u8>,
    /// A bare AES-GCM ciphertext (instance API Encrypt): iv, aad, ciphertext || tag.
    bare_gcm: (Vec<u8>, Vec<u8>, Vec<u8>),
    /// A bare AES-CBC ciphertext without padding: iv, ciphertext.
    bare_cbc: (Vec<u8>, Vec<u8>),
}

const SECRET: &[u8] = b"written before the upgrade, 48 bytes long......!";

fn gcm(s: &Session, key: cryptoki::object::ObjectHandle, iv: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut iv = iv.to_vec();
    let params = GcmParams::new(&mut iv, aad, 128.into()).unwrap();
    s.encrypt(&Mechanism::AesGcm(params), key, SECRET).unwrap()
}

fn header(alg: u8, iv: &[u8]) -> Vec<u8> {
    let mut h = b"hk\x01".to_vec();
    h.push(alg);
    h.extend_from_slice(uuid::Uuid::parse_str(KEY).unwrap().as_bytes());
    h.extend_from_slice(uuid::Uuid::parse_str(VERSION).unwrap().as_bytes());
    h.extend_from_slice(iv);
    h
}

/// Makes a version the way earlier releases did: material that encrypts and decrypts in
/// every mode, wrapped under the domain key, bound with an AES block under itself.
fn write_legacy(m: &Member, domain_key_id: &str) -> Legacy {
    let s = m.open_session().unwrap();
    let dk = m.domain_key().unwrap();
    let k = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, dk, k).unwrap();
    let context = format!("hkms key token v1\0{KEY}\0{VERSION}");
    let digest = openssl::sha::sha256(context.as_bytes());
    let binding = s.encrypt(&Mechanism::AesEcb, k, &digest[..16]).unwrap();

    let gcm_iv = [1u8; 12];
    let h = header(1, &gcm_iv);
    let aad = b"order=7".to_vec();
    let mut blob = h.clone();
    blob.extend(gcm(&s, k, &gcm_iv, &[h, aad.clone()].concat()));

    let cbc_iv = [2u8; 16];
    let mut cbc_blob = header(2, &cbc_iv);
    cbc_blob.extend(s.encrypt(&Mechanism::AesCbcPad(cbc_iv), k, SECRET).unwrap());

    let bare_iv = vec![3u8; 12];
    let bare_aad = b"tenant=9".to_vec();
    let bare = gcm(&s, k, &bare_iv, &bare_aad);
    let bare_cbc_iv = [4u8; 16];
    let bare_cbc = s
        .encrypt(&Mechanism::AesCbc(bare_cbc_iv), k, SECRET)
        .unwrap();
    s.destroy_object(k).unwrap();
    Legacy {
        token: KeyTokenRecord {
            key_id: KEY.into(),
            key_version_id: VERSION.into(),
            creation_date: "2026-01-01T00:00:00Z".into(),
            domain_key_id: domain_key_id.into(),
            wrap_mechanism: 0x210A,
            wrapped_key: wrapped,
            binding,
            key_bits: 256,
            token_version: 0,
            ..Default::default()
        },
        gcm_blob: (blob, aad),
        cbc_blob,
        bare_gcm: (bare_iv, bare_aad, bare),
        bare_cbc: (bare_cbc_iv.to_vec(), bare_cbc),
    }
}

fn call<R: Message + Default>(
    conn: &mut openssl::ssl::SslStream<std::net::TcpStream>,
    ck: &ClientKeyFiles,
    api_name: &str,
    req: impl Message,
) -> R {
    let body = req.encode_to_vec();
    let answer = post(conn, "/", &ck.signed(api_name, &body), &body);
    assert_eq!(answer.status, 200, "{api_name}: {:?}", answer.failure());
    R::decode(answer.body.as_slice()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_and_ciphertexts_from_before_mode_keys_keep_working() {
    gcm_attack::check_attack_on_a_shared_key();
    let mut inst = Instance::new();
    let status = inst.d.cli_json(&["status"]);
    let dk_id = status["DomainKeyId"].as_str().unwrap().to_owned();
    inst.d.stop(false);

    // An earlier release's key, written into the stopped instance.
    std::env::set_var("SOFTHSM2_CONF", &inst.d.tokens.conf);
    let m = Member::new(&MemberConfig {
        name: "hsm-0".into(),
        module: common::SOFTHSM_MODULE.into(),
        token_label: Some("m0".into()),
        token_serial: None,
        pin_file: inst.d.path("pin-hsm-0"),
        profile: "softhsm2".into(),
        max_sessions: 2,
        inline_calls: None,
    });
    m.connect(Some(&dk_id)).unwrap();
    let legacy = write_legacy(&m, &dk_id);
    {
        let store = hkms::store::SledStore::open(&inst.d.path("store")).unwrap();
        let record = KeyRecord {
            key_id: KEY.into(),
            description: "made by an earlier release".into(),
            key_spec: "Aliyun_AES_256".into(),
            key_usage: "ENCRYPT/DECRYPT".into(),
            key_state: "Enabled".into(),
            creation_date: "2026-01-01T00:00:00Z".into(),
            primary_key_version: VERSION.into(),
            key_versions: vec![VERSION.into()],
            internal: false,
            ..Default::default()
        };
        store.create_key(&record, Some(&legacy.token)).unwrap();
    }
    inst.d.restart();
    assert!(
        inst.d
            .log_text()
            .contains("key token migrated to version 2"),
        "{}",
        inst.d.log_text()
    );

    // The format-1 blob decrypts over gRPC (operator) ...
    let mut c = inst.d.client().await;
    let opened = c
        .crypto
        .decrypt(hkms::proto::DecryptRequest {
            ciphertext_blob: legacy.gcm_blob.0.clone(),
            aad: legacy.gcm_blob.1.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, SECRET);

    // ... and every old ciphertext decrypts over the instance API.
    let app = inst.app("old-app", &format!("key/{KEY}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);
    for (blob, aad) in [
        (legacy.gcm_blob.0.clone(), legacy.gcm_blob.1.clone()),
        (legacy.cbc_blob.clone(), Vec::new()),
    ] {
        let r: api::AdvanceDecryptResponse = call(
            &mut conn,
            &app,
            "AdvanceDecrypt",
            api::AdvanceDecryptRequest {
                ciphertext_blob: blob,
                aad,
                ..Default::default()
            },
        );
        assert_eq!(r.plaintext, SECRET);
        assert_eq!(r.key_version_id, VERSION);
    }
    let (iv, aad, ct) = legacy.bare_gcm.clone();
    let r: api::DecryptResponse = call(
        &mut conn,
        &app,
        "Decrypt",
        api::DecryptRequest {
            key_id: KEY.into(),
            ciphertext_blob: ct,
            iv,
            aad,
            ..Default::default()
        },
    );
    assert_eq!(r.plaintext, SECRET);
    let (iv, ct) = legacy.bare_cbc.clone();
    let r: api::DecryptResponse = call(
        &mut conn,
        &app,
        "Decrypt",
        api::DecryptRequest {
            key_id: KEY.into(),
            ciphertext_blob: ct,
            iv,
            algorithm: "AES_CBC".into(),
            padding_mode: "NO_PADDING".into(),
            ..Default::default()
        },
    );
    assert_eq!(r.plaintext, SECRET);

    // New AES-GCM ciphertexts of this version use fresh material: the version's old
    // material, which still serves AES-CBC, reveals nothing of them.
    let sealed: api::AdvanceEncryptResponse = call(
        &mut conn,
        &app,
        "AdvanceEncrypt",
        api::AdvanceEncryptRequest {
            key_id: KEY.into(),
            plaintext: SECRET.to_vec(),
            aad: b"new".to_vec(),
            ..Default::default()
        },
    );
    let blob = sealed.ciphertext_blob;
    assert_eq!(blob[2], 2, "format version 2");
    let mut block = |x: [u8; 16]| -> [u8; 16] {
        let r: api::EncryptResponse = call(
            &mut conn,
            &app,
            "Encrypt",
            api::EncryptRequest {
                key_id: KEY.into(),
                plaintext: vec![0; 16],
                algorithm: "AES_CBC".into(),
                padding_mode: "NO_PADDING".into(),
                iv: x.to_vec(),
                ..Default::default()
            },
        );
        r.ciphertext_blob.try_into().unwrap()
    };
    let iv: [u8; 12] = blob[36..48].try_into().unwrap();
    let recovered = gcm_attack::recover_with_block_oracle(&mut block, &iv, &blob[48..96]);
    assert_ne!(recovered, SECRET);
    // What stays exposed, as the README says: AES-GCM ciphertexts written before the
    // upgrade under a version whose material a caller may still use for AES-CBC.
    let (old, _) = &legacy.gcm_blob;
    let recovered = gcm_attack::recover_with_block_oracle(&mut block, &[1u8; 12], &old[48..96]);
    assert_eq!(recovered, SECRET);

    // Once the old ciphertexts are re-encrypted, the operator turns their decryption off:
    // the format-1 blob is refused, and what the new AES-GCM key sealed still opens.
    drop(conn);
    drop(gw);
    let config = std::fs::read_to_string(&inst.d.config).unwrap();
    let config = config.replace("[limits]\n", "[limits]\nlegacy_gcm_decrypt = false\n");
    std::fs::write(&inst.d.config, config).unwrap();
    inst.d.restart();
    let mut c = inst.d.client().await;
    let decrypt = |blob: &[u8], aad: &[u8]| hkms::proto::DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        aad: aad.to_vec(),
    };
    let err = c
        .crypto
        .decrypt(decrypt(&legacy.gcm_blob.0, &legacy.gcm_blob.1))
        .await
        .unwrap_err();
    assert_eq!(common::code(err), "InvalidCiphertext");
    let opened = c.crypto.decrypt(decrypt(&blob, b"new")).await.unwrap();
    assert_eq!(opened.into_inner().plaintext, SECRET);
    let opened = c
        .crypto
        .decrypt(decrypt(&legacy.cbc_blob, b""))
        .await
        .unwrap();
    assert_eq!(opened.into_inner().plaintext, SECRET);
    drop(c);

    // The stored token is version 2 now, keeping the old material as its AES-CBC key.
    inst.d.stop(false);
    let store = hkms::store::SledStore::open(&inst.d.path("store")).unwrap();
    let token = store.key_token(KEY, VERSION).unwrap().unwrap();
    assert_eq!(token.token_version, 2);
    assert!(token.legacy_cbc_key);
    assert_eq!(token.wrapped_cbc_key, legacy.token.wrapped_key);
    assert_ne!(token.wrapped_key, legacy.token.wrapped_key);
    assert_ne!(token.wrapped_binding_key, legacy.token.wrapped_key);
}
