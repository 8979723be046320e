//! Durability for the trail's writer: `fdatasync` calls, up to a few in flight at once.
//!
//! The writer appends each group of lines to the active segment (page cache only) and
//! hands it here as a [`Batch`]. Flusher threads make written bytes durable. A sync covers
//! every byte written to the file before it started, whichever thread wrote it, so the
//! flusher whose sync returns acknowledges every batch up to the end it started with, in
//! order; a sync that returns later finds nothing left of its own.
//!
//! **When a sync starts** ([`Policy`]): a sync costs tens of microseconds of CPU, so it
//! should serve many requests, but each request waits for it. An idle flusher starts one
//! at once when no request being served is still to hand its record over ([`Serving`]),
//! else when enough requests wait or the oldest has waited `gather`. While a sync runs,
//! another starts only for `overlap_min` waiting requests or more (a record then waits for
//! one sync that starts after it was written, not for the running one and then its own).
//!
//! **Errors.** Each flusher syncs through its own open file description, opened before
//! anything was written to the segment, so a write-back error is reported to every
//! flusher whose sync it affects (the kernel reports such an error once per open file
//! description). The first failed sync fails every batch not yet durable; no batch is
//! acknowledged after it until the writer has cut the segment back to its last durable
//! byte and given the flushers new descriptions ([`Flusher::new_segment`]).

use super::segments::Head;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Requests being served whose record is not written yet (see [`Serving`]).
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// A request being served, until its record is handed to the trail (or it ends without
/// one). While such requests exist, a sync waits a little for their records, so that one
/// sync serves them too: a sync costs tens of microseconds of CPU, which should be shared.
#[derive(Debug)]
pub struct Serving(AtomicBool);

impl Serving {
    pub fn begin() -> Serving {
        SERVING.fetch_add(1, Ordering::Relaxed);
        Serving(AtomicBool::new(false))
    }

    /// The request's record is on its way to the trail (or there will be none).
    pub fn done(&self) {
        if !self.0.swap(true, Ordering::Relaxed) {
            SERVING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.done();
    }
}

fn serving() -> usize {
    SERVING.load(Ordering::Relaxed)
}

/// Tells a waiting request whether its line is durable.
pub type Ack = oneshot::Sender<Result<(), String>>;

/// Lines written to the active segment, not yet durable.
#[derive(Debug)]
pub struct Batch {
    /// Where the batch ends in the segment.
    pub end: u64,
    /// The chain's head once the batch is durable.
    pub head: Head,
    /// The batch's lines, for readers following the trail.
    pub lines: Vec<Arc<str>>,
    /// The requests (records and checkpoints) waiting for the batch.
    pub acks: Vec<Ack>,
    /// Requests' records in the batch (hkmsd's own records excluded).
    pub records: u64,
    /// The batch ends a period in which the trail could not be written.
    pub recovery: Option<Recovery>,
}

/// What a batch that ends an outage says about it.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// Requests refused during the outage that the batch's record counts.
    pub refused: u64,
}

/// What the flushers report to the trail, in segment order, while holding their lock.
pub trait Publish: Send + Sync + 'static {
    /// `batches` are durable (oldest first).
    fn durable(&self, path: &std::path::Path, batches: &[Batch]);
    /// A sync failed: `batches` (oldest first) are refused.
    fn failed(&self, error: &str, batches: &[Batch]);
}

struct Inner {
    state: Mutex<State>,
    policy: Policy,
    /// Bytes to sync, or stop.
    work: Condvar,
    /// A sync finished (for [`Flusher::drain`]).
    idle: Condvar,
}

struct State {
    /// Bumped for each new segment file (rotation, reopening after a failure).
    generation: u64,
    path: std::path::PathBuf,
    /// One open file description per flusher.
    files: Arc<Vec<File>>,
    /// End of the bytes written to the active segment.
    written: u64,
    /// The furthest end a running (or finished) sync of this segment covers.
    covered: u64,
    running: usize,
    /// Acknowledgements written past `covered`.
    uncovered: usize,
    /// When the oldest of them was written.
    oldest: Option<Instant>,
    /// Syncs started since the flushers began.
    syncs: u64,
    pending: VecDeque<Batch>,
    failed: Option<String>,
    stop: bool,
}

/// The flusher threads of one trail.
pub struct Flusher {
    inner: Arc<Inner>,
    threads: usize,
    publish: Arc<dyn Publish>,
}

/// When an idle flusher starts a sync: when written bytes wait and either no request
/// being served is about to add its record, or `gather` has passed since the oldest of them
/// was written, or `batch` requests wait.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// While a sync runs, another starts only for at least this many waiting requests
    /// (fewer wait for the running sync to end).
    pub overlap_min: usize,
    /// The longest a record waits for others before its sync starts.
    pub gather: Duration,
    /// Waiting requests that start a sync at once.
    pub batch: usize,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flusher({} threads)", self.threads)
    }
}

