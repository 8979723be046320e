//! Synthetic exports, made with the line formats of `record.rs` and a fresh EC P-256 key, and
//! every way of tampering with them.

use super::*;
use crate::audit::record::{
    checkpoint_line, header_line, seal_line, Checkpoint, Header, Line, Record, Seal, GENESIS,
};
use openssl::ec::{EcGroup, EcKey};
use openssl::pkey::Private;

/// An audit signing key.
struct Signer {
    id: String,
    key: PKey<Private>,
}

impl Signer {
    fn new(id: &str) -> Signer {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        Signer { id: id.into(), key }
    }

    fn pem(&self) -> String {
        String::from_utf8(self.key.public_key_to_pem().unwrap()).unwrap()
    }

    fn public(&self) -> PKey<Public> {
        PKey::public_key_from_pem(self.pem().as_bytes()).unwrap()
    }

    fn sign(&self, message: &[u8]) -> String {
        let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        B64.encode(s.sign_oneshot_to_vec(message).unwrap())
    }

    fn checkpoint(&self, seq: u64, head: &str) -> String {
        let time = format!("2026-12-06T04:{:02}:30Z", seq % 60);
        checkpoint_line(&Checkpoint {
            seq,
            head: head.into(),
            signature: self.sign(&checkpoint_message(seq, head, &time)),
            time,
            key_version_id: self.id.clone(),
        })
    }

    fn header(&self) -> String {
        header_line(&Header {
            format: EXPORT_FORMAT.into(),
            version: FORMAT_VERSION,
            instance_id: "kms-test".into(),
            exported_at: "2026-12-06T05:00:00Z".into(),
            since: String::new(),
            until: String::new(),
            public_keys: BTreeMap::from([(self.id.clone(), self.pem())]),
        })
    }

    /// The seal of the records among `lines`.
    fn seal(&self, lines: &[String]) -> String {
        let records: Vec<Record> = lines.iter().filter_map(|l| as_record(l)).collect();
        let mut s = Seal {
            first_seq: records.first().map_or(0, |r| r.seq),
            last_seq: records.last().map_or(0, |r| r.seq),
            first_prev: records.first().map_or(String::new(), |r| r.prev.clone()),
            head: records.last().map_or(String::new(), |r| r.hash.clone()),
            records: records.len() as u64,
            since: String::new(),
            until: String::new(),
            time: "2026-12-06T05:00:01Z".into(),
            key_version_id: self.id.clone(),
            signature: String::new(),
        };
        s.signature = self.sign(&seal_message(&s));
        seal_line(&s)
    }
}

fn as_record(line: &str) -> Option<Record> {
    match parse_line(line) {
        Ok(Line::Record(r)) => Some(r),
        _ => None,
    }
}

fn record(seq: u64, prev: &str, operation: &str) -> Record {
    Record {
        seq,
        time: format!("2026-12-06T04:{:02}:00.000001Z", seq % 60),
        request_id: format!("r-{seq}"),
        front: "instance".into(),
        principal: "application".into(),
        aap: Some("orders".into()),
        credential: Some("KAAP.1".into()),
        source: Some("10.0.0.7".into()),
        operation: operation.into(),
        key_id: Some("key-1".into()),
        result: "OK".into(),
        latency_us: 40 + seq,
        prev: prev.into(),
        ..Default::default()
    }
}

/// An export of records `first..first + n` with a checkpoint of every `k`-th record, written
/// after the record that follows it (when there is one), and a seal. No newlines.
fn export_from(signer: &Signer, first: u64, n: u64, k: u64) -> Vec<String> {
    let mut lines = vec![signer.header()];
    let mut prev = if first == 1 {
        GENESIS.to_owned()
    } else {
        "ab".repeat(32)
    };
    let mut pending: Option<(u64, String)> = None;
    for seq in first..first + n {
        let mut r = record(seq, &prev, "Encrypt");
        lines.push(r.to_line());
        if let Some((s, head)) = pending.take() {
            lines.push(signer.checkpoint(s, &head));
        }
        if seq % k == 0 {
            pending = Some((seq, r.hash.clone()));
        }
        prev = r.hash;
    }
    if let Some((s, head)) = pending {
        lines.push(signer.checkpoint(s, &head));
    }
    lines.push(signer.seal(&lines));
    lines
}

