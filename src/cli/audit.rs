//! `hkms audit`: the audit trail. Export it to a file, verify an export offline, follow it
//! as it is written, compute the keyed hash it shows in place of a value, see its state.
//!
//! Unlike the other nouns, these commands print their own results and choose their exit
//! status: `verify` never connects to hkmsd and exits 0 (the file verifies), 1 (it does not)
//! or 2 (it could not be checked); `tail` prints as lines arrive.

use super::audit_text::{problem_text, tail_line, verified_text};
use crate::audit::record::{parse_line, Line, Seal};
use crate::audit::verify::{load_public_key, verify_export};
use crate::client::Client;
use crate::proto::*;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export the trail (or the records between two times) to a file that can be verified
    /// offline.
    ///
    /// The file holds a header with the public keys of the audit signing key, the records
    /// and the checkpoints signed inside the HSMs, and a seal signed when the export is made.
    /// It is written to a temporary file in the same directory (mode 0600), synced, then
    /// put in place; an existing file is never overwritten.
    #[command(after_long_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Verify an export file offline (no hkmsd needed); exit status 0, 1 or 2.
    ///
    /// Exits 0 when the file verifies, 1 when it does not (the problem is printed), 2 when
    /// it cannot be checked (unreadable file, unusable --public-key). Checks every record's hash, the chain of records (none removed, reordered or
    /// inserted), every checkpoint's signature and head, and the seal (nothing cut from the
    /// end). The first problem is reported with its kind, line number and record number.
    ///
    /// Without --public-key, signatures are checked with the keys in the file's own
    /// header. That catches any change by someone who cannot sign with the instance's audit
    /// key, except one: a file rewritten and signed again throughout with another key whose
    /// public key replaced the header's. Only --public-key catches that: keep the audit
    /// public key from an export you made yourself (its header) somewhere safe.
    #[command(after_long_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Follow the trail as it is written: the last records, then each new one.
    ///
    /// One line per record (time, number, caller, source, operation, key or secret, result,
    /// latency) and per checkpoint. With --json, the trail's own lines as they are.
    #[command(after_long_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
    /// Print the keyed hash the trail shows in place of a value (an AAD, a secret name a
    /// caller was refused): `hmac-sha256:<hex>`, computed inside an HSM.
    ///
    /// Give the value from a file or stdin to keep it out of shell history and `ps`.
    #[command(after_long_help = HASH_EXAMPLES)]
    Hash(HashArgs),
    /// Show the trail's state: writable or not, backlog, last record and checkpoint, size.
    Status,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only records from this time on (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// The file to write; it must not exist.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export file.
    pub file: PathBuf,
    /// The audit public key you trust (PEM); every signature must verify with it.
    #[arg(long, value_name = "PEM")]
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// How many of the latest records to show before following (0: only new ones).
    #[arg(long, default_value_t = 10)]
    pub last: u32,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct HashArgs {
    /// The value, as text ("-": read it from stdin).
    pub value: Option<String>,
    /// Read the value (any bytes) from this file ("-": stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

const EXPORT_EXAMPLES: &str = "\
Examples:
  hkms audit export --out audit-2026-12.jsonl --since 2026-12-01T00:00:00Z --until 2027-01-01T00:00:00Z
  hkms audit export --out audit-all.jsonl
  hkms audit verify audit-all.jsonl";

const VERIFY_EXAMPLES: &str = "\
Examples:
  hkms audit verify audit-2026-12.jsonl
  hkms audit verify audit-2026-12.jsonl --public-key audit-key.pem
  hkms audit verify audit-2026-12.jsonl --json   # {\"Valid\": false, \"Kind\": ..., \"Line\": ...}

  # Keep the audit public key of an export made directly from hkmsd:
  hkms audit export --out first.jsonl
  head -1 first.jsonl | jq -r '.public_keys[]' > audit-key.pem

Kinds of problem: Malformed, AlteredRecord, MissingRecord, OutOfOrder, InsertedRecord,
CheckpointMismatch, BadSignature, UntrustedKey, TruncatedTail, SealMismatch, BadHeader.";

const TAIL_EXAMPLES: &str = "\
Examples:
  hkms audit tail
  hkms audit tail --last 100 | grep -v ' OK '
  hkms audit tail --last 0 --json | jq -c 'select(.type == \"record\")'";

const HASH_EXAMPLES: &str = "\
Examples:
  hkms audit hash --file aad.bin
  printf %s 'db/orders' | hkms audit hash -
  hkms audit hash 'order-42'      # the value goes into shell history";

/// A failure to report: a stable code and a message.
#[derive(Debug)]
struct Fail {
    code: String,
    message: String,
}

impl Fail {
    fn new(code: &str, message: impl Into<String>) -> Fail {
        Fail {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Status> for Fail {
    fn from(s: Status) -> Fail {
        let code = crate::error::error_code(&s).unwrap_or_else(|| format!("{:?}", s.code()));
        let prefix = format!("{code}: ");
        let message = s.message().strip_prefix(&prefix).unwrap_or(s.message());
        Fail::new(&code, message)
    }
}

fn report_failure(f: &Fail, json: bool) {
    if json {
        super::err(&json!({"Code": f.code, "Message": f.message}).to_string());
    } else {
        super::err(&format!("hkms: {}: {}", f.code, f.message));
    }
}

/// Runs `hkms audit ...`: prints results and errors, and returns the exit status. Only
/// `verify` runs without connecting to hkmsd's `socket`.
pub async fn run(cmd: &AuditCommand, socket: &Path, json: bool) -> ExitCode {
    if let AuditCommand::Verify(args) = cmd {
        return verify(args, json);
    }
    let result = async {
        let mut c = Client::connect(socket)
            .await
            .map_err(|m| Fail::new("Unavailable", m))?;
        let (text, j) = match cmd {
            AuditCommand::Export(a) => export(&mut c, a).await?,
            AuditCommand::Tail(a) => return tail(&mut c, a, json).await,
            AuditCommand::Hash(a) => hash(&mut c, a).await?,
            AuditCommand::Status => status(&mut c).await?,
            AuditCommand::Verify(_) => unreachable!("verified above"),
        };
        show(json, &text, &j);
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            report_failure(&f, json);
            ExitCode::FAILURE
        }
    }
}

/// `hkms audit verify`: offline; exit status 0, 1 (a problem found) or 2 (not checked).
pub fn verify(a: &VerifyArgs, json: bool) -> ExitCode {
    let cannot = |m: String| {
        report_failure(&Fail::new("InvalidParameter", m), json);
        ExitCode::from(2)
    };
    let key = match &a.public_key {
        None => None,
        Some(p) => match std::fs::read(p) {
            Err(e) => return cannot(format!("cannot read {}: {e}", p.display())),
            Ok(pem) => match load_public_key(&pem) {
                Err(e) => return cannot(format!("{}: {e}", p.display())),
                Ok(k) => Some(k),
            },
        },
    };
    let bytes = match std::fs::read(&a.file) {
        Ok(b) => b,
        Err(e) => return cannot(format!("cannot read {}: {e}", a.file.display())),
    };
    let (text, j, status) = match verify_export(&bytes, key.as_deref()) {
        Ok(r) => {
            let (t, j) = verified_text(&a.file, a.public_key.as_deref(), &r);
            (t, j, ExitCode::SUCCESS)
        }
        Err(p) => {
            let (t, j) = problem_text(&a.file, &p);
            (t, j, ExitCode::FAILURE)
        }
    };
    show(json, &text, &j);
    status
}

/// Prints a command's result: its JSON form with `--json`, its text otherwise.
fn show(json: bool, text: &str, j: &Value) {
    if json {
        let pretty = serde_json::to_string_pretty(j).unwrap_or_default();
        super::out(&format!("{pretty}\n"));
    } else {
        super::out(&format!("{text}\n"));
    }
}

/// Removes a temporary file unless it was put in place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn export(c: &mut Client, a: &ExportArgs) -> Result<(String, Value), Fail> {
    refuse_existing(&a.out)?;
    let stream = c
        .audit
        .export(ExportAuditRequest {
            since: a.since.clone().unwrap_or_default(),
            until: a.until.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let w = write_export(&a.out, stream, std::io::stderr().is_terminal()).await?;
    let out = a.out.display();
    let text = format!(
        "Exported {} records ({} to {}) and {} checkpoints to {out}.\n\
         Check it with: hkms audit verify {out}",
        w.seal.records, w.seal.first_seq, w.seal.last_seq, w.checkpoints
    );
    let j = json!({
        "Path": out.to_string(), "Records": w.seal.records,
        "FirstSeq": w.seal.first_seq, "LastSeq": w.seal.last_seq,
        "Checkpoints": w.checkpoints, "Lines": w.lines,
    });
    Ok((text, j))
}

fn refuse_existing(out: &Path) -> Result<(), Fail> {
    if out.symlink_metadata().is_ok() {
        return Err(Fail::new(
            "InvalidParameter",
            format!(
                "{} exists; an export never overwrites a file",
                out.display()
            ),
        ));
    }
    Ok(())
}

/// What [`write_export`] wrote.
#[derive(Debug)]
struct Written {
    lines: u64,
    checkpoints: u64,
    seal: Seal,
}

/// Writes the lines of an export stream to `out`: to a temporary file in the same directory
/// (mode 0600), synced, then linked into place, never over an existing file. Nothing is left
/// behind when the stream fails or ends before its seal. With `progress`, counts the lines
/// on stderr.
async fn write_export<S>(out: &Path, mut stream: S, progress: bool) -> Result<Written, Fail>
where
    S: tokio_stream::Stream<Item = Result<AuditLines, Status>> + Unpin,
{
    use std::os::unix::fs::OpenOptionsExt;
    use tokio_stream::StreamExt;
    refuse_existing(out)?;
    let name = out.file_name().ok_or_else(|| {
        Fail::new(
            "InvalidParameter",
            format!("{} is not a file name", out.display()),
        )
    })?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let temp_path = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Fail::new("IoError", format!("cannot {what} {}: {e}", p.display()))
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp_path)
        .map_err(|e| io("create", &temp_path, e))?;
    let temp = TempFile(Some(temp_path.clone()));
    let mut w = std::io::BufWriter::new(file);
    let (mut lines, mut checkpoints, mut last) = (0u64, 0u64, String::new());
    while let Some(batch) = stream.next().await {
        for line in batch?.lines {
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| io("write", &temp_path, e))?;
            lines += 1;
            checkpoints += u64::from(line.starts_with("{\"type\":\"checkpoint\""));
            last = line;
        }
        if progress {
            eprint!("\r{lines} lines written");
        }
    }
    if progress {
        super::err("");
    }
    let Ok(Line::Seal(seal)) = parse_line(&last) else {
        return Err(Fail::new(
            "Incomplete",
            format!(
                "the export ended before its seal ({lines} lines received); nothing was written"
            ),
        ));
    };
    let file = w
        .into_inner()
        .map_err(|e| io("write", &temp_path, e.into_error()))?;
    file.sync_all().map_err(|e| io("sync", &temp_path, e))?;
    drop(file);
    // A link, unlike a rename, fails rather than replace a file created meanwhile.
    match std::fs::hard_link(&temp_path, out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            refuse_existing(out)?;
            return Err(io("create", out, e));
        }
        Err(_) if out.symlink_metadata().is_err() => {
            std::fs::rename(&temp_path, out).map_err(|e| io("rename to", out, e))?
        }
        Err(e) => return Err(io("create", out, e)),
    }
    drop(temp);
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(Written {
        lines,
        checkpoints,
        seal,
    })
}

async fn tail(c: &mut Client, a: &TailArgs, json: bool) -> Result<(), Fail> {
    let mut stream = c
        .audit
        .tail(TailAuditRequest { last: a.last })
        .await?
        .into_inner();
    let mut stdout = std::io::stdout();
    while let Some(batch) = stream.message().await? {
        for line in batch.lines {
            let shown = if json { line } else { tail_line(&line) };
            if writeln!(stdout, "{shown}")
                .and_then(|_| stdout.flush())
                .is_err()
            {
                // The reader went away (`| head`).
                return Ok(());
            }
        }
    }
    Err(Fail::new("Unavailable", "hkmsd ended the trail's stream"))
}

async fn hash(c: &mut Client, a: &HashArgs) -> Result<(String, Value), Fail> {
    let stdin = Path::new("-");
    let value = match (&a.value, &a.file) {
        (Some(v), _) if v != "-" => v.as_bytes().to_vec(),
        (_, Some(p)) if p != stdin => std::fs::read(p).map_err(|e| {
            Fail::new(
                "InvalidParameter",
                format!("cannot read {}: {e}", p.display()),
            )
        })?,
        _ => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| Fail::new("InvalidParameter", format!("cannot read stdin: {e}")))?;
            v
        }
    };
    let r = c
        .audit
        .hash_value(HashAuditValueRequest { value })
        .await?
        .into_inner();
    Ok((r.hash.clone(), json!({"Hash": r.hash})))
}

