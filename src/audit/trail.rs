//! The trail's writer: one thread that numbers and chains records, appends them with
//! checkpoints to the active segment file, and hands what it wrote to the flushers
//! ([`super::flush`]), which acknowledge it once it is durable (`fdatasync`).
//!
//! **Group commit.** Requests hand their record to the writer and wait; the writer takes
//! every record waiting (after 300 us more while requests arrive concurrently) and writes
//! them with one `write`. A sync covers every record
//! written before it started, and several syncs may run at once, so a record waits for one
//! sync that starts after it was written, shared with every record written meanwhile.
//!
//! **Failure.** A failed write or sync fails every request not yet durable (they are
//! refused with `AuditUnavailable`), marks the trail unwritable, and drops the file: the
//! next attempt cuts the segment back to its last durable byte and reopens it. While
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
use super::flush::{Ack, Batch, Flusher, Policy, Publish, Recovery};
use super::record::{checkpoint_line, Checkpoint, Record};
use super::segments::{self, Head, Recovered, SegmentFile};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
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
}

enum Job {
    Record(Box<Record>, Ack),
    Checkpoint(Checkpoint, Ack),
}

/// The audit trail of one hkmsd.
#[derive(Debug)]
pub struct Trail {
    enabled: bool,
    checkpoint_interval: Duration,
    tx: Option<Mutex<Sender<Job>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Record(r, _) => write!(f, "record {}", r.request_id),
            Job::Checkpoint(c, _) => write!(f, "checkpoint {}", c.seq),
        }
    }
}

