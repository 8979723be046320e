//! The trail's segment files: `audit-<seq of their first record, 20 digits>.log` in the
//! trail's directory, so names sort in trail order. Each holds whole lines (records and
//! checkpoints), appended and never rewritten.

use super::config::AuditConfig;
use super::direct::DirectAppender;
use super::record::{parse_line, Line};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
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

/// Space a segment is given ahead of its records, written as zeros: appending inside it
/// leaves the file's size alone, so a sync writes the records only, not the inode too.
const PREALLOCATE: u64 = 4 * 1024 * 1024;

/// The segment being appended to. Its file may be longer than its records (zeros ahead
/// of them, see [`PREALLOCATE`]); closing the segment, or recovery after a crash, cuts
/// them off.
#[derive(Debug)]
pub struct SegmentFile {
    pub path: PathBuf,
    file: File,
    /// Durable length of the records.
    pub len: u64,
    /// Length of the file (records and the zeros ahead of them).
    allocated: u64,
    pub created: SystemTime,
    /// Direct appends, where the file system takes them (see [`SegmentFile::go_direct`]).
    direct: Option<DirectAppender>,
}

impl SegmentFile {
    /// Creates the segment whose first record will be `first_seq` (an empty file of that
    /// name, left by an attempt that failed, is taken over).
    pub fn create(dir: &Path, first_seq: u64) -> Result<SegmentFile, String> {
        let path = dir.join(name(first_seq));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let existing = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if existing != 0 {
            return Err(format!(
                "{} exists already and is not empty; it is not overwritten",
                path.display()
            ));
        }
        sync_dir(dir)?;
        Ok(SegmentFile {
            path,
            file,
            len: 0,
            allocated: 0,
            created: SystemTime::now(),
            direct: None,
        })
    }

    /// Opens `path` for appending after its first `len` bytes (bytes past them were never
    /// durable, or are zeros ahead of the records: both are cut off).
    pub fn reopen(path: &Path, len: u64) -> Result<SegmentFile, String> {
        let file = OpenOptions::new()
            .write(true)
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
            allocated: len,
            created: meta
                .created()
                .or_else(|_| meta.modified())
                .unwrap_or_else(|_| SystemTime::now()),
            direct: None,
        })
    }

    /// Appends with direct, synchronous writes from now on (durable when each returns,
    /// without `fdatasync`); an error, and buffered appends, where the file system does
    /// not take direct writes.
    pub fn go_direct(&mut self) -> std::io::Result<()> {
        self.direct = Some(DirectAppender::open(&self.path, self.len)?);
        Ok(())
    }

    /// Writes `bytes` after the records (durable once [`SegmentFile::sync`] returns).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let end = self.len + bytes.len() as u64;
        if end > self.allocated {
            self.preallocate(end)?;
        }
        let cannot = |e| format!("cannot write {}: {e}", self.path.display());
        match &mut self.direct {
            Some(direct) => direct.append(self.len, bytes).map_err(cannot)?,
            None => self.file.write_all_at(bytes, self.len).map_err(cannot)?,
        }
        self.len = end;
        Ok(())
    }

    /// Makes what was written durable (direct appends are already).
    pub fn sync(&self) -> Result<(), String> {
        if self.direct.is_some() {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| format!("cannot sync {}: {e}", self.path.display()))
    }

    /// Writes `bytes` after the records and makes them durable.
    #[cfg(test)]
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.write(bytes)?;
        self.sync()
    }

    /// Extends the file with zeros to hold at least `end` bytes of records.
    fn preallocate(&mut self, end: u64) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let target = end.div_ceil(PREALLOCATE) * PREALLOCATE;
        let zeros = vec![0u8; (target - self.allocated) as usize];
        self.file
            .write_all_at(&zeros, self.allocated)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot extend {}: {e}", self.path.display()))?;
        self.allocated = target;
        Ok(())
    }

    /// Cuts the zeros ahead of the records off, for a segment that is closed.
    pub fn close(self) -> Result<(), String> {
        if self.allocated != self.len {
            self.file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| format!("cannot close {}: {e}", self.path.display()))?;
        }
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
        let (kept, torn, found) = scan_tail(path, *len)?;
        if newest {
            if torn > 0 {
                note = Some(format!(
                    "{torn} bytes of a line cut by a crash removed from {}",
                    file_name(path)
                ));
                tracing::warn!("audit trail: {}", note.as_deref().unwrap_or_default());
            }
            active = Some(SegmentFile::reopen(path, kept)?);
        } else if kept != *len {
            // A segment closed by a crash before its zeros were cut off.
            SegmentFile::reopen(path, kept)?.close()?;
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
    let bytes = match list(dir)?.split_last() {
        Some((_, closed)) => records_bytes(closed, active.len),
        None => active.len,
    };
    Ok(Recovered {
        head: head.unwrap_or_else(Head::genesis),
        active,
        note,
        segments: segments.len().max(1) as u64,
        bytes,
    })
}

/// The length of `path`'s whole lines, how many bytes after them are not zeros (a line
/// cut by a crash), and the last record among them.
fn scan_tail(path: &Path, len: u64) -> Result<(u64, u64, Option<Head>), String> {
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let kept = start + whole as u64;
    let torn = buf[whole..].iter().filter(|&&b| b != 0).count() as u64;
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
                    torn,
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
    Ok((kept, torn, None))
}

