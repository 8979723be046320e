//! The test clock: hkmsd's debug builds add the offset written here to their clock (see
//! `hkms::clock`). Release builds (benchmarks included) have no test clock, so only the
//! tests that move time include this file.
#![allow(dead_code)]

use std::path::PathBuf;

/// The test clock: the offset in seconds that a debug build of hkmsd adds to its clock,
/// written to the file named by `HKMS_TEST_CLOCK_FILE` (see `hkms::clock`).
#[derive(Debug)]
pub struct TestClock {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    offset: std::cell::Cell<i64>,
}

impl Default for TestClock {
    fn default() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock-offset");
        std::fs::write(&path, "0").unwrap();
        TestClock {
            _dir: dir,
            path,
            offset: 0.into(),
        }
    }
}

impl TestClock {
    /// The environment entry that gives hkmsd this clock.
    pub fn env(&self) -> (&'static str, String) {
        (hkms::clock::TEST_CLOCK_ENV, self.path.display().to_string())
    }

    /// Moves hkmsd's clock forward.
    pub fn advance(&self, seconds: i64) {
        self.offset.set(self.offset.get() + seconds);
        std::fs::write(&self.path, self.offset.get().to_string()).unwrap();
    }

    /// hkmsd's time now (Unix seconds).
    pub fn now(&self) -> i64 {
        hkms::clock::now_unix() + self.offset.get()
    }
}