fn export(signer: &Signer, n: u64, k: u64) -> Vec<String> {
    export_from(signer, 1, n, k)
}

fn bytes(lines: &[String]) -> Vec<u8> {
    let mut b = lines.join("\n").into_bytes();
    b.push(b'\n');
    b
}

/// 1-based line number of record `seq`.
fn record_line(lines: &[String], seq: u64) -> usize {
    1 + lines
        .iter()
        .position(|l| as_record(l).is_some_and(|r| r.seq == seq))
        .unwrap()
}

/// 1-based line number of the checkpoint of record `seq`.
fn checkpoint_line_of(lines: &[String], seq: u64) -> usize {
    1 + lines
        .iter()
        .position(|l| matches!(parse_line(l), Ok(Line::Checkpoint(c)) if c.seq == seq))
        .unwrap()
}

/// Recomputes every record's `prev` and `hash` from line `from` (0-based) on, as someone who
/// rewrites the chain would; with `renumber`, their numbers too.
fn rechain(lines: &mut [String], from: usize, renumber: bool) {
    let mut last: Option<Record> = lines[..from].iter().rev().find_map(|l| as_record(l));
    for line in &mut lines[from..] {
        let Ok(Line::Record(mut r)) = serde_json::from_str::<Line>(line) else {
            continue;
        };
        if let Some(p) = &last {
            r.prev = p.hash.clone();
            if renumber {
                r.seq = p.seq + 1;
            }
        }
        *line = r.to_line();
        last = Some(r);
    }
}

/// The lines signed again by `signer`, as someone holding another key would: its header,
/// every checkpoint over the head its record has now, and a new seal.
fn resign(lines: &[String], signer: &Signer) -> Vec<String> {
    let mut out = vec![signer.header()];
    for line in &lines[1..lines.len() - 1] {
        match parse_line(line) {
            Ok(Line::Checkpoint(c)) => {
                let head = as_record(&lines[record_line(lines, c.seq) - 1])
                    .unwrap()
                    .hash;
                out.push(signer.checkpoint(c.seq, &head));
            }
            _ => out.push(line.clone()),
        }
    }
    out.push(signer.seal(&out));
    out
}

/// Verifies and expects the first problem: its kind, line and seq.
fn expect(lines: &[String], kind: ProblemKind, line: usize, seq: Option<u64>) -> Problem {
    expect_bytes(&bytes(lines), None, kind, line, seq)
}

fn expect_bytes(
    b: &[u8],
    trusted: Option<&PKeyRef<Public>>,
    kind: ProblemKind,
    line: usize,
    seq: Option<u64>,
) -> Problem {
    let p = verify_export(b, trusted).expect_err("the tampered file verified");
    assert_eq!((p.kind, p.line, p.seq), (kind, line, seq), "{p}");
    assert!(!p.message.is_empty());
    p
}

#[test]
fn a_clean_export_verifies_with_its_counts() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let report = verify_export(&bytes(&lines), None).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(report.checkpoints, 3);
    assert_eq!((report.first_seq, report.last_seq), (1, 10));
    assert_eq!(report.first_time, "2026-12-06T04:01:00.000001Z");
    assert_eq!(report.last_time, "2026-12-06T04:10:00.000001Z");
    assert_eq!(report.instance_id, "kms-test");
    assert_eq!(report.sealed_at, "2026-12-06T05:00:01Z");
    assert_eq!(report.last_checkpoint_seq, 9);
    assert_eq!(report.last_checkpoint_time, "2026-12-06T04:09:30Z");
    assert_eq!(
        report.key_version_ids,
        BTreeSet::from(["audit-v1".to_owned()])
    );
    assert!(!report.trusted_key);
    // The same with the trusted key, and for an export that begins later in the trail.
    let trusted = verify_export(&bytes(&lines), Some(&signer.public())).unwrap();
    assert!(trusted.trusted_key);
    assert_eq!(trusted.records, 10);
    let later = verify_export(&bytes(&export_from(&signer, 41, 7, 4)), None).unwrap();
    assert_eq!(
        (later.first_seq, later.last_seq, later.records),
        (41, 47, 7)
    );
    assert_eq!(later.checkpoints, 1);
}

