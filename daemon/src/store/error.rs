//! The store's error type: what went wrong, with the path, offset or topic a
//! human needs to act on it.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Every failure the store reports to its callers.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A system call on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the store was doing (`create`, `mmap`, `msync`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The disk is too full for appends ([`super::disk_guard`] says when);
    /// they are refused until space is freed. Reads keep working.
    #[error("the disk of {path} is full ({used_percent}% used, {free} free): {why}")]
    DiskFull {
        /// The store root.
        path: PathBuf,
        /// Measured use.
        used_percent: u32,
        /// Space left, for a human.
        free: String,
        /// Which rule refused the append.
        why: String,
    },
    /// A message (or batch) is larger than the store accepts.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the offending message body or batch record.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The message cannot be put into the stored layout.
    #[error("message cannot be encoded: {0}")]
    Encode(#[from] mq_protocol::message::EncodeError),
    /// A batch that holds no message.
    #[error("empty batch")]
    EmptyBatch,
    /// SYNC_FLUSH: no flush covered the message within `syncFlushTimeout`. The
    /// message is stored; only its durability is unconfirmed.
    #[error("flush did not complete within {timeout_ms} ms (FLUSH_DISK_TIMEOUT)")]
    FlushTimeout {
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// A flush failed; the message is in memory but may not be on disk.
    #[error("flush failed: {0}")]
    FlushFailed(String),
    /// The store is shutting down or has shut down.
    #[error("store is closed")]
    Closed,
    /// Another process holds the store's lock file.
    #[error("store {path} is in use by another process")]
    Locked {
        /// The store root.
        path: PathBuf,
    },
    /// Stored data that should be valid is not (found after recovery, so the
    /// store reports it rather than guessing).
    #[error("corrupt data at commit log offset {offset}: {why}")]
    Corrupt {
        /// Where in the CommitLog.
        offset: i64,
        /// What is wrong.
        why: String,
    },
    /// Bytes a master replicated cannot be appended to this slave's log: they
    /// do not start where the log ends, or do not fit its segment. The
    /// replication link is dropped and made again from the log's end.
    #[error("replicated data at commit log offset {offset}: {why}")]
    Replica {
        /// Where the master said the bytes go.
        offset: i64,
        /// What is wrong with them.
        why: String,
    },
    /// The configuration cannot work.
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether this is the file system running out of space (ENOSPC, or
    /// EDQUOT for a quota).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(nix::libc::ENOSPC | nix::libc::EDQUOT)))
    }

    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
