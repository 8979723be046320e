//! Running the `hkms` CLI in tests that check its text and its failures: the output of a
//! command that must succeed, and the code and message of one that must fail.
#![allow(dead_code)]

use super::common::Daemon;
use serde_json::Value;
use std::process::Output;

/// A JSON string as an owned string (empty for anything else).
pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hkms ARGS` (text output), which must succeed; its whole output.
pub fn ok(d: &Daemon, args: &[&str]) -> Output {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "hkms {args:?}: {}{}",
        stderr(&out),
        stdout(&out)
    );
    out
}

/// `hkms --json ARGS`, which must fail with status 1: its code and message.
pub fn refused(d: &Daemon, args: &[&str]) -> (String, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = d.cli(&all);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hkms {args:?}: {}",
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|_| panic!("hkms {args:?}: {}", stderr(&out)));
    (s(&v["Code"]), s(&v["Message"]))
}
