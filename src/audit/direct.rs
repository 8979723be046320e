//! Direct appends to the active segment: each group's bytes are written with
//! `O_DIRECT | O_DSYNC`, so that the write returns once they are on stable storage, with
//! no page cache between and no `fdatasync` after.
//!
//! Direct writes cover whole blocks ([`ALIGN`]) from buffers aligned as much. The appender
//! keeps the records of the segment's last, partly filled block and writes them again,
//! followed by the new bytes and zeros up to the block's end. The zeros land in the space
//! the segment has preallocated (zeros already), so the file reads the same as after a
//! buffered append, and a write cut short by a crash leaves the block's earlier records
//! as they were (they are written again, unchanged).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct writes: offsets, lengths and buffer addresses (a page, which
/// covers every logical block size).
pub const ALIGN: usize = 4096;

/// Appends to one segment file with direct, synchronous writes.
#[derive(Debug)]
pub struct DirectAppender {
    file: File,
    /// The records of the last, partly filled block (empty at a block boundary).
    tail: Vec<u8>,
}

impl DirectAppender {
    /// Opens `path`, whose records end at `len`, for direct appends; an error if its file
    /// system does not take direct writes (tmpfs, for one).
    pub fn open(path: &Path, len: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)?;
        let kept = (len % ALIGN as u64) as usize;
        let mut tail = vec![0u8; kept];
        if kept > 0 {
            // Read through a buffered descriptor: direct reads need aligned buffers too.
            File::open(path)?.read_exact_at(&mut tail, len - kept as u64)?;
        }
        Ok(DirectAppender { file, tail })
    }

    /// Writes `bytes` after the records, which end at `len`, and returns once they are
    /// durable. The file must hold zeros up to the block after `len + bytes`.
    pub fn append(&mut self, len: u64, bytes: &[u8]) -> std::io::Result<()> {
        let start = len - self.tail.len() as u64;
        debug_assert_eq!(start % ALIGN as u64, 0);
        let buf = Aligned::padded(&[&self.tail, bytes]);
        self.file.write_all_at(buf.bytes(), start)?;
        // The new last block's records: the end of what was just written.
        let records = self.tail.len() + bytes.len();
        let kept = ((len + bytes.len() as u64) % ALIGN as u64) as usize;
        self.tail = buf.bytes()[records - kept..records].to_vec();
        Ok(())
    }
}

/// A buffer whose bytes start on an [`ALIGN`] boundary and whose length is a multiple of it.
#[derive(Debug)]
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `content` followed by zeros up to the next multiple of [`ALIGN`].
    fn padded(content: &[&[u8]]) -> Aligned {
        let total: usize = content.iter().map(|c| c.len()).sum();
        let len = total.div_ceil(ALIGN).max(1) * ALIGN;
        let mut storage = vec![0u8; len + ALIGN];
        let start = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
        let mut at = start;
        for c in content {
            storage[at..at + c.len()].copy_from_slice(c);
            at += c.len();
        }
        Aligned {
            storage,
            start,
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
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

    #[test]
    fn appends_of_any_length_read_back_as_written_with_zeros_after_them() {
        let dir = direct_dir();
        let path = dir.path().join("segment");
        std::fs::write(&path, vec![0u8; 64 * 1024]).unwrap();
        let mut appender = DirectAppender::open(&path, 0).unwrap();
        let mut expected = Vec::new();
        // Chunks that end inside a block, on a boundary, and span several blocks.
        for (i, n) in [10usize, 4000, 86, 4096, 5000, 1, 8191, 3]
            .into_iter()
            .enumerate()
        {
            let chunk = vec![b'a' + i as u8; n];
            appender.append(expected.len() as u64, &chunk).unwrap();
            expected.extend_from_slice(&chunk);
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 64 * 1024, "appends stay inside the file");
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|b| *b == 0));

        // Reopened after its records, it keeps the partly filled block.
        let len = expected.len() as u64;
        let mut reopened = DirectAppender::open(&path, len).unwrap();
        reopened.append(len, b"after").unwrap();
        expected.extend_from_slice(b"after");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn buffers_are_aligned_and_padded_with_zeros() {
        for n in [0usize, 1, 4095, 4096, 4097] {
            let content = vec![9u8; n];
            let b = Aligned::padded(&[&content[..n / 2], &content[n / 2..]]);
            assert_eq!(b.bytes().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.bytes().len() % ALIGN, 0);
            assert!(b.bytes().len() >= n.max(1));
            assert_eq!(&b.bytes()[..n], &content[..]);
            assert!(b.bytes()[n..].iter().all(|x| *x == 0));
        }
    }
}
