//! The trail: requests queue their records, and commits on hkmsd's runtime number and
//! chain them, append them with checkpoints to the active segment file and wait until they
//! are durable before the requests waiting for them are answered.
//!
//! **Group commit.** A request hands its record to the trail's queue and waits. A record
//! that finds no commit scheduled schedules one, a task on hkmsd's runtime. That task first
//! yields, so that the requests already able to run add their records to its group; it
//! then numbers, chains and writes every job queued with one write, waits until the write
//! is durable, and answers them. Records that arrive meanwhile wait for the next commit,
//! scheduled as soon as this one ends: a write takes the time that fills the next group.
//!
//! **Direct appends** ([`super::direct`]). Where the file system takes them (and unless
//! `[audit] direct_appends = false`), a group is written with `O_DIRECT | O_DSYNC`: the
//! write returns once it is on stable storage, with no page cache between and no
//! `fdatasync` after. Elsewhere (tmpfs) the group is written through the page cache and
//! `fdatasync`ed. `hkms audit status` names the way in use. In `cargo bench --bench audit`
//! (concurrency 16, both ways in one run) a group's write took 167 to 195 us directly and
//! 222 to 248 us with `fdatasync`; through the gateway, direct appends served 7.2k and 7.9k
//! Encrypts per second at 153 to 167 us of server CPU each, `fdatasync` 6.1k and 6.3k at
//! 188 to 196 us.
//!
//! Either way the write runs on the runtime worker that commits. A thread of its own for
//! the write or the sync, and direct writes through Linux's native AIO, were measured and
//! are not used: hkmsd's runtime is small (one worker on two CPUs), and each wake-up across
//! threads costs more there than the overlap gives (through the gateway, a writer thread
//! cost 190 to 200 us of server CPU per request, `fdatasync` on a blocking thread 166 to
//! 178 us, on the worker 130 to 150 us; AIO completions, finished by kernel workers that
//! compete with the gateway for the CPUs, served 5.0k to 7.6k Encrypts per second against
//! 7.0k to 7.9k with `fdatasync` on the worker). Measured again once requests cost less
//! (gateway Encrypt at concurrency 16, four rounds each in alternating order): a writer
//! thread woken per group served 8.1k to 9.0k Encrypts per second at 149 to 157 us of
//! server CPU each, the commit on the worker 10.8k to 11.5k at 111 to 120 us. The price: a disk that stalls stalls the
//! worker, and hkmsd (its readiness included) stops answering until the write returns;
//! past `WatchdogSec` (30 s) systemd, whose keep-alives come from the same runtime,
//! restarts it.
//!
//! **Failure.** A failed write (or sync) fails every request of its group (they are refused
//! with `AuditUnavailable`), marks the trail unwritable, and drops the file: the next
//! attempt cuts the segment back to its last durable byte and reopens it. While
//! unwritable a commit is retried every second even without traffic; the first write that
//! succeeds is a record of hkmsd's own saying what failed and how many requests were
//! refused. A commit that panics closes the queue: what is queued and every later record
//! is refused, and the trail reports itself unwritable.
//!
//! **Segments** (`audit-<first seq, 20 digits>.log`, mode 0600, in a 0700 directory) are
//! closed past `segment_max_bytes` or `segment_max_age_secs`; closed segments past the
//! retention settings are deleted, oldest first, and the deletion is itself recorded.
//!
//! **Recovery** ([`super::segments::recover`]): at start, bytes after the last newline of
//! the newest segment (a line cut by a crash, never acknowledged) are removed, and the chain
//! continues from the last record on disk.

mod state;
mod writer;

use super::config::AuditConfig;
use super::record::{Checkpoint, Record};
use super::segments::{self, Head, Recovered};
use crate::metrics::histogram::HistogramSnapshot;
use state::{Ack, Job, Shared};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};
use writer::Writer;

pub use state::Durable;

