//! `hkms certify` against real Kryoptic tokens (the second PKCS#11 implementation, built by
//! scripts/install-kryoptic.sh) with the shipped `kryoptic` profile: every check passes or
//! is a skip the profile expects, the post-quantum checks pass, and the tokens are left as
//! found. A Kryoptic token cannot give the domain key, so its copy is certified with
//! Kryoptic receiving it from SoftHSM2 (`--second-module`), as a mixed cluster enrols it.

mod common;
#[path = "support/kryoptic.rs"]
mod kryoptic;

use common::{Tokens, SOFTHSM_MODULE, SO_PIN, USER_PIN};
use kryoptic::{KryopticTokens, OPENSSL35};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const KRY_A: &str = "kry-cert-a";
const KRY_B: &str = "kry-cert-b";
const SOFT: &str = "soft-cert-a";

/// The skips the shipped profile expects on Kryoptic, with the start of each reason.
const EXPECTED_SKIPS: &[(&str, &str)] = &[
    (
        "domain.transfer",
        "HSM profile \"kryoptic\" says the device cannot mark a wrapping key trusted",
    ),
    (
        "ec.generate.secp256k1",
        "the token refuses secp256k1 keys (CKR_GENERAL_ERROR)",
    ),
];

/// Objects the user sees on Kryoptic token `slot` (1-based), counted by pkcs11-tool in its
/// own process (Kryoptic lists its mechanisms as objects too).
fn count_objects(tokens: &KryopticTokens, slot: &str) -> usize {
    tokens
        .tool(&[
            "--slot",
            slot,
            "--login",
            "--pin",
            USER_PIN,
            "--list-objects",
        ])
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
        .count()
}

