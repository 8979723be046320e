//! The trail's writer: one thread that numbers and chains records, appends them with
//! checkpoints to the active segment file and makes them durable (`fdatasync`) before the
//! requests waiting for them are answered.
//!
//! **Group commit.** A request hands its record to the writer's queue and waits; the writer
//! is woken only when it sleeps. It takes every job waiting, writes them with one `write`
//! and one sync, answers them, and goes back for what arrived meanwhile. A sync costs tens
//! of microseconds of CPU, shared by its group: under load (the last group held several
//! jobs) syncs start at most every `SYNC_SPACING` (500 us), so that each serves more
//! records; a lone request is synced at once.
//!
//! **Failure.** A failed write or sync fails every request of its group (they are refused
//! with `AuditUnavailable`), marks the trail unwritable, and drops the file: the next
//! attempt cuts the segment back to its last durable byte and reopens it. While
//! unwritable the writer retries every second even without traffic; the first write that
//! succeeds is a record of hkmsd's own saying what failed and how many requests were
//! refused.
//!
//! **Segments** (`audit-<first seq, 20 digits>.log`, mode 0600, in a 0700 directory) are
//! closed past `segment_max_bytes` or `segment_max_age_secs`; closed segments past the
//! retention settings are deleted, oldest first, and the deletion is itself recorded.
//!
//! **Recovery** ([`super::segments::recover`]): at start, bytes after the last newline of
//! the newest segment (a line cut by a crash, never acknowledged) are removed, and the chain
//! continues from the last record on disk.

use super::config::AuditConfig;
use super::record::{checkpoint_line, Checkpoint, Record};
use super::segments::{self, Head, Recovered, SegmentFile};
use crate::metrics::histogram::{AtomicHistogram, HistogramSnapshot};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot};

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
}

/// Where the durable part of the trail ends, for readers (export, tail).
#[derive(Debug, Clone)]
pub struct Durable {
    pub segment: PathBuf,
    pub len: u64,
}

/// State shared by the writer thread and everyone asking about the trail.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    backlog: AtomicU64,
    writable: AtomicBool,
    error: Mutex<Option<String>>,
    head: Mutex<Head>,
    durable: Mutex<Durable>,
    last_checkpoint: Mutex<Option<String>>,
    segments: AtomicU64,
    bytes: AtomicU64,
    /// Requests refused since the trail became unwritable.
    refused: AtomicU64,
    /// Durable lines, for `hkms audit tail`.
    lines: broadcast::Sender<Arc<str>>,
    /// How long requests waited for their records to be durable.
    waited: AtomicHistogram,
    /// How long each group's write and sync took (failed attempts included).
    synced: AtomicHistogram,
}

/// How the trail's writes take their time, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailTimings {
    /// From a record's submission until it was durable (or refused), as its request waited.
    pub waited: HistogramSnapshot,
    /// One group's write and sync (its count is the number of syncs attempted).
    pub synced: HistogramSnapshot,
}

/// Tells a waiting request whether its line is durable.
type Ack = oneshot::Sender<Result<(), String>>;

enum Job {
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

/// Jobs waiting for the writer.
#[derive(Debug, Default)]
struct Queue {
    jobs: Vec<Job>,
    /// The writer waits for jobs (the next job wakes it).
    sleeping: bool,
    /// The trail is dropped: the writer ends once the queue is empty.
    stop: bool,
    /// The writer has ended (or failed): jobs are refused.
    closed: bool,
}

#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<Queue>,
    arrived: Condvar,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().expect("audit queue lock")
    }
}

/// The audit trail of one hkmsd.
#[derive(Debug)]
pub struct Trail {
    enabled: bool,
    checkpoint_interval: Duration,
    inbox: Option<Arc<Inbox>>,
    shared: Arc<Shared>,
}