impl Flusher {
    /// Starts `threads` flushers that report to `publish`.
    pub fn start(
        threads: usize,
        policy: Policy,
        publish: Arc<dyn Publish>,
    ) -> Result<Flusher, String> {
        let inner = Arc::new(Inner {
            policy,
            state: Mutex::new(State {
                generation: 0,
                path: std::path::PathBuf::new(),
                files: Arc::new(Vec::new()),
                written: 0,
                covered: 0,
                running: 0,
                uncovered: 0,
                oldest: None,
                syncs: 0,
                pending: VecDeque::new(),
                failed: None,
                stop: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        for i in 0..threads {
            let inner = inner.clone();
            let publish = publish.clone();
            std::thread::Builder::new()
                .name(format!("hkms-audit-sync-{i}"))
                .spawn(move || flush_loop(i, &inner, publish.as_ref()))
                .map_err(|e| format!("cannot start an audit flusher: {e}"))?;
        }
        Ok(Flusher {
            inner,
            threads,
            publish,
        })
    }

    /// How many open file descriptions a segment needs (one per flusher).
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("audit flusher lock")
    }

    /// The flushers sync `path` from now on; its first `len` bytes are durable. `files`
    /// (one per flusher) were opened before anything past `len` was written. Call only
    /// when nothing is pending ([`Flusher::drain`]).
    pub fn new_segment(&self, path: &std::path::Path, files: Vec<File>, len: u64) {
        let mut s = self.lock();
        debug_assert!(s.pending.is_empty());
        s.generation += 1;
        s.path = path.to_owned();
        s.files = Arc::new(files);
        s.written = len;
        s.covered = len;
        s.uncovered = 0;
        s.oldest = None;
        s.failed = None;
    }

    /// Hands over a batch just written; an idle flusher starts syncing it.
    /// If a sync failed since the segment was (re)opened, the batch is refused at once.
    pub fn submit(&self, batch: Batch) {
        let mut s = self.lock();
        if let Some(error) = s.failed.clone() {
            self.publish.failed(&error, std::slice::from_ref(&batch));
            drop(s);
            for ack in batch.acks {
                let _ = ack.send(Err(error.clone()));
            }
            return;
        }
        s.written = s.written.max(batch.end);
        s.uncovered += batch.acks.len().max(1);
        // The first bytes to wait: an idle flusher learns how long they may wait.
        let first = s.oldest.is_none();
        s.oldest.get_or_insert_with(Instant::now);
        s.pending.push_back(batch);
        let wake = s.running < self.threads && (first || due(&s, self.inner.policy).is_ok());
        drop(s);
        if wake {
            self.inner.work.notify_one();
        }
    }

    /// Syncs started so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The error of a failed sync, if one failed since the segment was (re)opened.
    pub fn failed(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Waits until nothing is pending and no sync is running; the error of a failed sync
    /// if there was one.
    pub fn drain(&self) -> Result<(), String> {
        let mut s = self.lock();
        while !(s.pending.is_empty() && s.running == 0) {
            s = self.inner.idle.wait(s).expect("audit flusher lock");
        }
        match &s.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Waits for what is pending, then ends the flusher threads.
    pub fn stop(&self) {
        let _ = self.drain();
        self.lock().stop = true;
        self.inner.work.notify_all();
    }
}

/// Whether a sync should start now; if not, how long until it should unless something
/// changes (`None`: nothing to sync).
fn due(s: &State, policy: Policy) -> Result<(), Option<Duration>> {
    if s.failed.is_some() || s.written <= s.covered {
        return Err(None);
    }
    if s.running > 0 && s.uncovered < policy.overlap_min {
        // The running sync's end wakes this flusher again.
        return Err(None);
    }
    if s.uncovered >= policy.batch || serving() == 0 {
        return Ok(());
    }
    let waited = s.oldest.map(|t| t.elapsed()).unwrap_or_default();
    match policy.gather.checked_sub(waited) {
        Some(left) if !left.is_zero() => Err(Some(left)),
        _ => Ok(()),
    }
}

fn flush_loop(i: usize, inner: &Inner, publish: &dyn Publish) {
    let lock = &inner.state;
    let mut s = lock.lock().expect("audit flusher lock");
    loop {
        while !s.stop {
            match due(&s, inner.policy) {
                Ok(()) => break,
                Err(None) => s = inner.work.wait(s).expect("audit flusher lock"),
                Err(Some(wait)) => {
                    s = inner
                        .work
                        .wait_timeout(s, wait)
                        .expect("audit flusher lock")
                        .0
                }
            }
        }
        if s.stop {
            return;
        }
        let (target, generation, files) = (s.written, s.generation, s.files.clone());
        s.covered = target;
        s.uncovered = 0;
        s.oldest = None;
        s.running += 1;
        s.syncs += 1;
        drop(s);
        let synced = match files.get(i) {
            Some(f) => f.sync_data().map_err(|e| e.to_string()),
            None => Err("no file to sync".to_owned()),
        };
        s = lock.lock().expect("audit flusher lock");
        s.running -= 1;
        let current = s.generation == generation && s.failed.is_none();
        let done: Vec<Batch> = match synced {
            Ok(()) if current => {
                let n = s.pending.iter().take_while(|b| b.end <= target).count();
                let done: Vec<Batch> = s.pending.drain(..n).collect();
                if !done.is_empty() {
                    publish.durable(&s.path, &done);
                }
                done
            }
            Err(e) if current => {
                let error = format!("cannot sync {}: {e}", s.path.display());
                let done: Vec<Batch> = s.pending.drain(..).collect();
                publish.failed(&error, &done);
                s.failed = Some(error);
                done
            }
            // A sync of a segment given up since, or after another sync failed: the
            // batches it covered were answered already.
            _ => Vec::new(),
        };
        let outcome = s.failed.clone();
        if s.running == 0 {
            inner.idle.notify_all();
        }
        drop(s);
        for batch in done {
            for ack in batch.acks {
                let _ = ack.send(match &outcome {
                    None => Ok(()),
                    Some(e) => Err(e.clone()),
                });
            }
        }
        s = lock.lock().expect("audit flusher lock");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Records what the flushers report.
    #[derive(Default)]
    struct Seen {
        durable_ends: Mutex<Vec<u64>>,
        failed: AtomicU64,
    }

    impl Publish for Seen {
        fn durable(&self, _: &std::path::Path, batches: &[Batch]) {
            let mut ends = self.durable_ends.lock().unwrap();
            ends.extend(batches.iter().map(|b| b.end));
        }
        fn failed(&self, _: &str, batches: &[Batch]) {
            self.failed
                .fetch_add(batches.len() as u64, Ordering::Relaxed);
        }
    }

    const POLICY: Policy = Policy {
        overlap_min: 1,
        gather: Duration::from_millis(1),
        batch: 64,
    };

    fn batch(end: u64) -> (Batch, oneshot::Receiver<Result<(), String>>) {
        let (ack, rx) = oneshot::channel();
        let b = Batch {
            end,
            head: Head::genesis(),
            lines: Vec::new(),
            acks: vec![ack],
            records: 1,
            recovery: None,
        };
        (b, rx)
    }

    #[test]
    fn every_batch_is_acknowledged_once_and_published_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"").unwrap();
        let seen = Arc::new(Seen::default());
        let flusher = Flusher::start(4, POLICY, seen.clone()).unwrap();
        let files = (0..4).map(|_| File::open(&path).unwrap()).collect();
        flusher.new_segment(&path, files, 0);
        let mut waiting = Vec::new();
        for end in 1..=500u64 {
            let (b, rx) = batch(end * 10);
            flusher.submit(b);
            waiting.push(rx);
        }
        flusher.drain().unwrap();
        for rx in waiting {
            assert_eq!(rx.blocking_recv().unwrap(), Ok(()));
        }
        let ends = seen.durable_ends.lock().unwrap().clone();
        assert_eq!(ends, (1..=500u64).map(|e| e * 10).collect::<Vec<_>>());
        assert_eq!(seen.failed.load(Ordering::Relaxed), 0);
        flusher.stop();
    }

    #[test]
    fn a_failed_sync_refuses_everything_pending_and_what_follows_until_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen::default());
        let flusher = Flusher::start(2, POLICY, seen.clone()).unwrap();
        // fdatasync on a pipe fails (EINVAL): a sync that cannot succeed.
        let pipes: Vec<File> = (0..2)
            .map(|_| File::from(nix::unistd::pipe().unwrap().0))
            .collect();
        flusher.new_segment(dir.path(), pipes, 0);
        let (b, rx) = batch(10);
        flusher.submit(b);
        let refused = rx.blocking_recv().unwrap().unwrap_err();
        assert!(refused.contains("cannot sync"), "{refused}");
        assert!(flusher.drain().is_err());
        assert!(flusher.failed().is_some());
        // Until the writer starts again from the durable end, nothing is accepted.
        let (b, rx) = batch(20);
        flusher.submit(b);
        assert!(rx.blocking_recv().unwrap().is_err());
        assert_eq!(seen.failed.load(Ordering::Relaxed), 2);
        assert!(seen.durable_ends.lock().unwrap().is_empty());
        // A new segment (cut back and reopened) is synced again.
        let path = dir.path().join("segment");
        std::fs::write(&path, b"").unwrap();
        flusher.new_segment(
            &path,
            vec![File::open(&path).unwrap(), File::open(&path).unwrap()],
            0,
        );
        let (b, rx) = batch(5);
        flusher.submit(b);
        assert_eq!(rx.blocking_recv().unwrap(), Ok(()));
        assert_eq!(*seen.durable_ends.lock().unwrap(), vec![5]);
        flusher.stop();
    }
}