#[test]
fn an_export_without_records_verifies() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 0, 3);
    assert_eq!(lines.len(), 2);
    let report = verify_export(&bytes(&lines), Some(&signer.public())).unwrap();
    assert_eq!((report.records, report.checkpoints), (0, 0));
    assert_eq!((report.first_seq, report.last_seq), (0, 0));
    assert!(report.first_time.is_empty());
    // A record sealed in another export does not belong in this one.
    let mut added = lines.clone();
    added.insert(1, record(1, GENESIS, "Encrypt").to_line());
    expect(&added, ProblemKind::SealMismatch, 3, None);
}

#[test]
fn a_changed_record_is_named_by_line_and_seq() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let at = record_line(&lines, 4);
    let mut body = lines.clone();
    body[at - 1] = body[at - 1].replace("\"Encrypt\"", "\"Decrypt\"");
    expect(&body, ProblemKind::AlteredRecord, at, Some(4));
    // Its hash field, its prev field.
    let mut hash = lines.clone();
    let n = hash[at - 1].len();
    hash[at - 1].replace_range(n - 4..n - 3, "0");
    if hash[at - 1] == lines[at - 1] {
        hash[at - 1].replace_range(n - 4..n - 3, "1");
    }
    expect(&hash, ProblemKind::AlteredRecord, at, Some(4));
    let mut prev = lines.clone();
    prev[at - 1] = prev[at - 1].replacen("\"prev\":\"", "\"prev\":\"f", 1);
    expect(&prev, ProblemKind::AlteredRecord, at, Some(4));
    // A byte that is not UTF-8 any more.
    let mut b = bytes(&lines);
    let offset: usize = lines[..at - 1].iter().map(|l| l.len() + 1).sum::<usize>() + 30;
    b[offset] = 0xff;
    expect_bytes(&b, None, ProblemKind::AlteredRecord, at, None);
}

#[test]
fn every_changed_byte_of_a_record_is_caught_on_its_line() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 6, 3);
    let at = record_line(&lines, 2);
    for i in 0..lines[at - 1].len() {
        let mut changed = lines.clone();
        let mut b = changed[at - 1].clone().into_bytes();
        b[i] = if b[i] == b'1' { b'2' } else { b'1' };
        changed[at - 1] = String::from_utf8(b).unwrap();
        let p = verify_export(&bytes(&changed), None).expect_err("verified");
        assert_eq!(p.line, at, "byte {i}: {p}");
        assert!(
            matches!(p.kind, ProblemKind::AlteredRecord | ProblemKind::Malformed),
            "byte {i}: {p}"
        );
    }
}

#[test]
fn every_changed_byte_of_a_checkpoint_or_the_seal_is_caught_on_its_line() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 6, 3);
    let checkpoint = checkpoint_line_of(&lines, 3);
    let seal = lines.len();
    for at in [checkpoint, seal] {
        for i in 0..lines[at - 1].len() {
            let mut changed = lines.clone();
            let mut b = changed[at - 1].clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            changed[at - 1] = String::from_utf8(b).unwrap();
            let p = verify_export(&bytes(&changed), None).expect_err("verified");
            assert_eq!(p.line, at, "line {at} byte {i}: {p}");
            assert!(
                matches!(
                    p.kind,
                    ProblemKind::BadSignature | ProblemKind::UntrustedKey | ProblemKind::Malformed
                ),
                "line {at} byte {i}: {p}"
            );
        }
    }
    // The head a checkpoint signs, specifically.
    let mut head = lines.clone();
    head[checkpoint - 1] = head[checkpoint - 1].replacen("\"head\":\"", "\"head\":\"0", 1);
    expect(&head, ProblemKind::BadSignature, checkpoint, Some(3));
}

