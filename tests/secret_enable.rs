//! Disabled secrets and the CryptoServiceSecretAdministrator role: a disabled secret keeps
//! its versions and refuses every read and write of a value (gRPC, the CLI, the instance API
//! through hkms-gateway) until it is enabled; metadata, listings, deletion and restore still
//! work. An AAP with a CryptoServiceSecretAdministrator policy runs the secret lifecycle in
//! its resources, not on managed secrets, and not against an explicit Deny.
//! Real hkmsd on SoftHSM2 tokens.

#[path = "support/secrets.rs"]
mod calls;
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/mtls.rs"]
mod tcp;

use calls::{create, describe, get, put, value};
use common::{code, create_key, hkms_help, Daemon};
use hkms::client::Client;
use hkms::instance_api as api;
use hkms::proto::*;
use prost::Message;
use support::{connect, post, GatewayProc, Instance};
use tcp::{client_key_pem, endpoint, instance_on_tcp};

async fn enable(c: &mut Client, name: &str) -> Result<SecretMetadata, tonic::Status> {
    c.secrets
        .enable_secret(EnableSecretRequest {
            secret_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().secret.unwrap())
}

async fn disable(c: &mut Client, name: &str) -> Result<SecretMetadata, tonic::Status> {
    c.secrets
        .disable_secret(DisableSecretRequest {
            secret_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().secret.unwrap())
}

async fn delete(c: &mut Client, name: &str, force: bool) -> Result<(), tonic::Status> {
    c.secrets
        .delete_secret(DeleteSecretRequest {
            secret_name: name.into(),
            recovery_window_in_days: if force { 0 } else { 7 },
            force_delete_without_recovery: force,
        })
        .await
        .map(|_| ())
}

async fn restore(c: &mut Client, name: &str) -> Result<SecretMetadata, tonic::Status> {
    c.secrets
        .restore_secret(RestoreSecretRequest {
            secret_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().secret.unwrap())
}

async fn update(c: &mut Client, name: &str, description: &str) -> Result<(), tonic::Status> {
    c.secrets
        .update_secret(UpdateSecretRequest {
            secret_name: name.into(),
            description: Some(description.into()),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_secret_keeps_its_versions_and_refuses_its_values() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    create(&mut c, "db", &key, b"pw-1").await.unwrap();
    put(&mut c, "db", "v2", b"pw-2", &[]).await.unwrap();

    let m = disable(&mut c, "db").await.unwrap();
    assert_eq!(m.secret_state, "Disabled");
    assert_eq!(m.version_count, 2);
    // Disabling twice changes nothing.
    assert_eq!(
        disable(&mut c, "db").await.unwrap().secret_state,
        "Disabled"
    );
    for e in [
        get(&mut c, "db", "", "").await.unwrap_err(),
        get(&mut c, "db", "", "v1").await.unwrap_err(),
        put(&mut c, "db", "v3", b"pw-3", &[]).await.unwrap_err(),
    ] {
        assert_eq!(code(e.clone()), "SecretDisabled", "{e:?}");
        assert!(e.message().contains("EnableSecret"), "{}", e.message());
    }
    let e = c
        .secrets
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_name: "db".into(),
            version_stage: "ACSCurrent".into(),
            remove_from_version: "v2".into(),
            move_to_version: "v1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "SecretDisabled");

    // Metadata, listings and versions still answer; the description still changes.
    update(&mut c, "db", "paused").await.unwrap();
    let m = describe(&mut c, "db").await.unwrap();
    assert_eq!(
        (m.secret_state.as_str(), m.description.as_str()),
        ("Disabled", "paused")
    );
    let listed = c
        .secrets
        .list_secrets(ListSecretsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.secrets[0].secret_state, "Disabled");
    let versions = c
        .secrets
        .list_secret_version_ids(ListSecretVersionIdsRequest {
            secret_name: "db".into(),
            include_deprecated: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.total_count, 2);

    // Deleted and restored, it is still disabled; a secret pending deletion is neither
    // enabled nor disabled until it is restored.
    delete(&mut c, "db", false).await.unwrap();
    assert_eq!(
        describe(&mut c, "db").await.unwrap().secret_state,
        "PendingDeletion"
    );
    assert_eq!(
        code(enable(&mut c, "db").await.unwrap_err()),
        "SecretPendingDeletion"
    );
    assert_eq!(
        restore(&mut c, "db").await.unwrap().secret_state,
        "Disabled"
    );

    // Enabled again: the same versions, the same values.
    assert_eq!(enable(&mut c, "db").await.unwrap().secret_state, "Normal");
    assert_eq!(value(&mut c, "db").await.unwrap(), b"pw-2");
    assert_eq!(
        get(&mut c, "db", "", "v1").await.unwrap().secret_data,
        b"pw-1"
    );
    put(&mut c, "db", "v3", b"pw-3", &[]).await.unwrap();

    // A disabled secret is deleted for good like any other; unknown secrets are missing.
    disable(&mut c, "db").await.unwrap();
    delete(&mut c, "db", true).await.unwrap();
    assert_eq!(
        code(enable(&mut c, "db").await.unwrap_err()),
        "ResourceNotFound"
    );
    assert_eq!(
        code(disable(&mut c, "nope").await.unwrap_err()),
        "ResourceNotFound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_disables_and_enables_and_says_what_it_means() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    create(&mut c, "svc/token", &key, b"t0ken").await.unwrap();

    let out = d.cli(&["secret", "disable", "svc/token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is disabled"), "{text}");
    assert!(text.contains("hkms secret enable svc/token"), "{text}");
    let j = d.cli_json(&["secret", "describe", "svc/token"]);
    assert_eq!(j["Secret"]["SecretState"], "Disabled");
    assert_eq!(
        d.cli_error(&["secret", "get", "svc/token"]),
        "SecretDisabled"
    );
    let j = d.cli_json(&["secret", "enable", "svc/token"]);
    assert_eq!(j["Secret"]["SecretState"], "Normal");
    let out = d.cli(&["secret", "get", "svc/token"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t0ken");
    assert_eq!(
        d.cli_error(&["secret", "enable", "svc/none"]),
        "ResourceNotFound"
    );

    let help = hkms_help(&["secret", "disable", "--help"]);
    for words in [
        "SecretDisabled",
        "nothing is deleted",
        "hkms secret enable db/orders",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
    let help = hkms_help(&["secret", "--help"]);
    assert!(
        help.contains("enable") && help.contains("disable"),
        "{help}"
    );
}

/// A new AAP with one policy of `role` on `resources` (private endpoint, any source), and
/// its client of hkmsd's TCP listener on `port`.
fn aap(inst: &Instance, port: u16, name: &str, role: &str, resources: &str) -> Client {
    let policy = format!("{name}-p");
    inst.d.cli_json(&[
        "policy",
        "create",
        "--name",
        &policy,
        "--role",
        role,
        "--resources",
        resources,
    ]);
    inst.d
        .cli_json(&["aap", "create", "--name", name, "--policies", &policy]);
    let ck = inst.client_key(name);
    Client::connect_tls(&endpoint(port), &client_key_pem(inst, &ck)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_administrator_runs_the_lifecycle_in_its_resources() {
    let (inst, port) = instance_on_tcp();
    let mut op = inst.d.client().await;
    let key = inst.create_key();
    // Creating a secret also takes GenerateDataKey on its CMK.
    inst.d.cli_json(&[
        "policy",
        "create",
        "--name",
        "admin-keys",
        "--role",
        "CryptoServiceKeyUser",
        "--resources",
        &format!("key/{key}"),
    ]);
    let mut admin = aap(
        &inst,
        port,
        "admin",
        "CryptoServiceSecretAdministrator",
        "secret/app-*,secret/aigw!*",
    );
    let e = create(&mut admin, "app-db", &key, b"x").await.unwrap_err();
    assert_eq!(code(e), "Forbidden", "no GenerateDataKey on the CMK yet");
    inst.d
        .cli_json(&["aap", "update", "admin", "--policies", "admin-p,admin-keys"]);

    create(&mut admin, "app-db", &key, b"one").await.unwrap();
    assert_eq!(value(&mut admin, "app-db").await.unwrap(), b"one");
    put(&mut admin, "app-db", "v2", b"two", &[]).await.unwrap();
    update(&mut admin, "app-db", "by the admin").await.unwrap();
    assert_eq!(
        disable(&mut admin, "app-db").await.unwrap().secret_state,
        "Disabled"
    );
    assert_eq!(
        code(get(&mut admin, "app-db", "", "").await.unwrap_err()),
        "SecretDisabled"
    );
    enable(&mut admin, "app-db").await.unwrap();
    delete(&mut admin, "app-db", false).await.unwrap();
    restore(&mut admin, "app-db").await.unwrap();
    assert_eq!(value(&mut op, "app-db").await.unwrap(), b"two");

    // Outside its resources, on a managed secret, and against a Deny: forbidden.
    create(&mut op, "other-db", &key, b"x").await.unwrap();
    assert_eq!(
        code(
            create(&mut admin, "other-new", &key, b"x")
                .await
                .unwrap_err()
        ),
        "Forbidden"
    );
    assert_eq!(
        code(disable(&mut admin, "other-db").await.unwrap_err()),
        "Forbidden"
    );
    assert_eq!(
        code(create(&mut admin, "aigw!k", &key, b"x").await.unwrap_err()),
        "Forbidden",
        "a managed secret belongs to its product's AAP"
    );
    let deny = r#"{"Statement":[{"Effect":"Deny","Action":["kms:DeleteSecret","kms:DisableSecret"],
        "Principal":{"AAP":["aap/admin"]},"Resource":"secret/app-db"}]}"#;
    op.secrets
        .set_secret_policy(SetSecretPolicyRequest {
            secret_name: "app-db".into(),
            policy: deny.into(),
        })
        .await
        .unwrap();
    assert_eq!(
        code(disable(&mut admin, "app-db").await.unwrap_err()),
        "Forbidden"
    );
    assert_eq!(
        code(delete(&mut admin, "app-db", true).await.unwrap_err()),
        "Forbidden"
    );
    update(&mut admin, "app-db", "still mine").await.unwrap();
    // Secret policies stay with operators.
    let e = admin
        .secrets
        .get_secret_policy(GetSecretPolicyRequest {
            secret_name: "app-db".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");

    // A secret policy allowing everything grants a user no lifecycle operation.
    let mut user = aap(&inst, port, "user", "CryptoServiceSecretUser", "secret/x-*");
    let allow_all = r#"{"Statement":[{"Effect":"Allow","Action":"kms:*",
        "Principal":{"AAP":["aap/user"]},"Resource":"*"}]}"#;
    op.secrets
        .set_secret_policy(SetSecretPolicyRequest {
            secret_name: "other-db".into(),
            policy: allow_all.into(),
        })
        .await
        .unwrap();
    assert_eq!(
        describe(&mut user, "other-db").await.unwrap().secret_name,
        "other-db"
    );
    for e in [
        disable(&mut user, "other-db").await.unwrap_err(),
        delete(&mut user, "other-db", true).await.unwrap_err(),
        update(&mut user, "other-db", "x").await.unwrap_err(),
    ] {
        assert_eq!(code(e), "Forbidden");
    }
}

#[test]
fn the_instance_api_refuses_a_disabled_secret_as_an_invalid_parameter() {
    let inst = Instance::new();
    let key = inst.create_key();
    inst.create_secret("api-token", b"t0ken", "text", &key, "");
    let ck = inst.app_as(
        "reader",
        "CryptoServiceSecretUser",
        "secret/*",
        Some(("127.0.0.0/8,::1", "Private")),
    );
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let read = || {
        let body = api::GetSecretValueRequest {
            secret_name: "api-token".into(),
            ..Default::default()
        }
        .encode_to_vec();
        post(
            &mut connect(gw.port, &inst.bundle),
            "/",
            &ck.signed("GetSecretValue", &body),
            &body,
        )
    };
    assert_eq!(read().status, 200);
    inst.d.cli_json(&["secret", "disable", "api-token"]);
    let a = read();
    assert_eq!(a.failure(), (400, "InvalidParameter".into()));
    let body = String::from_utf8_lossy(&a.body);
    assert!(body.contains("disabled"), "{body}");
    inst.d.cli_json(&["secret", "enable", "api-token"]);
    let a = read();
    assert_eq!(a.status, 200);
    let v = api::GetSecretValueResponse::decode(a.body.as_slice()).unwrap();
    assert_eq!(v.secret_data, "t0ken");
}
