//! Key metadata: tags, descriptions, alias updates and ListKeys filters with stable pages,
//! on a real hkmsd with a SoftHSM2 member.

mod common;

use common::{code, create_key, describe, Daemon};
use hkms::client::Client;
use hkms::proto::*;

const DAY: i64 = 86_400;

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        tag_key: k.into(),
        tag_value: v.into(),
    }
}

async fn list(c: &mut Client, req: ListKeysRequest) -> (Vec<String>, u64) {
    let r = c.keys.list_keys(req).await.unwrap().into_inner();
    (
        r.keys.into_iter().map(|k| k.key_id).collect(),
        r.total_count,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_descriptions_aliases_and_list_filters() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let a = c
        .keys
        .create_key(CreateKeyRequest {
            description: "orders".into(),
            tags: vec![tag("team", "payments"), tag("env", "prod")],
            deletion_protection: true,
            enable_automatic_rotation: true,
            rotation_interval_seconds: 30 * DAY as u64,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert!(a.deletion_protection);
    assert_eq!(a.automatic_rotation, "Enabled");
    assert_eq!(a.rotation_interval_seconds, 30 * DAY as u64);
    let b = create_key(&mut c).await;
    let ext = c
        .keys
        .create_key(CreateKeyRequest {
            origin: "EXTERNAL".into(),
            key_spec: "Aliyun_AES_128".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();

    // Bad tags and bad create requests are refused; nothing is created.
    let (_, before) = list(&mut c, ListKeysRequest::default()).await;
    for bad in [
        vec![tag("acs:x", "y")],
        vec![tag("", "y")],
        vec![tag("k", "1"), tag("k", "2")],
    ] {
        let e = c
            .keys
            .create_key(CreateKeyRequest {
                tags: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidParameter");
    }
    for (origin, rotate) in [("IMPORTED", false), ("EXTERNAL", true)] {
        let e = c
            .keys
            .create_key(CreateKeyRequest {
                origin: origin.into(),
                enable_automatic_rotation: rotate,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidParameter", "{origin}");
    }
    assert_eq!(list(&mut c, ListKeysRequest::default()).await.1, before);

    // Tags: set, replace a value, remove; listed sorted.
    let tags = c
        .keys
        .tag_resource(TagResourceRequest {
            key_id: b.clone(),
            tags: vec![tag("team", "risk"), tag("tier", "1")],
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, vec![tag("team", "risk"), tag("tier", "1")]);
    c.keys
        .tag_resource(TagResourceRequest {
            key_id: b.clone(),
            tags: vec![tag("tier", "2")],
        })
        .await
        .unwrap();
    let tags = c
        .keys
        .untag_resource(UntagResourceRequest {
            key_id: b.clone(),
            tag_keys: vec!["team".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, vec![tag("tier", "2")]);
    let listed = c
        .keys
        .list_resource_tags(ListResourceTagsRequest {
            key_id: a.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(listed, vec![tag("env", "prod"), tag("team", "payments")]);

    // Filters: by tag (value or any value), state, spec, origin; pages stable.
    let by_tag = |t: Tag| ListKeysRequest {
        tags: vec![t],
        ..Default::default()
    };
    assert_eq!(
        list(&mut c, by_tag(tag("team", "payments"))).await.0,
        [a.key_id.as_str()]
    );
    assert_eq!(list(&mut c, by_tag(tag("tier", ""))).await.0, [b.as_str()]);
    assert!(list(&mut c, by_tag(tag("team", "risk"))).await.0.is_empty());
    let (ids, total) = list(
        &mut c,
        ListKeysRequest {
            key_state: "PendingImport".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids, [ext.key_id.as_str()]);
    assert_eq!(total, 1);
    let (ids, _) = list(
        &mut c,
        ListKeysRequest {
            key_spec: "Aliyun_AES_128".into(),
            origin: "EXTERNAL".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids, [ext.key_id.as_str()]);
    let (ids, total) = list(
        &mut c,
        ListKeysRequest {
            origin: "Aliyun_KMS".into(),
            page_number: 1,
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(total, 2);
    let (ids2, _) = list(
        &mut c,
        ListKeysRequest {
            origin: "Aliyun_KMS".into(),
            page_number: 2,
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let mut both = vec![ids[0].clone(), ids2[0].clone()];
    assert!(ids[0] < ids2[0], "key id order");
    both.sort();
    let mut expected = vec![a.key_id.clone(), b.clone()];
    expected.sort();
    assert_eq!(both, expected);

    // Description and alias updates.
    let meta = c
        .keys
        .update_key_description(UpdateKeyDescriptionRequest {
            key_id: b.clone(),
            description: "risk scores".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.description, "risk scores");
    c.keys
        .create_alias(CreateAliasRequest {
            alias_name: "alias/current".into(),
            key_id: a.key_id.clone(),
        })
        .await
        .unwrap();
    let moved = c
        .keys
        .update_alias(UpdateAliasRequest {
            alias_name: "current".into(),
            key_id: b.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .alias
        .unwrap();
    assert_eq!(moved.key_id, b);
    assert_eq!(describe(&mut c, "alias/current").await.key_id, b);
    let e = c
        .keys
        .update_alias(UpdateAliasRequest {
            alias_name: "alias/none".into(),
            key_id: b.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "ResourceNotFound");
}
