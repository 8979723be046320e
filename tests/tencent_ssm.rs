//! Tencent Cloud SSM (`2019-09-23`) through a real gateway, driven by the official
//! `tencentcloud-sdk-python-ssm` (pinned, unchanged): every action hkms serves with its
//! happy path and at least one refusal, the lifecycle of a secret (disable, delete, restore,
//! enable), SSM's error codes, authorisation by the AAP's policies, secrets shared with the
//! gRPC API and the CLI, and the actions hkms does not serve. Real hkmsd on SoftHSM2 tokens.

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use support::{connect, post, GatewayProc, Instance};
use tencent::{
    api_key, call, envelope, err, error_code, now, ok, run_sdk, sdk_call, signed_headers, tc_app,
    tencent_python, ApiKey, Signing, SSM_VERSION,
};

/// Bytes that are not UTF-8, with a NUL.
const BLOB: &[u8] = &[0x00, 0xff, 0xfe, 0x10, 0x80, 0x7f, 0xc3, 0x28];

fn ssm(action: &str, params: Value) -> Value {
    sdk_call("ssm", action, params)
}

/// An instance, a gateway, a key, and an AAP `ssm-admin` that manages every secret
/// (CryptoServiceSecretAdministrator on `secret/*`) and may protect them with the key
/// (CryptoServiceKeyUser on it), with its API key.
struct Setup {
    inst: Instance,
    gw: GatewayProc,
    key: String,
    admin: ApiKey,
}

impl Setup {
    fn new() -> Setup {
        let inst = Instance::new();
        let gw = GatewayProc::start(
            &inst,
            "gw",
            false,
            "[throttle]\nunsigned_qps_per_source = 50\n",
        );
        let key = inst.create_key();
        inst.d.cli_json(&[
            "policy",
            "create",
            "--name",
            "ssm-keys",
            "--role",
            "CryptoServiceKeyUser",
            "--resources",
            &format!("key/{key}"),
        ]);
        inst.aap_as(
            "ssm-admin",
            "CryptoServiceSecretAdministrator",
            "secret/*",
            None,
        );
        inst.d.cli_json(&[
            "aap",
            "update",
            "ssm-admin",
            "--policies",
            "ssm-admin-policy,ssm-keys",
        ]);
        let admin = api_key(&inst, "ssm-admin");
        Setup {
            inst,
            gw,
            key,
            admin,
        }
    }

    fn endpoint(&self) -> String {
        format!("localhost:{}", self.gw.port)
    }

    /// The SDK's answers to `calls`, made with `key`.
    fn sdk(&self, python: &std::path::Path, key: &ApiKey, calls: Value) -> Vec<Value> {
        let r = run_sdk(python, &self.inst, &self.endpoint(), key, &calls, 0);
        assert_eq!(r.len(), calls.as_array().unwrap().len());
        r
    }
}

fn get(name: &str, version: &str) -> Value {
    ssm(
        "GetSecretValue",
        json!({"SecretName": name, "VersionId": version}),
    )
}

fn describe(name: &str) -> Value {
    ssm("DescribeSecret", json!({ "SecretName": name }))
}

fn named(action: &str, name: &str) -> Value {
    ssm(action, json!({ "SecretName": name }))
}

fn near(t: &Value, want: i64) {
    let t = t.as_i64().unwrap_or_else(|| panic!("not a Unix time: {t}"));
    assert!((t - want).abs() < 120, "{t} is not about {want}");
}

