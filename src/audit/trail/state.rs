//! What the trail's parts share: the state every reader of the trail sees (head, durable
//! end, writability, counters, timings) and the jobs a commit takes.

use crate::audit::record::{Checkpoint, Record};
use crate::audit::segments::Head;
use crate::metrics::histogram::AtomicHistogram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, oneshot};

/// Where the durable part of the trail ends, for readers (export, tail).
#[derive(Debug, Clone)]
pub struct Durable {
    pub segment: PathBuf,
    pub len: u64,
}

/// State shared by the writer and everyone asking about the trail.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) backlog: AtomicU64,
    pub(super) writable: AtomicBool,
    pub(super) error: Mutex<Option<String>>,
    pub(super) head: Mutex<Head>,
    pub(super) durable: Mutex<Durable>,
    pub(super) last_checkpoint: Mutex<Option<String>>,
    pub(super) segments: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// The active segment takes direct appends.
    pub(super) direct: AtomicBool,
    /// Requests refused since the trail became unwritable.
    pub(super) refused: AtomicU64,
    /// Durable lines, for `hkms audit tail`.
    pub(super) lines: broadcast::Sender<Arc<str>>,
    /// How long requests waited for their records to be durable.
    pub(super) waited: AtomicHistogram,
    /// How long each group's write and sync took (failed attempts included).
    pub(super) synced: AtomicHistogram,
}

/// Tells a waiting request whether its line is durable. A job is counted in the backlog
/// from its submission until its `Ack` is sent or dropped (its request refused), whatever
/// ends it, a panicking commit included.
#[derive(Debug)]
pub(super) struct Ack {
    tx: Option<oneshot::Sender<Result<(), String>>>,
    shared: Arc<Shared>,
}

impl Ack {
    /// Counts a new job in `shared`'s backlog; `tx` answers its request.
    pub(super) fn new(tx: oneshot::Sender<Result<(), String>>, shared: Arc<Shared>) -> Ack {
        shared.backlog.fetch_add(1, Ordering::Relaxed);
        Ack {
            tx: Some(tx),
            shared,
        }
    }

    pub(super) fn send(mut self, result: Result<(), String>) {
        if let Some(tx) = self.tx.take() {
            // A request that stopped waiting needs no answer.
            let _ = tx.send(result);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.shared.backlog.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) enum Job {
    Record(Box<Record>, Ack),
    Checkpoint(Checkpoint, Ack),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Record(r, _) => write!(f, "record {}", r.request_id),
            Job::Checkpoint(c, _) => write!(f, "checkpoint {}", c.seq),
        }
    }
}

impl Shared {
    pub(super) fn new(dir: PathBuf, head: Head) -> Shared {
        Shared {
            dir,
            backlog: AtomicU64::new(0),
            writable: AtomicBool::new(true),
            error: Mutex::new(None),
            head: Mutex::new(head),
            durable: Mutex::new(Durable {
                segment: PathBuf::new(),
                len: 0,
            }),
            last_checkpoint: Mutex::new(None),
            segments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            direct: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            lines: broadcast::channel(4096).0,
            waited: AtomicHistogram::default(),
            synced: AtomicHistogram::default(),
        }
    }

    /// Marks the trail unwritable because of `error`, `records` requests refused.
    pub(super) fn refuse(&self, error: &str, records: u64) {
        if self.writable.swap(false, Ordering::Relaxed) {
            tracing::error!(
                "the audit trail cannot be written ({error}); requests are refused until it can"
            );
        }
        *self.error.lock().expect("trail lock") = Some(error.to_owned());
        self.refused.fetch_add(records, Ordering::Relaxed);
    }
}
