//! The trail's segment files: `audit-<seq of their first record, 20 digits>.log` in the
//! trail's directory, so names sort in trail order. Each holds whole lines (records and
//! checkpoints), appended and never rewritten.

use super::config::AuditConfig;
use super::record::{parse_line, Line};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The chain's head: the last durable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: super::record::GENESIS.to_owned(),
        }
    }
}

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".log";
/// How much of the newest segment recovery reads to find the chain's head.
const TAIL_WINDOW: u64 = 4 * 1024 * 1024;

/// The segment being appended to.
#[derive(Debug)]
pub struct SegmentFile {
    pub path: PathBuf,
    file: File,
    /// Durable length.
    pub len: u64,
    pub created: SystemTime,
}

impl SegmentFile {
    /// Creates the segment whose first record will be `first_seq`.
    pub fn create(dir: &Path, first_seq: u64) -> Result<SegmentFile, String> {
        let path = dir.join(name(first_seq));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        sync_dir(dir)?;
        Ok(SegmentFile {
            path,
            file,
            len: 0,
            created: SystemTime::now(),
        })
    }

    /// Opens `path` for appending, cut back to `len` (bytes past it were never durable).
    pub fn reopen(path: &Path, len: u64) -> Result<SegmentFile, String> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.len() != len {
            file.set_len(len)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("cannot cut {} back to {len} bytes: {e}", path.display()))?;
        }
        Ok(SegmentFile {
            path: path.to_owned(),
            file,
            len,
            created: meta
                .created()
                .or_else(|_| meta.modified())
                .unwrap_or_else(|_| SystemTime::now()),
        })
    }

    /// Appends `bytes` and makes them durable.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        let what = |e: std::io::Error| format!("cannot write {}: {e}", self.path.display());
        self.file.write_all(bytes).map_err(what)?;
        self.file.sync_data().map_err(what)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

fn name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// The segments of `dir`, oldest first, with their sizes.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, u64)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let is_segment = n
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .is_some_and(|seq| seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()));
        if is_segment {
            let len = entry
                .metadata()
                .map_err(|e| format!("cannot read {n}: {e}"))?
                .len();
            out.push((entry.path(), len));
        }
    }
    out.sort();
    Ok(out)
}

/// What [`recover`] found.
#[derive(Debug)]
pub struct Recovered {
    pub head: Head,
    pub active: SegmentFile,
    /// What was repaired, for hkmsd's start record.
    pub note: Option<String>,
    pub segments: u64,
    pub bytes: u64,
}

/// Opens the trail in `dir` (created 0700 if missing): cuts a torn last line off the newest
/// segment and finds the chain's head. A damaged line that is not the last (a complete line
/// that does not read) is not repaired: hkmsd refuses to start and names it.
pub fn recover(dir: &Path) -> Result<Recovered, String> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the audit directory {}: {e}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {} to 0700: {e}", dir.display()))?;
    }
    let segments = list(dir)?;
    let mut note = None;
    let mut head = None;
    let mut active = None;
    for (i, (path, len)) in segments.iter().enumerate().rev() {
        let newest = i + 1 == segments.len();
        let (kept, found) = scan_tail(path, *len)?;
        if newest {
            if kept != *len {
                note = Some(format!(
                    "{} bytes of a line cut by a crash removed from {}",
                    len - kept,
                    file_name(path)
                ));
                tracing::warn!("audit trail: {}", note.as_deref().unwrap_or_default());
            }
            active = Some(SegmentFile::reopen(path, kept)?);
        }
        if found.is_some() {
            head = found;
            break;
        }
    }
    let active = match active {
        Some(a) => a,
        None => SegmentFile::create(dir, 1)?,
    };
    let bytes = list(dir)?.iter().map(|(_, l)| l).sum();
    Ok(Recovered {
        head: head.unwrap_or_else(Head::genesis),
        active,
        note,
        segments: segments.len().max(1) as u64,
        bytes,
    })
}

