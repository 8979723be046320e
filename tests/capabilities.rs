//! Routing by capability: two members behind the fault-injecting PKCS#11 module
//! (tests/fault-pkcs11), where member B's token has no CKM_ECDSA from the start (the module
//! leaves it out of the mechanism list B reads when it connects, and refuses it). GetStatus
//! shows what each member can do, ECDSA signatures go to A only, and with A drained they
//! fail at once as unavailable (retryable: A may come back), naming B and the missing
//! mechanism and A's state, while RSA-PSS signatures still run on B. (An operation that no
//! member can do at all is refused with UnsupportedAlgorithm: tests/asymmetric.rs.)

mod common;

use common::{code, create_key_of, drain, Daemon, MemberSpec};
use hkms::client::Client;
use hkms::proto::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const A: &str = "hsm-a";
const B: &str = "hsm-b";
/// Token labels of A and B (the fault module's control files are named after them).
const LABEL_A: &str = "ma";
const LABEL_B: &str = "mb";

async fn members(c: &mut Client) -> HashMap<String, MemberStatus> {
    c.admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect()
}

async fn sign(c: &mut Client, key_id: &str, algorithm: &str) -> Result<Vec<u8>, tonic::Status> {
    c.asymmetric
        .sign(SignRequest {
            key_id: key_id.into(),
            algorithm: algorithm.into(),
            message: b"capabilities".to_vec(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().signature)
}

async fn verify(c: &mut Client, key_id: &str, algorithm: &str, signature: Vec<u8>) -> bool {
    c.asymmetric
        .verify(VerifyRequest {
            key_id: key_id.into(),
            algorithm: algorithm.into(),
            message: b"capabilities".to_vec(),
            signature,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_goes_only_to_the_member_that_has_it() {
    let module = hkms_fault_pkcs11::control::locate_module()
        .expect("the fault module is built as a dev-dependency");
    let faults = tempfile::tempdir().unwrap();
    // Written before hkmsd starts: B's token lacks CKM_ECDSA when B connects.
    hkms_fault_pkcs11::control::write_fault_text(
        faults.path(),
        LABEL_B,
        "hide_mechanisms = CKM_ECDSA\n",
    )
    .unwrap();
    let members_spec: Vec<MemberSpec> = [(A, LABEL_A), (B, LABEL_B)]
        .iter()
        .map(|(name, label)| MemberSpec {
            module: module.display().to_string(),
            ..MemberSpec::softhsm(name, label)
        })
        .collect();
    let dir = faults.path().display().to_string();
    let d = Daemon::start_with(
        &members_spec,
        &[
            ("HKMS_FAULT_DIR", dir.as_str()),
            ("HKMS_FAULT_REAL_MODULE", common::SOFTHSM_MODULE),
            ("HKMS_FAULT_LOG", "1"),
        ],
    );
    d.init_ok();
    let mut c = d.client().await;

    // What each member can do, from the mechanisms its token listed.
    let status = members(&mut c).await;
    let (a, b) = (&status[A], &status[B]);
    for m in [a, b] {
        assert_eq!(m.state, "Up", "{m:?}");
        assert!(m.key_specs.iter().any(|s| s == "EC_P256"), "{m:?}");
        assert!(m.key_specs.iter().any(|s| s == "RSA_2048"), "{m:?}");
        assert!(m.algorithms.iter().any(|s| s == "RSA_PSS_SHA_256"), "{m:?}");
    }
    assert!(a.algorithms.iter().any(|s| s == "ECDSA_SHA_256"), "{a:?}");
    assert!(a.algorithms.iter().any(|s| s == "ECDSA_SHA_384"), "{a:?}");
    assert!(
        !b.algorithms.iter().any(|s| s.starts_with("ECDSA")),
        "{b:?}\n(a fault module built before hide_mechanisms ignores the file; \
         HKMS_FAULT_MODULE can name a fresh build)\nhkmsd log:\n{}",
        d.log_text()
    );

    // EC keys are made with CKM_EC_KEY_PAIR_GEN, which both have.
    let ec = create_key_of(&mut c, "EC_P256", "SIGN/VERIFY").await;
    let rsa = create_key_of(&mut c, "RSA_2048", "SIGN/VERIFY").await;

    // Verify checks the key's token on a member that has the key spec (B may do that), so
    // it runs before the count below.
    let sig = sign(&mut c, &ec, "ECDSA_SHA_256").await.unwrap();
    assert!(verify(&mut c, &ec, "ECDSA_SHA_256", sig).await);

    // Every ECDSA signature is made on A; B serves none (the pool never tries it, so its
    // token never refuses one either).
    let before = members(&mut c).await;
    for i in 0..20 {
        sign(&mut c, &ec, "ECDSA_SHA_256")
            .await
            .unwrap_or_else(|e| panic!("signature {i}: {e}"));
    }
    let after = members(&mut c).await;
    println!(
        "operations during 20 ECDSA signatures: A {} -> {}, B {} -> {}",
        before[A].operations, after[A].operations, before[B].operations, after[B].operations
    );
    assert_eq!(after[B].operations, before[B].operations, "{:?}", after[B]);
    assert!(
        after[A].operations >= before[A].operations + 20,
        "{:?}",
        after[A]
    );
    assert_eq!(after[B].errors, before[B].errors, "{:?}", after[B]);
    // The fault module logs every call it refuses for a hidden mechanism.
    let refused = "with hidden CKM_ECDSA";
    assert!(!d.log_text().contains(refused), "{}", d.log_text());

    // A drained: no member serving can make the signature; the pool says so at once.
    drain(&mut c, A, false).await;
    let started = Instant::now();
    let e = sign(&mut c, &ec, "ECDSA_SHA_256").await.unwrap_err();
    let took = started.elapsed();
    println!("ECDSA with A drained: {took:?}: {}", e.message());
    assert_eq!(code(e.clone()), "HsmUnavailable", "{e:?}");
    assert!(
        e.message().contains(B)
            && e.message().contains("CKM_ECDSA")
            && e.message().contains(&format!("{A} can but is draining")),
        "{}",
        e.message()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Meanwhile B alone signs with RSA-PSS.
    let before = members(&mut c).await;
    for _ in 0..3 {
        let sig = sign(&mut c, &rsa, "RSA_PSS_SHA_256").await.unwrap();
        assert!(verify(&mut c, &rsa, "RSA_PSS_SHA_256", sig).await);
    }
    let after = members(&mut c).await;
    assert!(
        after[B].operations >= before[B].operations + 3,
        "{:?}",
        after[B]
    );
    assert_eq!(after[A].operations, before[A].operations, "{:?}", after[A]);

    // A back: ECDSA works again.
    drain(&mut c, A, true).await;
    sign(&mut c, &ec, "ECDSA_SHA_256").await.unwrap();
    assert_eq!(members(&mut c).await[A].state, "Up");
}
