//! Direct appends to the active segment: each group's bytes are written with
//! `O_DIRECT | O_DSYNC` through [`crate::aio`], so that the write is durable when the kernel
//! completes it and the runtime worker does not wait for it in `fdatasync`.
//!
//! Direct writes cover whole blocks ([`aio::ALIGN`]). The appender keeps the records of the
//! segment's last, partly filled block and writes them again, followed by the new bytes
//! and zeros up to the block's end. The zeros land in the space the segment has
//! preallocated (zeros already), so the file reads the same as after a buffered append.

use crate::aio::{self, Aligned, Context, ALIGN};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Appends to one segment file with direct, synchronous writes.
#[derive(Debug)]
pub struct DirectAppender {
    file: File,
    context: Arc<Context>,
    /// The records of the last, partly filled block (empty at a block boundary).
    tail: Vec<u8>,
}

impl DirectAppender {
    /// Opens `path`, whose records end at `len`, for direct appends; an error if its file
    /// system does not take direct writes (tmpfs, for one).
    pub fn open(path: &Path, len: u64, context: Arc<Context>) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)?;
        let kept = (len % ALIGN as u64) as usize;
        let mut tail = vec![0u8; kept];
        if kept > 0 {
            // Read through a buffered descriptor: direct reads need aligned buffers too.
            File::open(path)?.read_exact_at(&mut tail, len - kept as u64)?;
        }
        Ok(DirectAppender {
            file,
            context,
            tail,
        })
    }

    /// Writes `bytes` after the records, which end at `len`; the returned write is durable
    /// when it completes. The file must hold zeros up to the block after `len + bytes`.
    pub fn append(&mut self, len: u64, bytes: &[u8]) -> std::io::Result<aio::Written> {
        let start = len - self.tail.len() as u64;
        debug_assert_eq!(start % ALIGN as u64, 0);
        let buf = Aligned::padded(&[&self.tail, bytes]);
        let written = self.context.write(&self.file, buf, start)?;
        let end = len + bytes.len() as u64;
        let kept = (end % ALIGN as u64) as usize;
        let mut tail = Vec::with_capacity(ALIGN);
        if kept > bytes.len() {
            tail.extend_from_slice(&self.tail[self.tail.len() - (kept - bytes.len())..]);
            tail.extend_from_slice(bytes);
        } else {
            tail.extend_from_slice(&bytes[bytes.len() - kept..]);
        }
        self.tail = tail;
        Ok(written)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory on a file system that takes direct writes (the build's target
    /// directory; the system's temporary directory may be tmpfs).
    pub(crate) fn direct_dir() -> tempfile::TempDir {
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap()
    }

    #[tokio::test]
    async fn appends_of_any_length_read_back_as_written_with_zeros_after_them() {
        let dir = direct_dir();
        let path = dir.path().join("segment");
        std::fs::write(&path, vec![0u8; 64 * 1024]).unwrap();
        let context = Context::new().unwrap();
        let mut appender = DirectAppender::open(&path, 0, context.clone()).unwrap();
        let mut expected = Vec::new();
        // Chunks that end inside a block, on a boundary, and span several blocks.
        for (i, n) in [10usize, 4000, 86, 4096, 5000, 1, 8191, 3]
            .into_iter()
            .enumerate()
        {
            let chunk = vec![b'a' + i as u8; n];
            let written = appender.append(expected.len() as u64, &chunk).unwrap();
            written.wait().await.unwrap();
            expected.extend_from_slice(&chunk);
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 64 * 1024, "appends stay inside the file");
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|b| *b == 0));

        // Reopened after its records, it keeps the partly filled block.
        let len = expected.len() as u64;
        let mut reopened = DirectAppender::open(&path, len, context).unwrap();
        reopened
            .append(len, b"after")
            .unwrap()
            .wait()
            .await
            .unwrap();
        expected.extend_from_slice(b"after");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|b| *b == 0));
    }

    #[tokio::test]
    async fn one_write_is_in_flight_at_a_time_and_a_dropped_one_is_waited_for() {
        let dir = direct_dir();
        let path = dir.path().join("segment");
        std::fs::write(&path, vec![0u8; 16 * 1024]).unwrap();
        let context = Context::new().unwrap();
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(&path)
            .unwrap();
        let first = context
            .write(&file, Aligned::padded(&[b"first"]), 0)
            .unwrap();
        let second = context.write(&file, Aligned::padded(&[b"second"]), 4096);
        assert!(second.is_err(), "a second write while one is in flight");
        // Dropping the first waits for it; the next write is taken.
        drop(first);
        let third = context
            .write(&file, Aligned::padded(&[b"third"]), 4096)
            .unwrap();
        third.wait().await.unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..5], b"first");
        assert_eq!(&on_disk[4096..4101], b"third");
    }

    #[tokio::test]
    async fn a_failed_write_is_an_error_when_it_completes_or_is_submitted() {
        let dir = direct_dir();
        let path = dir.path().join("segment");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let context = Context::new().unwrap();
        // A descriptor opened for reading only: the kernel refuses the write.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .unwrap();
        let refused = match context.write(&file, Aligned::padded(&[b"x"]), 0) {
            Err(e) => e,
            Ok(w) => w.wait().await.unwrap_err(),
        };
        assert_eq!(refused.raw_os_error(), Some(libc::EBADF), "{refused}");
        // The context takes the next write.
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(&path)
            .unwrap();
        let ok = context.write(&file, Aligned::padded(&[b"y"]), 0).unwrap();
        ok.wait().await.unwrap();
    }
}
