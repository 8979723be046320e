//! Secrets over gRPC as an operator: versions and stages, every error, listings, the
//! version limit, restarts, and a store that holds no value in clear (deletion and the
//! key's state: tests/secret_deletion.rs).
//! Real hkmsd on SoftHSM2 tokens.

#[path = "support/secrets.rs"]
mod calls;
mod common;

use calls::{create, describe, get, put};
use common::{code, create_key, create_key_of, Daemon};
use hkms::client::Client;
use hkms::proto::*;

async fn versions(c: &mut Client, name: &str, all: bool) -> Vec<(String, Vec<String>)> {
    c.secrets
        .list_secret_version_ids(ListSecretVersionIdsRequest {
            secret_name: name.into(),
            include_deprecated: all,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions
        .into_iter()
        .map(|v| (v.version_id, v.version_stages))
        .collect()
}

async fn list(c: &mut Client, req: ListSecretsRequest) -> (Vec<String>, u64) {
    let r = c.secrets.list_secrets(req).await.unwrap().into_inner();
    (
        r.secrets.into_iter().map(|s| s.secret_name).collect(),
        r.total_count,
    )
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        tag_key: k.into(),
        tag_value: v.into(),
    }
}

/// Every file under `dir`, recursively, for scanning.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_stages_survive_restarts_and_the_store_holds_no_value_in_clear() {
    let mut d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    let values: [&[u8]; 3] = [
        b"db-password-one-5f0c2e",
        b"db-password-two-81aa7d",
        b"db-password-three-c47b",
    ];

    let created = c
        .secrets
        .create_secret(CreateSecretRequest {
            secret_name: "rds/prod".into(),
            secret_data: values[0].to_vec(),
            version_id: "v1".into(),
            encryption_key_id: key.clone(),
            description: "the production database".into(),
            tags: vec![tag("team", "db")],
            extended_config: r#"{"DBHost":"db.internal"}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.version_id, "v1");
    let meta = created.secret.unwrap();
    assert_eq!(meta.encryption_key_id, key);
    assert_eq!(meta.secret_state, "Normal");
    assert_eq!(meta.secret_type, "Generic");

    let v = get(&mut c, "rds/prod", "", "").await.unwrap();
    assert_eq!(v.secret_data, values[0]);
    assert_eq!(v.secret_data_type, "text");
    assert_eq!(v.version_stages, ["ACSCurrent"]);
    assert_eq!(v.extended_config, r#"{"DBHost":"db.internal"}"#);

    // A new version takes ACSCurrent; the old one becomes ACSPrevious.
    let p = put(&mut c, "rds/prod", "v2", values[1], &[]).await.unwrap();
    assert_eq!(p.version_stages, ["ACSCurrent"]);
    assert_eq!(
        get(&mut c, "rds/prod", "", "").await.unwrap().secret_data,
        values[1]
    );
    let prev = get(&mut c, "rds/prod", "ACSPrevious", "").await.unwrap();
    assert_eq!(
        (prev.version_id.as_str(), prev.secret_data.as_slice()),
        ("v1", values[0])
    );
    // A version under a custom stage leaves ACSCurrent where it is.
    put(&mut c, "rds/prod", "v3", values[2], &["staging"])
        .await
        .unwrap();
    assert_eq!(
        get(&mut c, "rds/prod", "", "").await.unwrap().version_id,
        "v2"
    );
    assert_eq!(
        get(&mut c, "rds/prod", "staging", "")
            .await
            .unwrap()
            .secret_data,
        values[2]
    );
    assert_eq!(
        get(&mut c, "rds/prod", "", "v1").await.unwrap().secret_data,
        values[0]
    );

    // Promote v3: ACSPrevious follows to v2.
    c.secrets
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_name: "rds/prod".into(),
            version_stage: "ACSCurrent".into(),
            remove_from_version: "v2".into(),
            move_to_version: "v3".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        versions(&mut c, "rds/prod", true).await,
        [
            ("v1".to_string(), vec![]),
            ("v2".to_string(), vec!["ACSPrevious".to_string()]),
            (
                "v3".to_string(),
                vec!["staging".to_string(), "ACSCurrent".to_string()]
            ),
        ]
    );
    assert_eq!(
        versions(&mut c, "rds/prod", false).await.len(),
        2,
        "v1 holds no stage"
    );

    // Binary values come back byte for byte.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    c.secrets
        .create_secret(CreateSecretRequest {
            secret_name: "tls/key".into(),
            secret_data: binary.clone(),
            secret_data_type: "binary".into(),
            encryption_key_id: key.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = get(&mut c, "tls/key", "", "").await.unwrap();
    assert_eq!(
        (b.secret_data.clone(), b.secret_data_type.as_str()),
        (binary.clone(), "binary")
    );
    assert_eq!(b.version_id.len(), 36, "a UUID when no version id is given");

    // Restart: every version is still there and readable.
    d.restart();
    let mut c = d.client().await;
    for (id, want) in [("v1", values[0]), ("v2", values[1]), ("v3", values[2])] {
        assert_eq!(
            get(&mut c, "rds/prod", "", id).await.unwrap().secret_data,
            want
        );
    }
    assert_eq!(
        get(&mut c, "tls/key", "", "").await.unwrap().secret_data,
        binary
    );
    let meta = describe(&mut c, "rds/prod").await.unwrap();
    assert_eq!(meta.version_count, 3);
    assert_eq!(meta.description, "the production database");

    // A version moved in the store to another secret does not open there.
    d.stop(false);
    {
        use hkms::store::{SecretChange, SecretStore};
        let store = hkms::store::SledStore::open(&d.path("store")).unwrap();
        let mut moved = store.secret_version("rds/prod", "v1").unwrap().unwrap();
        moved.secret_name = "tls/key".into();
        let target = store.secret("tls/key").unwrap().unwrap();
        let mut changed = target.clone();
        changed.version_ids.push("v1".into());
        changed
            .stages
            .push(hkms::store::records::SecretStageRecord {
                stage: "moved".into(),
                version_id: "v1".into(),
            });
        store
            .change_secret(SecretChange {
                expected: Some(&target),
                new: Some(&changed),
                add: Some(&moved),
                remove: &[],
            })
            .unwrap();
    }
    d.restart();
    let mut c = d.client().await;
    assert_eq!(
        code(get(&mut c, "tls/key", "moved", "").await.unwrap_err()),
        "Internal"
    );
    assert!(d
        .log_text()
        .contains("does not open: the store was altered"));
    assert_eq!(
        get(&mut c, "tls/key", "", "").await.unwrap().secret_data,
        binary
    );

    // Nothing under the instance's directory (store, logs, tokens) holds a value in clear.
    d.stop(false);
    let mut scanned = 0;
    for f in files(d.dir.path()) {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        scanned += 1;
        for v in values.iter().copied().chain([&binary[..]]) {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v),
                "{} holds a secret value in clear",
                f.display()
            );
        }
    }
    assert!(
        files(&d.path("store")).len() >= 2 && scanned > 5,
        "the store was scanned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_clear_code_and_changes_nothing() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    create(&mut c, "app/token", &key, b"t0ken").await.unwrap();

    let cases: Vec<(&str, Result<CreateSecretResponse, tonic::Status>, &str)> = vec![
        (
            "taken name",
            create(&mut c, "app/token", &key, b"x").await,
            "ResourceExists",
        ),
        (
            "space",
            create(&mut c, "a b", &key, b"x").await,
            "InvalidParameter",
        ),
        (
            "reserved",
            create(&mut c, "acs/x", &key, b"x").await,
            "InvalidParameter",
        ),
        (
            "too long",
            create(&mut c, &"n".repeat(193), &key, b"x").await,
            "InvalidParameter",
        ),
        (
            "empty value",
            create(&mut c, "e", &key, b"").await,
            "InvalidParameter",
        ),
        (
            "value too large",
            create(&mut c, "big", &key, &vec![b'a'; 64 * 1024 + 1]).await,
            "InvalidParameter",
        ),
        (
            "text not UTF-8",
            create(&mut c, "bin", &key, &[0xff, 0xfe]).await,
            "InvalidParameter",
        ),
        (
            "no key",
            create(&mut c, "nokey", "", b"x").await,
            "InvalidParameter",
        ),
        (
            "unknown key",
            create(
                &mut c,
                "ghost",
                "4b0e0b63-2b9a-4f8d-9d0e-5f5a0c4b1c11",
                b"x",
            )
            .await,
            "KeyNotFound",
        ),
    ];
    for (what, got, want) in cases {
        assert_eq!(code(got.expect_err(what)), want, "{what}");
    }
    let rsa = create_key_of(&mut c, "RSA_2048", "").await;
    let e = create(&mut c, "rsa", &rsa, b"x").await.unwrap_err();
    assert_eq!(code(e), "IncorrectKeyUsage");
    let e = c
        .secrets
        .create_secret(CreateSecretRequest {
            secret_name: "cfg".into(),
            secret_data: b"x".to_vec(),
            encryption_key_id: key.clone(),
            extended_config: "[1, 2]".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidParameter");

    for (stage, version, want) in [
        ("nope", "", "ResourceNotFound"),
        ("", "v9", "ResourceNotFound"),
        ("ACSPrevious", "", "ResourceNotFound"),
    ] {
        let e = get(&mut c, "app/token", stage, version).await.unwrap_err();
        assert_eq!(code(e), want, "{stage} {version}");
    }
    assert_eq!(
        code(get(&mut c, "missing", "", "").await.unwrap_err()),
        "ResourceNotFound"
    );
    assert_eq!(
        code(
            put(&mut c, "app/token", "v1", b"again", &[])
                .await
                .unwrap_err()
        ),
        "ResourceExists"
    );
    assert_eq!(
        code(
            put(&mut c, "app/token", "v 2", b"x", &[])
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    assert_eq!(
        code(
            put(&mut c, "app/token", "v2", b"x", &["ACSPrevious"])
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    assert_eq!(
        code(put(&mut c, "missing", "v2", b"x", &[]).await.unwrap_err()),
        "ResourceNotFound"
    );
    let stage = |stage: &str, from: &str, to: &str| UpdateSecretVersionStageRequest {
        secret_name: "app/token".into(),
        version_stage: stage.into(),
        remove_from_version: from.into(),
        move_to_version: to.into(),
    };
    for (req, want) in [
        (stage("ACSCurrent", "v1", ""), "InvalidParameter"),
        (stage("ACSCurrent", "", "v7"), "ResourceNotFound"),
        (stage("custom", "v1", ""), "InvalidParameter"),
        (stage("", "", "v1"), "InvalidParameter"),
    ] {
        let e = c
            .secrets
            .update_secret_version_stage(req)
            .await
            .unwrap_err();
        assert_eq!(code(e), want);
    }
    let e = c
        .secrets
        .set_secret_policy(SetSecretPolicyRequest {
            secret_name: "app/token".into(),
            policy: r#"{"Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"secret/app/token"}]}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        "InvalidParameter",
        "a secret policy names principals"
    );

    // Nothing changed.
    let v = get(&mut c, "app/token", "", "").await.unwrap();
    assert_eq!(
        (v.version_id.as_str(), v.secret_data.as_slice()),
        ("v1", &b"t0ken"[..])
    );
    assert_eq!(versions(&mut c, "app/token", true).await.len(), 1);
    let (names, total) = list(&mut c, ListSecretsRequest::default()).await;
    assert_eq!((names, total), (vec!["app/token".to_string()], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_filter_and_page_and_old_versions_are_pruned() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    for (name, team) in [("aa/1", "x"), ("aa/2", "y"), ("aa/3", "x"), ("bb/1", "x")] {
        c.secrets
            .create_secret(CreateSecretRequest {
                secret_name: name.into(),
                secret_data: b"v".to_vec(),
                encryption_key_id: key.clone(),
                tags: vec![tag("team", team)],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let req = |prefix: &str, tags: Vec<Tag>, page: u32, size: u32| ListSecretsRequest {
        name_prefix: prefix.into(),
        tag_filters: tags,
        page_number: page,
        page_size: size,
    };
    assert_eq!(list(&mut c, req("aa/", vec![], 0, 0)).await.1, 3);
    let (names, total) = list(&mut c, req("", vec![tag("team", "x")], 0, 0)).await;
    assert_eq!(
        (names, total),
        (vec!["aa/1".into(), "aa/3".into(), "bb/1".into()], 3)
    );
    assert_eq!(
        list(&mut c, req("", vec![tag("team", "")], 0, 0)).await.1,
        4
    );
    assert_eq!(list(&mut c, req("aa/", vec![], 2, 2)).await.0, ["aa/3"]);
    let e = c
        .secrets
        .list_secrets(req("", vec![], 1, 101))
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidParameter");

    // Past 100 versions, the oldest that hold no stage go first.
    create(&mut c, "busy", &key, b"first").await.unwrap();
    c.secrets
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_name: "busy".into(),
            version_stage: "pinned".into(),
            remove_from_version: String::new(),
            move_to_version: "v1".into(),
        })
        .await
        .unwrap();
    for i in 2..=102 {
        put(
            &mut c,
            "busy",
            &format!("v{i}"),
            format!("value {i}").as_bytes(),
            &[],
        )
        .await
        .unwrap();
    }
    let all = versions(&mut c, "busy", true).await;
    assert_eq!(all.len(), 100);
    assert_eq!(all[0].0, "v1", "v1 holds a stage and stays");
    assert_eq!(all[1].0, "v4", "v2 and v3 were the oldest without a stage");
    assert_eq!(
        code(get(&mut c, "busy", "", "v2").await.unwrap_err()),
        "ResourceNotFound"
    );
    assert_eq!(
        get(&mut c, "busy", "pinned", "").await.unwrap().secret_data,
        b"first"
    );
    assert_eq!(
        get(&mut c, "busy", "ACSPrevious", "")
            .await
            .unwrap()
            .version_id,
        "v101"
    );

    // UpdateSecret changes the description and the extended configuration only.
    let m = c
        .secrets
        .update_secret(UpdateSecretRequest {
            secret_name: "busy".into(),
            description: Some("rotated often".into()),
            extended_config: Some(r#"{"k":"v"}"#.into()),
        })
        .await
        .unwrap()
        .into_inner()
        .secret
        .unwrap();
    assert_eq!(
        (m.description.as_str(), m.extended_config.as_str()),
        ("rotated often", r#"{"k":"v"}"#)
    );
    assert_eq!(
        get(&mut c, "busy", "", "").await.unwrap().extended_config,
        r#"{"k":"v"}"#
    );
}
