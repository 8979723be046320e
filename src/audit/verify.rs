//! Offline verification of an export file (`hkms audit verify`): nothing but the file and,
//! optionally, a trusted public key.
//!
//! The file is read in order and the first problem found is reported with its line number
//! (1-based), the sequence number concerned when it is known, a stable [`ProblemKind`] and
//! a message. What is checked:
//!
//! - line 1 is a header of format [`EXPORT_FORMAT`] version [`FORMAT_VERSION`];
//! - every record's hash matches its bytes, records are numbered consecutively and each
//!   names the hash of the one before it (a changed byte, a removed, swapped or inserted
//!   record breaks this);
//! - every checkpoint is validly signed and the head it fixes is the hash of the record it
//!   covers (a chain rewritten with every hash recomputed fails here);
//! - the file ends with a validly signed seal that names the first record's `prev`, the last
//!   record's hash and the number of records (a cut tail, a removed first or last record, or
//!   records added after the export fail here).
//!
//! **Which keys are trusted.** With a trusted public key (`--public-key`), every signature
//! must verify with it and the header's keys are ignored. Without one, signatures are
//! checked with the public keys in the file's own header: this catches every change made by
//! someone who cannot sign with the instance's audit key, except one. Whoever rewrites the
//! file, signs every checkpoint and the seal again with a key of their own and puts its
//! public key in the header produces a file that verifies without a trusted key. Only a
//! trusted key (kept from an export made directly from hkmsd, or obtained out of band)
//! catches that.
//!
//! Checkpoint lines are not counted by the seal: a file from which checkpoints were removed
//! still verifies (the seal vouches for every record it names), and the report says which
//! records come after the last checkpoint.

use super::record::{
    checkpoint_message, parse_line, seal_message, Header, Line, LineError, Record, Seal,
    EXPORT_FORMAT, FORMAT_VERSION, GENESIS,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Public};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What kind of problem a file has. The names (as displayed) are stable: scripts may match
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A line that is not one of the audit format, or not where it may be.
    Malformed,
    /// A record whose hash does not match its bytes.
    AlteredRecord,
    /// A record missing: a gap in the numbering, or a record that does not follow the one
    /// before it.
    MissingRecord,
    /// Records (or a checkpoint) out of their order.
    OutOfOrder,
    /// A record that is not part of the chain: a second record with the same number, or a
    /// forged one.
    InsertedRecord,
    /// A checkpoint whose signed head is not the hash of the record it covers.
    CheckpointMismatch,
    /// A signature that does not verify.
    BadSignature,
    /// A signature by a key other than the trusted one, or by a key the header lacks.
    UntrustedKey,
    /// The end of the file is missing: no seal, a cut last line, records missing before the
    /// seal.
    TruncatedTail,
    /// The seal disagrees with the records (bounds, first `prev`, head, count).
    SealMismatch,
    /// The first line is not a usable header.
    BadHeader,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The first problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// 1-based line number.
    pub line: usize,
    /// The sequence number of the record concerned, when known.
    pub seq: Option<u64>,
    /// What was found, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {}", self.kind, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (record {seq})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

/// What a file that verifies holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub instance_id: String,
    pub exported_at: String,
    /// The bounds the export was asked for (empty: open).
    pub since: String,
    pub until: String,
    pub records: u64,
    pub checkpoints: u64,
    /// Sequence numbers of the first and last records (0 and 0: none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Earliest and latest record times (empty: no records).
    pub first_time: String,
    pub last_time: String,
    /// The last checkpoint's record and time (0 and empty: none). Records after it are
    /// vouched for by the seal alone, signed when the export was made.
    pub last_checkpoint_seq: u64,
    pub last_checkpoint_time: String,
    /// The key versions whose signatures were checked (checkpoints and seal).
    pub key_version_ids: BTreeSet<String>,
    /// When the seal was signed.
    pub sealed_at: String,
    /// Whether signatures were checked with a trusted key rather than the header's keys.
    pub trusted_key: bool,
}

/// Reads a PEM public key (`BEGIN PUBLIC KEY`) and checks it is an EC P-256 key.
pub fn load_public_key(pem: &[u8]) -> Result<PKey<Public>, String> {
    let key = PKey::public_key_from_pem(pem).map_err(|_| "not a PEM public key".to_owned())?;
    let p256 = key.id() == Id::EC
        && key
            .ec_key()
            .ok()
            .and_then(|ec| ec.group().curve_name())
            .is_some_and(|n| n == Nid::X9_62_PRIME256V1);
    if !p256 {
        return Err("not an EC P-256 public key".into());
    }
    Ok(key)
}