/// What the trail reports to `hkms status`, metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailStatus {
    pub enabled: bool,
    /// Whether the last write (or retry) reached the disk.
    pub writable: bool,
    /// Why it is not writable.
    pub error: Option<String>,
    /// Records submitted and not yet durable.
    pub backlog: u64,
    /// The last durable record (0: none).
    pub last_seq: u64,
    /// When the last checkpoint was signed (RFC 3339).
    pub last_checkpoint: Option<String>,
    pub segments: u64,
    pub bytes: u64,
    pub dir: PathBuf,
    /// How records are made durable: `direct` or `fdatasync` (see [`super::direct`]).
    pub appends: &'static str,
}

/// How the trail's writes take their time, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailTimings {
    /// From a record's submission until it was durable (or refused), as its request waited.
    pub waited: HistogramSnapshot,
    /// One group's write and sync (its count is the number of syncs attempted).
    pub synced: HistogramSnapshot,
}

/// Jobs waiting for a commit.
#[derive(Debug, Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A commit is scheduled or running; it takes these jobs or schedules the next one.
    committing: bool,
    /// A retry of an unwritable trail is scheduled.
    retrying: bool,
    /// A commit panicked: jobs are refused.
    closed: bool,
}

/// The queue and the writer that commits it.
#[derive(Debug)]
struct Committer {
    queue: Mutex<Queue>,
    writer: Mutex<Writer>,
    shared: Arc<Shared>,
}

/// Most jobs written by one write.
const MAX_GROUP: usize = 4096;
/// How often an unwritable trail is tried again without traffic.
const RETRY: Duration = Duration::from_secs(1);

impl Committer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().expect("audit queue lock")
    }

    /// Schedules a commit unless one is scheduled already (or the queue is closed).
    fn schedule(self: &Arc<Self>, q: &mut Queue) {
        if !q.closed && !std::mem::replace(&mut q.committing, true) {
            tokio::spawn(self.clone().commit());
        }
    }

    /// Writes, syncs and answers what is queued, as one group (none: a retry), then
    /// schedules what follows: the next group, or a retry of an unwritable trail.
    async fn commit(self: Arc<Self>) {
        // Requests that are ready to run add their records to this group first.
        tokio::task::yield_now().await;
        let group: Vec<Job> = {
            let mut q = self.lock();
            let n = q.jobs.len().min(MAX_GROUP);
            q.jobs.drain(..n).collect()
        };
        let broken = {
            let _closing = Closing(&self.queue, &self.shared);
            let mut writer = self.writer.lock().expect("audit writer lock");
            writer.write_group(group);
            writer.broken()
        };
        let mut q = self.lock();
        q.committing = false;
        if !q.jobs.is_empty() {
            self.schedule(&mut q);
        } else if broken && !std::mem::replace(&mut q.retrying, true) {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                let mut q = me.lock();
                q.retrying = false;
                me.schedule(&mut q);
            });
        }
    }
}

/// The audit trail of one hkmsd.
#[derive(Debug)]
pub struct Trail {
    enabled: bool,
    checkpoint_interval: Duration,
    committer: Option<Arc<Committer>>,
    shared: Arc<Shared>,
}

