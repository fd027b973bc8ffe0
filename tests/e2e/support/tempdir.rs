//! The temporary directory every integration test uses (the store tests of
//! `daemon/tests` include this file with `#[path]`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
    /// Whether a failing test leaves it behind, for a look at its logs.
    keep_on_failure: bool,
}

impl TempDir {
    /// Makes a fresh, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "mq-it-{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir {
            path,
            keep_on_failure: false,
        }
    }

    /// The same directory, kept (and named on stderr) when the test panics.
    #[allow(dead_code)] // Not every test binary that includes this file keeps one.
    pub fn keep_on_failure(mut self) -> Self {
        self.keep_on_failure = true;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep_on_failure && std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
            return;
        }
        // Best effort: a leftover directory in /tmp harms nobody.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
