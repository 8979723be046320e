//! Key lifecycle on real SoftHSM2 members: manual and automatic rotation, scheduled
//! deletion with protection, and the clock jobs, driven by the test clock (a debug build
//! of hkmsd adds the offset written in `HKMS_TEST_CLOCK_FILE`).

#[path = "support/clock.rs"]
mod clock;
mod common;

use clock::TestClock;
use common::{code, create_key, describe, drain, Daemon, MemberSpec};
use hkms::client::Client;
use hkms::proto::*;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

/// Two members, initialised, with the test clock and jobs every `jobs_secs`.
fn daemon(clock: &TestClock, jobs_secs: u64) -> Daemon {
    let (k, v) = clock.env();
    let members = [
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
    ];
    let d = Daemon::start_custom(
        &members,
        &[(k, v.as_str())],
        &format!("jobs_interval_secs = {jobs_secs}"),
    );
    d.init_ok();
    d
}

async fn encrypt(c: &mut Client, key_id: &str, text: &[u8]) -> EncryptResponse {
    c.crypto
        .encrypt(EncryptRequest {
            key_id: key_id.into(),
            plaintext: text.to_vec(),
            aad: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn decrypt(c: &mut Client, blob: &[u8]) -> Result<DecryptResponse, tonic::Status> {
    c.crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            aad: b"ctx".to_vec(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Runs `check` with only one member taking requests, for each member in turn.
async fn decrypts_on_every_member(c: &mut Client, blob: &[u8], plaintext: &[u8]) {
    for (serving, drained) in [("hsm-0", "hsm-1"), ("hsm-1", "hsm-0")] {
        drain(c, drained, false).await;
        let r = decrypt(c, blob).await;
        drain(c, drained, true).await;
        assert_eq!(
            r.unwrap_or_else(|e| panic!("decrypt on {serving}: {e:?}"))
                .plaintext,
            plaintext,
            "on {serving}"
        );
    }
}

async fn run_jobs(c: &mut Client) -> Vec<JobOutcome> {
    c.admin
        .run_due_jobs(RunDueJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .outcomes
}

async fn versions(c: &mut Client, key_id: &str) -> Vec<KeyVersion> {
    c.keys
        .list_key_versions(ListKeyVersionsRequest {
            key_id: key_id.into(),
            page_number: 1,
            page_size: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .key_versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_hand_and_by_policy_and_every_version_keeps_decrypting() {
    let clock = TestClock::default();
    let mut d = daemon(&clock, 3600);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    let v1 = describe(&mut c, &key).await.primary_key_version;
    let ct1 = encrypt(&mut c, &key, b"first").await;
    assert_eq!(ct1.key_version_id, v1);

    let v2 = c
        .keys
        .create_key_version(CreateKeyVersionRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_version
        .unwrap();
    assert!(v2.primary);
    let meta = describe(&mut c, &key).await;
    assert_eq!(meta.primary_key_version, v2.key_version_id);
    assert_eq!(meta.version_count, 2);
    let ct2 = encrypt(&mut c, &key, b"second").await;
    assert_eq!(
        ct2.key_version_id, v2.key_version_id,
        "the primary encrypts"
    );
    decrypts_on_every_member(&mut c, &ct1.ciphertext_blob, b"first").await;
    decrypts_on_every_member(&mut c, &ct2.ciphertext_blob, b"second").await;

    // ReEncrypt to the same key moves an old ciphertext to the primary version.
    let moved = c
        .crypto
        .re_encrypt(ReEncryptRequest {
            source_ciphertext_blob: ct1.ciphertext_blob.clone(),
            source_aad: b"ctx".to_vec(),
            destination_key_id: key.clone(),
            destination_aad: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.source_key_version_id, v1);
    assert_eq!(moved.key_version_id, v2.key_version_id);
    decrypts_on_every_member(&mut c, &moved.ciphertext_blob, b"first").await;

    let listed = versions(&mut c, &key).await;
    let ids: Vec<&str> = listed.iter().map(|v| v.key_version_id.as_str()).collect();
    assert_eq!(
        ids,
        [v1.as_str(), v2.key_version_id.as_str()],
        "oldest first"
    );
    assert!(!listed[0].primary && listed[1].primary);
    let one = c
        .keys
        .describe_key_version(DescribeKeyVersionRequest {
            key_id: key.clone(),
            key_version_id: v1.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_version
        .unwrap();
    assert_eq!(one.key_version_id, v1);
    let missing = c
        .keys
        .describe_key_version(DescribeKeyVersionRequest {
            key_id: key.clone(),
            key_version_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(missing), "ResourceNotFound");

    // A bad interval is refused and changes nothing.
    let before = describe(&mut c, &key).await;
    for bad in [6 * DAY as u64, 366 * DAY as u64] {
        let e = c
            .keys
            .update_rotation_policy(UpdateRotationPolicyRequest {
                key_id: key.clone(),
                enable_automatic_rotation: true,
                rotation_interval_seconds: bad,
            })
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidParameter");
    }
    assert_eq!(describe(&mut c, &key).await, before);

    // Rotation every 7 days: nothing is due now; 8 days later one rotation, once.
    let meta = c
        .keys
        .update_rotation_policy(UpdateRotationPolicyRequest {
            key_id: key.clone(),
            enable_automatic_rotation: true,
            rotation_interval_seconds: 7 * DAY as u64,
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.automatic_rotation, "Enabled");
    assert!(!meta.next_rotation_date.is_empty());
    assert!(run_jobs(&mut c).await.is_empty());
    clock.advance(8 * DAY);
    let jobs = c
        .admin
        .list_scheduled_jobs(ListScheduledJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(
        jobs.iter().any(|j| j.kind == "Rotate" && j.key_id == key),
        "{jobs:?}"
    );
    // Two runs at once, then a third: the due rotation happens once.
    let mut c2 = d.client().await;
    let (first, second) = tokio::join!(run_jobs(&mut c), run_jobs(&mut c2));
    let ran: Vec<JobOutcome> = first.into_iter().chain(second).collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].job.as_ref().unwrap().kind, "Rotate");
    assert!(ran[0].error.is_empty(), "{ran:?}");
    assert!(
        run_jobs(&mut c).await.is_empty(),
        "a due rotation runs once"
    );
    let meta = describe(&mut c, &key).await;
    assert_eq!(meta.version_count, 3);
    let v3 = meta.primary_key_version.clone();
    assert_ne!(v3, v2.key_version_id);
    assert!(meta.next_rotation_date > meta.last_rotation_date);

    // hkmsd's own schedule runs it too, and everything survives a restart.
    d.stop(false);
    d.limits = "jobs_interval_secs = 1".into();
    d.write_config(&[
        MemberSpec::softhsm("hsm-0", "m0"),
        MemberSpec::softhsm("hsm-1", "m1"),
    ]);
    d.spawn().unwrap();
    let mut c = d.client().await;
    assert_eq!(describe(&mut c, &key).await.primary_key_version, v3);
    clock.advance(8 * DAY);
    let deadline = Instant::now() + Duration::from_secs(20);
    while describe(&mut c, &key).await.version_count < 4 {
        assert!(
            Instant::now() < deadline,
            "the scheduled rotation did not run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    decrypts_on_every_member(&mut c, &ct1.ciphertext_blob, b"first").await;
    decrypts_on_every_member(&mut c, &ct2.ciphertext_blob, b"second").await;

    // Turned off: nothing more is scheduled.
    c.keys
        .update_rotation_policy(UpdateRotationPolicyRequest {
            key_id: key.clone(),
            enable_automatic_rotation: false,
            rotation_interval_seconds: 0,
        })
        .await
        .unwrap();
    let meta = describe(&mut c, &key).await;
    assert_eq!(meta.automatic_rotation, "Disabled");
    assert!(meta.next_rotation_date.is_empty());
}

async fn schedule(c: &mut Client, key: &str, days: u32) -> Result<KeyMetadata, tonic::Status> {
    c.keys
        .schedule_key_deletion(ScheduleKeyDeletionRequest {
            key_id: key.into(),
            pending_window_in_days: days,
        })
        .await
        .map(|r| r.into_inner().key_metadata.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_deletion_destroys_the_key_when_its_window_ends() {
    let clock = TestClock::default();
    let mut d = daemon(&clock, 3600);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    let keep = create_key(&mut c).await;
    c.keys
        .create_alias(CreateAliasRequest {
            alias_name: "alias/doomed".into(),
            key_id: key.clone(),
        })
        .await
        .unwrap();
    let ct = encrypt(&mut c, &key, b"soon unreadable").await;
    let kept = encrypt(&mut c, &keep, b"stays").await;

    // Refusals, each leaving the key as it was.
    let before = describe(&mut c, &key).await;
    assert_eq!(
        code(schedule(&mut c, &key, 30).await.unwrap_err()),
        "InvalidState"
    );
    c.keys
        .disable_key(DisableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap();
    let disabled = describe(&mut c, &key).await;
    for bad in [0, 6, 367] {
        assert_eq!(
            code(schedule(&mut c, &key, bad).await.unwrap_err()),
            "InvalidParameter"
        );
    }
    c.keys
        .set_deletion_protection(SetDeletionProtectionRequest {
            key_id: key.clone(),
            enable_deletion_protection: true,
            deletion_protection_description: "orders archive".into(),
        })
        .await
        .unwrap();
    let e = schedule(&mut c, &key, 7).await.unwrap_err();
    assert_eq!(code(e.clone()), "DeletionProtected");
    assert!(e.message().contains("orders archive"), "{e:?}");
    c.keys
        .set_deletion_protection(SetDeletionProtectionRequest {
            key_id: key.clone(),
            enable_deletion_protection: false,
            deletion_protection_description: String::new(),
        })
        .await
        .unwrap();
    c.admin
        .set_key_deletion_blocked(SetKeyDeletionBlockedRequest { blocked: true })
        .await
        .unwrap();
    let status = c
        .admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.key_deletion_blocked);
    assert_eq!(
        code(schedule(&mut c, &key, 7).await.unwrap_err()),
        "DeletionProtected"
    );
    // Any operator may block; only the instance owner (root here) may allow again.
    d.set_access(&format!(
        "operator_uids = [0, 4242]\ngateway_uids = [{}]",
        common::GATEWAY_UID
    ));
    let mut other = d.client_as(4242).await;
    let e = other
        .admin
        .set_key_deletion_blocked(SetKeyDeletionBlockedRequest { blocked: false })
        .await
        .unwrap_err();
    assert_eq!(code(e), "Forbidden");
    let mut c = d.client().await;
    c.admin
        .set_key_deletion_blocked(SetKeyDeletionBlockedRequest { blocked: false })
        .await
        .unwrap();
    assert_eq!(describe(&mut c, &key).await, disabled);
    assert_eq!(before.key_state, "Enabled");

    // Scheduled: every use refused; cancelled: Disabled again.
    let pending = schedule(&mut c, &key, 7).await.unwrap();
    assert_eq!(pending.key_state, "PendingDeletion");
    assert!(!pending.deletion_date.is_empty());
    assert_eq!(
        code(decrypt(&mut c, &ct.ciphertext_blob).await.unwrap_err()),
        "KeyPendingDeletion"
    );
    let e = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: key.clone(),
            plaintext: b"x".to_vec(),
            aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "KeyPendingDeletion");
    let e = c
        .keys
        .enable_key(EnableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidState");
    let cancelled = c
        .keys
        .cancel_key_deletion(CancelKeyDeletionRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(cancelled.key_state, "Disabled");
    assert!(cancelled.deletion_date.is_empty());

    // Scheduled again; 6 days later nothing happens, 8 days later it is gone.
    schedule(&mut c, &key, 7).await.unwrap();
    clock.advance(6 * DAY);
    assert!(run_jobs(&mut c).await.is_empty());
    assert_eq!(describe(&mut c, &key).await.key_state, "PendingDeletion");
    clock.advance(2 * DAY);
    let e = c
        .keys
        .cancel_key_deletion(CancelKeyDeletionRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidState", "too late to cancel");
    let ran = run_jobs(&mut c).await;
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].job.as_ref().unwrap().kind, "Delete");
    assert!(run_jobs(&mut c).await.is_empty(), "deleted once");
    let e = c
        .keys
        .describe_key(DescribeKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "KeyNotFound");
    for member in ["hsm-0", "hsm-1"] {
        let other = if member == "hsm-0" { "hsm-1" } else { "hsm-0" };
        drain(&mut c, other, false).await;
        let e = decrypt(&mut c, &ct.ciphertext_blob).await.unwrap_err();
        drain(&mut c, other, true).await;
        assert_eq!(code(e), "KeyNotFound", "on {member}");
    }
    let aliases = c
        .keys
        .list_aliases(ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .aliases;
    assert!(aliases.is_empty(), "{aliases:?}");
    decrypts_on_every_member(&mut c, &kept.ciphertext_blob, b"stays").await;

    // After a restart too; and the store holds no token of the key.
    d.restart();
    let mut c = d.client().await;
    assert_eq!(
        code(decrypt(&mut c, &ct.ciphertext_blob).await.unwrap_err()),
        "KeyNotFound"
    );
    d.stop(false);
    let store = hkms::store::SledStore::open(&d.path("store")).unwrap();
    use hkms::store::Store;
    let tokens = store.key_tokens().unwrap();
    assert!(tokens.iter().all(|(k, _, _)| *k != key));
    assert!(tokens.iter().any(|(k, _, _)| *k == keep));
}
