//! Tests of the trail's writer: acknowledgement means durable, one chain, and failing closed.

use super::*;
use crate::audit::record::{parse_line, Line};

fn records_on_disk(trail: &Trail) -> Vec<Record> {
    let durable = trail.durable();
    let mut records = Vec::new();
    segments::for_each_line(trail.dir(), &durable.segment, durable.len, |line| {
        if let Ok(Line::Record(r)) = parse_line(line) {
            records.push(r);
        }
        true
    })
    .unwrap();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_are_all_durable_when_acknowledged_in_one_chain() {
    let dir = crate::audit::direct::tests::direct_dir();
    let (trail, _) = Trail::open(&AuditConfig::default(), dir.path()).unwrap();
    let trail = Arc::new(trail);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let trail = trail.clone();
            tokio::spawn(async move {
                let record = Record {
                    request_id: format!("request-{i}"),
                    ..Default::default()
                };
                trail.append(record).await.unwrap();
                // Once acknowledged, the record is within the durable part.
                let durable = trail.durable();
                let mut found = false;
                segments::for_each_line(trail.dir(), &durable.segment, durable.len, |l| {
                    found |= l.contains(&format!("\"request-{i}\""));
                    !found
                })
                .unwrap();
                assert!(found, "request-{i} acknowledged before it was durable");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let records = records_on_disk(&trail);
    assert_eq!(records.len(), 300);
    let mut prev = crate::audit::record::GENESIS.to_owned();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(
            r.prev, prev,
            "record {} is chained to the one before",
            r.seq
        );
        prev = r.hash.clone();
    }
    let status = trail.status();
    assert_eq!((status.last_seq, status.backlog), (300, 0));
    assert!(status.writable && status.error.is_none());
    assert_eq!(status.appends, "direct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_trail_continues_the_chain_of_the_dropped_one() {
    let dir = crate::audit::direct::tests::direct_dir();
    let config = AuditConfig::default();
    let (first, _) = Trail::open(&config, dir.path()).unwrap();
    for _ in 0..3 {
        first.append(Record::default()).await.unwrap();
    }
    let head = first.head();
    drop(first);
    let (second, _) = Trail::open(&config, dir.path()).unwrap();
    assert_eq!(second.head(), head);
    second.append(Record::default()).await.unwrap();
    let records = records_on_disk(&second);
    assert_eq!(records.len(), 4);
    assert_eq!(records[3].prev, head.hash);
}

#[tokio::test]
async fn a_commit_that_panics_refuses_what_is_queued_and_what_follows() {
    use tokio::sync::oneshot::error::TryRecvError;
    let dir = tempfile::tempdir().unwrap();
    let (trail, _) = Trail::open(&AuditConfig::default(), dir.path()).unwrap();
    trail.append(Record::default()).await.unwrap();
    let committer = trail.committer.clone().unwrap();
    let job = |tx| Job::Record(Box::default(), Ack::new(tx, trail.shared.clone()));
    let (tx, mut queued) = oneshot::channel();
    committer.lock().jobs.push(job(tx));
    // The group of the commit that panics: taken from the queue, not yet answered.
    let (tx, mut taken) = oneshot::channel();
    let group = vec![job(tx)];
    assert_eq!(trail.status().backlog, 2);
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _closing = Closing(&committer.queue, &committer.shared);
        let _group = group;
        panic!("the writer failed");
    }));
    assert!(ended.is_err());
    // Both requests are answered (their acknowledgements dropped), not left waiting.
    assert_eq!(queued.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(taken.try_recv(), Err(TryRecvError::Closed));
    assert!(committer.lock().closed);
    assert_eq!(
        trail.append(Record::default()).await,
        Err(WRITER_STOPPED.to_owned())
    );
    let status = trail.status();
    assert_eq!(status.backlog, 0);
    assert!(!status.writable);
    assert_eq!(status.error.as_deref(), Some(WRITER_STOPPED));
}

#[tokio::test]
async fn with_direct_appends_off_records_are_written_buffered_and_synced() {
    let dir = crate::audit::direct::tests::direct_dir();
    let config = AuditConfig {
        direct_appends: false,
        ..AuditConfig::default()
    };
    let (trail, _) = Trail::open(&config, dir.path()).unwrap();
    for _ in 0..3 {
        trail.append(Record::default()).await.unwrap();
    }
    assert_eq!(trail.status().appends, "fdatasync");
    assert_eq!(records_on_disk(&trail).len(), 3);
}
