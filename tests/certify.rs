//! `hkms certify` against real SoftHSM2 tokens: every check's result in report.json, the
//! HTML report, the token left as found, a failure injected through the fault module, and
//! setup errors.

mod common;

use common::{Tokens, SOFTHSM_MODULE, SO_PIN, USER_PIN};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const LABEL: &str = "cert-a";
const SECOND: &str = "cert-b";

/// Checks that SoftHSM2 2.6 skips, with the start of the reason.
const SOFTHSM_SKIPS: &[(&str, &str)] = &[
    (
        "rsa.oaep.sha256",
        "the token does not do OAEP with SHA-256 (CKR_ARGUMENTS_BAD)",
    ),
    ("mldsa.44", "mechanism not offered by the token"),
    ("mldsa.65", "mechanism not offered by the token"),
    ("mldsa.87", "mechanism not offered by the token"),
    ("mlkem.768", "mechanism not offered by the token"),
    ("mlkem.1024", "mechanism not offered by the token"),
];

fn certify(conf: &Path, module: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hkms"));
    cmd.arg("certify")
        .arg("--module")
        .arg(module)
        .args(args)
        .env("SOFTHSM2_CONF", conf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn checks_by_id(r: &Value) -> BTreeMap<String, Value> {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// A logged-in session on the token labelled `label`, in this process.
fn user_session(label: &str) -> cryptoki::session::Session {
    let ctx = hkms::hsm::module::load(Path::new(SOFTHSM_MODULE)).unwrap();
    let slots = ctx.get_slots_with_token().unwrap();
    let slot = *slots
        .iter()
        .find(|s| ctx.get_token_info(**s).unwrap().label().trim_end() == label)
        .unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::from(USER_PIN.to_owned())))
        .unwrap();
    s
}

/// Objects the user sees on each token, counted in this process with C_FindObjects.
fn count_objects(labels: &[&str]) -> Vec<usize> {
    labels
        .iter()
        .map(|label| {
            let s = user_session(label);
            let n = s.find_objects(&[]).unwrap().len();
            s.logout().unwrap();
            n
        })
        .collect()
}

/// A token key that was there before the run.
fn existing_key(label: &str) {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    let s = user_session(label);
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(b"existing-key".to_vec()),
        Attribute::Value(vec![7u8; 32]),
    ])
    .unwrap();
    s.logout().unwrap();
}

