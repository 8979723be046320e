//! `hkms key ...`, `hkms alias update`, `hkms instance key-deletion` and `hkms jobs`
//! against a real hkmsd on SoftHSM2, with the test clock: the whole lifecycle as an
//! operator drives it, including bring-your-own-key with the material wrapped by the CLI.

#[path = "support/clock.rs"]
mod clock;
mod common;

use clock::TestClock;
use common::{Daemon, MemberSpec};
use serde_json::Value;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn daemon(clock: &TestClock) -> Daemon {
    let (k, v) = clock.env();
    let d = Daemon::start_custom(
        &[MemberSpec::softhsm("hsm-0", "m0")],
        &[(k, v.as_str())],
        "jobs_interval_secs = 3600",
    );
    d.init_ok();
    d
}

fn text(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_rotates_protects_schedules_and_deletes_keys() {
    let clock = TestClock::default();
    let d = daemon(&clock);
    let created = d.cli_json(&[
        "key",
        "create",
        "--description",
        "orders",
        "--rotation-interval",
        "30d",
        "--tag",
        "team=payments",
    ]);
    let key = s(&created["KeyMetadata"]["KeyId"]);
    assert_eq!(created["KeyMetadata"]["AutomaticRotation"], "Enabled");

    let v = d.cli_json(&["key", "create-version", &key]);
    let v2 = s(&v["KeyVersion"]["KeyVersionId"]);
    let versions = d.cli_json(&["key", "versions", &key]);
    let listed = versions["KeyVersions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{versions}");
    assert_eq!(s(&listed[1]["KeyVersionId"]), v2);
    assert_eq!(listed[1]["Primary"], true);
    let table = text(&d, &["key", "versions", &key]);
    assert!(table.contains(&v2), "{table}");

    let shown = text(&d, &["key", "rotation", "show", &key]);
    assert!(shown.contains("every 30 days"), "{shown}");
    d.cli_json(&["key", "rotation", "set", &key, "--interval", "7d"]);
    let jobs = d.cli_json(&["jobs", "list"]);
    assert!(
        jobs["Jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["Kind"] == "Rotate" && s(&j["KeyId"]) == key),
        "{jobs}"
    );
    clock.advance(8 * 86_400);
    let ran = d.cli_json(&["jobs", "run"]);
    assert_eq!(ran["Outcomes"].as_array().unwrap().len(), 1, "{ran}");
    let meta = d.cli_json(&["key", "describe", &key]);
    assert_eq!(meta["KeyMetadata"]["KeyVersionCount"], 3);

    // Tags, description, alias update.
    d.cli_json(&["key", "tag", "--key-id", &key, "env=prod", "tier=1"]);
    d.cli_json(&["key", "untag", "--key-id", &key, "tier"]);
    let tags = text(&d, &["key", "tags", &key]);
    assert!(
        tags.contains("env=prod") && tags.contains("team=payments"),
        "{tags}"
    );
    assert!(!tags.contains("tier"), "{tags}");
    let filtered = d.cli_json(&["key", "list", "--tag", "env=prod"]);
    assert_eq!(filtered["Keys"].as_array().unwrap().len(), 1, "{filtered}");
    d.cli_json(&[
        "key",
        "update-description",
        &key,
        "--description",
        "orders v2",
    ]);
    let other = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);
    d.cli_json(&[
        "alias",
        "create",
        "--alias-name",
        "alias/live",
        "--key-id",
        &key,
    ]);
    d.cli_json(&[
        "alias",
        "update",
        "--alias-name",
        "alias/live",
        "--key-id",
        &other,
    ]);
    let described = d.cli_json(&["key", "describe", "alias/live"]);
    assert_eq!(s(&described["KeyMetadata"]["KeyId"]), other);

    // Protection and the instance-wide switch; then scheduled, cancelled, destroyed.
    d.cli_json(&["key", "disable", &key]);
    let disabled = text(&d, &["key", "describe", &key]);
    assert!(disabled.contains("hkms key enable"), "{disabled}");
    d.cli_json(&[
        "key",
        "protection",
        "on",
        &key,
        "--description",
        "audit hold",
    ]);
    let e = d.cli_error(&[
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "7",
    ]);
    assert_eq!(e, "DeletionProtected");
    d.cli_json(&["key", "protection", "off", &key]);
    d.cli_json(&["instance", "key-deletion", "block"]);
    let status = d.cli_json(&["status"]);
    assert_eq!(status["KeyDeletionBlocked"], true, "{status}");
    let e = d.cli_error(&[
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "7",
    ]);
    assert_eq!(e, "DeletionProtected");
    d.cli_json(&["instance", "key-deletion", "allow"]);
    let e = d.cli_error(&[
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "3",
    ]);
    assert_eq!(e, "InvalidParameter");
    let pending = d.cli_json(&[
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "7",
    ]);
    assert_eq!(pending["KeyMetadata"]["KeyState"], "PendingDeletion");
    let words = text(&d, &["key", "describe", &key]);
    assert!(words.contains("hkms key cancel-deletion"), "{words}");
    let back = d.cli_json(&["key", "cancel-deletion", &key]);
    assert_eq!(back["KeyMetadata"]["KeyState"], "Disabled");
    d.cli_json(&[
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "7",
    ]);
    clock.advance(8 * 86_400);
    let ran = d.cli_json(&["jobs", "run"]);
    assert!(
        ran["Outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["Job"]["Kind"] == "Delete" && s(&o["Error"]).is_empty()),
        "{ran}"
    );
    assert_eq!(d.cli_error(&["key", "describe", &key]), "KeyNotFound");
}

#[test]
fn the_cli_imports_material_it_wraps_on_the_operators_machine() {
    let clock = TestClock::default();
    let d = daemon(&clock);
    let files = tempfile::tempdir().unwrap();
    let key = s(&d.cli_json(&["key", "create", "--origin", "EXTERNAL"])["KeyMetadata"]["KeyId"]);
    let words = text(&d, &["key", "describe", &key]);
    assert!(
        words.contains("PendingImport") && words.contains("import-params"),
        "{words}"
    );

    let params_dir = files.path().join("byok");
    let params = d.cli_json(&[
        "key",
        "import-params",
        &key,
        "--output-dir",
        params_dir.to_str().unwrap(),
    ]);
    assert_eq!(params["WrappingAlgorithm"], "RSAES_OAEP_SHA_1", "{params}");
    let material = files.path().join("key.bin");
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).unwrap();
    std::fs::write(&material, raw).unwrap();
    let short = files.path().join("short.bin");
    std::fs::write(&short, &raw[..20]).unwrap();
    let e = d.cli_error(&[
        "key",
        "import",
        &key,
        "--material",
        short.to_str().unwrap(),
        "--params-dir",
        params_dir.to_str().unwrap(),
    ]);
    assert_eq!(e, "InvalidParameter");
    let imported = d.cli_json(&[
        "key",
        "import",
        &key,
        "--material",
        material.to_str().unwrap(),
        "--params-dir",
        params_dir.to_str().unwrap(),
    ]);
    assert_eq!(imported["KeyMetadata"]["KeyState"], "Enabled");

    // The key encrypts with the material: the CLI's ciphertext opens here with it.
    let enc = d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "byok"]);
    let blob = base64_decode(&s(&enc["CiphertextBlob"]));
    let (header, rest) = blob.split_at(48);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let opened = openssl::symm::decrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        &raw,
        Some(&header[36..48]),
        header,
        body,
        tag,
    )
    .unwrap();
    assert_eq!(opened, b"byok");

    let deleted = d.cli_json(&["key", "delete-material", &key]);
    assert_eq!(deleted["KeyMetadata"]["KeyState"], "PendingImport");
    let e = d.cli_error(&["decrypt", "--ciphertext-blob", &s(&enc["CiphertextBlob"])]);
    assert_eq!(e, "KeyPendingImport");
    // The same material again, with fresh parameters: everything decrypts again.
    d.cli_json(&[
        "key",
        "import-params",
        &key,
        "--output-dir",
        params_dir.to_str().unwrap(),
    ]);
    d.cli_json(&[
        "key",
        "import",
        &key,
        "--material",
        material.to_str().unwrap(),
        "--params-dir",
        params_dir.to_str().unwrap(),
    ]);
    let dec = d.cli_json(&["decrypt", "--ciphertext-blob", &s(&enc["CiphertextBlob"])]);
    assert_eq!(base64_decode(&s(&dec["Plaintext"])), b"byok", "{dec}");
}

