//! One hkmsd over two PKCS#11 implementations at once: a SoftHSM2 member and a Kryoptic
//! member (scripts/install-kryoptic.sh), the domain key copied from one to the other
//! HSM-to-HSM. The Kryoptic member is reached through the fault-injecting module
//! (tests/fault-pkcs11, `HKMS_FAULT_REAL_MODULE` = Kryoptic), so its library can be made to
//! fail or die while the SoftHSM2 member keeps serving.

mod common;
#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/kryoptic.rs"]
mod kryoptic;
#[path = "support/mixed.rs"]
mod mixed;

use common::{code, Daemon, MemberSpec};
use hkms::instance_api as api;
use hkms::proto::*;
use kryoptic::KryopticTokens;
use mixed::{
    decrypt, encrypt, members, on_member, ops, wait_for_state, Mixed, KRY, KRY_LABEL, SOFT,
};
use prost::Message;

/// The profile each member of the mixed cluster names.
fn name_profile(member: &str) -> &'static str {
    if member == KRY {
        "kryoptic"
    } else {
        "softhsm2"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_implementations_serve_and_read_each_others_ciphertexts() {
    let m = Mixed::start();
    let mut c = m.d.client().await;
    let status = members(&mut c).await;
    for name in [SOFT, KRY] {
        assert_eq!(status[name].state, "Up", "{:?}", status[name]);
    }
    // Kryoptic keeps the unwrap template of the domain key it received, and reads it back.
    let st = m.d.cli_json(&["status"]);
    for member in st["Members"].as_array().unwrap() {
        assert_eq!(member["UnwrapTemplate"], "Enforced", "{st}");
    }
    // Each token matches its shipped profile (Kryoptic's RFC 5649 wrap is
    // CKM_AES_KEY_WRAP_KWP, which meets the required key wrap with padding).
    for name in [SOFT, KRY] {
        assert_eq!(
            status[name].profile,
            name_profile(name),
            "{:?}",
            status[name]
        );
        assert!(
            status[name].profile_findings.is_empty(),
            "{name}: {:?}",
            status[name].profile_findings
        );
    }
    // Kryoptic has no secp256k1 (its profile's ec_curves): the pool sends EC_P256K keys
    // only to SoftHSM2; the other EC specs go to both.
    let specs = |name: &str| status[name].key_specs.clone();
    assert!(
        specs(SOFT).iter().any(|s| s == "EC_P256K"),
        "{:?}",
        specs(SOFT)
    );
    assert!(
        !specs(KRY).iter().any(|s| s == "EC_P256K"),
        "{:?}",
        specs(KRY)
    );
    for spec in ["EC_P256", "EC_P384", "RSA_2048", "Aliyun_AES_256"] {
        assert!(
            specs(KRY).iter().any(|s| s == spec),
            "{spec}: {:?}",
            specs(KRY)
        );
    }

    // Round-robin: both members take a share of plain traffic.
    let key = common::create_key(&mut c).await;
    let before = ops(&mut c).await;
    for i in 0..40u8 {
        let blob = encrypt(&mut c, &key, &[i; 40]).await;
        assert_eq!(decrypt(&mut c, &blob).await, vec![i; 40]);
    }
    let after = ops(&mut c).await;
    for name in [SOFT, KRY] {
        assert!(
            after[name] >= before[name] + 20,
            "{name} takes its share: {before:?} -> {after:?}"
        );
    }

    // Encrypt on one implementation, decrypt on the other, both ways; data keys too.
    for (from, to) in [(SOFT, KRY), (KRY, SOFT)] {
        let pt = format!("from {from} to {to}").into_bytes();
        let blob = on_member(&mut c, from, async |c| encrypt(c, &key, &pt).await).await;
        let back = on_member(&mut c, to, async |c| decrypt(c, &blob).await).await;
        assert_eq!(back, pt, "{from} -> {to}");
        let dk = on_member(&mut c, from, async |c| {
            c.crypto
                .generate_data_key(GenerateDataKeyRequest {
                    key_id: key.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        })
        .await;
        let plain = on_member(&mut c, to, async |c| {
            c.crypto
                .decrypt(DecryptRequest {
                    ciphertext_blob: dk.ciphertext_blob.clone(),
                    aad: vec![],
                })
                .await
                .unwrap()
                .into_inner()
                .plaintext
        })
        .await;
        assert_eq!(plain, dk.plaintext, "data key {from} -> {to}");
    }

    // A wrong tag or AAD is the caller's fault on either implementation (Kryoptic reports
    // it with another return code than SoftHSM2): refused, no retry, the member stays up.
    let blob = encrypt(&mut c, &key, b"tamper with me").await;
    let mut bad_tag = blob.clone();
    *bad_tag.last_mut().unwrap() ^= 1;
    for member in [SOFT, KRY] {
        let other = if member == SOFT { KRY } else { SOFT };
        common::drain(&mut c, other, false).await;
        for (ct, aad) in [(&bad_tag, &b"mixed"[..]), (&blob, &b"other"[..])] {
            let e = c
                .crypto
                .decrypt(DecryptRequest {
                    ciphertext_blob: ct.clone(),
                    aad: aad.to_vec(),
                })
                .await
                .unwrap_err();
            assert_eq!(code(e), "InvalidCiphertext", "on {member}");
        }
        common::drain(&mut c, other, true).await;
        assert_eq!(members(&mut c).await[member].state, "Up", "{member}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_while_kryoptic_is_down_is_used_on_kryoptic() {
    let m = Mixed::start();
    let mut c = m.d.client().await;
    m.fault("mode = dead\n");
    // The next call to the dead library fails over; the member goes down.
    let early = common::create_key(&mut c).await;
    let _ = encrypt(&mut c, &early, b"x").await;
    wait_for_state(&mut c, KRY, "Down").await;
    let key = common::create_key(&mut c).await;
    let blob = encrypt(&mut c, &key, b"made on SoftHSM2 alone").await;
    m.clear();
    wait_for_state(&mut c, KRY, "Up").await;
    let back = on_member(&mut c, KRY, async |c| decrypt(c, &blob).await).await;
    assert_eq!(back, b"made on SoftHSM2 alone");
    let blob2 = on_member(&mut c, KRY, async |c| encrypt(c, &key, b"and back").await).await;
    let back = on_member(&mut c, SOFT, async |c| decrypt(c, &blob2).await).await;
    assert_eq!(back, b"and back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kryoptic_device_errors_fail_over_to_softhsm() {
    let m = Mixed::start();
    let mut c = m.d.client().await;
    let key = common::create_key(&mut c).await;
    let blob = encrypt(&mut c, &key, b"steady").await;
    m.fault("mode = error\nrv = CKR_DEVICE_ERROR\n");
    let before = ops(&mut c).await;
    let mut failures = Vec::new();
    for _ in 0..30 {
        match c
            .crypto
            .decrypt(DecryptRequest {
                ciphertext_blob: blob.clone(),
                aad: b"mixed".to_vec(),
            })
            .await
        {
            Ok(r) => assert_eq!(r.into_inner().plaintext, b"steady"),
            Err(e) => failures.push(code(e)),
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    let after = ops(&mut c).await;
    assert!(after[SOFT] >= before[SOFT] + 30, "{before:?} -> {after:?}");
    let s = members(&mut c).await;
    assert!(s[KRY].errors > 0, "{:?}", s[KRY]);
    m.clear();
    wait_for_state(&mut c, KRY, "Up").await;
    let back = on_member(&mut c, KRY, async |c| decrypt(c, &blob).await).await;
    assert_eq!(back, b"steady");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_macs_and_oaep_across_implementations() {
    let m = Mixed::start();
    let mut c = m.d.client().await;
    let status = members(&mut c).await;
    for spec in ["EC_P256", "RSA_2048"] {
        assert!(
            status[KRY].key_specs.iter().any(|s| s == spec),
            "{spec}: {:?}",
            status[KRY]
        );
    }
    for (spec, alg) in [
        ("EC_P256", "ECDSA_SHA_256"),
        ("RSA_2048", "RSA_PSS_SHA_256"),
    ] {
        let key = common::create_key_of(&mut c, spec, "SIGN/VERIFY").await;
        for (from, to) in [(SOFT, KRY), (KRY, SOFT)] {
            let sig = on_member(&mut c, from, async |c| {
                c.asymmetric
                    .sign(SignRequest {
                        key_id: key.clone(),
                        algorithm: alg.into(),
                        message: b"release 1.0".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{spec} sign on {from}: {e}"))
                    .into_inner()
                    .signature
            })
            .await;
            let ok = on_member(&mut c, to, async |c| {
                c.asymmetric
                    .verify(VerifyRequest {
                        key_id: key.clone(),
                        algorithm: alg.into(),
                        message: b"release 1.0".to_vec(),
                        signature: sig.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{spec} verify on {to}: {e}"))
                    .into_inner()
                    .value
            })
            .await;
            assert!(ok, "{spec}: signed on {from}, verified on {to}");
        }
    }
    // HMAC: a MAC made on one implementation verifies on the other.
    let mac_key = common::create_key_of(&mut c, "HMAC_SHA_256", "").await;
    for (from, to) in [(SOFT, KRY), (KRY, SOFT)] {
        let mac = on_member(&mut c, from, async |c| {
            c.asymmetric
                .generate_mac(GenerateMacRequest {
                    key_id: mac_key.clone(),
                    algorithm: "HMAC_SHA_256".into(),
                    message: b"webhook body".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("GenerateMac on {from}: {e}"))
                .into_inner()
                .mac
        })
        .await;
        let ok = on_member(&mut c, to, async |c| {
            c.asymmetric
                .verify_mac(VerifyMacRequest {
                    key_id: mac_key.clone(),
                    algorithm: "HMAC_SHA_256".into(),
                    message: b"webhook body".to_vec(),
                    mac: mac.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("VerifyMac on {to}: {e}"))
                .into_inner()
                .value
        })
        .await;
        assert!(ok, "MAC made on {from}, verified on {to}");
    }

    // RSA-OAEP with SHA-256: SoftHSM2 has only SHA-1 (its profile says so), Kryoptic has
    // both, so such ciphertexts are opened on Kryoptic alone, with no draining.
    let rsa = common::create_key_of(&mut c, "RSA_2048", "ENCRYPT/DECRYPT").await;
    let status = members(&mut c).await;
    assert!(
        status[KRY]
            .algorithms
            .iter()
            .any(|a| a == "RSAES_OAEP_SHA_256"),
        "{:?}",
        status[KRY]
    );
    assert!(
        !status[SOFT]
            .algorithms
            .iter()
            .any(|a| a == "RSAES_OAEP_SHA_256"),
        "{:?}",
        status[SOFT]
    );
    let before = ops(&mut c).await;
    for i in 0..4u8 {
        let ct = c
            .asymmetric
            .asymmetric_encrypt(AsymmetricEncryptRequest {
                key_id: rsa.clone(),
                algorithm: "RSAES_OAEP_SHA_256".into(),
                plaintext: vec![i; 32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext_blob;
        let pt = c
            .asymmetric
            .asymmetric_decrypt(AsymmetricDecryptRequest {
                key_id: rsa.clone(),
                algorithm: "RSAES_OAEP_SHA_256".into(),
                ciphertext_blob: ct,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("OAEP-SHA-256 decrypt: {e}"))
            .into_inner()
            .plaintext;
        assert_eq!(pt, vec![i; 32]);
    }
    let after = ops(&mut c).await;
    assert!(after[KRY] >= before[KRY] + 4, "{before:?} -> {after:?}");

    // Kryoptic lists the ML-DSA mechanisms, but cannot wrap ML-DSA private keys under the
    // domain key: the spec is refused with what it needs (tests/kryoptic_pqc.rs).
    let e = c
        .keys
        .create_key(CreateKeyRequest {
            key_spec: "ML_DSA_65".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let message = e.message().to_owned();
    assert_eq!(code(e), "UnsupportedKeySpec");
    assert!(message.contains("CKM_ML_DSA"), "{message}");
}

#[test]
fn instance_api_traffic_through_the_gateway_is_served_by_both_implementations() {
    // Test instances run hkmsd as root.
    std::env::set_var("HKMSD_ALLOW_ROOT", "1");
    let tokens = KryopticTokens::create(&[KRY_LABEL]);
    let members = [
        MemberSpec::softhsm(SOFT, "soft0"),
        MemberSpec {
            module: kryoptic::module().display().to_string(),
            profile: Some("kryoptic".into()),
            ..MemberSpec::softhsm(KRY, KRY_LABEL)
        },
    ];
    let conf = tokens.conf.display().to_string();
    let d = Daemon::start_config(
        &members,
        &[("KRYOPTIC_CONF", conf.as_str())],
        "",
        &tokens.hardening(),
    );
    d.init_ok();
    let inst = gateway::Instance::on(d);
    let key = inst.create_key();
    let ck = inst.app("mixed-app", &format!("key/{key}"), None);
    let gw = gateway::GatewayProc::start(&inst, "gw", false, "");
    let mut conn = gateway::connect(gw.port, &inst.bundle);
    let before = inst.grpc(async |c| ops(c).await);
    for i in 0..20u8 {
        let plaintext = vec![i; 24 + usize::from(i)];
        let body = api::EncryptRequest {
            key_id: key.clone(),
            plaintext: plaintext.clone(),
            aad: b"orders".to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        let a = gateway::post(&mut conn, "/", &ck.signed("Encrypt", &body), &body);
        assert_eq!(a.status, 200, "{:?}", a.failure());
        let enc = api::EncryptResponse::decode(a.body.as_slice()).unwrap();
        let body = api::DecryptRequest {
            ciphertext_blob: enc.ciphertext_blob,
            key_id: key.clone(),
            iv: enc.iv,
            aad: b"orders".to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        let a = gateway::post(&mut conn, "/", &ck.signed("Decrypt", &body), &body);
        assert_eq!(a.status, 200, "{:?}", a.failure());
        let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
        assert_eq!(dec.plaintext, plaintext);
    }
    let after = inst.grpc(async |c| ops(c).await);
    for name in [SOFT, KRY] {
        assert!(
            after[name] >= before[name] + 10,
            "{name} serves gateway traffic: {before:?} -> {after:?}"
        );
    }
}
