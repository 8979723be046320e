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
//! must verify with it; the header's keys then only tell a line signed by another key
//! (`UntrustedKey`) from a changed one (`BadSignature`). Without one, signatures are
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
    checkpoint_message, parse_line, seal_message, Checkpoint, Header, Line, LineError, Record,
    Seal, EXPORT_FORMAT, FORMAT_VERSION, GENESIS,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Public};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use ProblemKind::*;

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

/// A problem of `kind` at `line`.
fn at(kind: ProblemKind, line: usize, seq: Option<u64>, message: impl Into<String>) -> Problem {
    let message = message.into();
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
        let h = &header;
        self.report.instance_id = h.instance_id.clone();
        self.report.exported_at = h.exported_at.clone();
        (self.report.since, self.report.until) = (h.since.clone(), h.until.clone());
        self.expected_first = self.seal_hint();
        let last = self.lines.len();
        for n in 2..=last {
            let raw = self.lines[n - 1];
            let parsed = std::str::from_utf8(raw)
                .map_err(|_| LineError::Malformed("not UTF-8".into()))
                .and_then(parse_line);
            if n == last && !self.ends_with_newline && parsed.is_err() {
                let m = "the last line is cut short (the file does not end with a complete line)";
                return Err(at(TruncatedTail, n, None, m));
            }
            match parsed {
                Ok(Line::Record(r)) => self.record(n, r)?,
                Ok(Line::Checkpoint(c)) => self.checkpoint(n, c)?,
                Ok(Line::Seal(s)) if n == last => return self.seal(n, &header, s),
                Ok(Line::Seal(_)) => {
                    let m = format!("a seal with {} lines after it: the seal must be the last line (files joined together?)", last - n);
                    return Err(at(Malformed, n, None, m));
                }
                Ok(Line::Header(_)) => {
                    let m = "a second header: only line 1 may be a header (files joined together?)";
                    return Err(at(BadHeader, n, None, m));
                }
                Err(e) => return Err(unreadable(n, raw, e)),
            }
        }
        let m = format!("the file ends at line {last} without a seal: its tail was cut");
        Err(at(TruncatedTail, last, None, m))
    }

    fn header(&mut self) -> Result<Header, Problem> {
        let bad = |m: String| at(BadHeader, 1, None, m);
        let first = std::str::from_utf8(self.lines.first().copied().unwrap_or_default());
        let header = match first.map(parse_line) {
            Ok(Ok(Line::Header(h))) => h,
            Ok(Ok(_)) => return Err(bad("the first line is not a header".into())),
            _ => return Err(bad("the file does not begin with a readable header".into())),
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

    /// The first record's number, if the last line is a seal whose signature verifies (and
    /// the file is not several joined together: their problem is where they join).
    fn seal_hint(&self) -> Option<u64> {
        let (last, inner) = self.lines.split_last()?;
        let joined = |l: &&[u8]| {
            l.starts_with(b"{\"type\":\"seal\"") || l.starts_with(b"{\"type\":\"header\"")
        };
        if !self.ends_with_newline || inner.is_empty() || inner[1..].iter().any(joined) {
            return None;
        }
        let Ok(Line::Seal(s)) = parse_line(std::str::from_utf8(last).ok()?) else {
            return None;
        };
        let message = seal_message(&s);
        let signed = self.signature(0, None, "seal", &s.key_version_id, &message, &s.signature);
        (signed.is_ok() && s.records > 0).then_some(s.first_seq)
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

    fn record(&mut self, n: usize, r: Record) -> Result<(), Problem> {
        let s = r.seq;
        let err = |kind, seq, m: String| Err(at(kind, n, Some(seq), m));
        if s == 0 {
            return err(Malformed, s, "records are numbered from 1".into());
        }
        let (first, expected) = (self.report.first_seq, self.report.last_seq + 1);
        if self.hashes.is_empty() {
            if let Some(e) = self.expected_first.filter(|&e| e != s) {
                let per_seal = format!("the export begins with record {e} (per its seal)");
                return if s < e {
                    err(
                        InsertedRecord,
                        s,
                        format!("{per_seal}, but line {n} holds record {s}"),
                    )
                } else if let Some(m) = self.lines_of(e, n).next() {
                    err(OutOfOrder, s, format!("{per_seal}, which is at line {m}, after record {s}: records were reordered"))
                } else {
                    err(MissingRecord, e, format!("{per_seal}, but line {n} holds record {s}: records {e} to {} were removed", s - 1))
                };
            }
            if s == 1 && r.prev != GENESIS {
                let m = "record 1 does not begin the chain (its prev is not the genesis value)";
                return err(InsertedRecord, s, m.into());
            }
            self.report.first_seq = s;
            self.first_prev = r.prev.clone();
        } else {
            let last_line = self.record_lines[self.record_lines.len() - 1];
            if s == expected && Some(&r.prev) != self.hashes.last() {
                return match self.lines_of(s, n).next() {
                    Some(m) => err(InsertedRecord, s, format!("this record {s} does not follow record {} (line {last_line}) and line {m} holds another record {s}: it was inserted", s - 1)),
                    None => err(MissingRecord, s, format!("record {s} does not follow record {} at line {last_line} (its prev is not that record's hash): a record was removed or replaced", s - 1)),
                };
            }
            if s > expected {
                return if let Some(m) = self.lines_of(s, n).next() {
                    err(InsertedRecord, s, format!("record {s} appears here and again at line {m}, where record {expected} was expected"))
                } else if let Some(m) = self.lines_of(expected, n).find(|&m| m > n) {
                    err(OutOfOrder, s, format!("record {s} comes before record {expected} (line {m}): records were reordered"))
                } else {
                    let gap = match s - expected {
                        1 => format!("record {expected} was"),
                        _ => format!("records {expected} to {} were", s - 1),
                    };
                    err(
                        MissingRecord,
                        expected,
                        format!(
                            "record {s} follows record {} (line {last_line}): {gap} removed",
                            expected - 1
                        ),
                    )
                };
            }
            if s < first {
                let m = format!(
                    "record {s} comes after record {first} (line {}): records were reordered",
                    self.record_lines[0]
                );
                return err(OutOfOrder, s, m);
            }
            if s < expected {
                let i = (s - first) as usize;
                let (other, other_line) = (&self.hashes[i], self.record_lines[i]);
                if *other == r.hash {
                    return err(
                        InsertedRecord,
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
                    let m = format!("this record {s} is not in the chain: the record {s} at line {n} is the one the records after it follow");
                    return Err(at(InsertedRecord, other_line, Some(s), m));
                }
                return err(InsertedRecord, s, format!("a second record {s} (the first is at line {other_line}): this one is not in the chain"));
            }
        }
        let report = &mut self.report;
        if report.first_time.is_empty() || r.time < report.first_time {
            report.first_time = r.time.clone();
        }
        if r.time > report.last_time {
            report.last_time = r.time.clone();
        }
        (report.last_seq, report.records) = (s, report.records + 1);
        self.hashes.push(r.hash);
        self.record_lines.push(n);
        Ok(())
    }

    /// The first record after line `n` that reads.
    fn next_record_after(&self, n: usize) -> Option<Record> {
        self.lines[n..]
            .iter()
            .find_map(|l| match std::str::from_utf8(l).map(parse_line) {
                Ok(Ok(Line::Record(r))) => Some(r),
                _ => None,
            })
    }

    fn checkpoint(&mut self, n: usize, c: Checkpoint) -> Result<(), Problem> {
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
        let err = |kind, m: String| Err(at(kind, n, Some(s), m));
        let first = self.report.first_seq;
        if self.hashes.is_empty() || s > self.report.last_seq {
            return match self.lines_of(s, n).find(|&m| m > n) {
                Some(m) => err(OutOfOrder, format!("the checkpoint of record {s} comes before that record (line {m}): lines were reordered")),
                None => err(MissingRecord, format!("the checkpoint covers record {s}, which is not in the file before it: it was removed")),
            };
        }
        if s < first {
            return err(MissingRecord, format!("the checkpoint covers record {s}, before the file's first record ({first}): records were removed"));
        }
        let i = (s - first) as usize;
        if self.hashes[i] != c.head {
            return err(CheckpointMismatch, format!("the checkpoint signed at {} fixes record {s}'s hash as {}, but record {s} (line {}) hashes to {}: the records up to it were rewritten", c.time, c.head, self.record_lines[i], self.hashes[i]));
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
        let mismatch = |m: String| Err(at(SealMismatch, n, None, m));
        if s.since != header.since || s.until != header.until {
            return mismatch(format!(
                "the seal's bounds ({:?} to {:?}) are not the header's ({:?} to {:?})",
                s.since, s.until, header.since, header.until
            ));
        }
        let r = &self.report;
        let (first, last, count) = (r.first_seq, r.last_seq, r.records);
        if count == 0 {
            if s.records > 0 || s.last_seq > 0 {
                let m = format!(
                    "the seal names records {} to {} and the file holds none: they were removed",
                    s.first_seq, s.last_seq
                );
                return Err(at(TruncatedTail, n, Some(s.first_seq), m));
            }
            if s.first_seq != 0 || !s.first_prev.is_empty() || !s.head.is_empty() {
                return mismatch("the seal of an export without records must have zero bounds and an empty first_prev and head".into());
            }
        } else {
            let head = &self.hashes[self.hashes.len() - 1];
            if s.records == 0 {
                return mismatch(format!("the seal says the export holds no records, but the file holds {count}: records were added"));
            } else if s.first_seq != first {
                return mismatch(format!("the seal says the export begins with record {}, but the file begins with record {first}", s.first_seq));
            } else if s.last_seq > last {
                let m = format!("the seal says the export ends with record {}, but the file ends with record {last}: records {} to {} were removed", s.last_seq, last + 1, s.last_seq);
                return Err(at(TruncatedTail, n, Some(last + 1), m));
            } else if s.last_seq < last {
                return mismatch(format!("the seal says the export ends with record {}, but the file goes on to record {last}: records were added", s.last_seq));
            } else if s.first_prev != self.first_prev {
                return mismatch(format!("the first record's prev is not the one the seal names ({}): the start of the file was replaced", s.first_prev));
            } else if s.head != *head {
                return mismatch(format!("the last record hashes to {head}, the seal names {}: the records were rewritten", s.head));
            } else if s.records != count {
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
        let fail = |kind, m: String| Err(at(kind, n, seq, m));
        let Ok(sig) = B64.decode(signature) else {
            return fail(
                BadSignature,
                format!("the {what}'s signature is not base64"),
            );
        };
        let changed = format!("the {what} was changed or signed by another key");
        let header_key = self.keys.get(key_id);
        match (self.trusted, header_key) {
            (Some(t), _) if verifies(t, message, &sig) => Ok(()),
            (Some(_), Some(k)) if verifies(k, message, &sig) => fail(UntrustedKey, format!("the {what} is signed by key version {key_id:?} from the header, which is not the trusted key")),
            (Some(_), _) => fail(BadSignature, format!("the {what}'s signature does not verify with the trusted key: {changed}")),
            (None, None) => fail(UntrustedKey, format!("the {what} is signed by key version {key_id:?}, which is not among the header's public keys")),
            (None, Some(k)) if verifies(k, message, &sig) => Ok(()),
            (None, Some(_)) => fail(BadSignature, format!("the {what}'s signature does not verify with key version {key_id:?}: {changed}")),
        }
    }
}

/// The problem of a line `parse_line` refused.
fn unreadable(n: usize, raw: &[u8], e: LineError) -> Problem {
    let seq = serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v["seq"].as_u64());
    match e {
        LineError::HashMismatch | LineError::NoHash => at(
            AlteredRecord,
            n,
            seq,
            "the record's hash does not match its content: the line was changed",
        ),
        LineError::Malformed(_) if raw.starts_with(b"{\"type\":\"record\"") => at(
            AlteredRecord,
            n,
            seq,
            "the record is no longer valid JSON: the line was changed",
        ),
        LineError::Malformed(_) if raw.is_empty() => at(Malformed, n, None, "an empty line"),
        LineError::Malformed(why) => at(
            Malformed,
            n,
            seq,
            format!("not a line of the audit format: {why}"),
        ),
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