/// The length of `path`'s whole lines and the last record among them.
fn scan_tail(path: &Path, len: u64) -> Result<(u64, Option<Head>), String> {
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let kept = start + whole as u64;
    let mut lines: Vec<&[u8]> = buf[..whole].split(|&b| b == b'\n').collect();
    lines.pop(); // after the last newline
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut by the window
    }
    for (i, raw) in lines.iter().enumerate().rev() {
        let line = std::str::from_utf8(raw).map_err(|_| damaged(path, i))?;
        match parse_line(line) {
            Ok(Line::Record(r)) => {
                return Ok((
                    kept,
                    Some(Head {
                        seq: r.seq,
                        hash: r.hash,
                    }),
                ))
            }
            Ok(_) => continue,
            Err(e) => return Err(format!("{}: {e}", damaged(path, i))),
        }
    }
    Ok((kept, None))
}

fn damaged(path: &Path, _line: usize) -> String {
    format!(
        "the audit segment {} has a damaged line near its end; hkmsd will not extend a \
         trail it cannot verify: move the segment aside (keep it as evidence) and start again",
        path.display()
    )
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Deletes closed segments (never the newest) past `retention_days` or, oldest first,
/// while the trail is larger than `retention_max_bytes`. Returns their names and sizes.
pub fn apply_retention(dir: &Path, config: &AuditConfig) -> Result<Vec<(String, u64)>, String> {
    let segments = list(dir)?;
    let Some((_, closed)) = segments.split_last() else {
        return Ok(Vec::new());
    };
    let mut total: u64 = segments.iter().map(|(_, l)| l).sum();
    let now = SystemTime::now();
    let mut deleted = Vec::new();
    for (path, len) in closed {
        let age_days = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .map_or(0, |d| d.as_secs() / 86_400);
        let too_old = config.retention_days > 0 && age_days >= config.retention_days;
        let too_much = config.retention_max_bytes > 0 && total > config.retention_max_bytes;
        if !(too_old || too_much) {
            continue;
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
        total -= len;
        deleted.push((file_name(path), *len));
    }
    if !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// Every whole line of the segments, oldest first, reading no further than `durable`
/// bytes into the segment `durable_segment` (the active one). Calls `each` per line; stops
/// when it returns false.
pub fn for_each_line(
    dir: &Path,
    durable_segment: &Path,
    durable: u64,
    mut each: impl FnMut(&str) -> bool,
) -> Result<(), String> {
    for (path, _) in list(dir)? {
        let limit = if path == durable_segment {
            durable
        } else {
            u64::MAX
        };
        let f = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut reader = std::io::BufReader::new(f.take(limit));
        let mut line = String::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut reader, &mut line)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            if !each(line.trim_end_matches('\n')) {
                return Ok(());
            }
        }
        if path == durable_segment {
            break;
        }
    }
    Ok(())
}

/// The last lines of the trail holding `records` records (and the checkpoints among
/// them), read from the newest segments backwards, no further than `durable` bytes into
/// the active segment.
pub fn last_lines(
    dir: &Path,
    durable_segment: &Path,
    durable: u64,
    records: usize,
) -> Result<Vec<String>, String> {
    let mut out: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    if records == 0 {
        return Ok(Vec::new());
    }
    let mut found = 0;
    for (path, _) in list(dir)?.into_iter().rev() {
        let limit = if path == durable_segment {
            durable
        } else {
            u64::MAX
        };
        if path > durable_segment.to_path_buf() {
            continue; // begun after the reader's snapshot
        }
        let mut text = String::new();
        File::open(&path)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let whole = text.rfind('\n').map_or(0, |p| p + 1);
        for line in text[..whole].lines().rev() {
            if found == records {
                return Ok(out.into());
            }
            found += usize::from(line.starts_with("{\"type\":\"record\""));
            out.push_front(line.to_owned());
        }
    }
    Ok(out.into())
}