#[test]
fn a_removed_record_is_missing_where_it_was() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    // The first (the seal says where the export begins).
    let mut first = lines.clone();
    first.remove(record_line(&lines, 1) - 1);
    expect(&first, ProblemKind::MissingRecord, 2, Some(1));
    // One in the middle, two in the middle.
    let mut middle = lines.clone();
    let at = record_line(&lines, 5);
    middle.remove(at - 1);
    expect(&middle, ProblemKind::MissingRecord, at, Some(5));
    middle.remove(at - 1);
    let p = expect(&middle, ProblemKind::MissingRecord, at, Some(5));
    assert!(p.message.contains("records 5 to 6"), "{p}");
    // The last: records missing before the seal.
    let mut last = lines.clone();
    last.remove(record_line(&lines, 10) - 1);
    let seal = last.len();
    expect(&last, ProblemKind::TruncatedTail, seal, Some(10));
    // The last, when a checkpoint of it follows.
    let nine = export(&signer, 9, 3);
    let mut covered = nine.clone();
    covered.remove(record_line(&nine, 9) - 1);
    let at = checkpoint_line_of(&covered, 9);
    expect(&covered, ProblemKind::MissingRecord, at, Some(9));
}

#[test]
fn swapped_records_are_out_of_order() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let (a, b) = (record_line(&lines, 4), record_line(&lines, 5));
    let mut adjacent = lines.clone();
    adjacent.swap(a - 1, b - 1);
    expect(&adjacent, ProblemKind::OutOfOrder, a, Some(5));
    let (a, b) = (record_line(&lines, 2), record_line(&lines, 8));
    let mut far = lines.clone();
    far.swap(a - 1, b - 1);
    expect(&far, ProblemKind::OutOfOrder, a, Some(8));
    // The first two.
    let mut start = lines.clone();
    start.swap(1, 2);
    expect(&start, ProblemKind::OutOfOrder, 2, Some(2));
}

#[test]
fn an_inserted_record_is_named() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let four = as_record(&lines[record_line(&lines, 4) - 1]).unwrap();
    let at = record_line(&lines, 5);
    // A forged record 5 that follows record 4, before the genuine one.
    let mut forged = lines.clone();
    forged.insert(
        at - 1,
        record(5, &four.hash, "ScheduleKeyDeletion").to_line(),
    );
    expect(&forged, ProblemKind::InsertedRecord, at, Some(5));
    // One that does not even follow record 4.
    let mut stray = lines.clone();
    stray.insert(at - 1, record(5, GENESIS, "ScheduleKeyDeletion").to_line());
    expect(&stray, ProblemKind::InsertedRecord, at, Some(5));
    // A copy of a record.
    let mut copy = lines.clone();
    copy.insert(at, lines[at - 1].clone());
    expect(&copy, ProblemKind::InsertedRecord, at + 1, Some(5));
    // With every later record renumbered and rechained: the next checkpoint (of record 6,
    // now record 7) no longer matches.
    let mut rewritten = forged.clone();
    rechain(&mut rewritten, at - 1, true);
    let checkpoint = checkpoint_line_of(&rewritten, 6);
    expect(
        &rewritten,
        ProblemKind::CheckpointMismatch,
        checkpoint,
        Some(6),
    );
    // After the last checkpoint, so only the seal can tell.
    let ten = record_line(&lines, 10);
    let nine = as_record(&lines[record_line(&lines, 9) - 1]).unwrap();
    let mut tail = lines.clone();
    tail.insert(ten - 1, record(10, &nine.hash, "Decrypt").to_line());
    rechain(&mut tail, ten - 1, true);
    let seal = tail.len();
    expect(&tail, ProblemKind::SealMismatch, seal, None);
}

