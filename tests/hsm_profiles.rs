//! HSM profiles against real SoftHSM2 tokens: every shipped profile loads, the SoftHSM2
//! profile agrees with the token it describes, a profile that contradicts its token is
//! reported when the member starts (refused when a required mechanism is missing), and a
//! quirk changes what a member offers.

mod common;

use common::{Daemon, MemberSpec, Tokens, SOFTHSM_MODULE, USER_PIN};
use hkms::hsm::profile::{self, CHECK_IDS};
use std::path::{Path, PathBuf};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-profiles")
}

#[test]
fn every_shipped_profile_loads_and_names_only_known_certify_checks() {
    let mut stems = Vec::new();
    for entry in std::fs::read_dir(shipped_dir()).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let p = profile::load(&shipped_dir(), &stem).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, stem);
        for (check, reason) in profile::certify_expected_skips(&p) {
            assert!(CHECK_IDS.contains(&check.as_str()), "{stem}: {check}");
            assert!(!reason.trim().is_empty(), "{stem}: {check}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("source"), "{stem} names no source");
        stems.push(stem);
    }
    stems.sort();
    let mut built_in: Vec<String> = profile::built_in_names().map(String::from).collect();
    built_in.sort();
    assert_eq!(stems, built_in, "every shipped profile is built in");
    for family in [
        "softhsm2",
        "kryoptic",
        "thales-luna",
        "entrust-nshield",
        "utimaco-securityserver",
        "aws-cloudhsm",
        "yubihsm2",
        "securosys-primus",
    ] {
        assert!(stems.iter().any(|s| s == family), "{family}");
    }
    let soft = profile::load(&shipped_dir(), "softhsm2").unwrap();
    let skips = profile::certify_expected_skips(&soft);
    assert!(skips.contains_key("rsa.oaep.sha256") && skips.contains_key("mlkem.768"));
}

#[test]
fn the_softhsm2_profile_agrees_with_a_real_softhsm2_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::create(dir.path(), &["p0"]);
    std::env::set_var("SOFTHSM2_CONF", &tokens.conf);
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, USER_PIN).unwrap();
    let cfg = hkms::config::MemberConfig {
        name: "hsm-0".into(),
        module: SOFTHSM_MODULE.into(),
        token_label: Some("p0".into()),
        token_serial: None,
        pin_file,
        profile: "softhsm2".into(),
        max_sessions: 2,
        inline_calls: None,
    };
    let m = hkms::hsm::Member::configured(Path::new("/nonexistent"), &cfg).unwrap();
    m.connect(None).unwrap();
    assert_eq!(m.profile_name(), "softhsm2");
    assert_eq!(m.profile_findings(), Vec::<String>::new());
    // The same member under a profile that requires a mechanism SoftHSM2 does not have is
    // refused, with member, profile and mechanism named.
    let strict = tempfile::tempdir().unwrap();
    write_variant(strict.path(), "strict", |t| {
        t.replace(
            "\"CKM_AES_KEY_GEN\",",
            "\"CKM_AES_KEY_GEN\", \"CKM_AES_XTS\",",
        )
    });
    let cfg = hkms::config::MemberConfig {
        profile: "strict".into(),
        ..cfg
    };
    let m = hkms::hsm::Member::configured(strict.path(), &cfg).unwrap();
    let e = m.connect(None).unwrap_err().to_string();
    assert!(
        e.contains("hsm-0") && e.contains("CKM_AES_XTS") && e.contains("\"strict\""),
        "{e}"
    );
    assert_eq!(m.health(), hkms::hsm::Health::Down);
}