#[test]
fn the_cli_wraps_rsa_aes_style_when_the_parameters_say_so() {
    let clock = TestClock::default();
    let d = daemon(&clock);
    let files = tempfile::tempdir().unwrap();
    let key = s(&d.cli_json(&["key", "create", "--origin", "EXTERNAL"])["KeyMetadata"]["KeyId"]);
    let dir = files.path().join("params");
    let params = d.cli_json(&[
        "key",
        "import-params",
        &key,
        "--wrapping-algorithm",
        "RSA_AES_KEY_WRAP_SHA_1",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        params["WrappingAlgorithm"], "RSA_AES_KEY_WRAP_SHA_1",
        "{params}"
    );
    let material = files.path().join("key.bin");
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).unwrap();
    std::fs::write(&material, raw).unwrap();
    let imported = d.cli_json(&[
        "key",
        "import",
        &key,
        "--material",
        material.to_str().unwrap(),
        "--params-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(imported["KeyMetadata"]["KeyState"], "Enabled");
    let enc = d.cli_json(&["encrypt", "--key-id", &key, "--plaintext", "rsa-aes"]);
    let dec = d.cli_json(&["decrypt", "--ciphertext-blob", &s(&enc["CiphertextBlob"])]);
    assert_eq!(base64_decode(&s(&dec["Plaintext"])), b"rsa-aes");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