#[test]
fn a_rewritten_chain_fails_at_the_next_checkpoint() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let at = record_line(&lines, 4);
    let mut rewritten = lines.clone();
    let mut r = as_record(&rewritten[at - 1]).unwrap();
    r.result = "AccessDenied".into();
    rewritten[at - 1] = r.to_line();
    rechain(&mut rewritten, at, false);
    let checkpoint = checkpoint_line_of(&rewritten, 6);
    let p = expect(
        &rewritten,
        ProblemKind::CheckpointMismatch,
        checkpoint,
        Some(6),
    );
    assert!(p.message.contains("rewritten"), "{p}");
    // Rewritten after the last checkpoint: the seal's head.
    let mut late = lines.clone();
    let at = record_line(&lines, 10);
    let mut r = as_record(&late[at - 1]).unwrap();
    r.result = "AccessDenied".into();
    late[at - 1] = r.to_line();
    let seal = late.len();
    expect(&late, ProblemKind::SealMismatch, seal, None);
}

#[test]
fn a_cut_tail_is_truncated() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    // Whole lines: the seal, then more.
    let no_seal = &lines[..lines.len() - 1];
    expect(no_seal, ProblemKind::TruncatedTail, no_seal.len(), None);
    let short = &lines[..record_line(&lines, 7)];
    expect(short, ProblemKind::TruncatedTail, short.len(), None);
    // Mid-line: in the seal, in a record.
    let b = bytes(&lines);
    let seal_start = b.len() - lines.last().unwrap().len() - 1;
    expect_bytes(
        &b[..seal_start + 20],
        None,
        ProblemKind::TruncatedTail,
        lines.len(),
        None,
    );
    expect_bytes(
        &b[..b.len() - 1 - 2],
        None,
        ProblemKind::TruncatedTail,
        lines.len(),
        None,
    );
    let at = record_line(&lines, 6);
    let end: usize = lines[..at].iter().map(|l| l.len() + 1).sum();
    expect_bytes(&b[..end - 10], None, ProblemKind::TruncatedTail, at, None);
    // Records cut, the seal put back.
    let mut resealed = lines[..record_line(&lines, 8)].to_vec();
    resealed.push(lines.last().unwrap().clone());
    let seal = resealed.len();
    expect(&resealed, ProblemKind::TruncatedTail, seal, Some(9));
    // Only the final newline missing is no loss.
    assert!(verify_export(&b[..b.len() - 1], None).is_ok());
}

#[test]
fn signatures_by_other_keys_are_caught() {
    let signer = Signer::new("audit-v1");
    let attacker = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    let at = checkpoint_line_of(&lines, 6);
    let head = as_record(&lines[record_line(&lines, 6) - 1]).unwrap().hash;
    // Another key under the same key version id.
    let mut forged = lines.clone();
    forged[at - 1] = attacker.checkpoint(6, &head);
    expect(&forged, ProblemKind::BadSignature, at, Some(6));
    // A key version the header does not have.
    let stranger = Signer::new("audit-v9");
    let mut unknown = lines.clone();
    unknown[at - 1] = stranger.checkpoint(6, &head);
    expect(&unknown, ProblemKind::UntrustedKey, at, Some(6));
    // The header's key replaced too: the genuine signatures fail (the first checkpoint).
    forged[0] = attacker.header();
    let first = checkpoint_line_of(&lines, 3);
    expect(&forged, ProblemKind::BadSignature, first, Some(3));
    // The trusted key catches the same forged checkpoint.
    let trusted = signer.public();
    expect_bytes(
        &bytes(&forged),
        Some(&trusted),
        ProblemKind::UntrustedKey,
        at,
        Some(6),
    );
}

