//! Managed secrets, the managed product of `hkms aap`, and the warning of `hkms key
//! schedule-deletion` about the secrets a key protects, against a real hkmsd on SoftHSM2.

#[path = "support/cli_output.rs"]
mod cli_output;
mod common;

use cli_output::{ok, refused, s, stderr, stdout};
use common::Daemon;
use serde_json::Value;

#[test]
fn managed_secrets_products_and_a_key_that_protects_secrets() {
    let d = Daemon::initialised(1);
    let key = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);

    // A managed secret is its product's AAP's to create, not the operator's.
    let (code, message) = refused(
        &d,
        &[
            "secret",
            "create",
            "aigw!token",
            "--key",
            &key,
            "--value",
            "t",
        ],
    );
    assert_eq!(code, "Forbidden");
    assert!(
        message.contains("managed secret of product aigw")
            && message.contains("only the AAP registered for aigw"),
        "{message}"
    );

    // The product's principal, shown by aap describe and list; cleared again.
    let aap = d.cli_json(&["aap", "create", "--name", "gw", "--managed-product", "aigw"]);
    assert_eq!(aap["ApplicationAccessPoint"]["ManagedProduct"], "aigw");
    let shown = stdout(&ok(&d, &["aap", "describe", "gw"]));
    assert!(shown.contains("ManagedProduct:       aigw"), "{shown}");
    let listed = stdout(&ok(&d, &["aap", "list"]));
    assert!(listed.contains("manages aigw!*"), "{listed}");
    let (code, _) = refused(
        &d,
        &[
            "aap",
            "create",
            "--name",
            "gw2",
            "--managed-product",
            "aigw",
        ],
    );
    assert_eq!(code, "ResourceExists");
    let (code, _) = refused(
        &d,
        &["aap", "update", "gw", "--managed-product", "Not A Code"],
    );
    assert_eq!(code, "InvalidParameter");
    let out = d.cli(&[
        "aap",
        "update",
        "gw",
        "--managed-product",
        "x",
        "--no-managed-product",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let cleared = d.cli_json(&["aap", "update", "gw", "--no-managed-product"]);
    assert_eq!(cleared["ApplicationAccessPoint"]["ManagedProduct"], "");
    let set = d.cli_json(&["aap", "update", "gw", "--managed-product", "mcp"]);
    assert_eq!(set["ApplicationAccessPoint"]["ManagedProduct"], "mcp");
    let listed = d.cli_json(&["aap", "list"]);
    assert_eq!(
        listed["ApplicationAccessPoints"][0]["ManagedProduct"], "mcp",
        "{listed}"
    );

    // Scheduling the deletion of the key that protects secrets warns and names them.
    for name in ["db/a", "db/b"] {
        d.cli_json(&["secret", "create", name, "--key", &key, "--value", "v"]);
    }
    let other = s(&d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]);
    d.cli_json(&[
        "secret", "create", "db/other", "--key", &other, "--value", "v",
    ]);
    d.cli_json(&["key", "disable", &key]);
    let out = ok(
        &d,
        &[
            "key",
            "schedule-deletion",
            &key,
            "--pending-window-days",
            "7",
        ],
    );
    let warning = stderr(&out);
    assert!(
        warning.contains("warning") && warning.contains("2 secret(s): db/a, db/b"),
        "{warning}"
    );
    assert!(!warning.contains("db/other"), "{warning}");
    assert!(stdout(&out).contains("PendingDeletion"), "{}", stdout(&out));
    let (code, _) = refused(&d, &["secret", "get", "db/a"]);
    assert_eq!(code, "KeyPendingDeletion");
    d.cli_json(&["key", "cancel-deletion", &key]);
    let out = d.cli(&[
        "--json",
        "key",
        "schedule-deletion",
        &key,
        "--pending-window-days",
        "7",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("db/a, db/b"), "{}", stderr(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["ProtectedSecrets"],
        serde_json::json!(["db/a", "db/b"]),
        "{j}"
    );
    // A key that protects nothing schedules quietly.
    d.cli_json(&["secret", "delete", "db/other", "--force"]);
    d.cli_json(&["key", "disable", &other]);
    let out = ok(
        &d,
        &[
            "key",
            "schedule-deletion",
            &other,
            "--pending-window-days",
            "7",
        ],
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
