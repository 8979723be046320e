//! The trail's writer: numbers and chains the records of a group, writes them with the
//! group's checkpoints to the active segment, syncs them and answers the requests waiting
//! for them; rotates segments and applies retention. One commit at a time calls it (the
//! trail's committer holds it under a lock).

use super::state::{Ack, Durable, Job, Shared};
use crate::audit::config::AuditConfig;
use crate::audit::record::{checkpoint_line, Record};
use crate::audit::segments::{self, Head, SegmentFile};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
#[derive(Debug)]
pub(super) struct Writer {
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
    pub(super) fn new(config: AuditConfig, shared: Arc<Shared>, active: SegmentFile) -> Writer {
        let tip = shared.head.lock().expect("trail lock").clone();
        let mut writer = Writer {
            config,
            first_seq: tip.seq,
            tip,
            shared,
            file: None,
            broken: false,
            notes: Vec::new(),
        };
        writer.use_file(active);
        writer
    }

    /// Makes `file` the active segment, with direct appends if they are wanted and its
    /// file system takes them.
    fn use_file(&mut self, mut file: SegmentFile) {
        let direct = self.config.direct_appends
            && match file.go_direct() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        "audit appends to {} are buffered and synced: {e}",
                        file.path.display()
                    );
                    false
                }
            };
        self.shared.direct.store(direct, Ordering::Relaxed);
        self.file = Some(file);
    }

    /// A write or sync failed and none has succeeded since.
    pub(super) fn broken(&self) -> bool {
        self.broken
    }

    /// Writes and syncs a group (possibly empty: a retry) and answers it, or refuses it.
    pub(super) fn write_group(&mut self, group: Vec<Job>) {
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
                for ack in acks {
                    ack.send(Err(e.clone()));
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
        // The group's lines, built in one buffer.
        let mut text: Vec<u8> = Vec::with_capacity((own.len() + group.len()) * 512);
        let mut lines: Vec<Arc<str>> = Vec::new();
        let mut ended = |text: &mut Vec<u8>, start: usize| {
            if following {
                lines.push(String::from_utf8_lossy(&text[start..]).into());
            }
            text.push(b'\n');
        };
        for mut r in own {
            chain(&mut r, &mut head);
            let start = text.len();
            r.write_line(&mut text);
            ended(&mut text, start);
            head.hash = r.hash;
        }
        let mut acks = Vec::with_capacity(group.len());
        for job in group {
            let start = text.len();
            match job {
                Job::Record(mut r, ack) => {
                    chain(&mut r, &mut head);
                    r.write_line(&mut text);
                    head.hash = std::mem::take(&mut r.hash);
                    acks.push(ack);
                }
                Job::Checkpoint(c, ack) => {
                    text.extend_from_slice(checkpoint_line(&c).as_bytes());
                    acks.push(ack);
                }
            }
            ended(&mut text, start);
        }
        let file = self.file.as_mut().expect("opened above");
        let started = Instant::now();
        let written = file.write(&text).and_then(|()| file.sync());
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
        for ack in w.acks {
            ack.send(Ok(()));
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
        self.use_file(file);
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
        self.use_file(new);
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match segments::apply_retention(
            &self.shared.dir,
            &self.config,
            self.file.as_ref().map_or(0, |f| f.len),
        ) {
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
impl Drop for Writer {
    fn drop(&mut self) {
        let mean_us = |h: &crate::metrics::histogram::HistogramSnapshot| {
            (h.sum / h.count.max(1) as f64 * 1e6).round() as u64
        };
        let written = self.shared.synced.snapshot();
        tracing::info!(
            records = self.tip.seq - self.first_seq,
            syncs = written.count,
            write_mean_us = mean_us(&written),
            wait_mean_us = mean_us(&self.shared.waited.snapshot()),
            "audit trail closed"
        );
    }
}