#[test]
fn only_a_trusted_key_catches_a_header_and_every_signature_replaced() {
    let signer = Signer::new("audit-v1");
    let attacker = Signer::new("audit-v1");
    let lines = export(&signer, 10, 3);
    // Rewrite record 2, rechain, and sign everything again with the attacker's key.
    let mut r = as_record(&lines[record_line(&lines, 2) - 1]).unwrap();
    r.operation = "Decrypt".into();
    let mut forged = lines.clone();
    forged[record_line(&lines, 2) - 1] = r.to_line();
    rechain(&mut forged, record_line(&lines, 2), false);
    let resigned = resign(&forged, &attacker);
    // Without a trusted key it verifies: the documented limit.
    assert!(verify_export(&bytes(&resigned), None).is_ok());
    // With it, the first signature is refused.
    let first = checkpoint_line_of(&resigned, 3);
    let p = expect_bytes(
        &bytes(&resigned),
        Some(&signer.public()),
        ProblemKind::UntrustedKey,
        first,
        Some(3),
    );
    assert!(p.message.contains("not the trusted key"), "{p}");
    // A genuine file checked against another key: every signature is someone else's.
    expect_bytes(
        &bytes(&lines),
        Some(&attacker.public()),
        ProblemKind::UntrustedKey,
        first,
        Some(3),
    );
}

#[test]
fn headers_and_seals_that_do_not_fit_are_named() {
    let signer = Signer::new("audit-v1");
    let lines = export(&signer, 5, 2);
    let mut no_header = lines.clone();
    no_header.remove(0);
    expect(&no_header, ProblemKind::BadHeader, 1, None);
    expect_bytes(b"", None, ProblemKind::BadHeader, 1, None);
    let mut version = lines.clone();
    version[0] = version[0].replace("\"version\":1", "\"version\":2");
    expect(&version, ProblemKind::BadHeader, 1, None);
    let mut pem = lines.clone();
    pem[0] = pem[0].replace("BEGIN PUBLIC KEY-----\\nM", "BEGIN PUBLIC KEY-----\\nX");
    expect(&pem, ProblemKind::BadHeader, 1, None);
    // Two exports joined.
    let mut joined = lines.clone();
    joined.extend(export_from(&signer, 6, 2, 2));
    let at = lines.len();
    expect(&joined, ProblemKind::Malformed, at, None);
    let mut header_inside = lines.clone();
    header_inside.insert(3, lines[0].clone());
    expect(&header_inside, ProblemKind::BadHeader, 4, None);
    // Bounds changed in the header (the seal signs them).
    let mut bounds = lines.clone();
    bounds[0] = bounds[0].replace("\"since\":\"\"", "\"since\":\"2026-01-01T00:00:00Z\"");
    let seal = lines.len();
    expect(&bounds, ProblemKind::SealMismatch, seal, None);
    // A seal, validly signed, that counts differently.
    let mut count = lines.clone();
    let Ok(Line::Seal(mut s)) = parse_line(&count[seal - 1]) else {
        panic!("no seal");
    };
    s.records = 4;
    s.signature = signer.sign(&seal_message(&s));
    count[seal - 1] = seal_line(&s);
    expect(&count, ProblemKind::SealMismatch, seal, None);
    // An empty line.
    let mut blank = lines.clone();
    blank.insert(2, String::new());
    expect(&blank, ProblemKind::Malformed, 3, None);
}

#[test]
fn problems_and_keys_read_as_documented() {
    let p = Problem {
        kind: ProblemKind::AlteredRecord,
        line: 7,
        seq: Some(5),
        message: "changed".into(),
    };
    assert_eq!(p.to_string(), "AlteredRecord at line 7 (record 5): changed");
    let signer = Signer::new("v");
    assert!(load_public_key(signer.pem().as_bytes()).is_ok());
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let err = load_public_key(&rsa.public_key_to_pem().unwrap()).unwrap_err();
    assert!(err.contains("P-256"), "{err}");
    assert!(load_public_key(b"not a key").is_err());
}