/// Verifies an export file's bytes. With `trusted`, every signature must verify with that
/// key; otherwise with the header's key of the version each signature names.
pub fn verify_export(bytes: &[u8], trusted: Option<&PKeyRef<Public>>) -> Result<Report, Problem> {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let ends_with_newline = bytes.last() == Some(&b'\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut v = Verifier {
        index: record_index(&lines),
        lines,
        ends_with_newline,
        trusted,
        keys: BTreeMap::new(),
        first_prev: String::new(),
        hashes: Vec::new(),
        record_lines: Vec::new(),
        expected_first: None,
        report: Report {
            trusted_key: trusted.is_some(),
            ..Report::default()
        },
    };
    v.run()?;
    Ok(v.report)
}

const RECORD_PREFIX: &[u8] = b"{\"type\":\"record\"";

/// `(seq, line)` of every line that looks like a record (sorted), to tell a swap from a
/// removal and a duplicate from a swap. Found without parsing: records begin with
/// `{"type":"record","seq":N,`.
fn record_index(lines: &[&[u8]]) -> Vec<(u64, usize)> {
    let mut index: Vec<(u64, usize)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.strip_prefix(b"{\"type\":\"record\",\"seq\":")?;
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
            Some((seq, i + 1))
        })
        .collect();
    index.sort_unstable();
    index
}

struct Verifier<'a> {
    lines: Vec<&'a [u8]>,
    ends_with_newline: bool,
    index: Vec<(u64, usize)>,
    trusted: Option<&'a PKeyRef<Public>>,
    /// The header's public keys, by key version id.
    keys: BTreeMap<String, PKey<Public>>,
    first_prev: String,
    /// Hash and line of each record read, from `report.first_seq` on.
    hashes: Vec<String>,
    record_lines: Vec<usize>,
    /// The first record's number, from a seal whose signature verifies.
    expected_first: Option<u64>,
    report: Report,
}

fn problem(kind: ProblemKind, line: usize, seq: Option<u64>, message: String) -> Problem {
    Problem {
        kind,
        line,
        seq,
        message,
    }
}