impl Trail {
    /// A trail that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Trail {
        Trail {
            enabled: false,
            checkpoint_interval: Duration::from_secs(60),
            inbox: None,
            shared: Arc::new(Shared::new(PathBuf::new(), Head::genesis())),
        }
    }

    /// Opens the trail in `config.dir` (recovering a torn tail) and starts its writer.
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
        let inbox = Arc::new(Inbox::default());
        let tip = shared.head.lock().expect("trail lock").clone();
        let writer = Writer {
            config: config.clone(),
            first_seq: tip.seq,
            tip,
            shared: shared.clone(),
            file: Some(active),
            broken: false,
            notes: Vec::new(),
        };
        let (queue, on_exit) = (inbox.clone(), shared.clone());
        std::thread::Builder::new()
            .name("hkms-audit".into())
            .spawn(move || {
                let _closing = Closing(&queue, &on_exit);
                writer.run(&queue)
            })
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok((
            Trail {
                enabled: true,
                checkpoint_interval: Duration::from_secs(config.checkpoint_interval_secs.max(1)),
                inbox: Some(inbox),
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
        let Some(inbox) = &self.inbox else {
            return Ok(());
        };
        let (ack, done) = oneshot::channel();
        let wake = {
            let mut q = inbox.lock();
            if q.closed {
                return Err(WRITER_STOPPED.into());
            }
            // Counted under the queue's lock: the writer cannot take the job before.
            self.shared.backlog.fetch_add(1, Ordering::Relaxed);
            q.jobs.push(job(ack));
            std::mem::take(&mut q.sleeping)
        };
        if wake {
            inbox.arrived.notify_one();
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
        }
    }
}

impl Drop for Trail {
    /// The writer finishes what is queued, then ends.
    fn drop(&mut self) {
        if let Some(inbox) = &self.inbox {
            inbox.lock().stop = true;
            inbox.arrived.notify_one();
        }
    }
}

impl Shared {
    fn new(dir: PathBuf, head: Head) -> Shared {
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
            refused: AtomicU64::new(0),
            lines: broadcast::channel(4096).0,
            waited: AtomicHistogram::default(),
            synced: AtomicHistogram::default(),
        }
    }

    /// Marks the trail unwritable because of `error`, `records` requests refused.
    fn refuse(&self, error: &str, records: u64) {
        if self.writable.swap(false, Ordering::Relaxed) {
            tracing::error!(
                "the audit trail cannot be written ({error}); requests are refused until it can"
            );
        }
        *self.error.lock().expect("trail lock") = Some(error.to_owned());
        self.refused.fetch_add(records, Ordering::Relaxed);
    }
}

const WRITER_STOPPED: &str = "the audit writer has stopped";

/// Closes the queue when the writer thread ends, however it ends (a panic included): the
/// jobs still queued are refused (their requests fail closed) and so is every later one,
/// and the trail reports itself unwritable.
struct Closing<'a>(&'a Inbox, &'a Shared);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        let refused = q.jobs.len() as u64;
        q.jobs.clear();
        drop(q);
        self.1.backlog.fetch_sub(refused, Ordering::Relaxed);
        if !std::thread::panicking() {
            return;
        }
        self.1.refuse(WRITER_STOPPED, refused);
    }
}

/// Most jobs written by one write.
const MAX_GROUP: usize = 4096;
/// Under load, the least time from the start of one sync to the next. A sync costs tens
/// of microseconds of CPU (on a virtual machine, more: each is a device flush), so
/// spacing them lets each serve several records; at low concurrency (one job per group)
/// a sync starts as soon as a job arrives.
const SYNC_SPACING: Duration = Duration::from_micros(500);
/// How often an unwritable trail is tried again without traffic.
const RETRY: Duration = Duration::from_secs(1);

/// What a group that is written and synced tells the readers.
struct Written {
    head: Head,
    bytes: u64,
    lines: Vec<Arc<str>>,
    acks: Vec<Ack>,
    /// Refused requests counted by the group's `TrailRecovered` record, if it has one.
    recovered: Option<u64>,
}

/// Numbers, chains, writes and syncs the jobs it receives.
struct Writer {
    config: AuditConfig,
    shared: Arc<Shared>,
    /// The active segment; `None` after a failure, until it is reopened.
    file: Option<SegmentFile>,
    /// The chain's last durable record.
    tip: Head,
    /// The chain's last record when the trail was opened.
    first_seq: u64,
    /// A write or sync failed and no write has succeeded since: the next write records
    /// the outage.
    broken: bool,
    /// hkmsd's own events to record with the next group (retention, recovery).
    notes: Vec<(String, String)>,
}

