//! Enrolment in a mixed cluster: Kryoptic cannot mark a key trusted, so it only receives the
//! domain key; `hkms init` and `hkms hsm add` take it from SoftHSM2, whatever the order.

mod common;
#[path = "support/kryoptic.rs"]
mod kryoptic;
#[path = "support/mixed.rs"]
mod mixed;

use common::{Daemon, MemberSpec};
use kryoptic::KryopticTokens;
use mixed::{decrypt, encrypt, on_member, ops, wait_for_state, KRY, KRY_LABEL, SOFT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kryoptic_listed_first_receives_the_domain_key_from_softhsm() {
    // Kryoptic cannot mark a key trusted, so it cannot give the domain key (its profile says
    // so): init makes the domain key on SoftHSM2 instead, whatever the order of members.
    let tokens = KryopticTokens::create(&[KRY_LABEL]);
    let members = [
        MemberSpec {
            module: kryoptic::module().display().to_string(),
            profile: Some("kryoptic".into()),
            ..MemberSpec::softhsm(KRY, KRY_LABEL)
        },
        MemberSpec::softhsm(SOFT, "soft0"),
    ];
    let conf = tokens.conf.display().to_string();
    let d = Daemon::start_config(
        &members,
        &[("KRYOPTIC_CONF", conf.as_str())],
        "",
        &tokens.hardening(),
    );
    d.init_ok();
    assert!(
        d.log_text()
            .contains("domain key copied HSM-to-HSM from=hsm-softhsm to=hsm-kryoptic"),
        "{}",
        d.log_text()
    );
    let mut c = d.client().await;
    let key = common::create_key(&mut c).await;
    let blob = on_member(&mut c, KRY, async |c| {
        encrypt(c, &key, b"from kryoptic").await
    })
    .await;
    let back = on_member(&mut c, SOFT, async |c| decrypt(c, &blob).await).await;
    assert_eq!(back, b"from kryoptic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hkms_hsm_add_enrols_another_kryoptic_token_from_softhsm() {
    let tokens = KryopticTokens::create(&[KRY_LABEL, "kry1"]);
    let kry = kryoptic::module().display().to_string();
    let members = [
        MemberSpec {
            module: kry.clone(),
            profile: Some("kryoptic".into()),
            ..MemberSpec::softhsm(KRY, KRY_LABEL)
        },
        MemberSpec::softhsm(SOFT, "soft0"),
    ];
    let conf = tokens.conf.display().to_string();
    let d = Daemon::start_config(
        &members,
        &[("KRYOPTIC_CONF", conf.as_str())],
        "",
        &tokens.hardening(),
    );
    d.init_ok();
    let mut c = d.client().await;
    let key = common::create_key(&mut c).await;
    let blob = encrypt(&mut c, &key, b"before the third member").await;
    // No --source: hkmsd picks a member that can give the domain key (SoftHSM2, listed
    // second), not the Kryoptic member listed first.
    let pin = d.path("pin-kry1");
    std::fs::write(&pin, common::USER_PIN).unwrap();
    let so = d.so_pin_file();
    let out = d.cli(&[
        "hsm",
        "add",
        "--name",
        "hsm-kryoptic-2",
        "--module",
        &kry,
        "--token-label",
        "kry1",
        "--pin-file",
        pin.to_str().unwrap(),
        "--profile",
        "kryoptic",
        "--so-pin-file",
        so.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    wait_for_state(&mut c, "hsm-kryoptic-2", "Up").await;
    common::drain(&mut c, KRY, false).await;
    common::drain(&mut c, SOFT, false).await;
    let before = ops(&mut c).await;
    assert_eq!(decrypt(&mut c, &blob).await, b"before the third member");
    let after = ops(&mut c).await;
    assert!(
        after["hsm-kryoptic-2"] > before["hsm-kryoptic-2"],
        "{before:?} -> {after:?}"
    );
    // A Kryoptic member named as the source is refused before anything changes.
    let out = d.cli(&[
        "hsm",
        "add",
        "--name",
        "hsm-x",
        "--module",
        &kry,
        "--token-label",
        "kry1",
        "--pin-file",
        pin.to_str().unwrap(),
        "--profile",
        "kryoptic",
        "--source",
        KRY,
        "--so-pin-file",
        so.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot give the domain key"), "{err}");
}
