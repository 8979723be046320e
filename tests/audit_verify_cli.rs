//! `hkms audit verify` on export files made here with the library's line formats and a fresh
//! EC P-256 key: exit status 0 for a clean file, 1 naming the line of a tampered one, 2 when
//! the file or the key cannot be read. It never needs hkmsd.

#[path = "support/audit_export.rs"]
mod audit_export;

use audit_export::{export, write, Signer};
use serde_json::Value;
use std::process::{Command, Output};

/// Runs `hkms audit verify` with no hkmsd anywhere (the socket does not exist).
fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["audit", "verify"])
        .args(args)
        .env("HKMS_SOCKET", "/nonexistent/hkmsd.sock")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_clean_export_verifies_and_tampered_ones_are_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let lines = export(&signer, 8);
    let clean = write(dir.path(), "clean.jsonl", &lines);
    let out = verify(&[clean.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("verifies: 8 records (1 to 8), 2 checkpoints"),
        "{stdout}"
    );
    assert!(stdout.contains("--public-key"), "{stdout}");

    // Record 4 (line 6: header, 1, 2, 3, checkpoint, 4) changed.
    let mut altered = lines.clone();
    assert!(altered[5].contains("\"seq\":4,"));
    altered[5] = altered[5].replace("\"result\":\"OK\"", "\"result\":\"AccessDenied\"");
    let path = write(dir.path(), "altered.jsonl", &altered);
    let out = verify(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("does NOT verify"), "{stdout}");
    assert!(
        stdout.contains("AlteredRecord at line 6, record 4:"),
        "{stdout}"
    );

    // Record 4 removed: record 5, now at line 6, does not follow record 3.
    let mut removed = lines.clone();
    removed.remove(5);
    let path = write(dir.path(), "removed.jsonl", &removed);
    let out = verify(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("MissingRecord at line 6, record 4:"),
        "{}",
        text(&out.stdout)
    );

    // The seal cut off; and, as JSON, half of it.
    let cut = write(dir.path(), "cut.jsonl", &lines[..lines.len() - 1]);
    let out = verify(&[cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("TruncatedTail at line"));
    let whole = std::fs::read(&clean).unwrap();
    let half = dir.path().join("half.jsonl");
    std::fs::write(&half, &whole[..whole.len() - 40]).unwrap();
    let out = verify(&["--json", half.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["Valid"], false);
    assert_eq!(j["Kind"], "TruncatedTail");
    assert_eq!(j["Line"], lines.len());
}

#[test]
fn a_trusted_key_is_required_to_match() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let clean = write(dir.path(), "clean.jsonl", &export(&signer, 5));
    let right = dir.path().join("right.pem");
    std::fs::write(&right, signer.pem()).unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, Signer::new().pem()).unwrap();

    let out = verify(&[
        clean.to_str().unwrap(),
        "--public-key",
        right.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("checked with the trusted key"));

    // Another key: the first signature (the checkpoint of record 3, line 5) is refused.
    let out = verify(&[
        clean.to_str().unwrap(),
        "--public-key",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("UntrustedKey at line 5, record 3:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn files_and_keys_that_cannot_be_read_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let out = verify(&[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    let clean = write(dir.path(), "clean.jsonl", &export(&Signer::new(), 3));
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "-----BEGIN PUBLIC KEY-----\nnot a key\n").unwrap();
    let out = verify(&[
        clean.to_str().unwrap(),
        "--public-key",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a PEM public key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_help_teaches_the_commands_and_the_limit_of_the_header_keys() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        text(&out.stdout)
    };
    let noun = help(&["audit", "--help"]);
    for command in ["export", "verify", "tail", "hash", "status"] {
        assert!(noun.contains(&format!("  {command} ")), "{command}: {noun}");
    }
    let verify = help(&["audit", "verify", "--help"]);
    assert!(
        verify.contains("Only --public-key catches that"),
        "{verify}"
    );
    assert!(
        verify.contains("Examples:\n  hkms audit verify"),
        "{verify}"
    );
    for command in ["export", "tail", "hash"] {
        let h = help(&["audit", command, "--help"]);
        assert!(
            h.contains(&format!("Examples:\n  hkms audit {command}")),
            "{h}"
        );
    }
}

#[test]
fn a_reader_that_went_away_does_not_change_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let clean = write(dir.path(), "clean.jsonl", &export(&signer, 8));
    let mut altered = export(&signer, 8);
    altered[5] = altered[5].replace("\"result\":\"OK\"", "\"result\":\"AccessDenied\"");
    let tampered = write(dir.path(), "altered.jsonl", &altered);
    for (file, json, status) in [(&clean, false, 0), (&clean, true, 0), (&tampered, false, 1)] {
        // Standard output is a pipe whose reading end is closed before anything is
        // written (`hkms audit verify FILE | head -0`).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hkms"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .args(["audit", "verify", file.to_str().unwrap()])
            .env("HKMS_SOCKET", "/nonexistent/hkmsd.sock")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "json {json}: {stderr}");
    }
}

#[test]
fn a_closed_standard_error_does_not_turn_a_failure_into_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let mut altered = export(&signer, 8);
    altered[5] = altered[5].replace("\"result\":\"OK\"", "\"result\":\"AccessDenied\"");
    let tampered = write(dir.path(), "altered.jsonl", &altered);
    let tampered = tampered.to_str().unwrap();
    // hkmsd is not there (Unavailable, reported on stderr) and a file that does not verify.
    let runs: [&[&str]; 4] = [
        &["status"],
        &["--json", "status"],
        &["audit", "verify", tampered],
        &["audit", "status"],
    ];
    for args in runs {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
            .args(args)
            .env("HKMS_SOCKET", "/nonexistent/hkmsd.sock")
            .stdout(std::process::Stdio::piped())
            .stderr(writer)
            .output()
            .unwrap();
        // A panic exits with 101 (its message lost with standard error).
        assert_eq!(out.status.code(), Some(1), "hkms {args:?}");
    }
}