impl Writer {
    fn run(mut self, inbox: &Inbox) {
        let mut started = Instant::now();
        let mut last = 0;
        loop {
            let (group, stop) = {
                let mut q = inbox.lock();
                if q.jobs.is_empty() && !q.stop {
                    // Wakes every second without traffic, to retry an unwritable trail.
                    q.sleeping = true;
                    q = inbox
                        .arrived
                        .wait_timeout(q, RETRY)
                        .expect("audit queue lock")
                        .0;
                    q.sleeping = false;
                }
                // Under load (the last group held several jobs), a sync starts at most
                // every SYNC_SPACING: each serves more records, for less CPU per record.
                if last > 1 {
                    let due = started + SYNC_SPACING;
                    while let Some(left) = due.checked_duration_since(Instant::now()) {
                        if q.stop {
                            break;
                        }
                        q = inbox
                            .arrived
                            .wait_timeout(q, left)
                            .expect("audit queue lock")
                            .0;
                    }
                }
                let n = q.jobs.len().min(MAX_GROUP);
                let group: Vec<Job> = q.jobs.drain(..n).collect();
                (group, q.stop && q.jobs.is_empty())
            };
            started = Instant::now();
            last = group.len();
            self.write_group(group);
            if stop {
                break;
            }
        }
        tracing::info!(
            records = self.tip.seq - self.first_seq,
            syncs = self.shared.synced.snapshot().count,
            "audit trail closed"
        );
    }

