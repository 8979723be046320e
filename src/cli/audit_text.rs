//! How audit results read: what `hkms audit verify` prints, as text and as JSON, and the
//! one readable line `hkms audit tail` shows for each line of the trail.

use crate::audit::record::{parse_line, Line, Record};
use crate::audit::verify::{Problem, Report};
use serde_json::{json, Value};
use std::path::Path;

/// What `hkms audit verify` says of a file that verifies: text and JSON.
pub fn verified_text(file: &Path, key: Option<&Path>, r: &Report) -> (String, Value) {
    let records = match r.records {
        0 => "no records".to_owned(),
        n => format!("{n} records ({} to {})", r.first_seq, r.last_seq),
    };
    let bounds = match (r.since.as_str(), r.until.as_str()) {
        ("", "") => "the whole trail".to_owned(),
        (since, "") => format!("records since {since}"),
        ("", until) => format!("records before {until}"),
        (since, until) => format!("records from {since} to {until}"),
    };
    let mut text = format!(
        "{} verifies: {records}, {} checkpoints, sealed {}.\n\
         Instance {}, exported {} ({bounds}).",
        file.display(),
        r.checkpoints,
        r.sealed_at,
        r.instance_id,
        r.exported_at,
    );
    if r.records > 0 {
        text.push_str(&format!(
            "\nRecord times: {} to {}.",
            r.first_time, r.last_time
        ));
        if r.last_checkpoint_seq < r.last_seq {
            text.push_str(&match r.last_checkpoint_seq {
                0 => "\nNo checkpoint: the records rest on the seal alone.".to_owned(),
                n => format!(
                    "\nLast checkpoint: record {n} ({}); later records rest on the seal alone.",
                    r.last_checkpoint_time
                ),
            });
        }
    }
    let ids: Vec<&str> = r.key_version_ids.iter().map(String::as_str).collect();
    text.push_str(&format!("\nSigned by key version {}, ", ids.join(", ")));
    match key {
        Some(k) => text.push_str(&format!("checked with the trusted key {}.", k.display())),
        None => text.push_str(
            "checked with the public keys in the file's header\n\
             (give --public-key to check them against a key you trust).",
        ),
    }
    let j = json!({
        "Valid": true, "File": file.display().to_string(), "Records": r.records,
        "Checkpoints": r.checkpoints, "FirstSeq": r.first_seq, "LastSeq": r.last_seq,
        "FirstTime": r.first_time, "LastTime": r.last_time, "InstanceId": r.instance_id,
        "ExportedAt": r.exported_at, "Since": r.since, "Until": r.until,
        "SealedAt": r.sealed_at, "KeyVersionIds": ids, "TrustedKey": r.trusted_key,
        "LastCheckpointSeq": r.last_checkpoint_seq, "LastCheckpointTime": r.last_checkpoint_time,
    });
    (text, j)
}

/// What `hkms audit verify` says of a file that does not: text and JSON.
pub fn problem_text(file: &Path, p: &Problem) -> (String, Value) {
    let seq = p.seq.map(|s| format!(", record {s}")).unwrap_or_default();
    let text = format!(
        "{} does NOT verify.\n{} at line {}{seq}: {}",
        file.display(),
        p.kind,
        p.line,
        p.message
    );
    let j = json!({
        "Valid": false, "File": file.display().to_string(), "Kind": p.kind.to_string(),
        "Line": p.line, "Seq": p.seq, "Message": p.message,
    });
    (text, j)
}

/// One readable line for a line of the trail.
pub fn tail_line(line: &str) -> String {
    match parse_line(line) {
        Ok(Line::Record(r)) => record_text(&r),
        Ok(Line::Checkpoint(c)) => format!(
            "{} checkpoint of #{} head {} signed by {}",
            c.time,
            c.seq,
            c.head.get(..16).unwrap_or(&c.head),
            c.key_version_id
        ),
        Ok(Line::Header(h)) => format!("{} export header of {}", h.exported_at, h.instance_id),
        Ok(Line::Seal(s)) => format!(
            "{} seal of records {} to {}",
            s.time, s.first_seq, s.last_seq
        ),
        Err(e) => format!("(a line that does not read: {e}) {line}"),
    }
}

fn record_text(r: &Record) -> String {
    let mut who = r.principal.clone();
    match (&r.aap, &r.credential) {
        (Some(aap), Some(cred)) => who.push_str(&format!(" {aap}/{cred}")),
        (Some(aap), None) => who.push_str(&format!(" {aap}")),
        (None, Some(cred)) => who.push_str(&format!(" {cred}")),
        (None, None) => {}
    }
    if let Some(uid) = r.uid {
        who.push_str(&format!(" uid={uid}"));
    }
    let mut target = Vec::new();
    if let Some(k) = &r.key_id {
        target.push(match &r.key_version_id {
            Some(v) => format!("key={k}/{v}"),
            None => format!("key={k}"),
        });
    }
    if let Some(s) = r.secret_name.as_ref().or(r.secret_name_hash.as_ref()) {
        target.push(match &r.secret_version {
            Some(v) => format!("secret={s}/{v}"),
            None => format!("secret={s}"),
        });
    }
    target.extend(r.resources.iter().cloned());
    let mut text = format!(
        "{} #{} {} {} from {} {} {} {} {}us",
        r.time,
        r.seq,
        r.front,
        who,
        r.source.as_deref().unwrap_or("-"),
        r.operation,
        if target.is_empty() {
            "-".to_owned()
        } else {
            target.join(",")
        },
        r.result,
        r.latency_us
    );
    if let Some(d) = &r.detail {
        text.push_str(&format!(" ({d})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{checkpoint_line, Checkpoint, GENESIS};

    #[test]
    fn tail_shows_one_readable_line_per_record_and_checkpoint() {
        let mut r = Record {
            seq: 12,
            time: "2026-12-06T04:00:00.000001Z".into(),
            front: "instance".into(),
            principal: "application".into(),
            aap: Some("orders".into()),
            credential: Some("KAAP.1".into()),
            source: Some("10.0.0.7".into()),
            operation: "Encrypt".into(),
            key_id: Some("key-1".into()),
            result: "OK".into(),
            latency_us: 42,
            prev: GENESIS.into(),
            ..Default::default()
        };
        assert_eq!(
            tail_line(&r.to_line()),
            "2026-12-06T04:00:00.000001Z #12 instance application orders/KAAP.1 from 10.0.0.7 \
             Encrypt key=key-1 OK 42us"
        );
        let c = Checkpoint {
            seq: 12,
            head: r.hash.clone(),
            time: "2026-12-06T04:01:00Z".into(),
            key_version_id: "audit-v1".into(),
            signature: "c2ln".into(),
        };
        assert_eq!(
            tail_line(&checkpoint_line(&c)),
            format!(
                "2026-12-06T04:01:00Z checkpoint of #12 head {} signed by audit-v1",
                &r.hash[..16]
            )
        );
        let changed = r.to_line().replace("Encrypt", "Decrypt");
        assert!(tail_line(&changed).starts_with("(a line that does not read"));
    }
}