fn run(args: &[&str], kryoptic_conf: &Path, softhsm_conf: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .arg("certify")
        .args(args)
        .env("KRYOPTIC_CONF", kryoptic_conf)
        .env("SOFTHSM2_CONF", softhsm_conf)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn checks_by_id(report: &Value) -> BTreeMap<String, Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn kryoptic_is_green_with_its_profile_and_receives_the_domain_key_from_softhsm2() {
    let module = kryoptic::module();
    let module = module.to_str().unwrap();
    let tokens = KryopticTokens::create(&[KRY_A, KRY_B]);
    let dir = tempfile::tempdir().unwrap();
    let soft = Tokens::create(dir.path(), &[SOFT]);
    let pin = dir.path().join("pin");
    let so_pin = dir.path().join("so-pin");
    std::fs::write(&pin, format!("{USER_PIN}\n")).unwrap();
    std::fs::write(&so_pin, format!("{SO_PIN}\n")).unwrap();
    let (pin, so_pin) = (pin.to_str().unwrap(), so_pin.to_str().unwrap());
    let before = [count_objects(&tokens, "1"), count_objects(&tokens, "2")];
    assert!(before[0] > 0, "Kryoptic lists its mechanisms as objects");

    // The Kryoptic token under test, a second Kryoptic token, the shipped profile.
    let out = dir.path().join("kryoptic");
    let (code, stdout, stderr) = run(
        &[
            "--module",
            module,
            "--token-label",
            KRY_A,
            "--pin-file",
            pin,
            "--so-pin-file",
            so_pin,
            "--second-token",
            KRY_B,
            "--profile",
            "kryoptic",
            "--profiles-dir",
            tokens.profiles_dir().to_str().unwrap(),
            "--pqc-openssl",
            OPENSSL35,
            "--throughput-ms",
            "50",
            "--out",
            out.to_str().unwrap(),
        ],
        &tokens.conf,
        &soft.conf,
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("38 passed, 0 failed, 2 skipped"),
        "{stdout}"
    );
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(USER_PIN) && !text.contains(SO_PIN));
    }
    let r = report(&out);
    assert_eq!(r["module"], module);
    assert_eq!(r["profile"], "kryoptic");
    assert_eq!(r["profile_source"], "built-in profile kryoptic");
    assert!(
        r["second_module"].is_null(),
        "same library as the token under test"
    );
    assert_eq!(r["token"]["manufacturer"], "Kryoptic Project");
    assert!(r["library"]["cryptoki_version"]
        .as_str()
        .unwrap()
        .starts_with('3'));
    let checks = checks_by_id(&r);
    assert_eq!(checks.len(), hkms::certify::CHECKS.len());
    for (id, c) in &checks {
        match EXPECTED_SKIPS.iter().find(|(s, _)| s == id) {
            Some((_, reason)) => {
                assert_eq!(c["result"], "skip", "{id}: {c}");
                assert!(c["reason"].as_str().unwrap().starts_with(reason), "{c}");
                assert_eq!(c["expected_skip"], true, "{id}: {c}");
                assert!(!c["profile_reason"].as_str().unwrap().is_empty(), "{c}");
            }
            None => assert_eq!(c["result"], "pass", "{id}: {c}"),
        }
    }
    let summary = &r["summary"];
    assert_eq!(summary["pass"], 38);
    assert_eq!(summary["fail"], 0);
    assert_eq!(summary["skip"], 2);
    assert_eq!(summary["unexpected_skip"], 0);
    assert_eq!(summary["exit_code"], 0);
    for id in [
        "mldsa.44",
        "mldsa.65",
        "mldsa.87",
        "mlkem.768",
        "mlkem.1024",
    ] {
        assert_eq!(checks[id]["result"], "pass", "{id}: {}", checks[id]);
    }
    // What sets Kryoptic apart, as the profile says.
    let reason = |id: &str| checks[id]["reason"].as_str().unwrap().to_owned();
    let rv = |id: &str| checks[id]["rv"].as_str().unwrap_or("").to_owned();
    assert!(reason("token.mechanisms").contains("CKM_AES_KEY_WRAP_KWP"));
    assert!(reason("aes.key_wrap_pad").contains("(CKM_AES_KEY_WRAP_KWP)"));
    assert_eq!(rv("aes.gcm.bad_tag"), "CKR_ENCRYPTED_DATA_INVALID");
    assert_eq!(rv("ec.generate.secp256k1"), "CKR_GENERAL_ERROR");
    // Attributes left out are taken from the unwrap template; a value against it is refused.
    assert!(
        reason("unwrap.template").contains("CKA_SENSITIVE left out: taken from the unwrap"),
        "{}",
        reason("unwrap.template")
    );
    assert_eq!(rv("unwrap.template"), "CKR_TEMPLATE_INCONSISTENT");
    assert!(
        checks["throughput"]["figures"]["aes_key_wrap_pad_ops_per_s"]
            .as_f64()
            .is_some_and(|f| f > 0.0)
    );
    assert_eq!(
        checks["cleanup"]["figures"]["objects_before"],
        checks["cleanup"]["figures"]["objects_after"]
    );

    // SoftHSM2 gives the domain key; the second Kryoptic token receives it.
    let out = dir.path().join("softhsm-to-kryoptic");
    let (code, stdout, stderr) = run(
        &[
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            SOFT,
            "--pin-file",
            pin,
            "--so-pin-file",
            so_pin,
            "--second-token",
            KRY_B,
            "--second-module",
            module,
            "--profile",
            "softhsm2",
            "--only",
            "domain.transfer",
            "--out",
            out.to_str().unwrap(),
        ],
        &tokens.conf,
        &soft.conf,
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report(&out);
    assert_eq!(r["second_token"], KRY_B);
    assert_eq!(r["second_module"], module);
    let checks = checks_by_id(&r);
    let transfer = &checks["domain.transfer"];
    assert_eq!(transfer["result"], "pass", "{transfer}");
    assert!(
        transfer["reason"]
            .as_str()
            .unwrap()
            .contains("(libsofthsm2.so to libkryoptic_pkcs11.so)"),
        "{transfer}"
    );
    assert!(transfer["figures"]["transfer_ms"].as_f64().unwrap() > 0.0);

    // Both runs left the Kryoptic tokens as they found them.
    let after = [count_objects(&tokens, "1"), count_objects(&tokens, "2")];
    assert_eq!(after, before);
}
