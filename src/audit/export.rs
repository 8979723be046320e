//! Export files and the live tail, from the trail's segments.
//!
//! An export holds a header, then the trail's lines from the first record at or after
//! `since` up to the last record before the first one after `until` (a contiguous run of
//! records, so the chain can be checked from end to end), with the checkpoints that cover
//! records of that run, then a seal signed now ([`super::record`] has the format). Only
//! durable lines are read.

use super::record::{
    header_line, parse_line, seal_line, seal_message, Header, Line, Seal, EXPORT_FORMAT,
    FORMAT_VERSION,
};
use super::segments;
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Lines sent per message.
const BATCH: usize = 512;

/// A batch of lines, or the error that ended the stream.
pub type Batch = Result<Vec<String>, KmsError>;

/// A bound given as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`); empty: open.
fn bound(name: &str, value: &str) -> Result<Option<i64>, KmsError> {
    if value.is_empty() {
        return Ok(None);
    }
    crate::clock::rfc3339_to_unix(value)
        .map(Some)
        .map_err(|e| KmsError::invalid(format!("--{name}: {e}")))
}

/// Unix seconds of a record's time (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
fn record_secs(time: &str) -> Option<i64> {
    let whole = format!("{}Z", time.get(..19)?);
    crate::clock::rfc3339_to_unix(&whole).ok()
}

/// Starts an export; its lines arrive on the returned channel.
pub fn export(
    app: Arc<Appliance>,
    since: String,
    until: String,
) -> Result<mpsc::Receiver<Batch>, KmsError> {
    if !app.audit.enabled() {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            "the audit trail is turned off ([audit] enabled = false)",
        ));
    }
    let (since_t, until_t) = (bound("since", &since)?, bound("until", &until)?);
    app.instance()?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = run(&app, since, until, since_t, until_t, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(rx)
}

async fn run(
    app: &Arc<Appliance>,
    since: String,
    until: String,
    since_t: Option<i64>,
    until_t: Option<i64>,
    tx: &mpsc::Sender<Batch>,
) -> Result<(), KmsError> {
    let header = Header {
        format: EXPORT_FORMAT.into(),
        version: FORMAT_VERSION,
        instance_id: app.instance()?.instance_id,
        exported_at: super::record::now_micros(),
        since: since.clone(),
        until: until.clone(),
        public_keys: super::checkpoint::public_keys(app).await?,
    };
    send(tx, vec![header_line(&header)]).await?;
    let durable = app.audit.durable();
    let dir = app.audit.dir().to_owned();
    let lines_tx = tx.clone();
    let mut seal = tokio::task::spawn_blocking(move || {
        let mut scan = Scan::default();
        segments::for_each_line(&dir, &durable.segment, durable.len, |line| {
            scan.line(line, since_t, until_t, &lines_tx)
        })
        .map_err(|e| KmsError::new(ErrorCode::Internal, e))?;
        scan.flush(&lines_tx)?;
        Ok::<Seal, KmsError>(scan.seal)
    })
    .await
    .map_err(|e| KmsError::new(ErrorCode::Internal, e.to_string()))??;
    seal.since = since;
    seal.until = until;
    seal.time = super::record::now_micros();
    let (key_version_id, signature) = super::checkpoint::sign(app, &seal_message(&seal)).await?;
    seal.key_version_id = key_version_id;
    seal.signature = signature;
    send(tx, vec![seal_line(&seal)]).await
}

async fn send(tx: &mpsc::Sender<Batch>, lines: Vec<String>) -> Result<(), KmsError> {
    tx.send(Ok(lines))
        .await
        .map_err(|_| KmsError::new(ErrorCode::Internal, "the export's reader went away"))
}

/// The export's progress through the segments.
#[derive(Default)]
struct Scan {
    seal: Seal,
    started: bool,
    done: bool,
    pending: Vec<String>,
    failed: Option<KmsError>,
}

impl Scan {
    /// Takes one line of the trail; false to stop reading.
    fn line(
        &mut self,
        line: &str,
        since: Option<i64>,
        until: Option<i64>,
        tx: &mpsc::Sender<Batch>,
    ) -> bool {
        match parse_line(line) {
            Ok(Line::Record(r)) => {
                let secs = record_secs(&r.time);
                if !self.started {
                    if since.is_some_and(|s| secs.is_none_or(|t| t < s)) {
                        return true;
                    }
                    self.started = true;
                    self.seal.first_seq = r.seq;
                    self.seal.first_prev = r.prev.clone();
                }
                if until.is_some_and(|u| secs.is_none_or(|t| t > u)) {
                    self.done = true;
                    return false;
                }
                self.seal.last_seq = r.seq;
                self.seal.head = r.hash;
                self.seal.records += 1;
            }
            Ok(Line::Checkpoint(c)) => {
                if !self.started || c.seq < self.seal.first_seq || c.seq > self.seal.last_seq {
                    return true;
                }
            }
            // A line the trail should not hold: exported as it is, for verify to report.
            Ok(_) | Err(_) => {
                if !self.started {
                    return true;
                }
            }
        }
        self.pending.push(line.to_owned());
        if self.pending.len() >= BATCH {
            if let Err(e) = self.flush(tx) {
                self.failed = Some(e);
                return false;
            }
        }
        true
    }

    fn flush(&mut self, tx: &mpsc::Sender<Batch>) -> Result<(), KmsError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        tx.blocking_send(Ok(std::mem::take(&mut self.pending)))
            .map_err(|_| KmsError::new(ErrorCode::Internal, "the export's reader went away"))
    }
}

/// The live trail: the last `last` records (with the checkpoints among them), then every
/// line once it is durable, until hkmsd stops or the reader falls too far behind.
pub fn tail(app: Arc<Appliance>, last: u32) -> Result<mpsc::Receiver<Batch>, KmsError> {
    if !app.audit.enabled() {
        return Err(KmsError::new(
            ErrorCode::InvalidState,
            "the audit trail is turned off ([audit] enabled = false)",
        ));
    }
    let mut live = app.audit.subscribe();
    let durable = app.audit.durable();
    let dir = app.audit.dir().to_owned();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let recent = tokio::task::spawn_blocking(move || {
            segments::last_lines(&dir, &durable.segment, durable.len, last as usize)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let recent = match recent {
            Ok(r) => r,
            Err(e) => return drop(tx.send(Err(KmsError::new(ErrorCode::Internal, e))).await),
        };
        // Lines durable before the recent ones were read are sent once.
        let sent_up_to = recent
            .iter()
            .rev()
            .find_map(|l| match parse_line(l) {
                Ok(Line::Record(r)) => Some(r.seq),
                _ => None,
            })
            .unwrap_or(0);
        if !recent.is_empty() && tx.send(Ok(recent)).await.is_err() {
            return;
        }
        let stopping = app.stopping();
        tokio::pin!(stopping);
        loop {
            let line = tokio::select! {
                line = live.recv() => line,
                _ = &mut stopping => return,
            };
            let batch = match line {
                Ok(line) => {
                    let seq = match parse_line(&line) {
                        Ok(Line::Record(r)) => Some(r.seq),
                        _ => None,
                    };
                    if seq.is_some_and(|s| s <= sent_up_to) {
                        continue;
                    }
                    Ok(vec![line.to_string()])
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Err(KmsError::new(
                    ErrorCode::Conflict,
                    format!("the tail fell {n} lines behind the trail; run it again"),
                )),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let end = batch.is_err();
            if tx.send(batch).await.is_err() || end {
                return;
            }
        }
    });
    Ok(rx)
}