fn damaged(path: &Path, _line: usize) -> String {
    format!(
        "the audit segment {} has a damaged line near its end; hkmsd will not extend a \
         trail it cannot verify: move the segment aside (keep it as evidence) and start again",
        path.display()
    )
}

/// The bytes of records in the closed segments (cut to their records when closed) and
/// the active one (whose file also holds the zeros preallocated after them).
fn records_bytes(closed: &[(PathBuf, u64)], active_len: u64) -> u64 {
    closed.iter().map(|(_, l)| l).sum::<u64>() + active_len
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Deletes closed segments (never the newest, the active one, whose records end at
/// `active_len`) past `retention_days` or, oldest first, while the trail's records take
/// more than `retention_max_bytes`. Returns their names and sizes.
pub fn apply_retention(
    dir: &Path,
    config: &AuditConfig,
    active_len: u64,
) -> Result<Vec<(String, u64)>, String> {
    let segments = list(dir)?;
    let Some((_, closed)) = segments.split_last() else {
        return Ok(Vec::new());
    };
    let mut total = records_bytes(closed, active_len);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Record, GENESIS};

    /// Record lines 1..=n, chained.
    fn lines(n: u64) -> String {
        let mut prev = GENESIS.to_owned();
        let mut out = String::new();
        for seq in 1..=n {
            let mut r = Record::own("Test", None, "OK");
            r.seq = seq;
            r.prev = prev;
            out.push_str(&r.to_line());
            out.push('\n');
            prev = r.hash;
        }
        out
    }

    #[test]
    fn recovery_cuts_a_torn_line_and_the_zeros_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SegmentFile::create(dir.path(), 1).unwrap();
        let whole = lines(2);
        f.append(whole.as_bytes()).unwrap();
        f.append(b"{\"type\":\"record\",\"seq\":3,\"ti").unwrap();
        assert!(
            std::fs::metadata(&f.path).unwrap().len() >= PREALLOCATE,
            "zeros ahead"
        );
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.head.seq, 2);
        assert!(r.note.unwrap().contains("cut by a crash"));
        assert_eq!(r.active.len, whole.len() as u64);
        assert_eq!(std::fs::read_to_string(&f.path).unwrap(), whole);
    }

    #[test]
    fn zeros_ahead_of_the_records_are_not_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SegmentFile::create(dir.path(), 1).unwrap();
        f.append(lines(3).as_bytes()).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!((r.head.seq, r.note), (3, None));
    }

    #[test]
    fn a_damaged_complete_line_is_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SegmentFile::create(dir.path(), 1).unwrap();
        let text = lines(2).replacen("\"Test\"", "\"Tesu\"", 2);
        f.append(text.as_bytes()).unwrap();
        let e = recover(dir.path()).unwrap_err();
        assert!(e.contains("damaged line") && e.contains("audit-"), "{e}");
        let kept = std::fs::read(&f.path).unwrap();
        assert!(
            kept.starts_with(text.as_bytes()),
            "nothing cut from a damaged segment"
        );
    }

    #[test]
    fn the_trail_size_counts_records_not_the_zeros_preallocated_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut closed = SegmentFile::create(dir.path(), 1).unwrap();
        closed.append(lines(3).as_bytes()).unwrap();
        closed.close().unwrap();
        let mut active = SegmentFile::create(dir.path(), 4).unwrap();
        active.append(lines(2).as_bytes()).unwrap();
        let records = (lines(3).len() + lines(2).len()) as u64;
        let on_disk: u64 = list(dir.path()).unwrap().iter().map(|(_, l)| l).sum();
        assert!(on_disk >= PREALLOCATE, "the active segment is preallocated");
        drop(active);
        assert_eq!(recover(dir.path()).unwrap().bytes, records);
        // Under the limit by records, over it by file sizes: nothing is deleted.
        let config = AuditConfig {
            retention_days: 0,
            retention_max_bytes: records,
            ..Default::default()
        };
        let active_len = lines(2).len() as u64;
        assert!(apply_retention(dir.path(), &config, active_len)
            .unwrap()
            .is_empty());
        let config = AuditConfig {
            retention_max_bytes: records - 1,
            ..config
        };
        assert_eq!(
            apply_retention(dir.path(), &config, active_len).unwrap(),
            [(
                "audit-00000000000000000001.log".to_owned(),
                lines(3).len() as u64
            )]
        );
    }

    #[test]
    fn retention_deletes_closed_segments_oldest_first_never_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        for first in [1, 4, 7] {
            let mut f = SegmentFile::create(dir.path(), first).unwrap();
            f.append(lines(3).as_bytes()).unwrap();
            f.close().unwrap();
        }
        let size = lines(3).len() as u64;
        let config = AuditConfig {
            retention_days: 0,
            retention_max_bytes: size + 1,
            ..Default::default()
        };
        let deleted = apply_retention(dir.path(), &config, size).unwrap();
        let names: Vec<&str> = deleted.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "audit-00000000000000000001.log",
                "audit-00000000000000000004.log"
            ]
        );
        let left = list(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].0.ends_with("audit-00000000000000000007.log"));
        // Nothing past retention: nothing deleted.
        assert!(apply_retention(dir.path(), &AuditConfig::default(), size)
            .unwrap()
            .is_empty());
    }
}