async fn status(c: &mut Client) -> Result<(String, Value), Fail> {
    let r = c
        .audit
        .get_audit_status(GetAuditStatusRequest {})
        .await?
        .into_inner();
    let state = match (r.enabled, r.writable) {
        (false, _) => "DISABLED (requests are not recorded)".to_owned(),
        (true, true) => "enabled, writable".to_owned(),
        (true, false) => format!("enabled, NOT WRITABLE (requests are refused): {}", r.error),
    };
    let last = match r.last_seq {
        0 => "none yet".to_owned(),
        n => format!("#{n}"),
    };
    let checkpoint = if r.last_checkpoint.is_empty() {
        "none yet"
    } else {
        &r.last_checkpoint
    };
    let text = format!(
        "Audit trail:     {state}\n\
         Last record:     {last} ({} waiting to be written)\n\
         Last checkpoint: {checkpoint}\n\
         Directory:       {} ({} segments, {} bytes)\n\
         Appends:         {}",
        r.backlog, r.dir, r.segments, r.bytes, r.appends
    );
    let j = json!({
        "Enabled": r.enabled, "Writable": r.writable, "Error": r.error,
        "Backlog": r.backlog, "LastSeq": r.last_seq, "LastCheckpoint": r.last_checkpoint,
        "Segments": r.segments, "Bytes": r.bytes, "Dir": r.dir, "Appends": r.appends,
    });
    Ok((text, j))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{checkpoint_line, Checkpoint, Record, GENESIS};

    fn batches(lines: &[&[&str]]) -> Vec<Result<AuditLines, Status>> {
        lines
            .iter()
            .map(|b| {
                Ok(AuditLines {
                    lines: b.iter().map(|l| l.to_string()).collect(),
                })
            })
            .collect()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_export_is_written_whole_private_and_never_over_a_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("audit.jsonl");
        let mut r = Record {
            seq: 1,
            prev: GENESIS.into(),
            ..Default::default()
        };
        let record = r.to_line();
        let c = checkpoint_line(&Checkpoint {
            seq: 1,
            head: r.hash.clone(),
            time: "t".into(),
            key_version_id: "v".into(),
            signature: "c2ln".into(),
        });
        let seal = crate::audit::record::seal_line(&Seal {
            first_seq: 1,
            last_seq: 1,
            first_prev: GENESIS.into(),
            head: r.hash.clone(),
            records: 1,
            since: String::new(),
            until: String::new(),
            time: "t".into(),
            key_version_id: "v".into(),
            signature: "c2ln".into(),
        });
        let lines: &[&[&str]] = &[&["{\"type\":\"header\"}", &record], &[&c, &seal]];
        let stream = tokio_stream::iter(batches(lines));
        let w = write_export(&out, stream, false).await.unwrap();
        assert_eq!((w.lines, w.checkpoints, w.seal.records), (4, 1, 1));
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            written,
            format!("{{\"type\":\"header\"}}\n{record}\n{c}\n{seal}\n")
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(names_in(dir.path()), ["audit.jsonl"]);

        // Never over an existing file.
        let stream = tokio_stream::iter(batches(lines));
        let err = write_export(&out, stream, false).await.unwrap_err();
        assert!(err.message.contains("exists"), "{}", err.message);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), written);

        // Nothing left behind when the stream ends before its seal, or fails.
        let other = dir.path().join("cut.jsonl");
        let stream = tokio_stream::iter(batches(&lines[..1]));
        let err = write_export(&other, stream, false).await.unwrap_err();
        assert_eq!(err.code, "Incomplete");
        let mut failing = batches(&lines[..1]);
        failing.push(Err(Status::unavailable("gone")));
        let err = write_export(&other, tokio_stream::iter(failing), false)
            .await
            .unwrap_err();
        assert_eq!(err.message, "gone");
        assert_eq!(names_in(dir.path()), ["audit.jsonl"]);
    }
}