    /// Writes and syncs a group (possibly empty: a retry) and answers it, or refuses it.
    fn write_group(&mut self, group: Vec<Job>) {
        if group.is_empty() && !self.broken {
            return;
        }
        let records = group
            .iter()
            .filter(|j| matches!(j, Job::Record(..)))
            .count() as u64;
        match self.try_write(group) {
            Ok(written) => self.publish(written),
            Err((e, acks)) => {
                self.broken = true;
                self.file = None;
                self.shared.refuse(&e, records);
                self.shared
                    .backlog
                    .fetch_sub(acks.len() as u64, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
        }
    }

    fn try_write(&mut self, group: Vec<Job>) -> Result<Written, (String, Vec<Ack>)> {
        let acks_of = |group: Vec<Job>| -> Vec<Ack> {
            group
                .into_iter()
                .map(|j| match j {
                    Job::Record(_, ack) | Job::Checkpoint(_, ack) => ack,
                })
                .collect()
        };
        if let Err(e) = self.ensure_open().and_then(|()| self.rotate_if_due()) {
            return Err((e, acks_of(group)));
        }
        let mut own: Vec<Record> = self
            .notes
            .iter()
            .map(|(operation, detail)| Record::own(operation, Some(detail.clone()), "OK"))
            .collect();
        let recovered = self
            .broken
            .then(|| self.shared.refused.load(Ordering::Relaxed));
        if let Some(refused) = recovered {
            let error = self
                .shared
                .error
                .lock()
                .expect("trail lock")
                .clone()
                .unwrap_or_default();
            own.push(Record::own(
                "TrailRecovered",
                Some(format!(
                    "the trail is writable again after: {error}; {refused} requests were refused meanwhile"
                )),
                "OK",
            ));
        }
        // Lines are kept for readers following the trail only while there are some.
        let following = self.shared.lines.receiver_count() > 0;
        let mut head = self.tip.clone();
        let mut text = String::with_capacity(group.len() * 512);
        let mut lines: Vec<Arc<str>> = Vec::new();
        let mut push = |line: String, text: &mut String| {
            text.push_str(&line);
            text.push('\n');
            if following {
                lines.push(Arc::from(line));
            }
        };
        for mut r in own {
            chain(&mut r, &mut head);
            push(r.to_line(), &mut text);
            head.hash = r.hash;
        }
        let mut acks = Vec::with_capacity(group.len());
        for job in group {
            match job {
                Job::Record(mut r, ack) => {
                    chain(&mut r, &mut head);
                    push(r.to_line(), &mut text);
                    head.hash = std::mem::take(&mut r.hash);
                    acks.push(ack);
                }
                Job::Checkpoint(c, ack) => {
                    push(checkpoint_line(&c), &mut text);
                    acks.push(ack);
                }
            }
        }
        let file = self.file.as_mut().expect("opened above");
        let started = Instant::now();
        let written = file.write(text.as_bytes()).and_then(|()| file.sync());
        self.shared.synced.observe(started.elapsed());
        if let Err(e) = written {
            return Err((e, acks));
        }
        self.notes.clear();
        self.broken = false;
        self.tip = head.clone();
        Ok(Written {
            head,
            bytes: text.len() as u64,
            lines,
            acks,
            recovered,
        })
    }

    /// Tells readers and waiting requests that a group is durable.
    fn publish(&self, w: Written) {
        let s = &self.shared;
        if let Some(refused) = w.recovered {
            tracing::info!("the audit trail is writable again");
            s.refused.fetch_sub(refused, Ordering::Relaxed);
            *s.error.lock().expect("trail lock") = None;
            s.writable.store(true, Ordering::Relaxed);
        }
        s.bytes.fetch_add(w.bytes, Ordering::Relaxed);
        if let Some(file) = &self.file {
            *s.durable.lock().expect("trail lock") = Durable {
                segment: file.path.clone(),
                len: file.len,
            };
        }
        *s.head.lock().expect("trail lock") = w.head;
        for line in w.lines {
            let _ = s.lines.send(line);
        }
        s.backlog.fetch_sub(w.acks.len() as u64, Ordering::Relaxed);
        for ack in w.acks {
            let _ = ack.send(Ok(()));
        }
    }

    /// Reopens the active segment after a failure, cut back to its last durable byte.
    fn ensure_open(&mut self) -> Result<(), String> {
        if self.file.is_some() {
            return Ok(());
        }
        let durable = self.shared.durable.lock().expect("trail lock").clone();
        let file = SegmentFile::reopen(&durable.segment, durable.len)?;
        self.tip = self.shared.head.lock().expect("trail lock").clone();
        self.file = Some(file);
        Ok(())
    }

    /// Begins a new segment when the active one is too large or too old, then applies
    /// retention to the closed ones. Everything written to the old one is durable already.
    fn rotate_if_due(&mut self) -> Result<(), String> {
        let file = self.file.as_ref().expect("opened");
        let too_big = file.len >= self.config.segment_max_bytes;
        let too_old = SystemTime::now()
            .duration_since(file.created)
            .is_ok_and(|age| age.as_secs() >= self.config.segment_max_age_secs);
        if file.len == 0 || !(too_big || too_old) {
            return Ok(());
        }
        let next_seq = self.tip.seq + 1;
        if let Some(old) = self.file.take() {
            old.close()?;
        }
        let new = SegmentFile::create(&self.shared.dir, next_seq)?;
        *self.shared.durable.lock().expect("trail lock") = Durable {
            segment: new.path.clone(),
            len: 0,
        };
        self.file = Some(new);
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match segments::apply_retention(&self.shared.dir, &self.config) {
            Ok(deleted) if !deleted.is_empty() => {
                let bytes: u64 = deleted.iter().map(|(_, b)| b).sum();
                self.shared.bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.shared
                    .segments
                    .fetch_sub(deleted.len() as u64, Ordering::Relaxed);
                let names: Vec<&str> = deleted.iter().map(|(n, _)| n.as_str()).collect();
                tracing::info!(segments = ?names, "audit segments past retention deleted");
                self.notes.push((
                    "Retention".into(),
                    format!("deleted past retention: {}", names.join(", ")),
                ));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("audit retention not applied: {e}"),
        }
        tracing::debug!(elapsed = ?started.elapsed(), "audit segment rotated");
        Ok(())
    }
}

/// Numbers a record after `head` and chains it to it.
fn chain(r: &mut Record, head: &mut Head) {
    head.seq += 1;
    r.seq = head.seq;
    r.prev = std::mem::take(&mut head.hash);
}

#[cfg(test)]
#[path = "trail_tests.rs"]
mod tests;
