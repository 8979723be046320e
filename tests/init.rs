//! Instance initialisation and start-up errors an operator can make.

mod common;

use common::{Daemon, MemberSpec, SO_PIN};

#[test]
fn wrong_so_pin_is_reported_and_init_can_be_retried() {
    let d = Daemon::start(2);
    let bad = d.path("bad-so-pin");
    std::fs::write(&bad, "00000000").unwrap();
    let out = d.cli(&["init", "--so-pin-file", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("security officer PIN was refused"), "{err}");
    // Nothing was recorded; the right PIN works, and the members still serve.
    assert_eq!(d.cli_json(&["status"])["Initialized"], false);
    let _ = SO_PIN;
    d.init_ok();
    let key = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..4 {
        d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    }
}

#[test]
fn a_single_member_needs_no_so_pin() {
    let d = Daemon::start(1);
    let out = d.cli_json(&["init"]);
    assert_eq!(out["Members"][0], "hsm-0");
}

#[test]
fn wrong_user_pin_leaves_the_member_down_with_a_clear_error() {
    let mut bad = MemberSpec::softhsm("hsm-bad", "m1");
    bad.pin = "11111111".into();
    let d = Daemon::start_with(&[MemberSpec::softhsm("hsm-0", "m0"), bad], &[]);
    let status = d.cli_json(&["status"]);
    let m = &status["Members"][1];
    assert_eq!(m["State"], "Down");
    assert!(
        m["LastError"].as_str().unwrap().contains("PinIncorrect"),
        "{m}"
    );
    let out = d.cli(&["init", "--so-pin-file", d.so_pin_file().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HsmUnavailable") && err.contains("hsm-bad"),
        "{err}"
    );
}

#[test]
fn daemon_refuses_to_start_without_any_usable_member() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A token that does not exist.
        (
            MemberSpec::softhsm("hsm-x", "no-such-token"),
            "no token with label \"no-such-token\"",
        ),
        // A module that does not load.
        (
            MemberSpec {
                module: "/nonexistent/libpkcs11.so".into(),
                ..MemberSpec::softhsm("hsm-y", "m0")
            },
            "cannot load PKCS#11 module /nonexistent/libpkcs11.so",
        ),
    ];
    for (spec, want) in cases {
        let d = Daemon::start_with(&[MemberSpec::softhsm("ok", "m0")], &[]);
        let mut d = d;
        d.stop(false);
        d.write_config(&[spec]);
        let err = d.spawn().unwrap_err();
        assert!(err.contains(want), "{err}");
    }
    drop(dir);
}
