//! Reading a test daemon's audit trail: its segment files, their records, and keyed hashes
//! computed by the CLI.
#![allow(dead_code)]

use crate::common::Daemon;
use serde_json::Value;
use std::path::PathBuf;

/// The trail's segment files, oldest first.
pub fn segments(d: &Daemon) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.path("audit"))
        .expect("the trail's directory exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Every byte of the trail's lines (without the zeros the active segment holds ahead of
/// its records).
pub fn trail_text(d: &Daemon) -> Vec<u8> {
    segments(d)
        .iter()
        .flat_map(|p| {
            let mut bytes = std::fs::read(p).unwrap();
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            bytes.truncate(end);
            bytes
        })
        .collect()
}

/// Every line of the trail, parsed.
pub fn lines(d: &Daemon) -> Vec<Value> {
    String::from_utf8(trail_text(d))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The trail's records.
pub fn records(d: &Daemon) -> Vec<Value> {
    lines(d)
        .into_iter()
        .filter(|l| l["type"] == "record")
        .collect()
}

/// `hkms audit hash` of `value` (given in a file, as binary values are).
pub fn hash_of(d: &Daemon, value: &[u8]) -> String {
    let file = d.path("value-to-hash");
    std::fs::write(&file, value).unwrap();
    let out = d.cli(&["audit", "hash", "--file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "hkms audit hash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
