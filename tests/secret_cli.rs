//! `hkms secret ...` against a real hkmsd on SoftHSM2: values from files, stdin and binary
//! files, stages, listings, secret policies, deletion with recovery and for good; and the
//! help of every secret command.

#[path = "support/cli_output.rs"]
mod cli_output;
#[path = "support/clock.rs"]
mod clock;
mod common;

use cli_output::{ok, refused, s, stderr, stdout};
use clock::TestClock;
use common::{Daemon, MemberSpec};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn names(list: &Value) -> Vec<String> {
    list["Secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["SecretName"]))
        .collect()
}

#[test]
fn the_cli_keeps_secrets_through_their_whole_life() {
    let clock = TestClock::default();
    let (k, v) = clock.env();
    let d = Daemon::start_custom(
        &[MemberSpec::softhsm("hsm-0", "m0")],
        &[(k, v.as_str())],
        "jobs_interval_secs = 3600",
    );
    d.init_ok();
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let key = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);

    // Created from a file, from stdin, and from a binary file.
    let pw1 = file("pw1.txt", b"s3cret-one");
    let created = d.cli_json(&[
        "secret",
        "create",
        "db/orders",
        "--key",
        &key,
        "--value-file",
        &pw1,
        "--version-id",
        "v1",
        "--description",
        "orders database",
        "--tag",
        "team=payments",
        "--tag",
        "env=prod",
        "--extended-config",
        r#"{"DBHost":"db.local"}"#,
    ]);
    assert_eq!(created["VersionId"], "v1", "{created}");
    assert_eq!(created["Secret"]["EncryptionKeyId"], key.as_str());
    assert_eq!(created["Secret"]["SecretState"], "Normal");
    assert_eq!(
        stdout(&ok(&d, &["secret", "get", "db/orders"])),
        "s3cret-one"
    );

    let out = d.cli_stdin(
        &[
            "secret",
            "create",
            "db/stdin",
            "--key",
            &key,
            "--value-stdin",
        ],
        b"from stdin\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Secret db/stdin created"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("ends with a newline"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&ok(&d, &["secret", "get", "db/stdin"])),
        "from stdin\n"
    );

    let raw = [0u8, 255, 1, 2, 0x80];
    let bin = file("key.bin", &raw);
    let (code, message) = refused(
        &d,
        &[
            "secret",
            "create",
            "tls/key",
            "--key",
            &key,
            "--value-file",
            &bin,
        ],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("add --binary"), "{message}");
    d.cli_json(&[
        "secret",
        "create",
        "tls/key",
        "--key",
        &key,
        "--value-file",
        &bin,
        "--binary",
    ]);
    let got = d.cli_json(&["secret", "get", "tls/key"]);
    assert_eq!(got["SecretDataType"], "binary", "{got}");
    assert_eq!(s(&got["SecretData"]), b64(&raw));
    assert_eq!(
        stdout(&ok(&d, &["secret", "get", "tls/key"])).trim(),
        b64(&raw)
    );
    let out_file = files.path().join("out.bin");
    let written = d.cli_json(&[
        "secret",
        "get",
        "tls/key",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(written.get("SecretData").is_none(), "{written}");
    assert_eq!(std::fs::read(&out_file).unwrap(), raw);
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // New versions: ACSCurrent moves and ACSPrevious follows; custom stages; stage moves.
    let pw2 = file("pw2.txt", b"s3cret-two");
    let put = d.cli_json(&[
        "secret",
        "put",
        "db/orders",
        "--value-file",
        &pw2,
        "--version-id",
        "v2",
    ]);
    assert_eq!(put["VersionStages"], serde_json::json!(["ACSCurrent"]));
    let get = |args: &[&str]| {
        let mut all = vec!["secret", "get", "db/orders"];
        all.extend_from_slice(args);
        stdout(&ok(&d, &all))
    };
    assert_eq!(get(&[]), "s3cret-two");
    assert_eq!(get(&["--stage", "ACSPrevious"]), "s3cret-one");
    assert_eq!(get(&["--version-id", "v1"]), "s3cret-one");
    let by_stage = d.cli_json(&["secret", "get", "db/orders", "--stage", "ACSCurrent"]);
    assert_eq!(
        (s(&by_stage["VersionId"]), s(&by_stage["SecretData"])),
        ("v2".into(), "s3cret-two".into())
    );
    assert_eq!(s(&by_stage["ExtendedConfig"]), r#"{"DBHost":"db.local"}"#);
    let out = d.cli_stdin(
        &[
            "--json",
            "secret",
            "put",
            "db/orders",
            "--value-stdin",
            "--version-id",
            "v3",
            "--stage",
            "staging",
        ],
        b"s3cret-three",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let put: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(put["VersionStages"], serde_json::json!(["staging"]));
    assert_eq!(get(&[]), "s3cret-two", "a custom stage leaves ACSCurrent");
    let (code, _) = refused(&d, &["secret", "get", "db/orders", "--version-id", "v9"]);
    assert_eq!(code, "ResourceNotFound");

    let moved = stdout(&ok(
        &d,
        &[
            "secret",
            "stage",
            "db/orders",
            "--stage",
            "ACSCurrent",
            "--to",
            "v3",
        ],
    ));
    assert!(
        moved.contains("moved from v2 to v3") && moved.contains("v2 is ACSPrevious now"),
        "{moved}"
    );
    assert_eq!(get(&[]), "s3cret-three");
    assert_eq!(get(&["--stage", "ACSPrevious"]), "s3cret-two");
    let again = stdout(&ok(
        &d,
        &[
            "secret",
            "stage",
            "db/orders",
            "--stage",
            "ACSCurrent",
            "--to",
            "v3",
        ],
    ));
    assert!(
        again.contains("v3 holds stage ACSCurrent of secret db/orders already"),
        "{again}"
    );
    assert_eq!(get(&["--stage", "ACSPrevious"]), "s3cret-two");
    let taken = stdout(&ok(
        &d,
        &[
            "secret",
            "stage",
            "db/orders",
            "--stage",
            "staging",
            "--from",
            "v3",
        ],
    ));
    assert!(taken.contains("taken off v3"), "{taken}");
    let (code, message) = refused(
        &d,
        &[
            "secret",
            "stage",
            "db/orders",
            "--stage",
            "ACSCurrent",
            "--from",
            "v3",
        ],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("cannot be removed"), "{message}");

    // Versions: v1 holds no stage any more, so only --all shows it.
    let versions = d.cli_json(&["secret", "versions", "db/orders"]);
    let ids: Vec<String> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(&v["VersionId"]))
        .collect();
    assert_eq!(ids, ["v2", "v3"], "{versions}");
    let all = d.cli_json(&["secret", "versions", "db/orders", "--all"]);
    assert_eq!(all["TotalCount"], 3, "{all}");
    let table = stdout(&ok(&d, &["secret", "versions", "db/orders"]));
    assert!(
        table.contains("STAGES") && table.contains("ACSPrevious"),
        "{table}"
    );
    assert!(table.contains("--all shows them"), "{table}");

    // Describe, list with filters and pages, update.
    let shown = stdout(&ok(&d, &["secret", "describe", "db/orders"]));
    for part in [
        "SecretName:       db/orders",
        "State:            Normal",
        key.as_str(),
        "orders database",
        "Versions:         3",
        "team=payments",
        "SecretPolicy:     none",
    ] {
        assert!(shown.contains(part), "describe lacks {part}: {shown}");
    }
    let listed = d.cli_json(&["secret", "list"]);
    assert_eq!(names(&listed), ["db/orders", "db/stdin", "tls/key"]);
    let db = d.cli_json(&["secret", "list", "--prefix", "db/"]);
    assert_eq!(names(&db), ["db/orders", "db/stdin"]);
    let tagged = d.cli_json(&["secret", "list", "--tag", "team=payments", "--tag", "env="]);
    assert_eq!(names(&tagged), ["db/orders"]);
    assert_eq!(
        names(&d.cli_json(&["secret", "list", "--tag", "team=x"])).len(),
        0
    );
    let page = d.cli_json(&["secret", "list", "--page", "2", "--page-size", "2"]);
    assert_eq!(names(&page), ["tls/key"]);
    assert_eq!(
        (page["TotalCount"].as_u64(), page["PageNumber"].as_u64()),
        (Some(3), Some(2))
    );
    let text = stdout(&ok(&d, &["secret", "list", "--page-size", "2"]));
    assert!(
        text.contains("db/stdin") && !text.contains("tls/key"),
        "{text}"
    );
    assert!(
        text.contains("(page 1 of size 2; 3 secret(s) in all)"),
        "{text}"
    );
    let product = d.cli_json(&["secret", "list", "--product", "aigw"]);
    assert_eq!(product["TotalCount"], 0);
    let (code, message) = refused(&d, &["secret", "list", "--product", "Bad!"]);
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("product code"), "{message}");

    let updated = d.cli_json(&[
        "secret",
        "update",
        "db/orders",
        "--description",
        "orders, primary",
        "--extended-config",
        r#"{"DBHost":"db2.local"}"#,
    ]);
    assert_eq!(updated["Secret"]["Description"], "orders, primary");
    assert_eq!(
        updated["Secret"]["ExtendedConfig"],
        r#"{"DBHost":"db2.local"}"#
    );
    let (code, message) = refused(
        &d,
        &["secret", "update", "db/orders", "--extended-config", "[1]"],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("JSON object"), "{message}");
    let out = d.cli(&["secret", "update", "db/orders"]);
    assert_eq!(out.status.code(), Some(2), "nothing to change");

    // Secret policies: refused when bad, with the reason; set, read, deleted.
    let none = stdout(&ok(&d, &["secret", "policy", "get", "db/orders"]));
    assert!(none.contains("has no secret policy"), "{none}");
    let not_json = file(
        "bad.json",
        b"{\"Statement\": [\n  {\"Effect\": \"Allow\",}\n]}",
    );
    let (code, message) = refused(
        &d,
        &["secret", "policy", "set", "db/orders", "--file", &not_json],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(
        message.contains("not JSON") && message.contains("line 2"),
        "{message}"
    );
    let ram = file(
        "ram.json",
        br#"{"Statement": [{"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1:role/app"]},
             "Action": "kms:GetSecretValue", "Resource": "secret/db/orders"}]}"#,
    );
    let (code, message) = refused(
        &d,
        &["secret", "policy", "set", "db/orders", "--file", &ram],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("aap/<AAP name>"), "{message}");
    let good = file(
        "policy.json",
        format!(
            r#"{{"Version": "1", "Statement": [
              {{"Effect": "Allow", "Principal": {{"AAP": ["aap/orders-app"]}},
               "Action": ["kms:GetSecretValue"], "Resource": ["secret/db/orders"]}},
              {{"Effect": "Allow", "Principal": {{"AAP": ["aap/orders-app"]}},
               "Action": ["kms:Decrypt"], "Resource": ["key/{key}"]}}]}}"#
        )
        .as_bytes(),
    );
    let set = stdout(&ok(
        &d,
        &["secret", "policy", "set", "db/orders", "--file", &good],
    ));
    assert!(set.contains("Secret policy of db/orders set"), "{set}");
    let policy = d.cli_json(&["secret", "policy", "get", "db/orders"]);
    assert!(
        s(&policy["SecretPolicy"]).contains("aap/orders-app"),
        "{policy}"
    );
    let pretty = stdout(&ok(&d, &["secret", "policy", "get", "db/orders"]));
    assert!(pretty.contains("\n  \"Statement\""), "{pretty}");
    let shown = stdout(&ok(&d, &["secret", "describe", "db/orders"]));
    assert!(shown.contains("SecretPolicy:     attached"), "{shown}");
    ok(&d, &["secret", "policy", "delete", "db/orders"]);
    let (code, _) = refused(&d, &["secret", "policy", "delete", "db/orders"]);
    assert_eq!(code, "ResourceNotFound");

    // Deletion with a recovery window, refused reads, restore.
    let out = d.cli(&["secret", "delete", "db/stdin", "--recovery-days", "3"]);
    assert_eq!(out.status.code(), Some(2), "7 to 30 days");
    let deleted = stdout(&ok(
        &d,
        &["secret", "delete", "db/stdin", "--recovery-days", "7"],
    ));
    assert!(
        deleted.contains("PendingDeletion") && deleted.contains("hkms secret restore db/stdin"),
        "{deleted}"
    );
    let (code, message) = refused(&d, &["secret", "get", "db/stdin"]);
    assert_eq!(code, "SecretPendingDeletion");
    assert!(message.contains("restore it first"), "{message}");
    let (code, _) = refused(&d, &["secret", "put", "db/stdin", "--value", "x"]);
    assert_eq!(code, "SecretPendingDeletion");
    let shown = d.cli_json(&["secret", "describe", "db/stdin"]);
    assert_eq!(shown["Secret"]["SecretState"], "PendingDeletion");
    assert!(
        !s(&shown["Secret"]["PlannedDeleteTime"]).is_empty(),
        "{shown}"
    );
    let restored = stdout(&ok(&d, &["secret", "restore", "db/stdin"]));
    assert!(restored.contains("it is Normal again"), "{restored}");
    assert_eq!(
        stdout(&ok(&d, &["secret", "get", "db/stdin"])),
        "from stdin\n"
    );
    let (code, _) = refused(&d, &["secret", "restore", "db/stdin"]);
    assert_eq!(code, "InvalidState");

    // Deletion for good: nothing asked, said to be irreversible, gone.
    let out = d.cli(&["secret", "delete", "tls/key", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("for good") && said.contains("nothing can restore it"),
        "{said}"
    );
    let (code, _) = refused(&d, &["secret", "describe", "tls/key"]);
    assert_eq!(code, "ResourceNotFound");
    let (code, _) = refused(&d, &["secret", "restore", "tls/key"]);
    assert_eq!(code, "ResourceNotFound");
    let out = d.cli(&[
        "secret",
        "delete",
        "db/stdin",
        "--force",
        "--recovery-days",
        "7",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let gone = d.cli_json(&["secret", "delete", "db/stdin", "--force"]);
    assert_eq!(gone["Recoverable"], false, "{gone}");

    // At the end of its recovery window a deleted secret goes for good.
    d.cli_json(&["secret", "delete", "db/orders", "--recovery-days", "7"]);
    clock.advance(6 * 86_400);
    d.cli_json(&["jobs", "run"]);
    let (code, _) = refused(&d, &["secret", "get", "db/orders"]);
    assert_eq!(code, "SecretPendingDeletion");
    clock.advance(2 * 86_400);
    d.cli_json(&["jobs", "run"]);
    let (code, _) = refused(&d, &["secret", "describe", "db/orders"]);
    assert_eq!(code, "ResourceNotFound");
    assert_eq!(names(&d.cli_json(&["secret", "list"])).len(), 0);

    // Values never reach hkmsd's log.
    let log = d.log_text();
    for value in ["s3cret-one", "s3cret-two", "s3cret-three", "from stdin"] {
        assert!(!log.contains(value), "{value} in the log");
    }
}

#[test]
fn secret_help_teaches_with_examples_and_keeps_values_off_argv() {
    let help = common::hkms_help;
    let top = help(&["secret", "--help"]);
    for word in [
        "Examples:",
        "ACSCurrent",
        "<product>!<identifier>",
        "--value-stdin",
    ] {
        assert!(top.contains(word), "secret --help lacks {word}: {top}");
    }
    for cmd in [
        &["create"][..],
        &["get"],
        &["put"],
        &["stage"],
        &["describe"],
        &["list"],
        &["versions"],
        &["update"],
        &["delete"],
        &["restore"],
        &["policy", "set"],
        &["policy", "get"],
        &["policy", "delete"],
    ] {
        let mut args = vec!["secret"];
        args.extend_from_slice(cmd);
        args.push("--help");
        let h = help(&args);
        assert!(h.contains("Example"), "{args:?} has no example: {h}");
    }
    let create = help(&["secret", "create", "--help"]);
    assert!(
        create.contains("`ps`") && create.contains("--value-file"),
        "{create}"
    );
    let set = help(&["secret", "policy", "set", "--help"]);
    assert!(
        set.contains("aap/orders-app") && set.contains("kms:Decrypt"),
        "{set}"
    );
    let aap = help(&["aap", "update", "--help"]);
    assert!(aap.contains("--no-managed-product"), "{aap}");
}
