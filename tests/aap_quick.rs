//! Quick creation of an AAP (`hkms aap create --quick`) beside standard creation, end to
//! end: a real hkmsd on SoftHSM2 tokens, the CLI, and signed requests with the written
//! files through a real gateway.

mod common;
#[path = "support/gateway.rs"]
mod support;

use hkms::instance_api as api;
use prost::Message;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// The files a creation's JSON output names.
fn files_of(ck: &Value) -> ClientKeyFiles {
    ClientKeyFiles {
        id: s(&ck["ClientKeyId"]),
        file: PathBuf::from(s(&ck["ClientKeyFile"])),
        password_file: PathBuf::from(s(&ck["PasswordFile"])),
    }
}

/// The validity of a ClientKey in the CLI's JSON, as (NotBefore, NotAfter) RFC 3339 strings.
fn validity(ck: &Value) -> (String, String) {
    (s(&ck["NotBefore"]), s(&ck["NotAfter"]))
}

/// `t` with its year moved by `years` (the date and time of day kept).
fn plus_years(t: &str, years: i32) -> String {
    let y: i32 = t[..4].parse().unwrap();
    format!("{:04}{}", y + years, &t[4..])
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(&v["Name"]))
        .collect()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn quick_creation_connects_an_application_in_one_command() {
    let inst = Instance::new();
    let key = inst.create_key();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let dir = inst.d.path("shop");
    let out = inst.d.cli_json(&[
        "aap",
        "create",
        "--quick",
        "--name",
        "shop",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);

    // The AAP with its two policies: every key and every secret, no network rules.
    let aap = &out["ApplicationAccessPoint"];
    assert_eq!(aap["Name"], "shop");
    assert_eq!(
        aap["Policies"],
        serde_json::json!(["shop-keys", "shop-secrets"])
    );
    let policies = out["Policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "{out}");
    for (p, name, role, resource) in [
        (&policies[0], "shop-keys", "CryptoServiceKeyUser", "key/*"),
        (
            &policies[1],
            "shop-secrets",
            "CryptoServiceSecretUser",
            "secret/*",
        ),
    ] {
        assert_eq!(p["Name"], name);
        assert_eq!(p["RbacRole"], role);
        assert_eq!(p["Resources"], serde_json::json!([resource]));
        assert_eq!(
            p["AccessControlRules"]["NetworkRules"],
            serde_json::json!([])
        );
    }
    let described = inst.d.cli_json(&["policy", "describe", "shop-secrets"]);
    assert_eq!(
        described["Policy"]["Resources"],
        serde_json::json!(["secret/*"])
    );

    // A ClientKey valid 5 years to the day, and its two files, as client-key create writes
    // them.
    let ck = &out["ClientKey"];
    let (from, to) = validity(ck);
    assert_eq!(to, plus_years(&from, 5), "{ck}");
    let days = ck["DaysLeft"].as_i64().unwrap();
    assert!((1825..=1827).contains(&days), "{ck}");
    assert_eq!(ck["State"], "Valid");
    let files = files_of(ck);
    assert_eq!(
        files.file,
        dir.join(format!("clientKey_{}.json", files.id)),
        "{ck}"
    );
    assert_eq!(
        files.password_file,
        dir.join(format!("clientKey_{}_Password.txt", files.id))
    );
    use std::os::unix::fs::PermissionsExt;
    for p in [&files.file, &files.password_file] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
    let listed = inst.d.cli_json(&["client-key", "list", "--aap", "shop"]);
    assert_eq!(listed["ClientKeys"][0]["ClientKeyId"], files.id.as_str());

    // The application signs with the files: Encrypt, Decrypt and GenerateRandom through the
    // gateway.
    let mut conn = connect(gw.port, &inst.bundle);
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"order 1".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let a = post(&mut conn, "/", &files.signed("Encrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let enc = api::EncryptResponse::decode(a.body.as_slice()).unwrap();
    let body = api::DecryptRequest {
        key_id: key.clone(),
        ciphertext_blob: enc.ciphertext_blob,
        iv: enc.iv,
        ..Default::default()
    }
    .encode_to_vec();
    let a = post(&mut conn, "/", &files.signed("Decrypt", &body), &body);
    assert_eq!(a.status, 200, "{:?}", a.failure());
    let dec = api::DecryptResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(dec.plaintext, b"order 1");
    let body = api::GenerateRandomRequest { length: 16 }.encode_to_vec();
    let a = post(
        &mut conn,
        "/",
        &files.signed("GenerateRandom", &body),
        &body,
    );
    assert_eq!(a.status, 200, "{:?}", a.failure());

    // Standard creation keeps a ClientKey of one year to the day by default.
    inst.d
        .cli_json(&["aap", "create", "--name", "std", "--policies", "shop-keys"]);
    let std_dir = inst.d.path("std");
    let std_key = inst.d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        "std",
        "--output-dir",
        std_dir.to_str().unwrap(),
    ])["ClientKey"]
        .clone();
    let (from, to) = validity(&std_key);
    assert_eq!(to, plus_years(&from, 1), "{std_key}");
    let days = std_key["DaysLeft"].as_i64().unwrap();
    assert!((364..=366).contains(&days), "{std_key}");
    let a = post(
        &mut conn,
        "/",
        &files_of(&std_key).signed("GenerateRandom", &body),
        &body,
    );
    assert_eq!(a.status, 200, "{:?}", a.failure());
}

#[test]
fn quick_creation_refuses_bad_input_and_leaves_nothing_behind() {
    let d = common::Daemon::initialised(1);
    let dir = d.path("out");
    let dir_s = dir.to_str().unwrap();
    let everything = |d: &common::Daemon| {
        (
            names(&d.cli_json(&["aap", "list"]), "ApplicationAccessPoints"),
            names(&d.cli_json(&["policy", "list"]), "Policies"),
        )
    };

    // Usage: --quick needs --output-dir, and makes its own policies.
    assert_eq!(
        d.cli_error(&["aap", "create", "--quick", "--name", "a"]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&[
            "aap",
            "create",
            "--quick",
            "--name",
            "a",
            "--output-dir",
            dir_s,
            "--policies",
            "p"
        ]),
        "InvalidParameter"
    );
    assert_eq!(
        d.cli_error(&["aap", "create", "--name", "a", "--output-dir", dir_s]),
        "InvalidParameter",
        "--output-dir without --quick"
    );
    // Names: the policies' suffix must fit in 64 characters.
    let long = "n".repeat(60);
    let out = d.cli(&[
        "--json",
        "aap",
        "create",
        "--quick",
        "--name",
        &long,
        "--output-dir",
        dir_s,
    ]);
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["Code"], "InvalidParameter");
    assert!(s(&e["Message"]).contains("-secrets"), "{e}");
    // A weak password.
    let pw = d.path("pw");
    std::fs::write(&pw, "password\n").unwrap();
    assert_eq!(
        d.cli_error(&[
            "aap",
            "create",
            "--quick",
            "--name",
            "a",
            "--output-dir",
            dir_s,
            "--password-file",
            pw.to_str().unwrap()
        ]),
        "InvalidParameter"
    );
    assert_eq!(everything(&d), (vec![], vec![]));

    // Names that are taken: the AAP's or either policy's. Nothing is created.
    d.cli_json(&[
        "policy",
        "create",
        "--name",
        "taken-secrets",
        "--role",
        "CryptoServiceSecretUser",
        "--resources",
        "secret/x*",
    ]);
    let out = d.cli(&[
        "--json",
        "aap",
        "create",
        "--quick",
        "--name",
        "taken",
        "--output-dir",
        dir_s,
    ]);
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["Code"], "ResourceExists", "{e}");
    let message = s(&e["Message"]);
    assert!(
        message.contains("policy taken-secrets already exists")
            && message.contains("Nothing was created"),
        "{message}"
    );
    assert_eq!(everything(&d), (vec![], vec!["taken-secrets".to_owned()]));
    d.cli_json(&[
        "aap",
        "create",
        "--name",
        "app",
        "--policies",
        "taken-secrets",
    ]);
    assert_eq!(
        d.cli_error(&[
            "aap",
            "create",
            "--quick",
            "--name",
            "app",
            "--output-dir",
            dir_s
        ]),
        "ResourceExists"
    );
    assert_eq!(
        everything(&d),
        (vec!["app".to_owned()], vec!["taken-secrets".to_owned()])
    );

    // A step hkmsd refuses after the policies were made (a description over 1024 bytes is
    // checked with the AAP): what was made is deleted again.
    let long_description = "d".repeat(1100);
    let out = d.cli(&[
        "--json",
        "aap",
        "create",
        "--quick",
        "--name",
        "late",
        "--description",
        &long_description,
        "--output-dir",
        dir_s,
    ]);
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["Code"], "InvalidParameter", "{e}");
    assert!(
        s(&e["Message"]).contains("what it had created was deleted again"),
        "{e}"
    );
    assert_eq!(
        everything(&d),
        (vec!["app".to_owned()], vec!["taken-secrets".to_owned()])
    );
    assert_eq!(files_in(&dir), 0, "no ClientKey files were written");
    let keys = d.cli_json(&["client-key", "list"]);
    assert_eq!(keys["ClientKeys"], serde_json::json!([]));
}

#[test]
fn help_teaches_quick_and_standard_creation() {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["aap", "create", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--quick",
        "<NAME>-keys",
        "secret/*",
        "5 years",
        "Examples:",
        "hkms aap create --quick --name billing --output-dir ./billing",
        "hkms client-key create --aap billing",
    ] {
        assert!(
            help.contains(word),
            "aap create --help lacks {word}: {help}"
        );
    }
}
