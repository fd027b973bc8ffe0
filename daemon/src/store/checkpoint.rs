//! The checkpoint: store times up to which the CommitLog, the ConsumeQueues and
//! the IndexFiles are known to be flushed. Crash recovery starts from the
//! segment written just before the oldest of them.
//!
//! | offset | width | field |
//! |---|---|---|
//! | 0  | 8 | physicMsgTimestamp: store time of the last flushed CommitLog record |
//! | 8  | 8 | logicsMsgTimestamp: store time of the last flushed ConsumeQueue entry |
//! | 16 | 8 | indexMsgTimestamp: end time of the last flushed IndexFile |
//! | 24 | 4 | format version, [`VERSION`] |
//! | 28 | 4 | CRC32 of bytes 0..28 |
//!
//! The first 24 bytes are RocketMQ's layout. The version and CRC are mq's: the
//! file is rewritten whole (temp file, fsync, rename), and a torn or foreign
//! file is detected and treated as "no checkpoint" (full crash recovery).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::{Result, StoreError};

/// Version written at offset 24.
pub const VERSION: u32 = 1;
const LEN: usize = 32;

/// The three flush times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Store time of the last flushed CommitLog record (ms).
    pub physic_msg_timestamp: i64,
    /// Store time of the last flushed ConsumeQueue entry (ms).
    pub logics_msg_timestamp: i64,
    /// End time of the last flushed IndexFile (ms).
    pub index_msg_timestamp: i64,
}

impl Checkpoint {
    /// The oldest of the times that matter: recovery must start before it.
    pub fn min_timestamp(&self, index_enabled: bool) -> i64 {
        let min = self.physic_msg_timestamp.min(self.logics_msg_timestamp);
        if index_enabled {
            min.min(self.index_msg_timestamp)
        } else {
            min
        }
    }

    fn encode(&self) -> [u8; LEN] {
        let mut buf = [0u8; LEN];
        buf[0..8].copy_from_slice(&self.physic_msg_timestamp.to_be_bytes());
        buf[8..16].copy_from_slice(&self.logics_msg_timestamp.to_be_bytes());
        buf[16..24].copy_from_slice(&self.index_msg_timestamp.to_be_bytes());
        buf[24..28].copy_from_slice(&VERSION.to_be_bytes());
        let crc = crc32fast::hash(&buf[..28]);
        buf[28..32].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    fn decode(buf: &[u8]) -> std::result::Result<Self, String> {
        let buf: &[u8; LEN] = buf
            .get(..LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{} bytes, expected {LEN}", buf.len()))?;
        let word = |at: usize| i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        let version = u32::from_be_bytes(buf[24..28].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(buf[28..32].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(format!("version {version}, expected {VERSION}"));
        }
        if crc != crc32fast::hash(&buf[..28]) {
            return Err("CRC mismatch".into());
        }
        Ok(Checkpoint {
            physic_msg_timestamp: word(0),
            logics_msg_timestamp: word(8),
            index_msg_timestamp: word(16),
        })
    }
}

/// The checkpoint file of one store.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint at `path` (not read yet).
    pub fn new(path: PathBuf) -> Self {
        CheckpointFile { path }
    }

    /// Reads the checkpoint. `None` if it is missing or damaged (logged), which
    /// makes crash recovery start from the first segment.
    pub fn load(&self) -> Option<Checkpoint> {
        // Read at most a page: a file of any other size is damaged anyway, and
        // nothing read from disk sizes an allocation unchecked.
        let read = File::open(&self.path).and_then(|file| {
            let mut bytes = Vec::with_capacity(LEN);
            file.take(4096).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) => match Checkpoint::decode(&bytes) {
                Ok(cp) => Some(cp),
                Err(why) => {
                    log::warn!("ignoring damaged checkpoint {}: {why}", self.path.display());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("cannot read checkpoint {}: {e}", self.path.display());
                None
            }
        }
    }

    /// Writes the checkpoint atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, cp: &Checkpoint) -> Result<()> {
        write_atomically(&self.path, &cp.encode())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new
/// content, never a mix: write a temp file, fsync it, rename it over, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // A name of its own per write: two writers must never share a temp file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{seq}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut file = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = TempDir::new("checkpoint");
        let file = CheckpointFile::new(dir.path().join("checkpoint"));
        assert_eq!(file.load(), None);
        let cp = Checkpoint {
            physic_msg_timestamp: 3,
            logics_msg_timestamp: 2,
            index_msg_timestamp: 1,
        };
        file.save(&cp).unwrap();
        assert_eq!(file.load(), Some(cp));
        assert_eq!(cp.min_timestamp(true), 1);
        assert_eq!(cp.min_timestamp(false), 2);

        let mut bytes = std::fs::read(dir.path().join("checkpoint")).unwrap();
        bytes[3] ^= 0x40;
        std::fs::write(dir.path().join("checkpoint"), &bytes).unwrap();
        assert_eq!(file.load(), None);
        std::fs::write(dir.path().join("checkpoint"), b"short").unwrap();
        assert_eq!(file.load(), None);
    }
}
