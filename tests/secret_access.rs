//! Who may use a secret: applications calling the gRPC API over mutual TLS with their
//! ClientKeys, by RBAC role and resource pattern, by network rule, by the secret's own
//! policy (Allow for another AAP, Deny over any Allow, and the CMK's Decrypt), and managed
//! secrets that only their product's AAP changes. Real hkmsd on SoftHSM2 tokens.

#[path = "support/secrets.rs"]
mod calls;
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/mtls.rs"]
mod tcp;

use calls::{create, describe, put, value as get};
use common::code;
use hkms::client::Client;
use hkms::proto::*;
use support::{ClientKeyFiles, Instance};
use tcp::{client_key_pem, endpoint, instance_on_tcp};

/// A new AAP with one policy per (role, resources[, network rule sources]) and a ClientKey.
fn aap(inst: &Instance, name: &str, grants: &[(&str, &str, Option<&str>)]) -> ClientKeyFiles {
    let mut policies = Vec::new();
    for (i, (role, resources, sources)) in grants.iter().enumerate() {
        let policy = format!("{name}-p{i}");
        let mut args = vec![
            "policy".to_owned(),
            "create".into(),
            "--name".into(),
            policy.clone(),
            "--role".into(),
            role.to_string(),
            "--resources".into(),
            resources.to_string(),
        ];
        if let Some(src) = sources {
            let rule = format!("{name}-net{i}");
            inst.d.cli_json(&[
                "network-rule",
                "create",
                "--name",
                &rule,
                "--network-type",
                "Private",
                "--source-ips",
                src,
            ]);
            args.extend(["--network-rules".into(), rule]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        inst.d.cli_json(&args);
        policies.push(policy);
    }
    let policies = policies.join(",");
    let mut args = vec!["aap", "create", "--name", name];
    if !policies.is_empty() {
        args.extend(["--policies", &policies]);
    }
    inst.d.cli_json(&args);
    inst.client_key(name)
}

fn connect(inst: &Instance, port: u16, ck: &ClientKeyFiles) -> Client {
    Client::connect_tls(&endpoint(port), &client_key_pem(inst, ck)).unwrap()
}

async fn register_product(c: &mut Client, aap: &str, product: &str) -> Result<(), tonic::Status> {
    c.access
        .update_application_access_point(UpdateApplicationAccessPointRequest {
            name: aap.into(),
            managed_product: Some(product.into()),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn delete(c: &mut Client, name: &str) -> Result<(), tonic::Status> {
    c.secrets
        .delete_secret(DeleteSecretRequest {
            secret_name: name.into(),
            force_delete_without_recovery: true,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn set_policy(c: &mut Client, name: &str, policy: &str) -> Result<(), tonic::Status> {
    c.secrets
        .set_secret_policy(SetSecretPolicyRequest {
            secret_name: name.into(),
            policy: policy.into(),
        })
        .await
        .map(|_| ())
}

async fn names(c: &mut Client, prefix: &str) -> Vec<String> {
    c.secrets
        .list_secrets(ListSecretsRequest {
            name_prefix: prefix.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secrets
        .into_iter()
        .map(|s| s.secret_name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_secrets_are_changed_only_by_their_products_aap() {
    let (inst, port) = instance_on_tcp();
    let mut op = inst.d.client().await;
    let key = inst.create_key();
    let aigw = aap(
        &inst,
        "ai-gateway",
        &[("CryptoServiceKeyUser", &format!("key/{key}"), None)],
    );
    register_product(&mut op, "ai-gateway", "aigw")
        .await
        .unwrap();
    let mut product = connect(&inst, port, &aigw);

    // The product's AAP creates, rotates and deletes its own secrets.
    create(&mut product, "aigw!secret-abc", &key, b"sk-live-1")
        .await
        .unwrap();
    put(&mut product, "aigw!secret-abc", "", b"sk-live-2", &[])
        .await
        .unwrap();
    assert_eq!(
        get(&mut product, "aigw!secret-abc").await.unwrap(),
        b"sk-live-2"
    );
    create(&mut product, "aigw!scratch", &key, b"x")
        .await
        .unwrap();
    delete(&mut product, "aigw!scratch").await.unwrap();
    // Only under a key its policies let it use: another key, or one that does not exist,
    // is forbidden alike.
    let other_key = inst.create_key();
    for k in [other_key.as_str(), "0b9f3c3e-0d4e-4d55-9d1a-0e6c2f0d7a11"] {
        let e = create(&mut product, "aigw!elsewhere", k, b"x")
            .await
            .unwrap_err();
        assert_eq!(code(e), "Forbidden", "{k}");
    }
    // ... and nothing else: not another product's names, not ordinary secrets.
    for name in ["bailian!secret-1", "plain"] {
        let e = create(&mut product, name, &key, b"x").await.unwrap_err();
        assert_eq!(code(e), "Forbidden", "{name}");
    }

    // Operators may read a managed secret and manage its policy, never change it.
    assert_eq!(get(&mut op, "aigw!secret-abc").await.unwrap(), b"sk-live-2");
    assert_eq!(
        describe(&mut op, "aigw!secret-abc")
            .await
            .unwrap()
            .managed_product,
        "aigw"
    );
    let e = create(&mut op, "aigw!by-operator", &key, b"x")
        .await
        .unwrap_err();
    assert_eq!(code(e.clone()), "Forbidden");
    assert!(
        e.message().contains("managed secret of product aigw"),
        "{e:?}"
    );
    assert_eq!(
        code(
            put(&mut op, "aigw!secret-abc", "", b"x", &[])
                .await
                .unwrap_err()
        ),
        "Forbidden"
    );
    assert_eq!(
        code(delete(&mut op, "aigw!secret-abc").await.unwrap_err()),
        "Forbidden"
    );
    let e = op
        .secrets
        .update_secret(UpdateSecretRequest {
            secret_name: "aigw!secret-abc".into(),
            description: Some("x".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");

    // Other applications read it only with a grant, and never change it.
    let reader = aap(
        &inst,
        "reader",
        &[("CryptoServiceSecretUser", "secret/aigw!*", None)],
    );
    let mut reader = connect(&inst, port, &reader);
    assert_eq!(
        get(&mut reader, "aigw!secret-abc").await.unwrap(),
        b"sk-live-2"
    );
    assert_eq!(
        code(
            put(&mut reader, "aigw!secret-abc", "", b"x", &[])
                .await
                .unwrap_err()
        ),
        "Forbidden"
    );
    let stranger = aap(
        &inst,
        "stranger",
        &[("CryptoServiceKeyUser", "key/*", None)],
    );
    let mut stranger = connect(&inst, port, &stranger);
    assert_eq!(
        code(get(&mut stranger, "aigw!secret-abc").await.unwrap_err()),
        "Forbidden"
    );

    // An explicit Deny in the secret's policy holds the product's AAP too.
    let deny = r#"{"Statement":[{"Effect":"Deny","Action":"kms:PutSecretValue",
        "Principal":{"AAP":["aap/ai-gateway"]},"Resource":"secret/aigw!secret-abc"}]}"#;
    set_policy(&mut op, "aigw!secret-abc", deny).await.unwrap();
    let e = put(&mut product, "aigw!secret-abc", "", b"x", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    assert_eq!(
        get(&mut product, "aigw!secret-abc").await.unwrap(),
        b"sk-live-2"
    );
    op.secrets
        .delete_secret_policy(DeleteSecretPolicyRequest {
            secret_name: "aigw!secret-abc".into(),
        })
        .await
        .unwrap();

    // The product's value is unchanged by every refused attempt.
    assert_eq!(
        get(&mut product, "aigw!secret-abc").await.unwrap(),
        b"sk-live-2"
    );
    // One AAP per product.
    aap(&inst, "impostor", &[]);
    let e = register_product(&mut op, "impostor", "aigw")
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceExists");
    let e = register_product(&mut op, "impostor", "Not A Code")
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidParameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_patterns_and_network_rules_decide_for_applications() {
    let (inst, port) = instance_on_tcp();
    let mut op = inst.d.client().await;
    let key = inst.create_key();
    for name in ["rds-ibm-prod", "rds-ibm-test", "rds-other"] {
        create(&mut op, name, &key, name.as_bytes()).await.unwrap();
    }

    // CryptoServiceSecretUser on a prefix: reads, lists and writes values of those only.
    let ibm = aap(
        &inst,
        "ibm",
        &[("CryptoServiceSecretUser", "secret/rds-ibm*", None)],
    );
    let mut ibm = connect(&inst, port, &ibm);
    assert_eq!(
        get(&mut ibm, "rds-ibm-prod").await.unwrap(),
        b"rds-ibm-prod"
    );
    put(&mut ibm, "rds-ibm-test", "", b"rotated", &[])
        .await
        .unwrap();
    assert_eq!(get(&mut op, "rds-ibm-test").await.unwrap(), b"rotated");
    assert_eq!(names(&mut ibm, "").await, ["rds-ibm-prod", "rds-ibm-test"]);
    // Outside the pattern: forbidden, whether the secret exists or not.
    for name in ["rds-other", "no-such-secret"] {
        assert_eq!(
            code(get(&mut ibm, name).await.unwrap_err()),
            "Forbidden",
            "{name}"
        );
    }
    // A name inside the pattern that does not exist is reported as missing.
    assert_eq!(
        code(get(&mut ibm, "rds-ibm-gone").await.unwrap_err()),
        "ResourceNotFound"
    );
    // Creating, deleting and policies stay with operators.
    let e = create(&mut ibm, "rds-ibm-new", &key, b"x")
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    assert_eq!(
        code(delete(&mut ibm, "rds-ibm-prod").await.unwrap_err()),
        "Forbidden"
    );
    let e = ibm
        .secrets
        .get_secret_policy(GetSecretPolicyRequest {
            secret_name: "rds-ibm-prod".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");

    // SecretUser (shared gateway) grants GetSecretValue only.
    let shared = aap(&inst, "shared", &[("SecretUser", "secret/*", None)]);
    let mut shared = connect(&inst, port, &shared);
    assert_eq!(get(&mut shared, "rds-other").await.unwrap(), b"rds-other");
    assert_eq!(
        code(describe(&mut shared, "rds-other").await.unwrap_err()),
        "Forbidden"
    );
    assert_eq!(
        code(
            put(&mut shared, "rds-other", "", b"x", &[])
                .await
                .unwrap_err()
        ),
        "Forbidden"
    );
    assert!(names(&mut shared, "").await.is_empty());

    // A key grant is no secret grant.
    let keys_only = aap(
        &inst,
        "keys-only",
        &[("CryptoServiceKeyUser", "key/*", None)],
    );
    let mut keys_only = connect(&inst, port, &keys_only);
    assert_eq!(
        code(get(&mut keys_only, "rds-other").await.unwrap_err()),
        "Forbidden"
    );

    // A network rule that does not contain the caller's address admits nothing.
    let far = aap(
        &inst,
        "far",
        &[("CryptoServiceSecretUser", "secret/*", Some("10.0.0.0/8"))],
    );
    let mut far = connect(&inst, port, &far);
    assert_eq!(
        code(get(&mut far, "rds-other").await.unwrap_err()),
        "Forbidden"
    );
    let near = aap(
        &inst,
        "near",
        &[("CryptoServiceSecretUser", "secret/*", Some("127.0.0.0/8"))],
    );
    let mut near = connect(&inst, port, &near);
    assert_eq!(get(&mut near, "rds-other").await.unwrap(), b"rds-other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_policies_admit_other_aaps_and_deny_wins() {
    let (inst, port) = instance_on_tcp();
    let mut op = inst.d.client().await;
    let key = inst.create_key();
    create(&mut op, "shared-db", &key, b"partner-visible")
        .await
        .unwrap();

    // An AAP without any secret grant, admitted by the secret's policy alone: it also needs
    // Decrypt on the secret's key, granted here by a statement of the same policy.
    let partner = aap(&inst, "partner", &[]);
    let mut partner = connect(&inst, port, &partner);
    assert_eq!(
        code(get(&mut partner, "shared-db").await.unwrap_err()),
        "Forbidden"
    );
    let read_only = r#"{"Version":"1","Statement":[{"Effect":"Allow",
        "Action":["kms:GetSecretValue","kms:Describe*"],
        "Principal":{"AAP":["aap/partner"]},
        "Resource":"acs:kms:${region}:${account}:secret/shared-db"}]}"#;
    set_policy(&mut op, "shared-db", read_only).await.unwrap();
    assert_eq!(
        describe(&mut partner, "shared-db")
            .await
            .unwrap()
            .secret_name,
        "shared-db"
    );
    let e = get(&mut partner, "shared-db").await.unwrap_err();
    assert_eq!(code(e), "Forbidden", "no Decrypt on the CMK yet");
    assert!(
        inst.d
            .log_text()
            .contains("nothing lets it use the secret's key"),
        "the log says what is missing"
    );
    let with_decrypt = format!(
        r#"{{"Version":"1","Statement":[
        {{"Effect":"Allow","Action":["kms:GetSecretValue","kms:Describe*"],
          "Principal":{{"AAP":["aap/partner"]}},"Resource":"secret/shared-db"}},
        {{"Effect":"Allow","Action":"kms:Decrypt",
          "Principal":{{"AAP":["aap/partner"]}},"Resource":"key/{key}"}}]}}"#
    );
    set_policy(&mut op, "shared-db", &with_decrypt)
        .await
        .unwrap();
    assert_eq!(
        get(&mut partner, "shared-db").await.unwrap(),
        b"partner-visible"
    );
    // The policy grants reading, not writing; other AAPs stay outside.
    assert_eq!(
        code(
            put(&mut partner, "shared-db", "", b"x", &[])
                .await
                .unwrap_err()
        ),
        "Forbidden"
    );
    let other = aap(&inst, "other", &[]);
    let mut other = connect(&inst, port, &other);
    assert_eq!(
        code(get(&mut other, "shared-db").await.unwrap_err()),
        "Forbidden"
    );

    // Writing through the policy alone needs GenerateDataKey on the key likewise.
    let writer = format!(
        r#"{{"Statement":[
        {{"Effect":"Allow","Action":["kms:GetSecretValue","kms:PutSecretValue","kms:Decrypt"],
          "Principal":{{"AAP":["aap/partner"]}},"Resource":["secret/shared-db","key/{key}"]}}]}}"#
    );
    set_policy(&mut op, "shared-db", &writer).await.unwrap();
    let e = put(&mut partner, "shared-db", "", b"partner-put", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden", "no GenerateDataKey on the CMK");
    let writer = writer.replace("\"kms:Decrypt\"", "\"kms:Decrypt\",\"kms:GenerateDataKey\"");
    set_policy(&mut op, "shared-db", &writer).await.unwrap();
    put(&mut partner, "shared-db", "", b"partner-put", &[])
        .await
        .unwrap();
    assert_eq!(
        get(&mut partner, "shared-db").await.unwrap(),
        b"partner-put"
    );
    put(&mut op, "shared-db", "", b"partner-visible", &[])
        .await
        .unwrap();
    set_policy(&mut op, "shared-db", &with_decrypt)
        .await
        .unwrap();

    // The policy admits no one from where the AAP's own network rules do not.
    let fenced = aap(
        &inst,
        "fenced",
        &[("CryptoServiceSecretUser", "secret/*", Some("10.0.0.0/8"))],
    );
    let mut fenced = connect(&inst, port, &fenced);
    let everyone = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Action":["kms:GetSecretValue","kms:Decrypt"],
          "Principal":"*","Resource":["secret/shared-db","key/{key}"]}}]}}"#
    );
    set_policy(&mut op, "shared-db", &everyone).await.unwrap();
    assert_eq!(
        get(&mut partner, "shared-db").await.unwrap(),
        b"partner-visible"
    );
    assert_eq!(
        code(get(&mut fenced, "shared-db").await.unwrap_err()),
        "Forbidden"
    );
    assert!(inst
        .d
        .log_text()
        .contains("no network rule of its policies"));
    set_policy(&mut op, "shared-db", &with_decrypt)
        .await
        .unwrap();

    // The Decrypt grant may also come from the AAP's own permission policies.
    let keyed = aap(
        &inst,
        "keyed",
        &[("CryptoServiceKeyUser", &format!("key/{key}"), None)],
    );
    let mut keyed = connect(&inst, port, &keyed);
    let keyed_policy = r#"{"Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue",
        "Principal":{"AAP":["aap/keyed"]},"Resource":"secret/shared-db"}]}"#;
    set_policy(&mut op, "shared-db", keyed_policy)
        .await
        .unwrap();
    assert_eq!(
        get(&mut keyed, "shared-db").await.unwrap(),
        b"partner-visible"
    );
    assert_eq!(
        code(get(&mut partner, "shared-db").await.unwrap_err()),
        "Forbidden"
    );

    // An explicit Deny wins over the AAP's own Allow (a role on secret/*).
    let team = aap(
        &inst,
        "team",
        &[("CryptoServiceSecretUser", "secret/*", None)],
    );
    let mut team = connect(&inst, port, &team);
    assert_eq!(
        get(&mut team, "shared-db").await.unwrap(),
        b"partner-visible"
    );
    let deny = r#"{"Statement":[
        {"Effect":"Allow","Action":"kms:*","Principal":"*","Resource":"secret/*"},
        {"Sid":"no-team","Effect":"Deny","Action":"kms:GetSecretValue",
         "Principal":{"AAP":["aap/team"]},"Resource":"secret/shared-db"}]}"#;
    set_policy(&mut op, "shared-db", deny).await.unwrap();
    assert_eq!(
        code(get(&mut team, "shared-db").await.unwrap_err()),
        "Forbidden"
    );
    assert_eq!(
        describe(&mut team, "shared-db").await.unwrap().secret_name,
        "shared-db"
    );
    assert!(inst.d.log_text().contains("(statement no-team)"));

    // The policy reads back as set; deleted, the AAP's own grant applies again.
    let got = op
        .secrets
        .get_secret_policy(GetSecretPolicyRequest {
            secret_name: "shared-db".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .policy;
    assert_eq!(got, deny);
    op.secrets
        .delete_secret_policy(DeleteSecretPolicyRequest {
            secret_name: "shared-db".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        get(&mut team, "shared-db").await.unwrap(),
        b"partner-visible"
    );
    assert_eq!(
        code(get(&mut keyed, "shared-db").await.unwrap_err()),
        "Forbidden"
    );

    // Principals are AAPs (or everyone).
    let bad = r#"{"Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue",
        "Principal":{"RAM":["acs:ram::1:user/x"]},"Resource":"secret/shared-db"}]}"#;
    let e = set_policy(&mut op, "shared-db", bad).await.unwrap_err();
    assert_eq!(code(e), "InvalidParameter");
}
