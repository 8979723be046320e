//! The trail's lines, byte for byte: records and checkpoints (in the trail's segment files
//! and in export files), and the header and seal that open and close an export file.
//!
//! Every line is one JSON object with a `type` first:
//!
//! - `record`: one request (or one event of hkmsd's own, `front: "hkmsd"`). Records are
//!   numbered from 1 (`seq`) and chained: each names the hash of the record before it
//!   (`prev`; 64 zeros before the first) and ends with its own `hash`, the lowercase hex
//!   SHA-256 of the line's bytes up to that field with `}` appended: the line is
//!   `BODY` minus its closing brace, then `,"hash":"<64 hex>"}`. Any byte changed, a record
//!   removed, two records swapped or one inserted breaks `seq`, `prev` or `hash`.
//! - `checkpoint`: signed inside an HSM, it fixes the chain's head (`head`: the hash of
//!   record `seq`) at a time, so a rewritten chain (every hash recomputed) still fails at the
//!   next checkpoint. The signature (ECDSA P-256 with SHA-256, DER, base64) covers
//!   [`checkpoint_message`]. Checkpoints are not part of the chain.
//! - `header` (first line of an export): format name and version, the instance, the bounds,
//!   and the public keys (PEM, by key version id) that signed its checkpoints. A verifier
//!   that holds a trusted public key uses that instead.
//! - `seal` (last line of an export): signed when the export was made, it fixes the first
//!   record's `prev`, the last record's hash and the number of records, so a cut tail, a
//!   removed first record or an export spliced from two trails fails. Its signature covers
//!   [`seal_message`].
//!
//! Values a reader may need to match but must not read (an AAD, the name of a secret a
//! policy hid from the caller) are keyed hashes (`hmac-sha256:<hex>`, computed inside an
//! HSM; `hkms audit hash VALUE` gives the same for any value). Plaintexts, keys, passwords
//! and secret values never appear.

use crate::crypto::primitives::sha256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Name of the export file format (the header's `format`).
pub const EXPORT_FORMAT: &str = "hkms-audit-export";
/// Version of the line formats described above.
pub const FORMAT_VERSION: u32 = 1;
/// `prev` of the first record of a trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Prefix of every keyed hash in a record.
pub const KEYED_HASH_PREFIX: &str = "hmac-sha256:";

/// The `hash` field that ends a record line: `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// One line of a trail or an export file.
// Lines are read one at a time: the size of a record does not matter enough to box it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Header(Header),
    Record(Record),
    Checkpoint(Checkpoint),
    Seal(Seal),
}

/// One request, whatever the front and whatever the outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 UTC with microseconds, when the request arrived.
    pub time: String,
    pub request_id: String,
    /// `grpc`, `instance`, `tencent`, or `hkmsd` for hkmsd's own events.
    pub front: String,
    /// `operator`, `gateway`, `application`, `unauthenticated` or `hkmsd`.
    pub principal: String,
    /// The application's AAP and credential (ClientKey id or API key SecretId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// A local operator's (or gateway's) uid and gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The gateway that relayed the request (`uid=N` or `cert=<subject>@<address>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The client's address and the endpoint it came through, as the gateway saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The operation the request named (the API's action name, or the gRPC method).
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The keyed hash of a secret name, when the caller was refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    /// Other resources the request named (aliases, AAPs, policies...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The keyed hash of the request's AAD or encryption context, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_hash: Option<String>,
    /// `OK`, or the stable error code (or the API's error code) the caller got.
    pub result: String,
    /// From arrival until the answer was ready (the record's own write not included).
    pub latency_us: u64,
    /// What happened, for hkmsd's own records (start, recovery of a torn tail...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Hash of the previous record ([`GENESIS`] before the first).
    pub prev: String,
    /// Hash of this line (see the module documentation). Empty until [`Record::to_line`],
    /// and left out of the body the hash covers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// A chain head signed inside an HSM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub head: String,
    /// RFC 3339 UTC, when it was signed.
    pub time: String,
    /// The signing key version (an internal EC P-256 key of the instance).
    pub key_version_id: String,
    /// Base64 DER ECDSA signature over [`checkpoint_message`].
    pub signature: String,
}

/// First line of an export file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    pub instance_id: String,
    /// RFC 3339 UTC.
    pub exported_at: String,
    /// The requested bounds, as given (empty: open).
    pub since: String,
    pub until: String,
    /// Public keys (PEM) by key version id, for every signature in the file.
    pub public_keys: BTreeMap<String, String>,
}