impl Trail {
    /// A trail that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Trail {
        Trail {
            enabled: false,
            checkpoint_interval: Duration::from_secs(60),
            tx: None,
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
        let (tx, rx) = std::sync::mpsc::channel();
        let flusher = Flusher::start(FLUSHERS, POLICY, shared.clone())?;
        flusher.new_segment(&active.path, active.sync_files(FLUSHERS)?, active.len);
        let tip = shared.head.lock().expect("trail lock").clone();
        let writer = Writer {
            config: config.clone(),
            first_seq: tip.seq,
            tip,
            shared: shared.clone(),
            flusher,
            file: Some(active),
            broken: false,
            notes: Vec::new(),
            last_group: 0,
        };
        std::thread::Builder::new()
            .name("hkms-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok((
            Trail {
                enabled: true,
                checkpoint_interval: Duration::from_secs(config.checkpoint_interval_secs.max(1)),
                tx: Some(Mutex::new(tx)),
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
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let (ack, done) = oneshot::channel();
        self.shared.backlog.fetch_add(1, Ordering::Relaxed);
        let sent = tx.lock().expect("trail lock").send(job(ack));
        if sent.is_err() {
            self.shared.backlog.fetch_sub(1, Ordering::Relaxed);
            return Err("the audit writer has stopped".into());
        }
        done.await
            .unwrap_or_else(|_| Err("the audit writer has stopped".into()))
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
        }
    }
}

/// How long the writer waits for concurrent requests to join a write.
const GATHER: Duration = Duration::from_micros(300);
/// Most jobs written by one write.
const MAX_GROUP: usize = 4096;
/// Syncs that may run at once (see [`super::flush`]).
const FLUSHERS: usize = 2;
/// When a sync starts: at once if no request being served is about to add its record,
/// else after 500 us at most (64 waiting requests start it at once); while a sync runs,
/// another starts for 4 waiting requests or more.
const POLICY: Policy = Policy {
    overlap_min: 4,
    gather: Duration::from_micros(500),
    batch: 64,
};
/// How often an unwritable trail is tried again without traffic.
const RETRY: Duration = Duration::from_secs(1);

impl Publish for Shared {
    fn durable(&self, path: &Path, batches: &[Batch]) {
        let Some(last) = batches.last() else {
            return;
        };
        let mut bytes = 0;
        let mut acks = 0;
        for batch in batches {
            bytes += batch.lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
            acks += batch.acks.len() as u64;
            if let Some(Recovery { refused }) = batch.recovery {
                tracing::info!("the audit trail is writable again");
                self.refused.fetch_sub(refused, Ordering::Relaxed);
                *self.error.lock().expect("trail lock") = None;
                self.writable.store(true, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        *self.durable.lock().expect("trail lock") = Durable {
            segment: path.to_owned(),
            len: last.end,
        };
        *self.head.lock().expect("trail lock") = last.head.clone();
        for batch in batches {
            for line in &batch.lines {
                let _ = self.lines.send(line.clone());
            }
        }
        self.backlog.fetch_sub(acks, Ordering::Relaxed);
    }

    fn failed(&self, error: &str, batches: &[Batch]) {
        let records: u64 = batches.iter().map(|b| b.records).sum();
        let acks: u64 = batches.iter().map(|b| b.acks.len() as u64).sum();
        self.refuse(error, records);
        self.backlog.fetch_sub(acks, Ordering::Relaxed);
    }
}

impl Shared {
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

/// Numbers, chains and writes the jobs it receives; the [`Flusher`] makes them durable.
struct Writer {
    config: AuditConfig,
    shared: Arc<Shared>,
    flusher: Flusher,
    /// The active segment; `None` after a failure, until it is reopened.
    file: Option<SegmentFile>,
    /// The chain's last written record (durable or not yet).
    tip: Head,
    /// The chain's last record when the trail was opened.
    first_seq: u64,
    /// A write or sync failed and no write has succeeded since: the next write records
    /// the outage.
    broken: bool,
    /// hkmsd's own events to record with the next group (retention, recovery).
    notes: Vec<(String, String)>,
    /// How many jobs the last group held.
    last_group: usize,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        loop {
            // Wakes every second without traffic, to retry an unwritable trail.
            let first = match rx.recv_timeout(RETRY) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group: Vec<Job> = first.into_iter().collect();
            take_waiting(&rx, &mut group);
            // While requests arrive concurrently (the last group held more), sleeping a
            // little lets them join this write: fewer writes, and fewer wake-ups of this
            // thread, than one per record.
            if !group.is_empty() && group.len() < self.last_group {
                std::thread::sleep(GATHER);
                take_waiting(&rx, &mut group);
            }
            self.last_group = group.len();
            self.write_group(group);
        }
        self.flusher.stop();
        tracing::info!(
            records = self.tip.seq - self.first_seq,
            syncs = self.flusher.syncs(),
            "audit trail closed"
        );
    }

    /// Writes a group (possibly empty: a retry) and hands it to the flushers, or refuses it.
    fn write_group(&mut self, group: Vec<Job>) {
        if self.flusher.failed().is_some() {
            // The flushers refused what was pending; start again from the durable end.
            self.broken = true;
            self.file = None;
        }
        if group.is_empty() && !self.broken {
            return;
        }
        let records = group
            .iter()
            .filter(|j| matches!(j, Job::Record(..)))
            .count() as u64;
        if let Err((e, acks)) = self.try_write(group) {
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

    fn try_write(&mut self, group: Vec<Job>) -> Result<(), (String, Vec<Ack>)> {
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
        let recovery = self.broken.then(|| Recovery {
            refused: self.shared.refused.load(Ordering::Relaxed),
        });
        if let Some(Recovery { refused }) = recovery {
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
        let mut head = self.tip.clone();
        let mut text = String::with_capacity(group.len() * 512);
        let mut lines: Vec<Arc<str>> = Vec::with_capacity(group.len() + own.len());
        let mut push = |line: String, text: &mut String| {
            text.push_str(&line);
            text.push('\n');
            lines.push(Arc::from(line));
        };
        for mut r in own {
            chain(&mut r, &mut head);
            push(r.to_line(), &mut text);
            head.hash = r.hash;
        }
        let mut acks = Vec::with_capacity(group.len());
        let mut records = 0;
        for job in group {
            match job {
                Job::Record(mut r, ack) => {
                    chain(&mut r, &mut head);
                    push(r.to_line(), &mut text);
                    head.hash = std::mem::take(&mut r.hash);
                    records += 1;
                    acks.push(ack);
                }
                Job::Checkpoint(c, ack) => {
                    push(checkpoint_line(&c), &mut text);
                    acks.push(ack);
                }
            }
        }
        let file = self.file.as_mut().expect("opened above");
        if let Err(e) = file.write(text.as_bytes()) {
            return Err((e, acks));
        }
        self.notes.clear();
        self.broken = false;
        self.tip = head.clone();
        let batch = Batch {
            end: file.len,
            head,
            lines,
            acks,
            records,
            recovery,
        };
        self.flusher.submit(batch);
        Ok(())
    }

    /// Reopens the active segment after a failure, cut back to its last durable byte.
    fn ensure_open(&mut self) -> Result<(), String> {
        if self.file.is_some() {
            return Ok(());
        }
        // No sync of the old description may still run when the file is cut back.
        let _ = self.flusher.drain();
        let durable = self.shared.durable.lock().expect("trail lock").clone();
        let file = SegmentFile::reopen(&durable.segment, durable.len)?;
        let files = file.sync_files(self.flusher.threads())?;
        self.flusher.new_segment(&file.path, files, file.len);
        self.tip = self.shared.head.lock().expect("trail lock").clone();
        self.file = Some(file);
        Ok(())
    }

    /// Begins a new segment when the active one is too large or too old, then applies
    /// retention to the closed ones.
    fn rotate_if_due(&mut self) -> Result<(), String> {
        let file = self.file.as_ref().expect("opened");
        let too_big = file.len >= self.config.segment_max_bytes;
        let too_old = SystemTime::now()
            .duration_since(file.created)
            .is_ok_and(|age| age.as_secs() >= self.config.segment_max_age_secs);
        if file.len == 0 || !(too_big || too_old) {
            return Ok(());
        }
        // Everything of the old segment is durable before the next one begins.
        self.flusher.drain()?;
        let next_seq = self.tip.seq + 1;
        if let Some(old) = self.file.take() {
            old.close()?;
        }
        let new = SegmentFile::create(&self.shared.dir, next_seq)?;
        let files = new.sync_files(self.flusher.threads())?;
        self.flusher.new_segment(&new.path, files, 0);
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

/// Adds the jobs waiting in `rx` to `group`.
fn take_waiting(rx: &Receiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
}

/// Numbers a record after `head` and chains it to it.
fn chain(r: &mut Record, head: &mut Head) {
    head.seq += 1;
    r.seq = head.seq;
    r.prev = std::mem::take(&mut head.hash);
}
