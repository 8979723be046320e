//! What a caller with rights on a key can and cannot learn of its material, end to end on a
//! real hkmsd, hkms-gateway and SoftHSM2:
//! - the raw-block oracle of AES-CBC without padding says nothing of the key's AES-GCM
//!   ciphertexts (each mode family has its own key), and callers cannot choose GCM IVs;
//! - hkmsd's own keys (the instance CA's intermediate key) are out of every application's
//!   reach, whatever its policy says;
//! - a key token copied whole to another key's place in the store is refused.

mod common;
#[path = "support/gcm_attack.rs"]
mod gcm_attack;
#[path = "support/gateway.rs"]
mod support;

use common::{code, Daemon};
use hkms::instance_api as api;
use hkms::store::Store;
use openssl::ssl::SslStream;
use prost::Message;
use std::net::TcpStream;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

type Conn = SslStream<TcpStream>;

/// One signed instance-API call: the decoded answer, or (HTTP status, error code).
fn call<R: Message + Default>(
    conn: &mut Conn,
    ck: &ClientKeyFiles,
    api_name: &str,
    req: impl Message,
) -> Result<R, (u16, String)> {
    let body = req.encode_to_vec();
    let answer = post(conn, "/", &ck.signed(api_name, &body), &body);
    if answer.status == 200 {
        Ok(R::decode(answer.body.as_slice()).unwrap())
    } else {
        Err(answer.failure())
    }
}

/// `E(x)` under the key's AES-CBC key: AES_CBC, NO_PADDING, Iv = x, one zero block.
fn cbc_block(conn: &mut Conn, ck: &ClientKeyFiles, key: &str, x: [u8; 16]) -> [u8; 16] {
    let r: api::EncryptResponse = call(
        conn,
        ck,
        "Encrypt",
        api::EncryptRequest {
            key_id: key.to_owned(),
            plaintext: vec![0; 16],
            algorithm: "AES_CBC".into(),
            padding_mode: "NO_PADDING".into(),
            iv: x.to_vec(),
            ..Default::default()
        },
    )
    .expect("AES_CBC with NO_PADDING and a chosen Iv is served");
    r.ciphertext_blob.as_slice().try_into().unwrap()
}