/// Last line of an export file: what the export holds, signed when it was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// Sequence numbers of the first and last records exported (0 and 0: none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// `prev` of the first record exported (empty: none).
    pub first_prev: String,
    /// Hash of the last record exported (empty: none).
    pub head: String,
    /// How many records the export holds.
    pub records: u64,
    pub since: String,
    pub until: String,
    /// RFC 3339 UTC, when it was signed.
    pub time: String,
    pub key_version_id: String,
    /// Base64 DER ECDSA signature over [`seal_message`].
    pub signature: String,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not a JSON line of the audit format: {0}")]
    Malformed(String),
    #[error("a record line must end with its \"hash\" field")]
    NoHash,
    #[error("the record's hash does not match its content")]
    HashMismatch,
}

impl Record {
    /// A record of hkmsd's own (start, stop, recovery, retention).
    pub fn own(operation: &str, detail: Option<String>, result: &str) -> Record {
        Record {
            time: now_micros(),
            request_id: uuid::Uuid::new_v4().to_string(),
            front: "hkmsd".into(),
            principal: "hkmsd".into(),
            operation: operation.into(),
            result: result.into(),
            detail,
            ..Default::default()
        }
    }

    /// The record's line, with its hash computed (and set in `self.hash`).
    pub fn to_line(&mut self) -> String {
        let mut line = Vec::with_capacity(512);
        self.write_line(&mut line);
        String::from_utf8(line).expect("JSON is UTF-8")
    }

    /// Appends the record's line (without a newline) to `out`, with its hash computed (and
    /// set in `self.hash`): the trail's writer builds all the lines of a group in one buffer.
    pub fn write_line(&mut self, out: &mut Vec<u8>) {
        self.hash.clear();
        let start = out.len();
        serde_json::to_writer(&mut *out, &LineRef::Record(self))
            .expect("a record always serialises");
        let hash = hex::encode(sha256(&out[start..]));
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(b"\"}");
        self.hash = hash;
    }
}