/// Writes `<dir>/<name>.toml`: the shipped SoftHSM2 profile changed by `edit`.
fn write_variant(dir: &Path, name: &str, edit: impl Fn(&str) -> String) {
    let base = std::fs::read_to_string(shipped_dir().join("softhsm2.toml")).unwrap();
    let text = edit(&base).replace("name = \"softhsm2\"", &format!("name = \"{name}\""));
    assert_ne!(text, base, "the edit changed nothing");
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

#[test]
fn hkmsd_reports_members_that_contradict_their_profiles_and_applies_quirks() {
    let profiles = tempfile::tempdir().unwrap();
    // Claims an optional mechanism SoftHSM2 lacks, and SHA-256 OAEP.
    write_variant(profiles.path(), "claims", |t| {
        t.replace(
            "\"CKM_AES_CBC_ENCRYPT_DATA\",",
            "\"CKM_AES_CBC_ENCRYPT_DATA\", \"CKM_AES_XTS\",",
        )
        .replace(
            "oaep_hashes = [\"sha1\"]",
            "oaep_hashes = [\"sha1\", \"sha256\"]",
        )
    });
    // Requires a mechanism SoftHSM2 lacks.
    write_variant(profiles.path(), "strict", |t| {
        t.replace(
            "\"CKM_AES_KEY_GEN\",",
            "\"CKM_AES_KEY_GEN\", \"CKM_AES_XTS\",",
        )
    });
    let specs = [
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
        MemberSpec::softhsm("hsm-2", "m2"),
    ];
    let hardening = format!(
        "\n[hardening]\nprofiles_dir = {:?}\n",
        profiles.path().display().to_string()
    );
    let mut d = Daemon::start_custom(&specs, &[], &hardening);
    d.stop(false);
    // hsm-0 on "claims", hsm-1 on "strict", hsm-2 on the shipped softhsm2 profile.
    let config = std::fs::read_to_string(&d.config).unwrap();
    let config = config
        .replacen(
            "name = \"hsm-0\"\n",
            "name = \"hsm-0\"\nprofile = \"claims\"\n",
            1,
        )
        .replacen(
            "name = \"hsm-1\"\n",
            "name = \"hsm-1\"\nprofile = \"strict\"\n",
            1,
        );
    std::fs::write(&d.config, config).unwrap();
    d.spawn().expect("hkmsd starts with two usable members");

    let log = d.log_text();
    assert!(
        log.contains("hsm-1") && log.contains("refused: its token lacks CKM_AES_XTS"),
        "{log}"
    );
    assert!(
        log.contains("lists CKM_AES_XTS as optional, but the token does not offer it"),
        "{log}"
    );

    let status = d.cli_json(&["hsm", "status"]);
    let member = |name: &str| {
        status["Members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == name)
            .unwrap()
            .clone()
    };
    let (claims, strict, plain) = (member("hsm-0"), member("hsm-1"), member("hsm-2"));
    assert_eq!(claims["State"], "Up");
    assert_eq!(claims["Profile"], "claims");
    assert_eq!(
        claims["ProfileFindings"],
        serde_json::json!([
            "profile \"claims\" lists CKM_AES_XTS as optional, but the token does not offer it"
        ])
    );
    assert_eq!(strict["State"], "Down");
    assert!(
        strict["LastError"]
            .as_str()
            .unwrap()
            .contains("CKM_AES_XTS, which HSM profile \"strict\" requires"),
        "{strict}"
    );
    assert_eq!(plain["ProfileFindings"], serde_json::json!([]));

    // The OAEP quirk decides what each member offers.
    let offers = |m: &serde_json::Value, alg: &str| {
        m["Algorithms"].as_array().unwrap().iter().any(|a| a == alg)
    };
    assert!(offers(&claims, "RSAES_OAEP_SHA_256"), "{claims}");
    assert!(!offers(&plain, "RSAES_OAEP_SHA_256"), "{plain}");
    assert!(offers(&plain, "RSAES_OAEP_SHA_1"), "{plain}");

    // The text form shows the findings under the member lines.
    let out = d.cli(&["hsm", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  hsm-0: profile \"claims\" lists CKM_AES_XTS as optional"),
        "{text}"
    );
}

#[test]
fn template_and_trusted_quirks_decide_how_the_domain_key_is_made_and_copied() {
    let profiles = tempfile::tempdir().unwrap();
    // A device like Kryoptic: it refuses wrap/unwrap templates and cannot mark a wrapping
    // key trusted.
    write_variant(profiles.path(), "bare", |t| {
        t.replace("trusted = \"so_only\"", "trusted = \"unsupported\"")
            .replace(
                "unwrap_template = \"enforced\"",
                "unwrap_template = \"rejected\"",
            )
            .replace(
                "wrap_template = \"enforced\"",
                "wrap_template = \"rejected\"",
            )
    });
    let specs = [
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
    ];
    let hardening = format!(
        "\n[hardening]\nprofiles_dir = {:?}\n",
        profiles.path().display().to_string()
    );
    let mut d = Daemon::start_custom(&specs, &[], &hardening);
    d.stop(false);
    let config = std::fs::read_to_string(&d.config).unwrap().replacen(
        "name = \"hsm-0\"\n",
        "name = \"hsm-0\"\nprofile = \"bare\"\n",
        1,
    );
    std::fs::write(&d.config, config).unwrap();
    d.spawn().expect("hkmsd starts");
    d.init_ok();

    // hsm-0 cannot give the domain key, so it was made on hsm-1 and copied to hsm-0, which
    // received it without templates.
    let log = d.log_text();
    assert!(
        log.contains("domain key copied HSM-to-HSM") && log.contains("from=hsm-1"),
        "{log}"
    );
    let status = d.cli_json(&["hsm", "status"]);
    let template = |name: &str| {
        status["Members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == name)
            .unwrap()["UnwrapTemplate"]
            .clone()
    };
    assert_eq!(template("hsm-0"), "Absent", "{status}");
    assert_eq!(template("hsm-1"), "Enforced", "{status}");

    // Both members serve keys under the one domain key.
    let key = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..4 {
        let enc = d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "both"]);
        let blob = enc["CiphertextBlob"].as_str().unwrap().to_owned();
        d.cli_json(&["decrypt", "--ciphertext-blob", &blob]);
    }
    let status = d.cli_json(&["hsm", "status"]);
    for m in status["Members"].as_array().unwrap() {
        assert!(m["Operations"].as_u64().unwrap() > 0, "{status}");
    }
}

#[test]
fn the_general_error_quirk_decides_whether_a_bad_tag_takes_a_member_down() {
    let profiles = tempfile::tempdir().unwrap();
    // A profile that says CKR_GENERAL_ERROR is never bad input on this device.
    write_variant(profiles.path(), "faulty", |t| {
        t.replace(
            "general_error_on_bad_tag = true",
            "general_error_on_bad_tag = false",
        )
    });
    let specs = [
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
    ];
    let hardening = format!(
        "\n[hardening]\nprofiles_dir = {:?}\n",
        profiles.path().display().to_string()
    );
    let mut d = Daemon::start_custom(&specs, &[], &hardening);
    d.stop(false);
    let config = std::fs::read_to_string(&d.config).unwrap().replacen(
        "name = \"hsm-0\"\n",
        "name = \"hsm-0\"\nprofile = \"faulty\"\n",
        1,
    );
    std::fs::write(&d.config, config).unwrap();
    d.spawn().expect("hkmsd starts");
    d.init_ok();
    let key = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let enc = d.cli_json(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "x",
        "--aad",
        "right",
    ]);
    let blob = enc["CiphertextBlob"].as_str().unwrap().to_owned();
    // Round-robin sends one of the two decrypts to each member. SoftHSM2 answers a bad tag
    // with CKR_GENERAL_ERROR: on hsm-1 (shipped profile) that is bad input; on hsm-0 its
    // profile makes it a device fault, so hsm-0 is taken out and the call retried on hsm-1.
    for _ in 0..2 {
        let code = d.cli_error(&["decrypt", "--ciphertext-blob", &blob, "--aad", "wrong"]);
        assert_eq!(code, "InvalidCiphertext");
    }
    let log = d.log_text();
    let downs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("HSM member marked down"))
        .collect();
    assert!(
        downs
            .iter()
            .any(|l| l.contains("hsm-0") && l.contains("GeneralError")),
        "{log}"
    );
    assert!(!downs.iter().any(|l| l.contains("hsm-1")), "{log}");
}