/// Bytes equal at the same position (two unrelated strings share about 1 in 256).
fn same_bytes(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[test]
fn a_raw_block_oracle_reveals_nothing_of_gcm_ciphertexts() {
    gcm_attack::check_attack_on_a_shared_key();
    let inst = Instance::new();
    let key = inst.create_key();
    let victim = inst.app("victim", &format!("key/{key}"), None);
    let attacker = inst.app("attacker", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);

    // The victim seals a secret with an AAD the attacker does not know.
    let secret = b"card 4111 1111 1111 1111, expires 12/29, cvv 123".to_vec();
    let aad = b"tenant=42;purpose=payments".to_vec();
    let sealed: api::AdvanceEncryptResponse = call(
        &mut conn,
        &victim,
        "AdvanceEncrypt",
        api::AdvanceEncryptRequest {
            key_id: key.clone(),
            plaintext: secret.clone(),
            aad: aad.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let blob = sealed.ciphertext_blob;
    let iv: [u8; 12] = blob[36..48].try_into().unwrap();
    let body = &blob[48..blob.len() - 16];
    assert_eq!(body.len(), secret.len());

    // The attacker runs the attack with the key's CBC/NO_PADDING block oracle.
    let oracle = |x| cbc_block(&mut conn, &attacker, &key, x);
    let recovered = gcm_attack::recover_with_block_oracle(oracle, &iv, body);
    assert!(
        same_bytes(&recovered, &secret) < 8,
        "the keystream was recovered: {:?}",
        String::from_utf8_lossy(&recovered)
    );
    let h = gcm_attack::hash_key(|x| cbc_block(&mut conn, &attacker, &key, x));
    // The oracle is a real block function (deterministic, not constant), just of another key.
    assert_eq!(h, cbc_block(&mut conn, &attacker, &key, [0; 16]));
    assert_ne!(h, cbc_block(&mut conn, &attacker, &key, [1; 16]));

    // Without the AAD the attacker cannot decrypt either; the victim can.
    let denied: Result<api::AdvanceDecryptResponse, _> = call(
        &mut conn,
        &attacker,
        "AdvanceDecrypt",
        api::AdvanceDecryptRequest {
            ciphertext_blob: blob.clone(),
            ..Default::default()
        },
    );
    assert_eq!(denied.unwrap_err(), (400, "InvalidParameter".into()));
    let opened: api::AdvanceDecryptResponse = call(
        &mut conn,
        &victim,
        "AdvanceDecrypt",
        api::AdvanceDecryptRequest {
            ciphertext_blob: blob,
            aad,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(opened.plaintext, secret);

    // Nor can a caller choose an AES-GCM IV (to repeat another caller's nonce).
    let chosen = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"x".to_vec(),
        algorithm: "AES_GCM".into(),
        iv: iv.to_vec(),
        ..Default::default()
    };
    let refused: Result<api::EncryptResponse, _> =
        call(&mut conn, &attacker, "Encrypt", chosen.clone());
    assert_eq!(refused.unwrap_err(), (400, "InvalidParameter".into()));
    // Without one, hkms picks a fresh IV each time.
    let fresh = |conn: &mut Conn| {
        let r: api::EncryptResponse = call(
            conn,
            &attacker,
            "Encrypt",
            api::EncryptRequest {
                iv: Vec::new(),
                ..chosen.clone()
            },
        )
        .unwrap();
        r.iv
    };
    let (a, b) = (fresh(&mut conn), fresh(&mut conn));
    assert_eq!(a.len(), 12);
    assert_ne!(a, b);
}

#[test]
fn a_caller_gcm_iv_is_accepted_only_when_the_instance_allows_it() {
    let mut inst = Instance::new();
    let config = std::fs::read_to_string(&inst.d.config).unwrap();
    let config = config.replace("[limits]\n", "[limits]\nallow_caller_gcm_iv = true\n");
    std::fs::write(&inst.d.config, config).unwrap();
    inst.d.restart();
    let key = inst.create_key();
    let app = inst.app("old-client", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);
    let r: api::EncryptResponse = call(
        &mut conn,
        &app,
        "Encrypt",
        api::EncryptRequest {
            key_id: key.clone(),
            plaintext: b"old client".to_vec(),
            iv: vec![9; 12],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.iv, vec![9; 12]);
    let d: api::DecryptResponse = call(
        &mut conn,
        &app,
        "Decrypt",
        api::DecryptRequest {
            key_id: key,
            ciphertext_blob: r.ciphertext_blob,
            iv: r.iv,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.plaintext, b"old client");
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_keys_are_out_of_every_applications_reach() {
    let inst = Instance::new();
    let sealed_path = inst.ca_dir.join("intermediate-key.json");
    let sealed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sealed_path).unwrap()).unwrap();
    let ca_key = sealed["KeyId"].as_str().unwrap().to_owned();
    let instance = sealed["Instance"].as_str().unwrap().to_owned();
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(sealed["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    let described = inst.d.cli_json(&["key", "describe", &ca_key]);
    assert_eq!(described["KeyMetadata"]["Internal"], true, "{described}");

    // An application granted every key, with the sealed key and its (public) AAD.
    let greedy = inst.app("greedy", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut conn = connect(gw.port, &inst.bundle);
    let aad = format!("hkms instance CA intermediate key\0{instance}").into_bytes();
    let r: Result<api::AdvanceDecryptResponse, _> = call(
        &mut conn,
        &greedy,
        "AdvanceDecrypt",
        api::AdvanceDecryptRequest {
            ciphertext_blob: blob.clone(),
            aad: aad.clone(),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap_err(), (403, "Forbidden.NoPermission".into()));
    let r: Result<api::EncryptResponse, _> = call(
        &mut conn,
        &greedy,
        "Encrypt",
        api::EncryptRequest {
            key_id: ca_key.clone(),
            plaintext: b"x".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap_err(), (403, "Forbidden.NoPermission".into()));
    // The same application is served on an ordinary key (the refusal is about the key).
    let ordinary = inst.create_key();
    let ok: Result<api::EncryptResponse, _> = call(
        &mut conn,
        &greedy,
        "Encrypt",
        api::EncryptRequest {
            key_id: ordinary.clone(),
            plaintext: b"x".to_vec(),
            ..Default::default()
        },
    );
    assert!(ok.is_ok(), "{ok:?}");

    // Over gRPC, a caller that is not an operator cannot list keys at all.
    let mut stranger = inst.d.client_as(4242).await;
    let err = stranger
        .keys
        .list_keys(hkms::proto::ListKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code(err), "Forbidden");
    // The CA keeps working for operators.
    inst.issue();

    // A CA made by an earlier release sealed its key under an ordinary key: the next `hkms
    // ca` command that needs the intermediate key marks that key internal.
    let mut old = sealed.clone();
    old["KeyId"] = ordinary.clone().into();
    std::fs::write(&sealed_path, serde_json::to_string(&old).unwrap()).unwrap();
    inst.issue();
    let described = inst.d.cli_json(&["key", "describe", &ordinary]);
    assert_eq!(described["KeyMetadata"]["Internal"], true, "{described}");
    let now: Result<api::EncryptResponse, _> = call(
        &mut conn,
        &greedy,
        "Encrypt",
        api::EncryptRequest {
            key_id: ordinary,
            plaintext: b"x".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(now.unwrap_err(), (403, "Forbidden.NoPermission".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_copied_whole_to_another_key_is_refused() {
    let mut d = Daemon::initialised(1);
    let version_of = |d: &Daemon, key: &str| {
        let v = d.cli_json(&["key", "describe", key]);
        v["KeyMetadata"]["PrimaryKeyVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let a = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (va, vb) = (version_of(&d, &a), version_of(&d, &b));
    let mut c = d.client().await;
    let enc = |key: &str| hkms::proto::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: b"payroll".to_vec(),
        aad: Vec::new(),
    };
    let under_a = c.crypto.encrypt(enc(&a)).await.unwrap().into_inner();
    let under_b = c.crypto.encrypt(enc(&b)).await.unwrap().into_inner();
    drop(c);

    // Someone with write access to the store copies A's whole token record over B's.
    d.stop(false);
    {
        let store = hkms::store::SledStore::open(&d.path("store")).unwrap();
        let token_a = store.key_token(&a, &va).unwrap().unwrap();
        let token_b = store.key_token(&b, &vb).unwrap().unwrap();
        assert!(store
            .replace_key_token(&b, &vb, &token_b, &token_a)
            .unwrap());
    }
    d.restart();
    let mut c = d.client().await;
    // A first, so its keys are in the member's cache when B's copied token is looked at.
    let dec = |blob: Vec<u8>| hkms::proto::DecryptRequest {
        ciphertext_blob: blob,
        aad: Vec::new(),
    };
    let opened = c
        .crypto
        .decrypt(dec(under_a.ciphertext_blob))
        .await
        .unwrap();
    assert_eq!(opened.into_inner().plaintext, b"payroll");
    let err = c.crypto.encrypt(enc(&b)).await.unwrap_err();
    assert_eq!(code(err), "TokenBinding");
    let err = c
        .crypto
        .decrypt(dec(under_b.ciphertext_blob.clone()))
        .await
        .unwrap_err();
    assert_eq!(code(err), "TokenBinding");
    // A is unaffected.
    c.crypto.encrypt(enc(&a)).await.unwrap();
    drop(c);

    // The same copy with its own ids rewritten to B's: only the binding value, computed in
    // the HSM under A's binding key for A's ids, tells it apart now.
    d.stop(false);
    {
        let store = hkms::store::SledStore::open(&d.path("store")).unwrap();
        let copied = store.key_token(&b, &vb).unwrap().unwrap();
        let mut disguised = copied.clone();
        disguised.key_id = b.clone();
        disguised.key_version_id = vb.clone();
        assert!(store
            .replace_key_token(&b, &vb, &copied, &disguised)
            .unwrap());
    }
    d.restart();
    let mut c = d.client().await;
    c.crypto.encrypt(enc(&a)).await.unwrap();
    let err = c.crypto.encrypt(enc(&b)).await.unwrap_err();
    assert_eq!(code(err), "TokenBinding");
    let err = c
        .crypto
        .decrypt(dec(under_b.ciphertext_blob))
        .await
        .unwrap_err();
    assert_eq!(code(err), "TokenBinding");
}