/// [`Line`] by reference, for writing.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LineRef<'a> {
    Record(&'a Record),
    Checkpoint(&'a Checkpoint),
    Header(&'a Header),
    Seal(&'a Seal),
}

/// Now, as RFC 3339 UTC with microseconds, on hkmsd's clock ([`crate::clock`]).
pub fn now_micros() -> String {
    let (secs, micros) = crate::clock::now_unix_micros();
    let mut time = crate::clock::rfc3339(secs);
    time.pop(); // the `Z`, put back after the fraction
    let _ = write!(time, ".{micros:06}Z");
    time
}

/// The line of a checkpoint.
pub fn checkpoint_line(c: &Checkpoint) -> String {
    serde_json::to_string(&LineRef::Checkpoint(c)).expect("a checkpoint always serialises")
}

/// The line of an export header.
pub fn header_line(h: &Header) -> String {
    serde_json::to_string(&LineRef::Header(h)).expect("a header always serialises")
}

/// The line of an export seal.
pub fn seal_line(s: &Seal) -> String {
    serde_json::to_string(&LineRef::Seal(s)).expect("a seal always serialises")
}

/// Reads one line. A record's hash is checked against its bytes: a record returned here is
/// exactly what was written (its `hash` is the one on the line, now known to be right).
pub fn parse_line(line: &str) -> Result<Line, LineError> {
    let parsed: Line =
        serde_json::from_str(line).map_err(|e| LineError::Malformed(e.to_string()))?;
    if let Line::Record(r) = &parsed {
        let computed = record_hash_of_line(line)?;
        if computed != r.hash {
            return Err(LineError::HashMismatch);
        }
    }
    Ok(parsed)
}

/// The hash a record line should end with: SHA-256 of its bytes before `,"hash":"...`,
/// with the closing brace. The line must end with a well-formed `hash` field.
pub fn record_hash_of_line(line: &str) -> Result<String, LineError> {
    let bytes = line.as_bytes();
    if bytes.len() < HASH_SUFFIX_LEN + 2 {
        return Err(LineError::NoHash);
    }
    let split = bytes.len() - HASH_SUFFIX_LEN;
    // Bytes, not `str` slices: a tampered line may have a multi-byte character where the
    // hash field should be, and slicing a `str` there would panic.
    let suffix = &bytes[split..];
    let hex_part = &suffix[9..9 + 64];
    if !suffix.starts_with(b",\"hash\":\"")
        || !suffix.ends_with(b"\"}")
        || !hex_part
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(LineError::NoHash);
    }
    let mut body = Vec::with_capacity(split + 1);
    body.extend_from_slice(&bytes[..split]);
    body.push(b'}');
    Ok(hex::encode(sha256(&body)))
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: u64, head: &str, time: &str) -> Vec<u8> {
    format!("hkms-audit-checkpoint-v{FORMAT_VERSION}\n{seq}\n{head}\n{time}\n").into_bytes()
}

/// The bytes a seal's signature covers.
pub fn seal_message(s: &Seal) -> Vec<u8> {
    format!(
        "hkms-audit-seal-v{FORMAT_VERSION}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        s.first_seq, s.last_seq, s.first_prev, s.head, s.records, s.since, s.until, s.time
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_microseconds_and_the_seconds_read_around_it() {
        let before = crate::clock::now_unix();
        let now = now_micros();
        let after = crate::clock::now_unix();
        let (whole, fraction) = now.split_once('.').expect("a fraction");
        assert_eq!(fraction.len(), 7, "{now}");
        assert!(fraction.ends_with('Z') && fraction[..6].bytes().all(|b| b.is_ascii_digit()));
        let secs = crate::clock::rfc3339_to_unix(&format!("{whole}Z")).unwrap();
        assert!((before..=after).contains(&secs), "{now}");
    }

    #[test]
    fn a_line_written_into_a_buffer_is_the_line_alone() {
        let mut out = b"earlier line\n".to_vec();
        let mut r = sample(3, GENESIS);
        r.write_line(&mut out);
        let line = std::str::from_utf8(&out[13..]).unwrap();
        assert_eq!(line, sample(3, GENESIS).to_line());
        assert_eq!(record_hash_of_line(line).unwrap(), r.hash);
    }

    fn sample(seq: u64, prev: &str) -> Record {
        Record {
            seq,
            time: "2026-12-06T04:00:00.000001Z".into(),
            request_id: "r-1".into(),
            front: "instance".into(),
            principal: "application".into(),
            aap: Some("app".into()),
            credential: Some("KAAP.x".into()),
            operation: "Encrypt".into(),
            key_id: Some("key-1".into()),
            result: "OK".into(),
            latency_us: 42,
            prev: prev.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_record_line_reads_back_with_its_hash_checked() {
        let mut r = sample(1, GENESIS);
        let line = r.to_line();
        assert!(
            line.starts_with("{\"type\":\"record\",\"seq\":1,"),
            "{line}"
        );
        assert!(line.ends_with(&format!(",\"hash\":\"{}\"}}", r.hash)));
        assert_eq!(parse_line(&line), Ok(Line::Record(r.clone())));
        // The hash covers the body with the hash field cut out.
        let body = format!("{}}}", &line[..line.len() - HASH_SUFFIX_LEN]);
        assert_eq!(hex::encode(sha256(body.as_bytes())), r.hash);
    }

    #[test]
    fn every_changed_byte_of_a_record_is_caught() {
        let line = sample(7, GENESIS).to_line();
        for i in 0..line.len() {
            let mut bytes = line.clone().into_bytes();
            bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(
                parse_line(&changed).is_err(),
                "byte {i} changed and still accepted: {changed}"
            );
        }
    }

    #[test]
    fn a_multi_byte_character_where_the_hash_field_is_refused_without_a_panic() {
        let line = sample(1, GENESIS).to_line();
        let n = line.len();
        // "é" is two bytes: put where the comma before "hash" was, the start of the suffix
        // falls inside it; put where the closing quote was, the end of the hex digits does.
        for at in [n - HASH_SUFFIX_LEN, n - 2] {
            let changed = format!("{}é{}", &line[..at], &line[at + 1..]);
            assert_eq!(
                record_hash_of_line(&changed),
                Err(LineError::NoHash),
                "{at}"
            );
            assert!(parse_line(&changed).is_err());
        }
    }

    #[test]
    fn a_field_added_to_a_record_is_caught() {
        let line = sample(1, GENESIS).to_line();
        let added = line.replacen("{\"type\":\"record\",", "{\"type\":\"record\",\"x\":1,", 1);
        assert_eq!(parse_line(&added), Err(LineError::HashMismatch));
    }

    #[test]
    fn checkpoints_headers_and_seals_round_trip() {
        let c = Checkpoint {
            seq: 3,
            head: GENESIS.into(),
            time: "2026-12-06T04:00:00Z".into(),
            key_version_id: "v".into(),
            signature: "c2ln".into(),
        };
        assert_eq!(parse_line(&checkpoint_line(&c)), Ok(Line::Checkpoint(c)));
        let s = Seal {
            first_seq: 1,
            last_seq: 2,
            first_prev: GENESIS.into(),
            head: GENESIS.into(),
            records: 2,
            since: String::new(),
            until: String::new(),
            time: "t".into(),
            key_version_id: "v".into(),
            signature: "s".into(),
        };
        assert_eq!(parse_line(&seal_line(&s)), Ok(Line::Seal(s.clone())));
        assert!(seal_message(&s).starts_with(b"hkms-audit-seal-v1\n1\n2\n"));
    }
}