#[test]
fn softhsm2_passes_every_check_it_can_and_is_left_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::create(dir.path(), &[LABEL, SECOND]);
    // This process counts objects on the same tokens (SoftHSM2 reads the file at C_Initialize).
    std::env::set_var("SOFTHSM2_CONF", &tokens.conf);
    let pin = dir.path().join("pin");
    let so_pin = dir.path().join("so-pin");
    std::fs::write(&pin, format!("{USER_PIN}\n")).unwrap();
    std::fs::write(&so_pin, format!("{SO_PIN}\n")).unwrap();
    // A profile that expects SoftHSM2's skips, except one (to see an unexpected skip).
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let mut profile = String::from("name = \"softhsm2\"\n[certify.expected_skip]\n");
    for (id, _) in SOFTHSM_SKIPS.iter().filter(|(id, _)| *id != "mlkem.1024") {
        profile.push_str(&format!("{id:?} = \"not on SoftHSM2 ({id})\"\n"));
    }
    std::fs::write(profiles.join("softhsm2.toml"), profile).unwrap();
    existing_key(LABEL);
    existing_key(SECOND);
    existing_key(SECOND);
    let before = count_objects(&[LABEL, SECOND]);
    assert_eq!(before, [1, 2]);

    let out = dir.path().join("report");
    let started = std::time::Instant::now();
    let run = certify(
        &tokens.conf,
        Path::new(SOFTHSM_MODULE),
        &[
            "--token-label",
            LABEL,
            "--pin-file",
            pin.to_str().unwrap(),
            "--so-pin-file",
            so_pin.to_str().unwrap(),
            "--second-token",
            SECOND,
            "--profile",
            "softhsm2",
            "--profiles-dir",
            profiles.to_str().unwrap(),
            "--throughput-ms",
            "50",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    // The summary table, a progress line per check, and never a PIN.
    assert!(stdout.contains("passed, 0 failed, 6 skipped"), "{stdout}");
    assert!(stdout.contains("UNEXPECTED SKIP"), "{stdout}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with('[')).count(),
        40,
        "{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(USER_PIN) && !text.contains(SO_PIN));
    }

    let r = report(&out);
    assert_eq!(r["schema"], "hkms-certify/1");
    assert_eq!(r["module"], SOFTHSM_MODULE);
    assert_eq!(r["token"]["label"], LABEL);
    assert_eq!(r["token"]["manufacturer"], "SoftHSM project");
    assert_eq!(r["second_token"], SECOND);
    assert_eq!(r["profile"], "softhsm2");
    assert!(r["run_id"].as_str().unwrap().starts_with("hkms-certify-"));
    assert!(r["library"]["cryptoki_version"]
        .as_str()
        .unwrap()
        .starts_with('2'));
    assert!(r["duration_ms"].as_f64().unwrap() > 0.0);
    let ids: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = hkms::certify::CHECKS.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, want, "every check once, in the fixed order");
    for id in [
        "token.info",
        "token.mechanisms",
        "login.user",
        "login.bad_pin",
        "session.limit",
        "aes.generate",
        "aes.gcm",
        "aes.gcm.bad_tag",
        "aes.cbc",
        "aes.cbc_pad",
        "aes.ecb",
        "aes.key_wrap_pad",
        "domain.transfer",
        "unwrap.template",
        "wrap.template",
        "sensitive.unreadable",
        "nonextractable.unwrappable",
        "rsa.generate",
        "rsa.pkcs1",
        "rsa.pss",
        "rsa.oaep.sha1",
        "rsa.oaep.sha256",
        "ec.generate.p256",
        "ec.generate.p384",
        "ec.generate.secp256k1",
        "ecdsa",
        "hmac.sha256",
        "hmac.sha384",
        "hmac.sha512",
        "random",
        "concurrency.sessions",
        "recovery.sessions_closed",
        "recovery.relogin",
        "throughput",
        "mldsa.44",
        "mldsa.65",
        "mldsa.87",
        "mlkem.768",
        "mlkem.1024",
        "cleanup",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
    let checks = checks_by_id(&r);
    for (id, c) in &checks {
        assert!(!c["title"].as_str().unwrap().is_empty(), "{id}");
        assert!(!c["reason"].as_str().unwrap().is_empty(), "{id}");
        assert!(c["duration_ms"].as_f64().unwrap() >= 0.0, "{id}");
        match SOFTHSM_SKIPS.iter().find(|(s, _)| s == id) {
            Some((_, reason)) => {
                assert_eq!(c["result"], "skip", "{id}: {c}");
                assert!(
                    c["reason"].as_str().unwrap().starts_with(reason),
                    "{id}: {c}"
                );
                let expected = id != "mlkem.1024";
                assert_eq!(c["expected_skip"], expected, "{id}: {c}");
                if expected {
                    assert_eq!(c["profile_reason"], format!("not on SoftHSM2 ({id})"));
                } else {
                    assert!(c["profile_reason"].is_null());
                }
            }
            None => {
                assert_eq!(c["result"], "pass", "{id}: {c}");
                assert!(c["expected_skip"].is_null(), "{id}: {c}");
            }
        }
    }
    let summary = &r["summary"];
    assert_eq!(summary["pass"], 34);
    assert_eq!(summary["fail"], 0);
    assert_eq!(summary["skip"], 6);
    assert_eq!(summary["unexpected_skip"], 1);
    assert_eq!(summary["exit_code"], 0);

    // Return codes of the quirks and negative checks.
    let rv = |id: &str| checks[id]["rv"].as_str().unwrap_or("").to_owned();
    assert_eq!(rv("aes.gcm.bad_tag"), "CKR_GENERAL_ERROR");
    assert_eq!(rv("login.bad_pin"), "CKR_PIN_INCORRECT");
    assert_eq!(rv("rsa.oaep.sha256"), "CKR_ARGUMENTS_BAD");
    assert_eq!(rv("nonextractable.unwrappable"), "CKR_KEY_UNEXTRACTABLE");
    assert_eq!(rv("domain.transfer"), "CKR_KEY_NOT_WRAPPABLE");
    assert!(!rv("unwrap.template").is_empty() && !rv("wrap.template").is_empty());

    // Figures: present and positive.
    let figure = |id: &str, name: &str| checks[id]["figures"][name].as_f64().unwrap_or(-1.0);
    for name in [
        "aes256_gcm_encrypt_256B_ops_per_s",
        "aes256_cbc_pad_encrypt_256B_ops_per_s",
        "aes_key_wrap_pad_ops_per_s",
        "hmac_sha256_256B_ops_per_s",
        "rsa2048_pss_sign_ops_per_s",
        "ecdsa_p256_sign_ops_per_s",
        "random_32B_ops_per_s",
    ] {
        assert!(
            figure("throughput", name) > 0.0,
            "{name}: {}",
            checks["throughput"]
        );
    }
    assert!(figure("session.limit", "sessions_opened") >= 8.0);
    assert!(figure("domain.transfer", "transfer_ms") > 0.0);
    assert!(figure("rsa.generate", "rsa3072_generate_ms") > 0.0);
    assert!(figure("concurrency.sessions", "operations") == 800.0);
    assert!(figure("recovery.sessions_closed", "recovery_ms") > 0.0);
    assert!((9726.0..=10274.0).contains(&figure("random", "monobit_ones")));
    assert_eq!(
        figure("cleanup", "objects_before"),
        figure("cleanup", "objects_after")
    );

    // The HTML report: self-contained, every check in it.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in &ids {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    for external in ["<script", "src=", "href=", "http://", "https://"] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(!html.contains(USER_PIN) && !html.contains(SO_PIN));
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(!json.contains(USER_PIN) && !json.contains(SO_PIN));

    // Both tokens hold exactly what they held before.
    assert_eq!(count_objects(&[LABEL, SECOND]), before);
}

#[test]
fn a_fault_injected_under_a_check_fails_it_and_the_exit_code_says_so() {
    let module = hkms_fault_pkcs11::control::locate_module()
        .expect("the fault module is built as a dev-dependency");
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::create(dir.path(), &[LABEL]);
    let faults = dir.path().join("faults");
    std::fs::create_dir(&faults).unwrap();
    hkms_fault_pkcs11::control::write_fault_text(
        &faults,
        LABEL,
        "mode = error\nrv = CKR_DEVICE_ERROR\nfunctions = C_GenerateRandom\n",
    )
    .unwrap();
    let pin = dir.path().join("pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    // A profile that expects no skip.
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(profiles.join("plain.toml"), "name = \"plain\"\n").unwrap();
    let out = dir.path().join("report");
    let run = certify(
        &tokens.conf,
        &module,
        &[
            "--token-label",
            LABEL,
            "--pin-file",
            pin.to_str().unwrap(),
            "--profile",
            "plain",
            "--profiles-dir",
            profiles.to_str().unwrap(),
            "--only",
            "random,aes.gcm,domain.transfer,recovery.relogin",
            "--out",
            out.to_str().unwrap(),
        ],
        &[
            ("HKMS_FAULT_DIR", &faults),
            ("HKMS_FAULT_REAL_MODULE", Path::new(SOFTHSM_MODULE)),
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = report(&out);
    let checks = checks_by_id(&r);
    let random = &checks["random"];
    assert_eq!(random["result"], "fail", "{random}");
    assert_eq!(random["rv"], "CKR_DEVICE_ERROR", "{random}");
    assert!(
        random["reason"]
            .as_str()
            .unwrap()
            .contains("GenerateRandom"),
        "{random}"
    );
    assert_eq!(checks["aes.gcm"]["result"], "pass");
    assert_eq!(checks["recovery.relogin"]["result"], "pass");
    assert_eq!(checks["login.user"]["result"], "pass");
    assert_eq!(checks["cleanup"]["result"], "pass");
    let transfer = &checks["domain.transfer"];
    assert_eq!(transfer["result"], "skip");
    assert!(transfer["reason"]
        .as_str()
        .unwrap()
        .contains("--second-token"));
    assert_eq!(
        transfer["expected_skip"], false,
        "the profile expects no skip"
    );
    assert_eq!(checks["rsa.pss"]["reason"], "not selected (--only)");
    assert!(
        checks["rsa.pss"]["expected_skip"].is_null(),
        "a check left out was not tried"
    );
    assert_eq!(r["summary"]["unexpected_skip"], 1);
    assert_eq!(r["summary"]["fail"], 1);
    assert_eq!(r["summary"]["exit_code"], 1);
    assert!(stdout.contains("1 failed"), "{stdout}");
}

#[test]
fn setup_and_usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::create(dir.path(), &[LABEL]);
    let pin = dir.path().join("pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    let out = dir.path().join("report");
    let module = Path::new(SOFTHSM_MODULE);
    let args = |label: &'static str, extra: &'static [&'static str]| {
        let mut v = vec!["--token-label", label, "--out", out.to_str().unwrap()];
        v.extend(["--pin-file", pin.to_str().unwrap()]);
        v.extend(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let run = |a: Vec<String>, module: &Path| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        certify(&tokens.conf, module, &a, &[])
    };
    let cases: Vec<(Output, &str)> = vec![
        (run(args("no-such-token", &[]), module), "no token labelled"),
        (
            run(args(LABEL, &["--only", "aes.nothing"]), module),
            "--only",
        ),
        (
            run(args(LABEL, &["--second-token", "missing"]), module),
            "no token labelled",
        ),
        (
            run(args(LABEL, &["--profile", "no-such-profile"]), module),
            "not found",
        ),
        (
            run(args(LABEL, &[]), Path::new("/nonexistent/lib.so")),
            "does not exist",
        ),
    ];
    for (o, says) in cases {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
    assert!(!out.join("report.json").exists());
    let help = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["certify", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for teaches in [
        "Exit codes",
        "hkms-certify-<random>",
        "Example",
        "--second-token",
        "recovery.sessions_closed",
        "mlkem.1024",
    ] {
        assert!(help.contains(teaches), "{teaches}: {help}");
    }
}
