//! `hkms audit export`, `hash`, `tail` and `status` against a stand-in AuditService on a Unix
//! socket (the lines it serves are made like hkmsd's): the export file is whole, private,
//! never written over another file or left behind half-made, and verifies offline.

#[path = "support/audit_export.rs"]
mod audit_export;

use audit_export::{export, Signer};
use hkms::proto::audit_service_server::{AuditService, AuditServiceServer};
use hkms::proto::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tonic::{Request, Response, Status};

type Lines = tokio_stream::Iter<std::vec::IntoIter<Result<AuditLines, Status>>>;

struct StandIn {
    export: Vec<String>,
}

/// The lines in batches of three.
fn batches(lines: &[String]) -> Lines {
    let batches: Vec<_> = lines
        .chunks(3)
        .map(|c| Ok(AuditLines { lines: c.to_vec() }))
        .collect();
    tokio_stream::iter(batches)
}

#[tonic::async_trait]
impl AuditService for StandIn {
    type ExportStream = Lines;
    type TailStream = Lines;

    async fn export(
        &self,
        request: Request<ExportAuditRequest>,
    ) -> Result<Response<Lines>, Status> {
        let r = request.into_inner();
        match r.since.as_str() {
            "" => Ok(Response::new(batches(&self.export))),
            // A stream that stops before its seal.
            "cut" => Ok(Response::new(batches(&self.export[..4]))),
            other => Err(Status::invalid_argument(format!("bad since {other:?}"))),
        }
    }

    async fn tail(&self, request: Request<TailAuditRequest>) -> Result<Response<Lines>, Status> {
        let last = request.into_inner().last as usize;
        let trail = &self.export[1..self.export.len() - 1];
        let records: Vec<usize> = (0..trail.len())
            .filter(|&i| trail[i].starts_with("{\"type\":\"record\""))
            .collect();
        let from = records[records.len().saturating_sub(last)];
        Ok(Response::new(batches(&trail[from..])))
    }

    async fn hash_value(
        &self,
        request: Request<HashAuditValueRequest>,
    ) -> Result<Response<HashAuditValueResponse>, Status> {
        let value = request.into_inner().value;
        Ok(Response::new(HashAuditValueResponse {
            hash: format!("hmac-sha256:{}", hex::encode(&value)),
        }))
    }

    async fn get_audit_status(
        &self,
        _: Request<GetAuditStatusRequest>,
    ) -> Result<Response<GetAuditStatusResponse>, Status> {
        Ok(Response::new(GetAuditStatusResponse {
            enabled: true,
            writable: false,
            error: "disk full".into(),
            backlog: 3,
            last_seq: 8,
            last_checkpoint: "2026-12-06T04:01:00Z".into(),
            segments: 2,
            bytes: 4096,
            dir: "/var/lib/hkms/audit".into(),
            appends: "fdatasync".into(),
        }))
    }
}

/// Serves the stand-in on a socket in `dir` from a thread of its own.
fn serve(dir: &Path, export: Vec<String>) -> PathBuf {
    let socket = dir.join("hkmsd.sock");
    let path = socket.clone();
    let (ready, is_ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            ready.send(()).unwrap();
            tonic::transport::Server::builder()
                .add_service(AuditServiceServer::new(StandIn { export }))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    is_ready.recv().unwrap();
    socket
}

fn hkms(socket: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_export_is_written_whole_and_private_and_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let lines = export(&Signer::new(), 8);
    let socket = serve(dir.path(), lines.clone());
    let files = dir.path().join("out");
    std::fs::create_dir(&files).unwrap();
    let out = files.join("audit.jsonl");
    let path = out.to_str().unwrap();

    let run = hkms(&socket, &["audit", "export", "--out", path], b"");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("Exported 8 records (1 to 8) and 2 checkpoints to"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{}\n", lines.join("\n"))
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(names_in(&files), ["audit.jsonl"]);
    // Verified with no hkmsd at all.
    let verify = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["--socket", "/nonexistent", "audit", "verify", path])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));

    // Never over an existing file; nothing left from a stream cut short; the server's
    // refusal reported.
    let again = hkms(&socket, &["audit", "export", "--out", path], b"");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    let cut = files.join("cut.jsonl");
    let cut_path = cut.to_str().unwrap();
    let run = hkms(
        &socket,
        &["audit", "export", "--since", "cut", "--out", cut_path],
        b"",
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("ended before its seal"),
        "{}",
        text(&run.stderr)
    );
    let run = hkms(
        &socket,
        &[
            "--json", "audit", "export", "--since", "x", "--out", cut_path,
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&run.stderr).unwrap();
    assert_eq!(err["Code"], "InvalidArgument", "{err}");
    assert_eq!(names_in(&files), ["audit.jsonl"]);
}

#[test]
fn hash_tail_and_status_print_what_hkmsd_says() {
    let dir = tempfile::tempdir().unwrap();
    let lines = export(&Signer::new(), 8);
    let socket = serve(dir.path(), lines.clone());

    // From the command line, from stdin (binary), from a file.
    let run = hkms(&socket, &["audit", "hash", "ab"], b"");
    assert_eq!(text(&run.stdout), "hmac-sha256:6162\n");
    let run = hkms(&socket, &["audit", "hash", "--file", "-"], &[0, 0xff]);
    assert_eq!(text(&run.stdout), "hmac-sha256:00ff\n");
    let run = hkms(&socket, &["audit", "hash", "-"], b"x");
    assert_eq!(text(&run.stdout), "hmac-sha256:78\n");
    let file = dir.path().join("aad.bin");
    std::fs::write(&file, [1, 2]).unwrap();
    let run = hkms(
        &socket,
        &["--json", "audit", "hash", "--file", file.to_str().unwrap()],
        b"",
    );
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(j["Hash"], "hmac-sha256:0102");

    // The last two records and the checkpoint between them; then the stream ends.
    let run = hkms(&socket, &["audit", "tail", "--last", "2"], b"");
    let stdout = text(&run.stdout);
    let shown: Vec<&str> = stdout.lines().collect();
    assert_eq!(shown.len(), 2, "{stdout}");
    assert!(
        shown[0]
            .contains(" #7 grpc operator uid=0 from - /hkms.v1.KeyService/CreateKey - OK 100us"),
        "{stdout}"
    );
    assert!(shown[1].contains(" #8 "), "{stdout}");
    assert!(text(&run.stderr).contains("ended the trail's stream"));
    let run = hkms(&socket, &["--json", "audit", "tail", "--last", "3"], b"");
    let stdout = text(&run.stdout);
    let raw: Vec<&str> = stdout.lines().collect();
    let n = lines.len();
    assert_eq!(
        raw,
        lines[n - 5..n - 1]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(raw[1].starts_with("{\"type\":\"checkpoint\""));

    let run = hkms(&socket, &["audit", "status"], b"");
    assert_eq!(run.status.code(), Some(0));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("NOT WRITABLE (requests are refused): disk full"),
        "{stdout}"
    );
    assert!(stdout.contains("#8 (3 waiting to be written)"), "{stdout}");
    assert!(
        stdout.contains("/var/lib/hkms/audit (2 segments, 4096 bytes)"),
        "{stdout}"
    );
    assert!(stdout.contains("Appends:         fdatasync"), "{stdout}");
}