#[test]
fn the_sdk_creates_reads_and_writes_values() {
    let Some(python) = tencent_python() else {
        return;
    };
    let s = Setup::new();
    let key = s.key.as_str();
    let r = s.sdk(
        &python,
        &s.admin,
        json!([
            // 0..4: CreateSecret, text with a VersionId, binary without one; refusals.
            ssm(
                "CreateSecret",
                json!({"SecretName": "db-password", "VersionId": "v1",
                "SecretString": "pw-1", "KmsKeyId": key, "Description": "orders database",
                "Tags": [{"TagKey": "team", "TagValue": "db"}]})
            ),
            ssm(
                "CreateSecret",
                json!({"SecretName": "tls-blob",
                "SecretBinary": B64.encode(BLOB), "KmsKeyId": key})
            ),
            ssm(
                "CreateSecret",
                json!({"SecretName": "db-password",
                "SecretString": "x", "KmsKeyId": key})
            ),
            ssm(
                "CreateSecret",
                json!({"SecretName": "no-key", "SecretString": "x"})
            ),
            ssm(
                "CreateSecret",
                json!({"SecretName": "ssh", "SecretType": 2,
                "SecretString": "x", "KmsKeyId": key})
            ),
            // 5..9: GetSecretValue by id and SSM_Current; refusals.
            get("db-password", "v1"),
            get("tls-blob", "SSM_Current"),
            get("db-password", "v9"),
            get("nope", "SSM_Current"),
            ssm("GetSecretValue", json!({"SecretName": "db-password"})),
            // 10..13: PutSecretValue makes the new version current; the old one stays.
            ssm(
                "PutSecretValue",
                json!({"SecretName": "db-password", "VersionId": "v2",
                "SecretString": "pw-2"})
            ),
            ssm(
                "PutSecretValue",
                json!({"SecretName": "db-password", "VersionId": "v2",
                "SecretString": "again"})
            ),
            get("db-password", "SSM_Current"),
            get("db-password", "v1"),
            // 14..17: UpdateSecret replaces the value of a version, in place.
            ssm(
                "UpdateSecret",
                json!({"SecretName": "db-password", "VersionId": "v1",
                "SecretString": "pw-1b"})
            ),
            get("db-password", "v1"),
            get("db-password", "SSM_Current"),
            ssm(
                "UpdateSecret",
                json!({"SecretName": "db-password", "VersionId": "v9",
                "SecretString": "x"})
            ),
            // 18..19: PutSecretValue refusals: no value; a secret that does not exist.
            ssm(
                "PutSecretValue",
                json!({"SecretName": "db-password", "VersionId": "v3"})
            ),
            ssm(
                "PutSecretValue",
                json!({"SecretName": "nope", "VersionId": "v1",
                "SecretString": "x"})
            ),
            // 20..21: UpdateSecret of the current version, in binary.
            ssm(
                "UpdateSecret",
                json!({"SecretName": "db-password", "VersionId": "SSM_Current",
                "SecretBinary": B64.encode(b"pw-2b")})
            ),
            get("db-password", "v2"),
        ]),
    );
    let c = ok(&r[0]);
    assert_eq!(
        (&c["SecretName"], &c["VersionId"]),
        (&json!("db-password"), &json!("v1"))
    );
    let blob_version = ok(&r[1])["VersionId"].as_str().unwrap().to_owned();
    assert!(!blob_version.is_empty());
    assert_eq!(err(&r[2]), "ResourceInUse.SecretExists");
    assert_eq!(err(&r[3]), "MissingParameter");
    assert!(
        r[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("KmsKeyId"),
        "{}",
        r[3]
    );
    assert_eq!(err(&r[4]), "UnsupportedOperation");

    let v = ok(&r[5]);
    assert_eq!(
        (&v["SecretString"], &v["VersionId"]),
        (&json!("pw-1"), &json!("v1"))
    );
    let v = ok(&r[6]);
    assert_eq!(
        B64.decode(v["SecretBinary"].as_str().unwrap()).unwrap(),
        BLOB
    );
    assert_eq!(v["VersionId"], blob_version.as_str());
    assert!(
        v["SecretString"].is_null() || v["SecretString"] == "",
        "{v}"
    );
    assert_eq!(err(&r[7]), "ResourceNotFound");
    assert_eq!(err(&r[8]), "ResourceNotFound.SecretNotExist");
    assert_eq!(err(&r[9]), "MissingParameter");

    assert_eq!(ok(&r[10])["VersionId"], "v2");
    assert_eq!(err(&r[11]), "ResourceInUse.VersionIdExists");
    let v = ok(&r[12]);
    assert_eq!(
        (&v["SecretString"], &v["VersionId"]),
        (&json!("pw-2"), &json!("v2"))
    );
    assert_eq!(ok(&r[13])["SecretString"], "pw-1");

    assert_eq!(ok(&r[14])["VersionId"], "v1");
    assert_eq!(ok(&r[15])["SecretString"], "pw-1b");
    assert_eq!(
        ok(&r[16])["VersionId"],
        "v2",
        "UpdateSecret leaves SSM_Current"
    );
    assert_eq!(err(&r[17]), "ResourceNotFound");
    assert_eq!(err(&r[18]), "MissingParameter");
    assert_eq!(err(&r[19]), "ResourceNotFound.SecretNotExist");
    assert_eq!(ok(&r[20])["VersionId"], "v2");
    assert_eq!(
        B64.decode(ok(&r[21])["SecretBinary"].as_str().unwrap())
            .unwrap(),
        b"pw-2b"
    );

    // The same secrets, through the gRPC API and the CLI.
    let out = s
        .inst
        .d
        .cli(&["secret", "get", "db-password", "--version-id", "v1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pw-1b");
    let j = s.inst.d.cli_json(&["secret", "describe", "db-password"]);
    assert_eq!(j["Secret"]["EncryptionKeyId"], key);
    assert_eq!(j["Secret"]["Description"], "orders database");
    assert_eq!(j["Secret"]["Tags"][0]["TagKey"], "team");
}

#[test]
fn the_sdk_describes_lists_and_runs_a_secrets_lifecycle() {
    let Some(python) = tencent_python() else {
        return;
    };
    let s = Setup::new();
    let key = s.key.as_str();
    let created = now();
    let create = |name: &str, team: &str| {
        ssm(
            "CreateSecret",
            json!({"SecretName": name, "VersionId": "v1",
            "SecretString": format!("{name}-value"), "KmsKeyId": key,
            "Tags": [{"TagKey": "team", "TagValue": team}]}),
        )
    };
    let r = s.sdk(
        &python,
        &s.admin,
        json!([
            create("app-db", "db"),
            create("app-web", "web"),
            ssm(
                "PutSecretValue",
                json!({"SecretName": "app-db", "VersionId": "v2",
                "SecretString": "two"})
            ),
            // 3..5: UpdateDescription, DescribeSecret.
            ssm(
                "UpdateDescription",
                json!({"SecretName": "app-db", "Description": "primary"})
            ),
            ssm(
                "UpdateDescription",
                json!({"SecretName": "nope", "Description": "x"})
            ),
            describe("app-db"),
            // 6..7: ListSecretVersionIds.
            named("ListSecretVersionIds", "app-db"),
            named("ListSecretVersionIds", "nope"),
            // 8..13: ListSecrets, filtered and paged.
            ssm("ListSecrets", json!({})),
            ssm("ListSecrets", json!({"SearchSecretName": "web"})),
            ssm(
                "ListSecrets",
                json!({"TagFilters": [{"TagKey": "team", "TagValue": ["db"]}]})
            ),
            ssm("ListSecrets", json!({"OrderType": 1, "Limit": 1})),
            ssm("ListSecrets", json!({"State": 2})),
            ssm("ListSecrets", json!({"Limit": -1})),
            // 14..15: an enabled secret is not deleted; DescribeSecret of none.
            named("DeleteSecret", "app-db"),
            describe("nope"),
        ]),
    );
    for i in [0, 1, 2, 3] {
        ok(&r[i]);
    }
    assert_eq!(err(&r[4]), "ResourceNotFound.SecretNotExist");
    let d = ok(&r[5]);
    assert_eq!(d["SecretName"], "app-db");
    assert_eq!(d["Description"], "primary");
    assert_eq!(d["KmsKeyId"], key);
    assert_eq!(d["Status"], "Enabled");
    assert_eq!(d["DeleteTime"], 0);
    assert_eq!(d["SecretType"], 0);
    assert_eq!(d["RotationStatus"], false);
    near(&d["CreateTime"], created);
    let versions: Vec<&str> = ok(&r[6])["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            near(&v["CreateTime"], created);
            v["VersionId"].as_str().unwrap()
        })
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
    assert_eq!(err(&r[7]), "ResourceNotFound.SecretNotExist");
    let names = |v: &Value| -> Vec<String> {
        ok(v)["SecretMetadatas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["SecretName"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ok(&r[8])["TotalCount"], 2);
    let all = ok(&r[8])["SecretMetadatas"].as_array().unwrap();
    assert_eq!(all[0]["Status"], "Enabled");
    assert_eq!(all[0]["KmsKeyType"], "CUSTOMER");
    assert_eq!(names(&r[9]), ["app-web"]);
    assert_eq!(names(&r[10]), ["app-db"]);
    let first = ok(&r[11]);
    assert_eq!(first["TotalCount"], 2);
    assert_eq!(first["SecretMetadatas"].as_array().unwrap().len(), 1);
    assert_eq!(ok(&r[12])["TotalCount"], 0);
    assert_eq!(err(&r[13]), "InvalidParameterValue");
    assert_eq!(err(&r[14]), "OperationDenied");
    assert_eq!(err(&r[15]), "ResourceNotFound.SecretNotExist");

    // Disable, delete with a recovery window, restore (still disabled), enable.
    let r = s.sdk(
        &python,
        &s.admin,
        json!([
            named("DisableSecret", "app-db"),
            get("app-db", "SSM_Current"),
            ssm(
                "PutSecretValue",
                json!({"SecretName": "app-db", "VersionId": "v3",
                "SecretString": "x"})
            ),
            describe("app-db"),
            ssm("ListSecrets", json!({"State": 2})),
            // 5..7: DeleteSecret: a window of 3 days is refused; 7 days schedules it.
            ssm(
                "DeleteSecret",
                json!({"SecretName": "app-db", "RecoveryWindowInDays": 3})
            ),
            ssm(
                "DeleteSecret",
                json!({"SecretName": "app-db", "RecoveryWindowInDays": 7})
            ),
            describe("app-db"),
            // 8..12: a secret pending deletion is restored before anything else.
            named("EnableSecret", "app-db"),
            get("app-db", "v1"),
            named("RestoreSecret", "app-db"),
            named("RestoreSecret", "app-db"),
            describe("app-db"),
            // 13..14: enabled again, with its values.
            named("EnableSecret", "app-db"),
            get("app-db", "SSM_Current"),
            // 15..19: deleted now; the refusals for a secret that is not there.
            named("DisableSecret", "app-web"),
            ssm(
                "DeleteSecret",
                json!({"SecretName": "app-web", "RecoveryWindowInDays": 0})
            ),
            describe("app-web"),
            named("EnableSecret", "nope"),
            named("DisableSecret", "nope"),
            named("RestoreSecret", "nope"),
            named("DeleteSecret", "nope"),
        ]),
    );
    ok(&r[0]);
    assert_eq!(err(&r[1]), "ResourceUnavailable.ResourceDisabled");
    assert_eq!(err(&r[2]), "ResourceUnavailable.ResourceDisabled");
    assert_eq!(ok(&r[3])["Status"], "Disabled");
    assert_eq!(names(&r[4]), ["app-db"]);
    assert_eq!(err(&r[5]), "InvalidParameterValue");
    let why = r[5]["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("at least 7 days") && why.contains("7 to 30") && why.contains("0 to delete"),
        "{why}"
    );
    near(&ok(&r[6])["DeleteTime"], now() + 7 * 86_400);
    let d = ok(&r[7]);
    assert_eq!(d["Status"], "PendingDelete");
    near(&d["DeleteTime"], now() + 7 * 86_400);
    assert_eq!(err(&r[8]), "ResourceUnavailable.ResourcePendingDeleted");
    assert_eq!(err(&r[9]), "ResourceUnavailable.ResourcePendingDeleted");
    assert_eq!(ok(&r[10])["SecretName"], "app-db");
    assert_eq!(err(&r[11]), "OperationDenied");
    assert_eq!(
        ok(&r[12])["Status"],
        "Disabled",
        "restored as it was: disabled"
    );
    ok(&r[13]);
    assert_eq!(ok(&r[14])["SecretString"], "two");
    ok(&r[15]);
    near(&ok(&r[16])["DeleteTime"], now());
    assert_eq!(err(&r[17]), "ResourceNotFound.SecretNotExist");
    for (i, a) in r.iter().enumerate().skip(18) {
        assert_eq!(err(a), "ResourceNotFound.SecretNotExist", "{i}");
    }
    // Gone for the operator too.
    assert_eq!(
        s.inst.d.cli_error(&["secret", "describe", "app-web"]),
        "ResourceNotFound"
    );
}

#[test]
fn ssm_requests_are_authorised_per_secret_and_other_actions_are_refused() {
    let Some(python) = tencent_python() else {
        return;
    };
    let s = Setup::new();
    let key = s.key.as_str();
    // Secrets created by the operator, read over SSM by an application.
    s.inst.create_secret("app-token", b"t0ken", "text", key, "");
    s.inst
        .create_secret("ops-token", b"hidden", "text", key, "");
    // A managed secret, created over SSM by its product's AAP.
    s.inst.d.cli_json(&[
        "aap",
        "create",
        "--name",
        "aigw-app",
        "--policies",
        "ssm-keys",
        "--managed-product",
        "aigw",
    ]);
    let product = api_key(&s.inst, "aigw-app");
    let r = s.sdk(
        &python,
        &product,
        json!([ssm(
            "CreateSecret",
            json!({"SecretName": "aigw!k",
            "SecretString": "managed", "KmsKeyId": key})
        )]),
    );
    ok(&r[0]);
    let reader = tc_app(
        &s.inst,
        "reader",
        "CryptoServiceSecretUser",
        "secret/app-*",
        None,
    );
    let r = s.sdk(
        &python,
        &reader,
        json!([
            get("app-token", "SSM_Current"),
            get("ops-token", "SSM_Current"),
            // Missing or not: the same answer outside the AAP's resources.
            get("ops-none", "SSM_Current"),
            ssm("ListSecrets", json!({})),
            ssm(
                "PutSecretValue",
                json!({"SecretName": "app-token", "VersionId": "v2",
                "SecretString": "t0ken-2"})
            ),
            // A user role runs no lifecycle operation.
            ssm(
                "CreateSecret",
                json!({"SecretName": "app-new", "SecretString": "x",
                "KmsKeyId": key})
            ),
            named("DisableSecret", "app-token"),
            ssm(
                "UpdateSecret",
                json!({"SecretName": "app-token", "VersionId": "v2",
                "SecretString": "x"})
            ),
            named("DeleteSecret", "app-token"),
            // Actions of the SDK hkms does not serve.
            ssm(
                "DeleteSecretVersion",
                json!({"SecretName": "app-token", "VersionId": "v2"})
            ),
            ssm("GetServiceStatus", json!({})),
            ssm(
                "UpdateRotationStatus",
                json!({"SecretName": "app-token",
                "EnableRotation": true})
            ),
        ]),
    );
    assert_eq!(ok(&r[0])["SecretString"], "t0ken");
    for i in [1, 2] {
        assert_eq!(err(&r[i]), "AuthFailure.UnauthorizedOperation", "{i}");
    }
    let listed: Vec<&str> = ok(&r[3])["SecretMetadatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["SecretName"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["app-token"]);
    assert_eq!(ok(&r[4])["VersionId"], "v2");
    for (i, a) in r.iter().enumerate().take(9).skip(5) {
        assert_eq!(err(a), "AuthFailure.UnauthorizedOperation", "{i}");
    }
    for a in &r[9..] {
        assert_eq!(err(a), "UnsupportedOperation", "{a}");
        assert!(
            a["error"]["message"].as_str().unwrap().contains("hkms"),
            "{a}"
        );
    }
    // The value written over SSM, through the CLI.
    let out = s.inst.d.cli(&["secret", "get", "app-token"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t0ken-2");

    // The administrator: no lifecycle on a managed secret, which its product's AAP owns.
    let r = s.sdk(
        &python,
        &s.admin,
        json!([
            named("DisableSecret", "aigw!k"),
            get("aigw!k", "SSM_Current"),
        ]),
    );
    assert_eq!(err(&r[0]), "AuthFailure.UnauthorizedOperation");
    assert_eq!(ok(&r[1])["SecretString"], "managed");

    // A name that is no SSM action, signed by this test (the SDK has no method for it).
    let mut conn = connect(s.gw.port, &s.inst.bundle);
    let signing = Signing::new(&s.admin, SSM_VERSION);
    let r = call(&mut conn, &signing, "FrobnicateSecret", &json!({}));
    assert_eq!(error_code(&r).as_deref(), Some("InvalidAction"), "{r}");
    // A field of the wrong type.
    let r = call(
        &mut conn,
        &signing,
        "DescribeSecret",
        &json!({"SecretName": 42}),
    );
    assert_eq!(error_code(&r).as_deref(), Some("InvalidParameter"), "{r}");
    let r = call(
        &mut conn,
        &signing,
        "DescribeSecret",
        &json!({"SecretName": "app-token"}),
    );
    assert_eq!(error_code(&r), None, "{r}");
    assert_eq!(r["Status"], "Enabled");
}

#[test]
fn a_body_made_for_one_action_does_not_run_as_another() {
    // The Python SDK does not sign X-TC-Action: a relay may send a signed body under
    // another action. GetSecretValue's body is a valid DisableSecret and DeleteSecret body
    // but for its VersionId, which those actions do not have.
    let s = Setup::new();
    s.inst
        .create_secret("db-password", b"pw-1", "text", &s.key, "");
    let mut conn = connect(s.gw.port, &s.inst.bundle);
    let signing = Signing::new(&s.admin, SSM_VERSION);
    let body =
        serde_json::to_vec(&json!({"SecretName": "db-password", "VersionId": "SSM_Current"}))
            .unwrap();
    let headers = signed_headers(&signing, "GetSecretValue", &body);
    let mut as_action = |action: &str| {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| {
                let v = if n == "x-tc-action" { action } else { v };
                (n.clone(), v.to_owned())
            })
            .collect();
        envelope(&post(&mut conn, "/", &headers, &body))
    };
    let r = as_action("GetSecretValue");
    assert_eq!(r["SecretString"], "pw-1", "{r}");
    let unknown = |r: &Value| {
        assert_eq!(error_code(r).as_deref(), Some("UnknownParameter"), "{r}");
        assert!(
            r["Error"]["Message"]
                .as_str()
                .unwrap()
                .contains("VersionId"),
            "{r}"
        );
    };
    unknown(&as_action("DisableSecret"));
    let d = s.inst.d.cli_json(&["secret", "describe", "db-password"]);
    assert_eq!(d["Secret"]["SecretState"], "Normal", "still enabled: {d}");
    // Disabled for real: DeleteSecret may now run.
    s.inst.d.cli_json(&["secret", "disable", "db-password"]);
    unknown(&as_action("DeleteSecret"));
    let d = s.inst.d.cli_json(&["secret", "describe", "db-password"]);
    assert_eq!(d["Secret"]["SecretState"], "Disabled", "not deleted: {d}");
    // A body with the secret's name only (what DescribeSecret, EnableSecret... take) does
    // run as DeleteSecret, but without RecoveryWindowInDays the deletion is scheduled in 30
    // days, never immediate: RestoreSecret undoes it.
    let name_only = serde_json::to_vec(&json!({"SecretName": "db-password"})).unwrap();
    let mut other = connect(s.gw.port, &s.inst.bundle);
    let headers = signed_headers(&signing, "DeleteSecret", &name_only);
    let r = envelope(&post(&mut other, "/", &headers, &name_only));
    assert_eq!(error_code(&r), None, "{r}");
    near(&r["DeleteTime"], now() + 30 * 86_400);
    let headers = signed_headers(&signing, "RestoreSecret", &name_only);
    let r = envelope(&post(&mut other, "/", &headers, &name_only));
    assert_eq!(error_code(&r), None, "{r}");
    s.inst.d.cli_json(&["secret", "enable", "db-password"]);
    let r = as_action("GetSecretValue");
    assert_eq!(r["SecretString"], "pw-1", "{r}");
    // Every other action refuses a field it does not have, named, before doing anything.
    for (action, params, field) in [
        (
            "DeleteSecret",
            json!({"SecretName": "db-password", "RecoveryWindowInDays": 7, "Force": true}),
            "Force",
        ),
        (
            "EnableSecret",
            json!({"SecretName": "db-password", "VersionId": "v1"}),
            "VersionId",
        ),
        (
            "PutSecretValue",
            json!({"SecretName": "db-password", "SecretString": "x", "KmsKeyId": "k"}),
            "KmsKeyId",
        ),
        (
            "UpdateSecret",
            json!({"SecretName": "db-password", "VersionId": "SSM_Current",
                   "SecretString": "x", "Description": "d"}),
            "Description",
        ),
        (
            "CreateSecret",
            json!({"SecretName": "new", "SecretString": "x", "KmsKeyId": s.key,
                   "Tags": [{"TagKey": "a", "TagValues": ["b"]}]}),
            "TagValues",
        ),
        (
            "ListSecrets",
            json!({"SecretName": "db-password"}),
            "SecretName",
        ),
    ] {
        let r = call(&mut conn, &signing, action, &params);
        assert_eq!(
            error_code(&r).as_deref(),
            Some("UnknownParameter"),
            "{action}: {r}"
        );
        assert!(
            r["Error"]["Message"].as_str().unwrap().contains(field),
            "{action}: {r}"
        );
    }
    let d = s.inst.d.cli_json(&["secret", "describe", "db-password"]);
    assert_eq!(d["Secret"]["SecretState"], "Normal", "{d}");
    assert_eq!(d["Secret"]["VersionCount"], 1, "no version was added: {d}");
    assert_eq!(
        s.inst.d.cli_error(&["secret", "describe", "new"]),
        "ResourceNotFound"
    );
}

#[test]
fn the_sdk_is_refused_the_parameters_hkms_does_not_honour() {
    let Some(python) = tencent_python() else {
        return;
    };
    let s = Setup::new();
    let key = s.key.as_str();
    s.inst
        .create_secret("db-password", b"pw-1", "text", key, "");
    let r = s.sdk(
        &python,
        &s.admin,
        json!([
            ssm("ListSecrets", json!({"ProductName": "Mysql"})),
            ssm("ListSecrets", json!({"InstanceID": "cdb-1"})),
            ssm(
                "CreateSecret",
                json!({"SecretName": "new", "SecretString": "x", "KmsKeyId": key,
                "KmsHsmClusterId": "cluster-1"})
            ),
            ssm(
                "GetSecretValue",
                json!({"SecretName": "db-password", "VersionId": "SSM_Current",
                "EncryptionAlgorithm": "SM2"})
            ),
            ssm(
                "DeleteSecret",
                json!({"SecretName": "db-password", "DeleteMode": 1})
            ),
            // Their defaults are what hkms does.
            ssm(
                "ListSecrets",
                json!({"ProductName": "", "InstanceID": "", "SecretType": 0, "EncryptType": 0})
            ),
            ssm(
                "GetSecretValue",
                json!({"SecretName": "db-password", "VersionId": "SSM_Current",
                "EncryptionPublicKey": "", "EncryptionAlgorithm": ""})
            ),
        ]),
    );
    for (i, (code, field)) in [
        ("UnsupportedOperation", "ProductName"),
        ("UnsupportedOperation", "InstanceID"),
        ("InvalidParameterValue", "KmsHsmClusterId"),
        ("UnsupportedOperation", "EncryptionAlgorithm"),
        ("UnsupportedOperation", "DeleteMode"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(err(&r[i]), code, "{i}");
        let message = r[i]["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{i}: {message}");
    }
    assert_eq!(ok(&r[5])["TotalCount"], 1);
    assert_eq!(ok(&r[6])["SecretString"], "pw-1");
    assert_eq!(
        s.inst.d.cli_error(&["secret", "describe", "new"]),
        "ResourceNotFound"
    );
}
