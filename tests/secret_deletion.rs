//! Secrets whose key goes away, and secrets deleted with and without a recovery window:
//! what reads and writes answer meanwhile, restore, and the clock's job that ends them.
//! Real hkmsd on SoftHSM2 tokens, with the test clock.

#[path = "support/secrets.rs"]
mod calls;
#[path = "support/clock.rs"]
mod clock;
mod common;

use calls::{create, describe, get, put};
use clock::TestClock;
use common::{code, create_key, Daemon, MemberSpec};
use hkms::proto::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_or_deleted_key_makes_its_secrets_unreadable_and_deleting_it_warns() {
    let d = Daemon::initialised(1);
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    create(&mut c, "svc/a", &key, b"alpha").await.unwrap();
    create(&mut c, "svc/b", &key, b"beta").await.unwrap();
    let other = create_key(&mut c).await;
    create(&mut c, "svc/c", &other, b"gamma").await.unwrap();

    c.keys
        .disable_key(DisableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        code(get(&mut c, "svc/a", "", "").await.unwrap_err()),
        "KeyDisabled"
    );
    assert_eq!(
        code(put(&mut c, "svc/a", "v2", b"x", &[]).await.unwrap_err()),
        "KeyDisabled"
    );
    assert_eq!(
        get(&mut c, "svc/c", "", "").await.unwrap().secret_data,
        b"gamma"
    );
    c.keys
        .enable_key(EnableKeyRequest {
            key_id: key.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        get(&mut c, "svc/a", "", "").await.unwrap().secret_data,
        b"alpha"
    );

    // Deletion is scheduled on disabled keys.
    for k in [&key, &other] {
        c.keys
            .disable_key(DisableKeyRequest {
                key_id: k.to_string(),
            })
            .await
            .unwrap();
    }
    let scheduled = c
        .keys
        .schedule_key_deletion(ScheduleKeyDeletionRequest {
            key_id: key.clone(),
            pending_window_in_days: 7,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scheduled.protected_secrets, ["svc/a", "svc/b"]);
    assert!(
        d.log_text().contains("protects secrets"),
        "the warning is logged"
    );
    assert_eq!(
        code(get(&mut c, "svc/b", "", "").await.unwrap_err()),
        "KeyPendingDeletion"
    );
    let untouched = c
        .keys
        .schedule_key_deletion(ScheduleKeyDeletionRequest {
            key_id: other.clone(),
            pending_window_in_days: 7,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.protected_secrets, ["svc/c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_its_recovery_window_unless_forced() {
    let clock = TestClock::default();
    let (k, v) = clock.env();
    let d = Daemon::start_with(&[MemberSpec::softhsm("hsm-0", "m0")], &[(k, &v)]);
    d.init_ok();
    let mut c = d.client().await;
    let key = create_key(&mut c).await;
    create(&mut c, "old", &key, b"old-value").await.unwrap();
    let delete = |name: &str, days: u32, force: bool| DeleteSecretRequest {
        secret_name: name.into(),
        recovery_window_in_days: days,
        force_delete_without_recovery: force,
    };

    for days in [6, 31] {
        let e = c
            .secrets
            .delete_secret(delete("old", days, false))
            .await
            .unwrap_err();
        assert_eq!(code(e), "InvalidParameter", "{days} days");
    }
    let e = c
        .secrets
        .delete_secret(delete("old", 7, true))
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidParameter", "a window and force together");

    // The default window is 30 days; reads and writes are refused meanwhile.
    let r = c
        .secrets
        .delete_secret(delete("old", 0, false))
        .await
        .unwrap()
        .into_inner();
    let due = clock.now() + 30 * 86_400;
    let (earliest, latest) = (
        hkms::clock::rfc3339(due - 120),
        hkms::clock::rfc3339(due + 120),
    );
    assert!(
        earliest <= r.planned_delete_time && r.planned_delete_time <= latest,
        "{}",
        r.planned_delete_time
    );
    assert_eq!(
        code(get(&mut c, "old", "", "").await.unwrap_err()),
        "SecretPendingDeletion"
    );
    assert_eq!(
        code(put(&mut c, "old", "v2", b"x", &[]).await.unwrap_err()),
        "SecretPendingDeletion"
    );
    let meta = describe(&mut c, "old").await.unwrap();
    assert_eq!(meta.secret_state, "PendingDeletion");
    assert_eq!(meta.planned_delete_time, r.planned_delete_time);
    let e = c
        .secrets
        .delete_secret(delete("old", 7, false))
        .await
        .unwrap_err();
    assert_eq!(code(e), "SecretPendingDeletion", "already pending");

    // Restored, it reads again; restoring again is an error.
    c.secrets
        .restore_secret(RestoreSecretRequest {
            secret_name: "old".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        get(&mut c, "old", "", "").await.unwrap().secret_data,
        b"old-value"
    );
    let e = c
        .secrets
        .restore_secret(RestoreSecretRequest {
            secret_name: "old".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidState");

    // A key that protects a secret is destroyed: the secret reads as the missing key.
    let doomed = create_key(&mut c).await;
    create(&mut c, "under-doomed", &doomed, b"lost")
        .await
        .unwrap();
    c.keys
        .disable_key(DisableKeyRequest {
            key_id: doomed.clone(),
        })
        .await
        .unwrap();
    c.keys
        .schedule_key_deletion(ScheduleKeyDeletionRequest {
            key_id: doomed.clone(),
            pending_window_in_days: 7,
        })
        .await
        .unwrap();

    // A 7-day window: the secret is kept until it ends, and goes with the next jobs run.
    c.secrets
        .delete_secret(delete("old", 7, false))
        .await
        .unwrap();
    let jobs = c
        .admin
        .list_scheduled_jobs(ListScheduledJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(
        jobs.iter()
            .any(|j| j.kind == "DeleteSecret" && j.secret_name == "old" && j.key_id.is_empty()),
        "{jobs:?}"
    );
    clock.advance(6 * 86_400);
    c.admin.run_due_jobs(RunDueJobsRequest {}).await.unwrap();
    assert_eq!(
        describe(&mut c, "old").await.unwrap().secret_state,
        "PendingDeletion"
    );
    clock.advance(2 * 86_400);
    let ran = c
        .admin
        .run_due_jobs(RunDueJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    assert!(
        ran.iter().any(|o| {
            let j = o.job.clone().unwrap_or_default();
            j.kind == "DeleteSecret" && j.secret_name == "old" && o.error.is_empty()
        }),
        "{ran:?}"
    );
    assert_eq!(
        code(describe(&mut c, "old").await.unwrap_err()),
        "ResourceNotFound"
    );
    assert_eq!(
        code(get(&mut c, "under-doomed", "", "").await.unwrap_err()),
        "KeyNotFound"
    );

    // Forced: gone at once, and the name is free again.
    create(&mut c, "now", &key, b"v").await.unwrap();
    let r = c
        .secrets
        .delete_secret(delete("now", 0, true))
        .await
        .unwrap()
        .into_inner();
    assert!(r.planned_delete_time.is_empty());
    assert_eq!(
        code(get(&mut c, "now", "", "").await.unwrap_err()),
        "ResourceNotFound"
    );
    create(&mut c, "now", &key, b"again").await.unwrap();
    assert_eq!(
        get(&mut c, "now", "", "").await.unwrap().secret_data,
        b"again"
    );
}