impl Verifier<'_> {
    fn run(&mut self) -> Result<(), Problem> {
        let header = self.header()?;
        self.report.instance_id = header.instance_id.clone();
        self.report.exported_at = header.exported_at.clone();
        self.report.since = header.since.clone();
        self.report.until = header.until.clone();
        self.expected_first = self.seal_hint();
        let last = self.lines.len();
        for n in 2..=last {
            let raw = self.lines[n - 1];
            let parsed = std::str::from_utf8(raw)
                .map_err(|_| LineError::Malformed("not UTF-8".into()))
                .and_then(parse_line);
            if n == last && !self.ends_with_newline && parsed.is_err() {
                return Err(problem(
                    ProblemKind::TruncatedTail,
                    n,
                    None,
                    "the last line is cut short (the file does not end with a complete line)"
                        .into(),
                ));
            }
            match parsed {
                Ok(Line::Record(r)) => self.record(n, r)?,
                Ok(Line::Checkpoint(c)) => self.checkpoint(n, c)?,
                Ok(Line::Seal(s)) if n == last => return self.seal(n, &header, s),
                Ok(Line::Seal(_)) => {
                    return Err(problem(
                        ProblemKind::Malformed,
                        n,
                        None,
                        format!("a seal in the middle of the file ({} lines follow it); the seal must be the last line", last - n),
                    ))
                }
                Ok(Line::Header(_)) => {
                    return Err(problem(
                        ProblemKind::BadHeader,
                        n,
                        None,
                        "a second header: only line 1 may be a header (files joined together?)"
                            .into(),
                    ))
                }
                Err(e) => return Err(self.unreadable(n, raw, e)),
            }
        }
        Err(problem(
            ProblemKind::TruncatedTail,
            last,
            None,
            format!("the file ends at line {last} without a seal: its tail was cut"),
        ))
    }

    fn header(&mut self) -> Result<Header, Problem> {
        let bad = |m: String| problem(ProblemKind::BadHeader, 1, None, m);
        let first = self.lines.first().copied().unwrap_or_default();
        if first.is_empty() {
            return Err(bad("the file does not begin with a header line".into()));
        }
        let header = match std::str::from_utf8(first).map(parse_line) {
            Ok(Ok(Line::Header(h))) => h,
            Ok(Ok(_)) => return Err(bad("the first line is not a header".into())),
            _ => return Err(bad("the first line is not a readable header".into())),
        };
        if header.format != EXPORT_FORMAT || header.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format {:?} version {}, this hkms reads {EXPORT_FORMAT:?} version {FORMAT_VERSION}",
                header.format, header.version
            )));
        }
        for (id, pem) in &header.public_keys {
            match load_public_key(pem.as_bytes()) {
                Ok(k) => {
                    self.keys.insert(id.clone(), k);
                }
                // With a trusted key the header's keys are not used.
                Err(_) if self.trusted.is_some() => {}
                Err(e) => return Err(bad(format!("public key {id:?}: {e}"))),
            }
        }
        Ok(header)
    }

    /// The first record's number, if the last line is a seal whose signature verifies.
    fn seal_hint(&self) -> Option<u64> {
        if !self.ends_with_newline || self.lines.len() < 2 {
            return None;
        }
        // Not for files joined together: their problem is where they join.
        let inner = &self.lines[1..self.lines.len() - 1];
        if inner
            .iter()
            .any(|l| l.starts_with(b"{\"type\":\"seal\"") || l.starts_with(b"{\"type\":\"header\""))
        {
            return None;
        }
        let last = std::str::from_utf8(self.lines.last()?).ok()?;
        let Ok(Line::Seal(s)) = parse_line(last) else {
            return None;
        };
        let message = seal_message(&s);
        self.signature(0, None, "seal", &s.key_version_id, &message, &s.signature)
            .ok()
            .filter(|_| s.records > 0)
            .map(|_| s.first_seq)
    }

    /// The problem of a line `parse_line` refused.
    fn unreadable(&self, n: usize, raw: &[u8], e: LineError) -> Problem {
        let seq = serde_json::from_slice::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        match e {
            LineError::HashMismatch | LineError::NoHash => problem(
                ProblemKind::AlteredRecord,
                n,
                seq,
                "the record's hash does not match its content: the line was changed".into(),
            ),
            LineError::Malformed(_) if raw.starts_with(RECORD_PREFIX) => problem(
                ProblemKind::AlteredRecord,
                n,
                seq,
                "the record is no longer valid JSON: the line was changed".into(),
            ),
            LineError::Malformed(why) if raw.is_empty() => problem(
                ProblemKind::Malformed,
                n,
                None,
                format!("an empty line ({why})"),
            ),
            LineError::Malformed(why) => problem(
                ProblemKind::Malformed,
                n,
                seq,
                format!("not a line of the audit format: {why}"),
            ),
        }
    }

    /// Lines, other than `n`, where a record numbered `seq` appears.
    fn lines_of(&self, seq: u64, n: usize) -> impl Iterator<Item = usize> + '_ {
        let start = self.index.partition_point(|&(s, _)| s < seq);
        self.index[start..]
            .iter()
            .take_while(move |&&(s, _)| s == seq)
            .map(|&(_, l)| l)
            .filter(move |&l| l != n)
    }

    fn next_seq(&self) -> u64 {
        self.report.first_seq + self.hashes.len() as u64
    }

    fn record(&mut self, n: usize, r: Record) -> Result<(), Problem> {
        let s = r.seq;
        let err = |kind, seq, m: String| Err(problem(kind, n, Some(seq), m));
        if s == 0 {
            return err(
                ProblemKind::Malformed,
                s,
                "records are numbered from 1".into(),
            );
        }
        if self.hashes.is_empty() {
            if let Some(e) = self.expected_first.filter(|&e| e != s) {
                return if s < e {
                    err(ProblemKind::InsertedRecord, s, format!("the seal says the export begins with record {e}, but line {n} holds record {s}"))
                } else if let Some(m) = self.lines_of(e, n).next() {
                    err(ProblemKind::OutOfOrder, s, format!("the export begins with record {e} (per its seal), which is at line {m}, after record {s}: records were reordered"))
                } else {
                    err(ProblemKind::MissingRecord, e, format!("the export begins with record {e} (per its seal), but line {n} holds record {s}: records {e} to {} were removed", s - 1))
                };
            }
            if s == 1 && r.prev != GENESIS {
                return err(
                    ProblemKind::InsertedRecord,
                    s,
                    "record 1 does not begin the chain (its prev is not the genesis value)".into(),
                );
            }
            self.report.first_seq = s;
            self.first_prev = r.prev.clone();
        } else {
            let expected = self.next_seq();
            let last_line = *self.record_lines.last().expect("a record was read");
            if s == expected && Some(&r.prev) != self.hashes.last() {
                return match self.lines_of(s, n).next() {
                    Some(m) => err(ProblemKind::InsertedRecord, s, format!("this record {s} does not follow record {} (line {last_line}) and line {m} holds another record {s}: it was inserted", s - 1)),
                    None => err(ProblemKind::MissingRecord, s, format!("record {s} does not follow record {} at line {last_line} (its prev is not that record's hash): a record was removed or replaced", s - 1)),
                };
            }
            if s > expected {
                return if let Some(m) = self.lines_of(s, n).next() {
                    err(ProblemKind::InsertedRecord, s, format!("record {s} appears here and again at line {m}, where record {expected} was expected"))
                } else if let Some(m) = self.lines_of(expected, n).find(|&m| m > n) {
                    err(ProblemKind::OutOfOrder, s, format!("record {s} comes before record {expected} (line {m}): records were reordered"))
                } else {
                    let gap = if s - expected == 1 {
                        format!("record {expected} was")
                    } else {
                        format!("records {expected} to {} were", s - 1)
                    };
                    err(
                        ProblemKind::MissingRecord,
                        expected,
                        format!(
                            "record {s} follows record {} (line {last_line}): {gap} removed",
                            expected - 1
                        ),
                    )
                };
            }
            if s < self.report.first_seq {
                return err(
                    ProblemKind::OutOfOrder,
                    s,
                    format!(
                        "record {s} comes after record {} (line {}): records were reordered",
                        self.report.first_seq, self.record_lines[0]
                    ),
                );
            }
            if s < expected {
                let i = (s - self.report.first_seq) as usize;
                let (other, other_line) = (&self.hashes[i], self.record_lines[i]);
                if *other == r.hash {
                    return err(
                        ProblemKind::InsertedRecord,
                        s,
                        format!("record {s} appears twice (lines {other_line} and {n})"),
                    );
                }
                // Of two different records numbered s, the chain continues from the genuine
                // one: if it continues from this one, the earlier one was inserted.
                if self
                    .next_record_after(n)
                    .is_some_and(|next| next.prev == r.hash)
                {
                    return Err(problem(ProblemKind::InsertedRecord, other_line, Some(s), format!("this record {s} is not in the chain: the record {s} at line {n} is the one the records after it follow")));
                }
                return err(ProblemKind::InsertedRecord, s, format!("a second record {s} (the first is at line {other_line}): this one is not in the chain"));
            }
        }
        if self.report.first_time.is_empty() || r.time < self.report.first_time {
            self.report.first_time = r.time.clone();
        }
        if r.time > self.report.last_time {
            self.report.last_time = r.time.clone();
        }
        self.hashes.push(r.hash);
        self.record_lines.push(n);
        self.report.last_seq = s;
        self.report.records += 1;
        Ok(())
    }

    /// The first record after line `n` that reads.
    fn next_record_after(&self, n: usize) -> Option<Record> {
        self.lines[n..]
            .iter()
            .find_map(|l| match std::str::from_utf8(l).ok().map(parse_line) {
                Some(Ok(Line::Record(r))) => Some(r),
                _ => None,
            })
    }

    fn checkpoint(&mut self, n: usize, c: super::record::Checkpoint) -> Result<(), Problem> {
        let s = c.seq;
        let message = checkpoint_message(s, &c.head, &c.time);
        self.signature(
            n,
            Some(s),
            "checkpoint",
            &c.key_version_id,
            &message,
            &c.signature,
        )?;
        let err = |kind, m: String| Err(problem(kind, n, Some(s), m));
        if self.hashes.is_empty() || s > self.report.last_seq {
            return match self.lines_of(s, n).find(|&m| m > n) {
                Some(m) => err(ProblemKind::OutOfOrder, format!("the checkpoint of record {s} comes before that record (line {m}): lines were reordered")),
                None => err(ProblemKind::MissingRecord, format!("the checkpoint covers record {s}, which is not in the file before it: it was removed")),
            };
        }
        if s < self.report.first_seq {
            return err(ProblemKind::MissingRecord, format!("the checkpoint covers record {s}, before the file's first record ({}): records were removed", self.report.first_seq));
        }
        let i = (s - self.report.first_seq) as usize;
        if self.hashes[i] != c.head {
            return err(ProblemKind::CheckpointMismatch, format!("the checkpoint signed at {} fixes record {s}'s hash as {}, but record {s} (line {}) hashes to {}: the records up to it were rewritten", c.time, c.head, self.record_lines[i], self.hashes[i]));
        }
        self.report.checkpoints += 1;
        self.report.last_checkpoint_seq = self.report.last_checkpoint_seq.max(s);
        self.report.last_checkpoint_time = c.time;
        self.report.key_version_ids.insert(c.key_version_id);
        Ok(())
    }

    fn seal(&mut self, n: usize, header: &Header, s: Seal) -> Result<(), Problem> {
        let message = seal_message(&s);
        self.signature(n, None, "seal", &s.key_version_id, &message, &s.signature)?;
        let mismatch = |m: String| Err(problem(ProblemKind::SealMismatch, n, None, m));
        if s.since != header.since || s.until != header.until {
            return mismatch(format!(
                "the seal's bounds ({:?} to {:?}) are not the header's ({:?} to {:?})",
                s.since, s.until, header.since, header.until
            ));
        }
        let (first, last, count) = (
            self.report.first_seq,
            self.report.last_seq,
            self.report.records,
        );
        if count == 0 {
            if s.records > 0 || s.last_seq > 0 {
                return Err(problem(ProblemKind::TruncatedTail, n, Some(s.first_seq), format!("the seal names records {} to {} and the file holds none: they were removed", s.first_seq, s.last_seq)));
            }
            if s.first_seq != 0 || !s.first_prev.is_empty() || !s.head.is_empty() {
                return mismatch("the seal of an export without records must have zero bounds and an empty first_prev and head".into());
            }
        } else {
            if s.records == 0 {
                return mismatch(format!("the seal says the export holds no records, but the file holds {count}: records were added"));
            }
            if s.first_seq != first {
                return mismatch(format!("the seal says the export begins with record {}, but the file begins with record {first}", s.first_seq));
            }
            if s.last_seq > last {
                let kind = ProblemKind::TruncatedTail;
                return Err(problem(kind, n, Some(last + 1), format!("the seal says the export ends with record {}, but the file ends with record {last}: records {} to {} were removed", s.last_seq, last + 1, s.last_seq)));
            }
            if s.last_seq < last {
                return mismatch(format!("the seal says the export ends with record {}, but the file goes on to record {last}: records were added", s.last_seq));
            }
            if s.first_prev != self.first_prev {
                return mismatch(format!("the first record's prev is not the one the seal names ({}): the start of the file was replaced", s.first_prev));
            }
            let head = self.hashes.last().expect("records were read");
            if s.head != *head {
                return mismatch(format!("the last record hashes to {head}, the seal names {}: the records were rewritten", s.head));
            }
            if s.records != count {
                return mismatch(format!(
                    "the seal counts {} records, the file holds {count}",
                    s.records
                ));
            }
        }
        self.report.sealed_at = s.time;
        self.report.key_version_ids.insert(s.key_version_id);
        Ok(())
    }

    /// Checks the signature of a checkpoint or seal (`what`) at line `n`.
    fn signature(
        &self,
        n: usize,
        seq: Option<u64>,
        what: &str,
        key_id: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), Problem> {
        let fail = |kind, m: String| Err(problem(kind, n, seq, m));
        let Ok(sig) = B64.decode(signature) else {
            return fail(
                ProblemKind::BadSignature,
                format!("the {what}'s signature is not base64"),
            );
        };
        let header_key = self.keys.get(key_id);
        match self.trusted {
            Some(t) if verifies(t, message, &sig) => Ok(()),
            Some(_) if header_key.is_some_and(|k| verifies(k, message, &sig)) => fail(
                ProblemKind::UntrustedKey,
                format!("the {what} is signed by key version {key_id:?} from the header, which is not the trusted key"),
            ),
            Some(_) => fail(
                ProblemKind::BadSignature,
                format!("the {what}'s signature does not verify with the trusted key: the {what} was changed or signed by another key"),
            ),
            None => match header_key {
                None => fail(
                    ProblemKind::UntrustedKey,
                    format!("the {what} is signed by key version {key_id:?}, which is not among the header's public keys"),
                ),
                Some(k) if verifies(k, message, &sig) => Ok(()),
                Some(_) => fail(
                    ProblemKind::BadSignature,
                    format!("the {what}'s signature does not verify with key version {key_id:?}: the {what} was changed or signed by another key"),
                ),
            },
        }
    }
}

/// Whether `sig` (DER ECDSA with SHA-256) verifies over `message` with `key`.
fn verifies(key: &PKeyRef<Public>, message: &[u8], sig: &[u8]) -> bool {
    openssl::sign::Verifier::new(MessageDigest::sha256(), key)
        .and_then(|mut v| v.verify_oneshot(sig, message))
        .unwrap_or(false)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