impl Trail {
    /// A trail that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Trail {
        Trail {
            enabled: false,
            checkpoint_interval: Duration::from_secs(60),
            committer: None,
            shared: Arc::new(Shared::new(PathBuf::new(), Head::genesis())),
        }
    }

    /// Opens the trail in `config.dir` (recovering a torn tail) and sets up its writer.
    /// Returns the trail and what recovery found, for hkmsd's start record.
    pub fn open(config: &AuditConfig, dir: &Path) -> Result<(Trail, Option<String>), String> {
        if !config.enabled {
            return Ok((Trail::disabled(), None));
        }
        let Recovered {
            head,
            active,
            note,
            segments,
            bytes,
        } = segments::recover(dir)?;
        let shared = Arc::new(Shared::new(dir.to_owned(), head));
        shared.segments.store(segments, Ordering::Relaxed);
        shared.bytes.store(bytes, Ordering::Relaxed);
        *shared.durable.lock().expect("trail lock") = Durable {
            segment: active.path.clone(),
            len: active.len,
        };
        let writer = Writer::new(config.clone(), shared.clone(), active);
        let committer = Arc::new(Committer {
            queue: Mutex::new(Queue::default()),
            writer: Mutex::new(writer),
            shared: shared.clone(),
        });
        Ok((
            Trail {
                enabled: true,
                checkpoint_interval: Duration::from_secs(config.checkpoint_interval_secs.max(1)),
                committer: Some(committer),
                shared,
            },
            note,
        ))
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How often a checkpoint is signed while records arrive.
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// Appends a record; resolves once it is durable. Its `seq`, `prev` and `hash` are set
    /// by the writer. A disabled trail accepts everything at once.
    pub async fn append(&self, record: Record) -> Result<(), String> {
        self.submit(|ack| Job::Record(Box::new(record), ack)).await
    }

    /// Appends a signed checkpoint; resolves once it is durable.
    pub async fn append_checkpoint(&self, c: Checkpoint) -> Result<(), String> {
        let time = c.time.clone();
        self.submit(|ack| Job::Checkpoint(c, ack)).await?;
        *self.shared.last_checkpoint.lock().expect("trail lock") = Some(time);
        Ok(())
    }

    async fn submit(&self, job: impl FnOnce(Ack) -> Job) -> Result<(), String> {
        let Some(committer) = &self.committer else {
            return Ok(());
        };
        let (ack, done) = oneshot::channel();
        {
            let mut q = committer.lock();
            if q.closed {
                return Err(WRITER_STOPPED.into());
            }
            q.jobs.push(job(Ack::new(ack, self.shared.clone())));
            committer.schedule(&mut q);
        }
        let submitted = Instant::now();
        let written = done.await.unwrap_or_else(|_| Err(WRITER_STOPPED.into()));
        self.shared.waited.observe(submitted.elapsed());
        written
    }

    /// The last durable record.
    pub fn head(&self) -> Head {
        self.shared.head.lock().expect("trail lock").clone()
    }

    /// Where durable data ends (readers never read past it).
    pub fn durable(&self) -> Durable {
        self.shared.durable.lock().expect("trail lock").clone()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.shared.dir
    }

    /// Durable lines as they are written.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.shared.lines.subscribe()
    }

    /// How long records waited to be durable, and how long syncs took.
    pub fn timings(&self) -> TrailTimings {
        TrailTimings {
            waited: self.shared.waited.snapshot(),
            synced: self.shared.synced.snapshot(),
        }
    }

    pub fn status(&self) -> TrailStatus {
        let s = &self.shared;
        TrailStatus {
            enabled: self.enabled,
            writable: !self.enabled || s.writable.load(Ordering::Relaxed),
            error: s.error.lock().expect("trail lock").clone(),
            backlog: s.backlog.load(Ordering::Relaxed),
            last_seq: s.head.lock().expect("trail lock").seq,
            last_checkpoint: s.last_checkpoint.lock().expect("trail lock").clone(),
            segments: s.segments.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            dir: s.dir.clone(),
            appends: if s.direct.load(Ordering::Relaxed) {
                "direct"
            } else {
                "fdatasync"
            },
        }
    }
}

const WRITER_STOPPED: &str = "the audit writer has stopped";

/// Closes the queue if a commit panics: the jobs still queued are refused (their requests
/// fail closed) and so is every later one, and the trail reports itself unwritable. The
/// jobs of the panicking group are dropped with it, which refuses them too.
struct Closing<'a>(&'a Mutex<Queue>, &'a Shared);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        let refused = q.jobs.len() as u64;
        // Dropping the jobs refuses their requests and takes them off the backlog.
        q.jobs.clear();
        drop(q);
        self.1.refuse(WRITER_STOPPED, refused);
    }
}

#[cfg(test)]
#[path = "trail_tests.rs"]
mod tests;
