//! The ConsumeQueue: per topic and queue id, the list of the queue's messages as
//! fixed-size entries pointing into the CommitLog (RocketMQ's `ConsumeQueue`).
//!
//! A queue lives in `<root>/consumequeue/<topic>/<queueId>/` as a run of
//! [`MappedFile`]s of `entries_per_file` × [`ENTRY_SIZE`] bytes, each named by
//! the 20-digit byte offset of its first entry within the queue. Logical offset
//! `n` is the entry at byte `n × 20`, so finding an entry is arithmetic.
//!
//! Entry layout (big-endian, protocol §7.1):
//!
//! | Offset | Width | Field                                        |
//! |--------|-------|----------------------------------------------|
//! | 0      | 8     | CommitLog physical offset (i64)              |
//! | 8      | 4     | message size, the record's TOTALSIZE (i32)   |
//! | 12     | 8     | tag code (i64)                               |
//!
//! A *blank* entry (offset 0, size `i32::MAX`, tag 0) fills the space before
//! the first entry of a queue whose first file starts mid-way, and gaps.
//!
//! Concurrency: entries are written by one thread (the store's dispatcher), but
//! retention, recovery and topic deletion also change the files, so every
//! mutation takes the queue's writer mutex (uncontended on the hot path).
//! Readers take no mutex: they check the offsets kept in atomics, clone the
//! file's `Arc` under a short read lock, and read only below the file's write
//! position. Those bytes may still change: a repair (`put` of an entry that
//! differs from the stored one) cuts the queue and writes over entries a
//! reader may be copying. So the files are [`InPlace`] files, read and written
//! as atomic words: a reader racing a cut sees a stale or zeroed entry, which
//! the broker then fails to match against the CommitLog, never a data race.
//!
//! The queue is derived data: whatever recovery cannot trust is cut, and the
//! store re-dispatches it from the CommitLog.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::error::{Result, StoreError};
use super::mapped_file::{list_offset_files, offset_file_name, InPlace, MappedFile};

/// Bytes per ConsumeQueue entry.
pub const ENTRY_SIZE: usize = 20;

/// [`ENTRY_SIZE`] for byte offsets within a queue (which are `u64`, like file bases).
const ENTRY_BYTES: u64 = 20;

/// How many blank entries one write fills at most, so a large pre-fill does not
/// build one large buffer.
const BLANK_CHUNK: usize = 1024;

/// How many of the last files recovery looks at for a valid entry (RocketMQ
/// looks at the last three too: older files were flushed long ago).
const RECOVER_FILES: usize = 3;

/// The largest gap (in files) `put` fills with blank entries. Gaps should never
/// happen; a huge one means a damaged queue offset, and filling it would eat
/// the disk.
const MAX_GAP_FILES: i64 = 8;

/// Stands for "no real entry" in [`ConsumeQueue::max_phys_end`]'s atomic.
const NO_PHYS_END: i64 = -1;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Where the message's record starts in the CommitLog.
    pub phys_offset: i64,
    /// The record's TOTALSIZE.
    pub size: i32,
    /// Tag hash (or delivery time for the schedule topic).
    pub tag_code: i64,
}

impl CqEntry {
    /// The entry that fills space holding no message.
    pub const BLANK: CqEntry = CqEntry {
        phys_offset: 0,
        size: i32::MAX,
        tag_code: 0,
    };

    /// Whether this is a blank entry, which points at no message.
    pub fn is_blank(&self) -> bool {
        *self == Self::BLANK
    }

    /// Where the message's record ends in the CommitLog; `None` on overflow
    /// (only possible for an entry read from a damaged file).
    pub fn phys_end(&self) -> Option<i64> {
        self.phys_offset.checked_add(i64::from(self.size))
    }

    /// The 20 stored bytes (see the module's table).
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[0..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..20].copy_from_slice(&self.tag_code.to_be_bytes());
        out
    }

    /// Reads an entry from the first 20 bytes of `bytes`; `None` if shorter.
    pub fn decode(bytes: &[u8]) -> Option<CqEntry> {
        let phys: [u8; 8] = bytes.get(0..8)?.try_into().ok()?;
        let size: [u8; 4] = bytes.get(8..12)?.try_into().ok()?;
        let tag: [u8; 8] = bytes.get(12..20)?.try_into().ok()?;
        Some(CqEntry {
            phys_offset: i64::from_be_bytes(phys),
            size: i32::from_be_bytes(size),
            tag_code: i64::from_be_bytes(tag),
        })
    }
}

/// What `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entry was written at the end of the queue.
    Appended,
    /// The same entry was already at that offset (a re-dispatch after restart);
    /// nothing was written.
    AlreadyPresent,
    /// A different entry was at that offset: the queue was cut there and the new
    /// entry written.
    Repaired,
}

/// Limits recovery checks entries against.
#[derive(Debug, Clone, Copy)]
pub struct LogBounds {
    /// The CommitLog's smallest offset; entries below it point at deleted
    /// records, so the queue's min offset is moved past them.
    pub min_phys: i64,
    /// Where the CommitLog's valid records end; no entry may point past it.
    pub end_phys: i64,
    /// The largest record the CommitLog can hold.
    pub max_record_size: i32,
}

/// What [`ConsumeQueue::recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverReport {
    /// Whether invalid entries were found and cut.
    pub truncated: bool,
    /// End of the last real entry's record, if the queue has one.
    pub max_phys_end: Option<i64>,
}

/// What the recovery walk makes of one stored entry.
enum Scan {
    /// A message entry passing every check; its record ends at the value.
    Real(i64),
    /// A blank entry where blanks are allowed.
    Blank,
    /// All zero: space never written.
    Unwritten,
    /// An entry that cannot be trusted, and why.
    Invalid(&'static str),
}

/// How a recovery walk over one file ended.
struct Walk {
    /// Byte position after the last valid entry.
    end: usize,
    /// Valid entries found (blanks included).
    valid: usize,
    /// Why the walk stopped before the end of the file, if it did.
    invalid: Option<&'static str>,
}

/// One queue: `<root>/consumequeue/<topic>/<queueId>/`.
pub struct ConsumeQueue {
    /// The topic, for logs and for the store's bookkeeping.
    topic: String,
    /// The queue id, likewise.
    queue_id: i32,
    /// The queue's directory, created with its first file.
    dir: PathBuf,
    /// Bytes per file: `entries_per_file × ENTRY_SIZE`, checked not to overflow.
    file_size: usize,
    /// The files, oldest first, contiguous (each base is the previous base plus
    /// `file_size`); every file but the last is full. Held only to clone or
    /// push/remove `Arc`s, never across I/O.
    files: RwLock<Vec<Arc<MappedFile<InPlace>>>>,
    /// Serialises everything that writes the files or changes the list (put,
    /// recovery, retention, truncation, destruction), so `MappedFile`'s single
    /// writer rule holds even when retention runs beside the dispatcher.
    writer: Mutex<()>,
    /// Smallest logical offset readers may read (lock-free for readers).
    min_offset: AtomicI64,
    /// Next logical offset to write. Lowered *before* a cut changes bytes, raised
    /// *after* new bytes are published.
    max_offset: AtomicI64,
    /// End of the last real entry's record, or [`NO_PHYS_END`].
    max_phys_end: AtomicI64,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .field("dir", &self.dir)
            .field("min_offset", &self.min_offset())
            .field("max_offset", &self.max_offset())
            .finish()
    }
}

impl ConsumeQueue {
    /// A queue with no files, whose first `put` creates its directory and file.
    fn empty(dir: &Path, topic: &str, queue_id: i32, entries_per_file: usize) -> Result<Self> {
        let file_size = entries_per_file
            .checked_mul(ENTRY_SIZE)
            .filter(|&size| size > 0)
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "{entries_per_file} entries per ConsumeQueue file is not a usable file size"
                ))
            })?;
        Ok(ConsumeQueue {
            topic: topic.to_owned(),
            queue_id,
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(Vec::new()),
            writer: Mutex::new(()),
            min_offset: AtomicI64::new(0),
            max_offset: AtomicI64::new(0),
            max_phys_end: AtomicI64::new(NO_PHYS_END),
        })
    }

    /// Opens (or, with no files, prepares) the queue at `dir`; loads existing
    /// files, oldest first.
    ///
    /// A file shorter than configured is grown by [`MappedFile::open`] (which
    /// logs it). A file larger than configured (which `open` refuses), a file
    /// whose name is not where the previous file ends, or one whose offset is
    /// unusable is logged and deleted together with every later file: the queue
    /// is derived data and the store rebuilds it from the CommitLog.
    ///
    /// Every file starts out full; call [`recover`](Self::recover) before use to
    /// find where the valid entries end.
    pub fn load(dir: &Path, topic: &str, queue_id: i32, entries_per_file: usize) -> Result<Self> {
        let queue = Self::empty(dir, topic, queue_id, entries_per_file)?;
        let size = queue.file_size as u64;
        let listed = list_offset_files(dir)?;
        let mut files: Vec<Arc<MappedFile<InPlace>>> = Vec::with_capacity(listed.len());
        let mut rejected_from = None;
        for (index, (base, path)) in listed.iter().enumerate() {
            let end_fits = base
                .checked_add(size)
                .is_some_and(|end| i64::try_from(end).is_ok());
            let len = std::fs::metadata(path)
                .map_err(|e| StoreError::io("stat", path, e))?
                .len();
            let problem = match files.last() {
                _ if base % ENTRY_BYTES != 0 => {
                    Some("its offset is not a multiple of the entry size".to_owned())
                }
                _ if !end_fits => Some("its offset is too large".to_owned()),
                // `MappedFile::open` would refuse it; a store made with larger
                // files is rebuilt rather than refused.
                _ if len > size => Some(format!(
                    "it is {len} bytes, larger than the configured {size}"
                )),
                Some(prev) if prev.base() + size != *base => Some(format!(
                    "the previous file {} does not end where it starts",
                    prev.path().display()
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                log::warn!(
                    "ConsumeQueue {topic}-{queue_id}: deleting {} and every later file: {problem}",
                    path.display()
                );
                rejected_from = Some(index);
                break;
            }
            // A short file (cut by a crash) is logged and grown by `open`.
            files.push(Arc::new(MappedFile::open(path, *base, queue.file_size)?));
        }
        if let Some(from) = rejected_from {
            for (_, path) in &listed[from..] {
                std::fs::remove_file(path).map_err(|e| StoreError::io("delete", path, e))?;
            }
        }
        if let (Some(first), Some(last)) = (files.first(), files.last()) {
            let min = logical_at(first.base(), 0);
            let max = logical_at(last.base(), last.wrote_position());
            queue.min_offset.store(min, Ordering::Release);
            queue.max_offset.store(max, Ordering::Release);
        }
        *queue.files_mut() = files;
        Ok(queue)
    }

    /// The topic this queue belongs to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue id within the topic.
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    /// Recovery: finds the longest valid run of entries at the end of the queue
    /// and cuts everything after it.
    ///
    /// Walks the entries of the last file (or, if it holds no valid entry, the
    /// one before it, and so on, but never more than the last three files).
    /// An entry is valid when `size > 0`, `size <= max_record_size`,
    /// `phys_offset >= 0`, `phys_offset + size <= end_phys`, and it starts at or
    /// after the end of the previous valid entry (for the first entry of a file,
    /// the previous file's last entry, if that is a plausible real entry).
    /// Blank entries are valid only before the queue's first real entry, in its
    /// first file. An all-zero entry ends the walk (unwritten space).
    ///
    /// Everything after the valid run is cut: the file's positions are set to its
    /// end, the rest is zeroed and later files are deleted; every cut of data is
    /// logged with file, logical offset and reason.
    ///
    /// Then sets the min offset to the first entry of the first file that is not
    /// blank, moved further past entries below `bounds.min_phys` (their records
    /// are gone), and the max offset to the end of the valid run.
    pub fn recover(&self, bounds: LogBounds) -> Result<RecoverReport> {
        let _writer = self.lock_writer();
        let files = self.files_snapshot();
        let Some(last_index) = files.len().checked_sub(1) else {
            return Ok(RecoverReport {
                truncated: false,
                max_phys_end: None,
            });
        };
        let lowest = files.len().saturating_sub(RECOVER_FILES);
        let mut truncated = false;
        let mut index = last_index;
        let walk = loop {
            let walk = self.walk_file(&files, index, bounds);
            if walk.valid > 0 || index == lowest {
                break walk;
            }
            // Nothing valid here: the whole file goes, and the previous one is
            // where valid data must end.
            if let Some(reason) = walk.invalid {
                log::warn!(
                    "ConsumeQueue {}-{}: cutting {} at logical offset {} (whole file): {reason}",
                    self.topic,
                    self.queue_id,
                    files[index].path().display(),
                    logical_at(files[index].base(), 0),
                );
                truncated = true;
            }
            index -= 1;
        };
        let file = &files[index];
        if let Some(reason) = walk.invalid {
            log::warn!(
                "ConsumeQueue {}-{}: cutting {} at logical offset {}: {reason}",
                self.topic,
                self.queue_id,
                file.path().display(),
                logical_at(file.base(), walk.end),
            );
            truncated = true;
        }
        file.set_positions(walk.end);
        file.zero_from(walk.end)?;
        let later: Vec<Arc<MappedFile<InPlace>>> = self.files_mut().drain(index + 1..).collect();
        for dropped in &later {
            log::info!(
                "ConsumeQueue {}-{}: deleting {}, which holds no valid entry",
                self.topic,
                self.queue_id,
                dropped.path().display()
            );
        }
        destroy_all(&later)?;

        let max = logical_at(file.base(), walk.end);
        let first = &files[0];
        let leading_blanks = count_leading_blanks(first);
        let mut min = logical_at(first.base(), leading_blanks * ENTRY_SIZE).min(max);
        min = self.first_at_or_after_phys(min, max, bounds.min_phys);
        self.max_offset.store(max, Ordering::Release);
        self.min_offset.store(min, Ordering::Release);
        let max_phys_end = self.last_real_end();
        self.store_max_phys_end(max_phys_end);
        Ok(RecoverReport {
            truncated,
            max_phys_end,
        })
    }

    /// Checks the entries of `files[index]` from its start; see [`recover`](Self::recover).
    fn walk_file(
        &self,
        files: &[Arc<MappedFile<InPlace>>],
        index: usize,
        bounds: LogBounds,
    ) -> Walk {
        let file = &files[index];
        // Continuity with the previous file, if its last entry looks like a real one.
        let mut prev_end = index
            .checked_sub(1)
            .and_then(|prev| {
                let prev = &files[prev];
                let pos = prev.size().checked_sub(ENTRY_SIZE)?;
                CqEntry::decode(&prev.read_array::<ENTRY_SIZE>(pos)?)
            })
            .and_then(|entry| match check_entry(&entry, bounds, None, false) {
                Scan::Real(end) => Some(end),
                _ => None,
            });
        // Blanks only pad the start of a queue, which is in its first file.
        let mut blanks_allowed = index == 0;
        let mut walk = Walk {
            end: 0,
            valid: 0,
            invalid: None,
        };
        while let Some(bytes) = file.read_array::<ENTRY_SIZE>(walk.end) {
            let Some(entry) = CqEntry::decode(&bytes) else {
                break;
            };
            match check_entry(&entry, bounds, prev_end, blanks_allowed) {
                Scan::Real(end) => {
                    prev_end = Some(end);
                    blanks_allowed = false;
                }
                Scan::Blank => {}
                Scan::Unwritten => break,
                Scan::Invalid(reason) => {
                    walk.invalid = Some(reason);
                    break;
                }
            }
            walk.valid += 1;
            walk.end += ENTRY_SIZE;
        }
        walk
    }

    /// Appends the entry for logical offset `logical` (single writer: the
    /// dispatcher).
    ///
    /// - `logical` below `max_offset`: the existing entry is compared; identical
    ///   gives [`PutOutcome::AlreadyPresent`], different cuts the queue at
    ///   `logical` (that entry and everything after it), writes the new one and
    ///   gives [`PutOutcome::Repaired`]. An offset below the queue's oldest file
    ///   (already deleted by retention) is ignored with a warning and reported as
    ///   `AlreadyPresent`: the queue has moved past it.
    /// - Empty queue (no files) and `logical > 0`: the first file starts at
    ///   `logical × 20` rounded down to the file size and is pre-filled with
    ///   blank entries up to `logical`; the min offset becomes `logical`.
    /// - `logical` above `max_offset` on a queue with files (a gap, which should
    ///   not happen): logged, the gap filled with blank entries, then written.
    ///
    /// Creates the next file when the current one is full; a creation error
    /// (full disk) is returned. A negative or overflowing `logical` is an error.
    pub fn put(&self, logical: i64, entry: CqEntry) -> Result<PutOutcome> {
        if self.byte_of(logical).is_none() {
            return Err(self.invalid_input(format!("logical offset {logical} cannot be stored")));
        }
        let _writer = self.lock_writer();
        let max = self.max_offset.load(Ordering::Acquire);
        let first_base = self.files().first().map(|file| file.base());
        let mut outcome = PutOutcome::Appended;
        match first_base {
            None => {
                // The first file holds `logical`; blanks pad it up to there.
                let start = self.file_start_of(logical);
                self.max_offset.store(start, Ordering::Release);
                self.min_offset.store(start, Ordering::Release);
                self.store_max_phys_end(None);
                self.fill_blanks(start, logical)?;
                // Raised after the fill (max first), so min never passes max.
                self.min_offset.store(logical, Ordering::Release);
            }
            Some(first_base) if logical < max => {
                if logical < logical_at(first_base, 0) {
                    log::warn!(
                        "ConsumeQueue {}-{}: entry for logical offset {logical} is older than the oldest file; ignored",
                        self.topic,
                        self.queue_id
                    );
                    return Ok(PutOutcome::AlreadyPresent);
                }
                let existing = self.read_entry(logical);
                if existing == Some(entry) {
                    return Ok(PutOutcome::AlreadyPresent);
                }
                log::warn!(
                    "ConsumeQueue {}-{}: logical offset {logical} holds {existing:?}, the CommitLog says {entry:?}: \
                     cutting the queue there (was up to {max})",
                    self.topic,
                    self.queue_id
                );
                self.cut_at(logical)?;
                outcome = PutOutcome::Repaired;
            }
            Some(_) if logical > max => {
                let gap_files = (logical - max) / self.entries_per_file();
                if gap_files > MAX_GAP_FILES {
                    return Err(self.invalid_input(format!(
                        "logical offset {logical} is {gap_files} files past the end {max}; \
                         refusing to fill that much with blank entries"
                    )));
                }
                log::warn!(
                    "ConsumeQueue {}-{}: entry for logical offset {logical} leaves a gap after {max}; \
                     filling it with blank entries",
                    self.topic,
                    self.queue_id
                );
                self.fill_blanks(max, logical)?;
            }
            Some(_) => {}
        }
        let file = self.writable_file(logical)?;
        file.append(&entry.encode());
        self.max_offset.store(logical + 1, Ordering::Release);
        if !entry.is_blank() {
            if let Some(end) = entry.phys_end() {
                self.max_phys_end.store(end, Ordering::Release);
            }
        }
        Ok(outcome)
    }

    /// Writes blank entries for logical offsets `from..to` at the end of the
    /// queue (writer lock held; `from` is the current max offset).
    fn fill_blanks(&self, from: i64, to: i64) -> Result<()> {
        let Ok(count) = usize::try_from(to - from) else {
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        let chunk: Vec<u8> = CqEntry::BLANK.encode().repeat(count.min(BLANK_CHUNK));
        let mut next = from;
        while next < to {
            let file = self.writable_file(next)?;
            let left = usize::try_from(to - next).unwrap_or(usize::MAX);
            let n = (file.remaining() / ENTRY_SIZE).min(left).min(BLANK_CHUNK);
            file.append(&chunk[..n * ENTRY_SIZE]);
            next += i64::try_from(n).expect("at most BLANK_CHUNK entries");
            self.max_offset.store(next, Ordering::Release);
        }
        Ok(())
    }

    /// The file the entry for `next` (the current end of the queue) goes into:
    /// the last file if it has room, else a new one (writer lock held).
    fn writable_file(&self, next: i64) -> Result<Arc<MappedFile<InPlace>>> {
        let last = self.files().last().cloned();
        if let Some(last) = &last {
            if !last.is_full() {
                return Ok(Arc::clone(last));
            }
        }
        let base = match &last {
            Some(last) => last.base() + self.file_size as u64,
            None => {
                check_path_component(&self.topic)?;
                std::fs::create_dir_all(&self.dir)
                    .map_err(|e| StoreError::io("create directory", &self.dir, e))?;
                let start = self.file_start_of(next);
                self.byte_of(start)
                    .ok_or_else(|| self.invalid_input(format!("offset {next}")))?
            }
        };
        let path = self.dir.join(offset_file_name(base));
        // Creation reserves disk space (slow): no lock other than the writer's.
        let file = Arc::new(MappedFile::create(&path, base, self.file_size)?);
        self.files_mut().push(Arc::clone(&file));
        Ok(file)
    }

    /// The entry at `logical`, if `min_offset <= logical < max_offset` and it is
    /// not blank.
    pub fn get(&self, logical: i64) -> Option<CqEntry> {
        if logical < self.min_offset() || logical >= self.max_offset() {
            return None;
        }
        self.read_entry(logical).filter(|entry| !entry.is_blank())
    }

    /// Up to `max` consecutive entries starting at `logical`, each with its
    /// logical offset; blanks are skipped (and not counted). Reading stops at the
    /// end of a file once something was found, so it may return fewer: callers
    /// loop, continuing after the last returned offset. Empty if `logical` is
    /// outside `min_offset..max_offset`.
    pub fn entries_from(&self, logical: i64, max: usize) -> Vec<(i64, CqEntry)> {
        let end = self.max_offset();
        let mut out = Vec::new();
        if max == 0 || logical < self.min_offset() || logical >= end {
            return out;
        }
        let mut next = logical;
        while next < end && out.len() < max {
            let Some((file, pos)) = self.locate(next) else {
                break;
            };
            let in_file = file.wrote_position().saturating_sub(pos) / ENTRY_SIZE;
            let in_queue = usize::try_from(end - next).unwrap_or(usize::MAX);
            let count = in_file.min(in_queue);
            if count == 0 {
                break;
            }
            out.reserve(count.min(max - out.len()));
            for at in (pos..).step_by(ENTRY_SIZE).take(count) {
                if out.len() == max {
                    break;
                }
                let entry = file
                    .read_array::<ENTRY_SIZE>(at)
                    .and_then(|bytes| CqEntry::decode(&bytes));
                if let Some(entry) = entry.filter(|entry| !entry.is_blank()) {
                    out.push((next, entry));
                }
                next += 1;
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }

    /// Smallest logical offset a consumer may read.
    pub fn min_offset(&self) -> i64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Next logical offset to be written (the count of entries, including the
    /// ones before `min_offset`).
    pub fn max_offset(&self) -> i64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// `phys_offset + size` of the last real entry, or `None` if the queue has
    /// no real entry.
    pub fn max_phys_end(&self) -> Option<i64> {
        let end = self.max_phys_end.load(Ordering::Acquire);
        (end != NO_PHYS_END).then_some(end)
    }

    /// Recovery: drops the entries whose `phys_offset + size` is past
    /// `commit_log_end`, cutting the queue at the first such entry (entries are in
    /// physical order). Returns whether anything was dropped.
    pub fn truncate_dirty(&self, commit_log_end: i64) -> Result<bool> {
        let _writer = self.lock_writer();
        let Some(first_base) = self.files().first().map(|file| file.base()) else {
            return Ok(false);
        };
        let floor = logical_at(first_base, 0);
        let max = self.max_offset.load(Ordering::Acquire);
        let mut cut = max;
        let mut logical = max;
        // Walk back from the end: only the tail is dirty, usually a few entries.
        while logical > floor {
            logical -= 1;
            let Some(entry) = self.read_entry(logical) else {
                break;
            };
            if entry.is_blank() {
                continue;
            }
            match entry.phys_end() {
                Some(end) if end <= commit_log_end => break,
                _ => cut = logical,
            }
        }
        if cut >= max {
            return Ok(false);
        }
        log::warn!(
            "ConsumeQueue {}-{}: cutting at logical offset {cut} (was up to {max}): entries point past the \
             CommitLog's end {commit_log_end}",
            self.topic,
            self.queue_id
        );
        self.cut_at(cut)?;
        Ok(true)
    }

    /// Retention: the CommitLog now starts at `commit_log_min`. Deletes the
    /// oldest files whose last real entry ends at or before it (never the last
    /// file; a file of only blank entries counts as expired), and moves the min
    /// offset to the first entry with `phys_offset >= commit_log_min`. Returns
    /// the number of files deleted.
    pub fn delete_expired(&self, commit_log_min: i64) -> Result<usize> {
        let _writer = self.lock_writer();
        let files = self.files_snapshot();
        let mut expired = 0;
        for file in files.iter().take(files.len().saturating_sub(1)) {
            match last_real_end_in(file) {
                Some(end) if end > commit_log_min => break,
                _ => expired += 1,
            }
        }
        let max = self.max_offset.load(Ordering::Acquire);
        let mut min = self.min_offset.load(Ordering::Acquire);
        if let Some(first_kept) = files.get(expired) {
            min = min.max(logical_at(first_kept.base(), 0));
        }
        min = self.first_at_or_after_phys(min.min(max), max, commit_log_min);
        // Raised before the files go, so readers stop asking for them.
        self.min_offset.fetch_max(min, Ordering::AcqRel);
        if expired == 0 {
            return Ok(0);
        }
        let removed: Vec<Arc<MappedFile<InPlace>>> = self.files_mut().drain(..expired).collect();
        for file in &removed {
            log::info!(
                "ConsumeQueue {}-{}: deleting expired {}",
                self.topic,
                self.queue_id,
                file.path().display()
            );
        }
        destroy_all(&removed)?;
        Ok(expired)
    }

    /// The smallest logical offset whose message was stored at or after
    /// `timestamp` (ms), by binary search over `min_offset..max_offset`.
    /// `store_time` maps `(phys_offset, size)` to the message's store time by
    /// reading the CommitLog. A message it cannot read (`None`, most likely
    /// deleted by retention at the old end) and a blank entry count as older than
    /// `timestamp`. If every message is older, returns `max_offset`; for an empty
    /// queue, `min_offset` (which then equals `max_offset`).
    pub fn offset_by_time(
        &self,
        timestamp: i64,
        store_time: impl Fn(i64, i32) -> Option<i64>,
    ) -> i64 {
        let low = self.min_offset();
        let high = self.max_offset().max(low);
        self.first_real_where(low, high, |entry| {
            store_time(entry.phys_offset, entry.size).is_some_and(|time| time >= timestamp)
        })
    }

    /// Flushes written entries (`MappedFile::flush` on files with unflushed
    /// bytes).
    pub fn flush(&self) -> Result<()> {
        for file in self.files_snapshot() {
            if file.flushed_position() < file.wrote_position() {
                file.flush()?;
            }
        }
        Ok(())
    }

    /// Deletes every file and the queue's directory (topic deletion). The queue
    /// is empty afterwards.
    pub fn destroy(&self) -> Result<()> {
        let _writer = self.lock_writer();
        let files: Vec<Arc<MappedFile<InPlace>>> = self.files_mut().drain(..).collect();
        self.max_offset.store(0, Ordering::Release);
        self.min_offset.store(0, Ordering::Release);
        self.store_max_phys_end(None);
        destroy_all(&files)?;
        remove_dir_all_if_exists(&self.dir)
    }

    /// Drops the entry at `logical` and everything after it (writer lock held;
    /// `logical` within the queue's files).
    fn cut_at(&self, logical: i64) -> Result<()> {
        let Some((file, pos)) = self.locate(logical) else {
            return Ok(());
        };
        // Lower the offsets first, so readers stop short of the bytes about to
        // change. A reader already copying an entry there may see it half
        // zeroed (word by word, atomically); the broker checks every record it
        // reads from the CommitLog.
        self.max_offset.fetch_min(logical, Ordering::AcqRel);
        self.min_offset.fetch_min(logical, Ordering::AcqRel);
        let later: Vec<Arc<MappedFile<InPlace>>> = {
            let mut files = self.files_mut();
            let keep = files
                .iter()
                .position(|f| Arc::ptr_eq(f, &file))
                .map_or(files.len(), |index| index + 1);
            files.drain(keep..).collect()
        };
        if pos < file.wrote_position() {
            file.set_positions(pos);
        }
        file.zero_from(pos)?;
        destroy_all(&later)?;
        self.store_max_phys_end(self.last_real_end());
        Ok(())
    }

    /// The entry at `logical` if it is written, whatever `min_offset` says.
    fn read_entry(&self, logical: i64) -> Option<CqEntry> {
        let (file, pos) = self.locate(logical)?;
        written_entry(&file, pos)
    }

    /// The file holding `logical` and the entry's position in it.
    fn locate(&self, logical: i64) -> Option<(Arc<MappedFile<InPlace>>, usize)> {
        let byte = self.byte_of(logical)?;
        let files = self.files();
        let first = files.first()?;
        let index =
            usize::try_from(byte.checked_sub(first.base())? / self.file_size as u64).ok()?;
        let file = files.get(index)?;
        let pos = usize::try_from(byte.checked_sub(file.base())?).ok()?;
        (pos < file.size()).then(|| (Arc::clone(file), pos))
    }

    /// The first logical offset in `low..high` whose entry is real and starts at
    /// or after `phys`; `high` if none. Entries are in physical order.
    fn first_at_or_after_phys(&self, low: i64, high: i64, phys: i64) -> i64 {
        self.first_real_where(low, high, |entry| entry.phys_offset >= phys)
    }

    /// Binary search for the first real entry in `low..high` satisfying `pred`,
    /// which must hold for every real entry after one it holds for; `high` if
    /// none does. A probe landing on a blank uses the next real entry, so blanks
    /// (which carry no order) cannot mislead it.
    fn first_real_where(&self, low: i64, high: i64, pred: impl Fn(&CqEntry) -> bool) -> i64 {
        let (mut lo, mut hi) = (low, high);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.next_real(mid, hi) {
                Some((at, entry)) if !pred(&entry) => lo = at + 1,
                // Holds here, or nothing real until `hi`, where it holds.
                _ => hi = mid,
            }
        }
        self.next_real(lo, high).map_or(high, |(at, _)| at)
    }

    /// The first real entry in `from..high`, with its logical offset.
    fn next_real(&self, from: i64, high: i64) -> Option<(i64, CqEntry)> {
        (from..high)
            .map_while(|at| Some((at, self.read_entry(at)?)))
            .find(|(_, entry)| !entry.is_blank())
    }

    /// End of the last real entry's record, walking back over blanks.
    fn last_real_end(&self) -> Option<i64> {
        self.files_snapshot()
            .iter()
            .rev()
            .find_map(|file| last_real_end_in(file))
    }

    /// Entries per file.
    fn entries_per_file(&self) -> i64 {
        // `file_size` is `entries_per_file × ENTRY_SIZE`, so this is at least 1
        // and, being a memory size, fits.
        i64::try_from(self.file_size / ENTRY_SIZE).expect("file size fits i64")
    }

    /// The logical offset at which the file holding `logical` starts.
    fn file_start_of(&self, logical: i64) -> i64 {
        logical - logical.rem_euclid(self.entries_per_file())
    }

    /// Byte position of `logical` within the queue; `None` if negative or too
    /// large.
    fn byte_of(&self, logical: i64) -> Option<u64> {
        u64::try_from(logical).ok()?.checked_mul(ENTRY_BYTES)
    }

    /// Publishes the end of the last real entry (`None`: there is none).
    fn store_max_phys_end(&self, end: Option<i64>) {
        self.max_phys_end
            .store(end.unwrap_or(NO_PHYS_END), Ordering::Release);
    }

    /// The error for an offset the caller should never have passed.
    fn invalid_input(&self, why: String) -> StoreError {
        StoreError::io(
            "write entry to",
            &self.dir,
            io::Error::new(io::ErrorKind::InvalidInput, why),
        )
    }

    /// Takes the writer mutex (see the field).
    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        // The guarded state is on disk and in atomics; a panic elsewhere leaves
        // nothing half-updated in the `()` itself.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn files(&self) -> RwLockReadGuard<'_, Vec<Arc<MappedFile<InPlace>>>> {
        // Only whole `Arc`s are pushed or removed under this lock, so a poisoned
        // list is still a consistent one.
        self.files.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn files_mut(&self) -> RwLockWriteGuard<'_, Vec<Arc<MappedFile<InPlace>>>> {
        self.files.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The files, cloned so I/O on them happens outside the lock.
    fn files_snapshot(&self) -> Vec<Arc<MappedFile<InPlace>>> {
        self.files().clone()
    }
}

/// Judges one stored entry during recovery (see [`ConsumeQueue::recover`]).
fn check_entry(
    entry: &CqEntry,
    bounds: LogBounds,
    prev_end: Option<i64>,
    blanks_allowed: bool,
) -> Scan {
    if *entry
        == (CqEntry {
            phys_offset: 0,
            size: 0,
            tag_code: 0,
        })
    {
        return Scan::Unwritten;
    }
    if entry.is_blank() {
        return if blanks_allowed {
            Scan::Blank
        } else {
            Scan::Invalid("blank entry after a real entry")
        };
    }
    if entry.size <= 0 {
        return Scan::Invalid("size is not positive");
    }
    if entry.size > bounds.max_record_size {
        return Scan::Invalid("size is larger than the largest record");
    }
    if entry.phys_offset < 0 {
        return Scan::Invalid("negative CommitLog offset");
    }
    let Some(end) = entry.phys_end().filter(|&end| end <= bounds.end_phys) else {
        return Scan::Invalid("points past the end of the CommitLog");
    };
    if prev_end.is_some_and(|prev| entry.phys_offset < prev) {
        return Scan::Invalid("overlaps or precedes the previous entry");
    }
    Scan::Real(end)
}

/// The entry at byte `pos` of `file`, if it lies below the write position.
fn written_entry(file: &MappedFile<InPlace>, pos: usize) -> Option<CqEntry> {
    if pos.checked_add(ENTRY_SIZE)? > file.wrote_position() {
        return None;
    }
    CqEntry::decode(&file.read_array::<ENTRY_SIZE>(pos)?)
}

/// Blank entries at the start of `file`, within its written bytes.
fn count_leading_blanks(file: &MappedFile<InPlace>) -> usize {
    let mut count = 0;
    while written_entry(file, count * ENTRY_SIZE).is_some_and(|entry| entry.is_blank()) {
        count += 1;
    }
    count
}

/// End of the last real entry written in `file`, walking back over blanks.
fn last_real_end_in(file: &MappedFile<InPlace>) -> Option<i64> {
    let mut pos = file.wrote_position() / ENTRY_SIZE * ENTRY_SIZE;
    while pos >= ENTRY_SIZE {
        pos -= ENTRY_SIZE;
        let entry = written_entry(file, pos)?;
        if !entry.is_blank() {
            return entry.phys_end();
        }
    }
    None
}

/// The logical offset of the entry at `pos` in the file starting at byte `base`.
fn logical_at(base: u64, pos: usize) -> i64 {
    // Bases are checked at load (and derived from valid offsets when created) so
    // that base + file size fits an i64.
    i64::try_from((base + pos as u64) / ENTRY_BYTES).expect("file bases fit i64")
}

/// Destroys every file, trying all of them; returns the first error.
fn destroy_all(files: &[Arc<MappedFile<InPlace>>]) -> Result<()> {
    let mut first_error = None;
    for file in files {
        if let Err(e) = file.destroy() {
            log::error!("{e}");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_dir_all_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("delete directory", dir, e)),
    }
}

/// Refuses a topic that would not name exactly one directory below
/// `consumequeue/` (the broker validates topics; this keeps a bad one from
/// creating or deleting files elsewhere).
fn check_path_component(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(StoreError::Config(format!(
            "topic {name:?} cannot name a ConsumeQueue directory"
        )));
    }
    Ok(())
}

/// All queues of the store: `<root>/consumequeue/<topic>/<queueId>/`.
pub struct ConsumeQueues {
    /// `<root>/consumequeue`.
    dir: PathBuf,
    /// For queues created after load.
    entries_per_file: usize,
    /// Topic → queue id → queue. Keyed by `String` so a `&str` lookup needs no
    /// allocation on the dispatch path.
    topics: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
}

impl std::fmt::Debug for ConsumeQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueues")
            .field("dir", &self.dir)
            .finish()
    }
}

impl ConsumeQueues {
    /// Loads every queue under `dir` (`<root>/consumequeue`): each directory is a
    /// topic, each directory in it a queue id. Names that are not a queue id (an
    /// `i32` written the canonical way) and stray files are logged and skipped.
    /// A missing `dir` gives no queues. Each queue still needs
    /// [`ConsumeQueue::recover`].
    pub fn load(dir: &Path, entries_per_file: usize) -> Result<Self> {
        // Checks the size once, even when there is no queue yet.
        ConsumeQueue::empty(dir, "", 0, entries_per_file)?;
        let mut topics: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::new();
        for (topic, topic_dir) in list_dirs(dir)? {
            if check_path_component(&topic).is_err() {
                log::warn!("ignoring stray directory {}", topic_dir.display());
                continue;
            }
            let mut queues = HashMap::new();
            for (name, queue_dir) in list_dirs(&topic_dir)? {
                // `i32::from_str` also takes "+1" or "01", which would not be the
                // directory this queue id maps to.
                match name.parse::<i32>() {
                    Ok(queue_id) if queue_id.to_string() == name => {
                        let queue =
                            ConsumeQueue::load(&queue_dir, &topic, queue_id, entries_per_file)?;
                        queues.insert(queue_id, Arc::new(queue));
                    }
                    _ => log::warn!("ignoring stray directory {}", queue_dir.display()),
                }
            }
            topics.insert(topic, queues);
        }
        Ok(ConsumeQueues {
            dir: dir.to_path_buf(),
            entries_per_file,
            topics: RwLock::new(topics),
        })
    }

    /// The queue, if it exists.
    pub fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.topics().get(topic)?.get(&queue_id).cloned()
    }

    /// The queue, created (empty, no files yet) if missing. Allocates only when
    /// the queue is new.
    pub fn get_or_create(&self, topic: &str, queue_id: i32) -> Arc<ConsumeQueue> {
        if let Some(queue) = self.get(topic, queue_id) {
            return queue;
        }
        let mut topics = self.topics_mut();
        let queues = topics.entry(topic.to_owned()).or_default();
        let queue = queues.entry(queue_id).or_insert_with(|| {
            let dir = self.dir.join(topic).join(queue_id.to_string());
            let queue = ConsumeQueue::empty(&dir, topic, queue_id, self.entries_per_file)
                .expect("entries_per_file was checked by load");
            Arc::new(queue)
        });
        Arc::clone(queue)
    }

    /// Every queue (a snapshot).
    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.topics()
            .values()
            .flat_map(|queues| queues.values().cloned())
            .collect()
    }

    /// Queue ids of one topic, ascending.
    pub fn queue_ids(&self, topic: &str) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .topics()
            .get(topic)
            .map(|queues| queues.keys().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Destroys every queue of `topic`, its directory, and forgets it.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        check_path_component(topic)?;
        let queues = self.topics_mut().remove(topic);
        let mut first_error = None;
        for queue in queues.into_iter().flat_map(|queues| queues.into_values()) {
            if let Err(e) = queue.destroy() {
                log::error!("deleting topic {topic}: {e}");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        remove_dir_all_if_exists(&self.dir.join(topic))
    }

    fn topics(&self) -> RwLockReadGuard<'_, HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>> {
        // Inserts and removes are single map operations; a poisoned map is whole.
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn topics_mut(&self) -> RwLockWriteGuard<'_, HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The subdirectories of `dir` with UTF-8 names, warning about anything else.
/// A missing `dir` has none.
fn list_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| StoreError::io("stat", &path, e))?
            .is_dir();
        match entry.file_name().into_string() {
            Ok(name) if is_dir => out.push((name, path)),
            _ => log::warn!("ignoring stray entry {}", path.display()),
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    /// Entries per file in these tests: small, so files roll over often.
    const PER_FILE: usize = 4;
    /// Every test message's size.
    const SIZE: i32 = 100;

    fn bounds(end_phys: i64) -> LogBounds {
        LogBounds {
            min_phys: 0,
            end_phys,
            max_record_size: 4 * 1024 * 1024,
        }
    }

    /// The entry of the `n`th message when messages of SIZE bytes are back to back.
    fn entry(n: i64) -> CqEntry {
        CqEntry {
            phys_offset: n * i64::from(SIZE),
            size: SIZE,
            tag_code: n * 7,
        }
    }

    fn queue_dir(root: &TempDir) -> PathBuf {
        root.path().join("consumequeue").join("T").join("0")
    }

    fn open(root: &TempDir) -> ConsumeQueue {
        ConsumeQueue::load(&queue_dir(root), "T", 0, PER_FILE).unwrap()
    }

    /// A queue holding entries 0..n.
    fn filled(root: &TempDir, n: i64) -> ConsumeQueue {
        let queue = open(root);
        for i in 0..n {
            assert_eq!(queue.put(i, entry(i)).unwrap(), PutOutcome::Appended);
        }
        queue
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Overwrites `bytes` at byte `pos` of the queue (across files) with std::fs.
    fn write_raw(root: &TempDir, pos: u64, bytes: &[u8]) {
        let size = (PER_FILE * ENTRY_SIZE) as u64;
        let path = queue_dir(root).join(offset_file_name(pos / size * size));
        let mut data = std::fs::read(&path).unwrap();
        let at = (pos % size) as usize;
        data[at..at + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&path, data).unwrap();
    }

    fn reload(root: &TempDir, end_phys: i64) -> (ConsumeQueue, RecoverReport) {
        let queue = open(root);
        let report = queue.recover(bounds(end_phys)).unwrap();
        (queue, report)
    }

    #[test]
    fn queues_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ConsumeQueue>();
        check::<ConsumeQueues>();
    }

    #[test]
    fn entry_round_trips_through_its_twenty_bytes() {
        let e = CqEntry {
            phys_offset: 0x0102030405060708,
            size: 0x0a0b0c0d,
            tag_code: -2,
        };
        let bytes = e.encode();
        assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[8..12], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(CqEntry::decode(&bytes), Some(e));
        assert_eq!(CqEntry::decode(&bytes[..19]), None);
        assert!(CqEntry::BLANK.is_blank());
    }

    #[test]
    fn put_and_get_work_across_file_boundaries() {
        let root = TempDir::new("cq_put_get");
        let queue = filled(&root, 10);
        assert_eq!(
            file_names(&queue_dir(&root)),
            [
                "00000000000000000000",
                "00000000000000000080",
                "00000000000000000160"
            ]
        );
        for i in 0..10 {
            assert_eq!(queue.get(i), Some(entry(i)), "offset {i}");
        }
        assert_eq!(queue.get(10), None);
        assert_eq!(queue.get(-1), None);
        assert_eq!(queue.min_offset(), 0);
        assert_eq!(queue.max_offset(), 10);
        assert_eq!(queue.max_phys_end(), Some(10 * i64::from(SIZE)));
    }

    #[test]
    fn empty_queue_has_no_entries_and_no_files() {
        let root = TempDir::new("cq_empty");
        let queue = open(&root);
        assert_eq!((queue.min_offset(), queue.max_offset()), (0, 0));
        assert_eq!(queue.max_phys_end(), None);
        assert_eq!(queue.get(0), None);
        assert!(queue.entries_from(0, 10).is_empty());
        assert!(!queue_dir(&root).exists());
        assert_eq!(queue.recover(bounds(0)).unwrap().max_phys_end, None);
    }

    #[test]
    fn entries_from_stops_at_a_file_end_and_at_max() {
        let root = TempDir::new("cq_entries_from");
        let queue = filled(&root, 10);
        let got = queue.entries_from(1, 100);
        assert_eq!(got, vec![(1, entry(1)), (2, entry(2)), (3, entry(3))]);
        assert_eq!(queue.entries_from(4, 2), vec![(4, entry(4)), (5, entry(5))]);
        assert_eq!(
            queue.entries_from(8, 100),
            vec![(8, entry(8)), (9, entry(9))]
        );
        assert!(queue.entries_from(10, 100).is_empty());
        assert!(queue.entries_from(-1, 100).is_empty());
        assert!(queue.entries_from(0, 0).is_empty());
    }

    #[test]
    fn reload_from_disk_keeps_entries() {
        let root = TempDir::new("cq_reload");
        let queue = filled(&root, 6);
        queue.flush().unwrap();
        drop(queue);
        let (queue, report) = reload(&root, 6 * i64::from(SIZE));
        assert_eq!(
            report,
            RecoverReport {
                truncated: false,
                max_phys_end: Some(600)
            }
        );
        assert_eq!((queue.min_offset(), queue.max_offset()), (0, 6));
        for i in 0..6 {
            assert_eq!(queue.get(i), Some(entry(i)));
        }
        assert_eq!(queue.put(6, entry(6)).unwrap(), PutOutcome::Appended);
        assert_eq!(queue.get(6), Some(entry(6)));
    }

    #[test]
    fn recover_drops_an_empty_last_file() {
        let root = TempDir::new("cq_empty_last");
        let queue = filled(&root, 4);
        drop(queue);
        // A file created just before a crash, never written.
        std::fs::write(
            queue_dir(&root).join(offset_file_name(80)),
            vec![0u8; PER_FILE * ENTRY_SIZE],
        )
        .unwrap();
        let (queue, report) = reload(&root, 400);
        assert!(!report.truncated);
        assert_eq!(queue.max_offset(), 4);
        assert_eq!(file_names(&queue_dir(&root)), ["00000000000000000000"]);
        assert_eq!(queue.put(4, entry(4)).unwrap(), PutOutcome::Appended);
        assert_eq!(queue.get(4), Some(entry(4)));
    }

    #[test]
    fn put_of_an_identical_existing_entry_is_already_present() {
        let root = TempDir::new("cq_present");
        let queue = filled(&root, 6);
        assert_eq!(queue.put(2, entry(2)).unwrap(), PutOutcome::AlreadyPresent);
        assert_eq!(queue.put(5, entry(5)).unwrap(), PutOutcome::AlreadyPresent);
        assert_eq!(queue.max_offset(), 6);
    }

    #[test]
    fn put_of_a_different_entry_repairs_and_cuts_later_entries() {
        let root = TempDir::new("cq_repair");
        let queue = filled(&root, 10);
        let other = CqEntry {
            phys_offset: 300,
            size: 50,
            tag_code: 1,
        };
        assert_eq!(queue.put(3, other).unwrap(), PutOutcome::Repaired);
        assert_eq!(queue.max_offset(), 4);
        assert_eq!(queue.get(3), Some(other));
        assert_eq!(queue.get(2), Some(entry(2)));
        assert_eq!(queue.get(4), None);
        assert_eq!(queue.max_phys_end(), Some(350));
        assert_eq!(file_names(&queue_dir(&root)), ["00000000000000000000"]);
        // The queue continues from the repaired entry, on disk too.
        assert_eq!(queue.put(4, entry(4)).unwrap(), PutOutcome::Appended);
        drop(queue);
        let (queue, report) = reload(&root, 1000);
        assert!(!report.truncated);
        assert_eq!(queue.max_offset(), 5);
        assert_eq!(queue.get(3), Some(other));
    }

    #[test]
    fn first_put_mid_way_prefills_blanks_and_sets_min_offset() {
        let root = TempDir::new("cq_midway");
        let queue = open(&root);
        assert_eq!(queue.put(10, entry(10)).unwrap(), PutOutcome::Appended);
        // 10 × 20 = 200 bytes, rounded down to the 80-byte file size: 160.
        assert_eq!(file_names(&queue_dir(&root)), ["00000000000000000160"]);
        assert_eq!((queue.min_offset(), queue.max_offset()), (10, 11));
        assert_eq!(queue.get(8), None);
        assert_eq!(queue.get(9), None);
        assert_eq!(queue.get(10), Some(entry(10)));
        assert_eq!(queue.entries_from(10, 10), vec![(10, entry(10))]);
        assert_eq!(queue.read_entry(8), Some(CqEntry::BLANK));
        drop(queue);
        let (queue, report) = reload(&root, 1100);
        assert!(!report.truncated);
        assert_eq!((queue.min_offset(), queue.max_offset()), (10, 11));
        assert_eq!(queue.get(10), Some(entry(10)));
    }

    #[test]
    fn a_gap_is_filled_with_blank_entries() {
        let root = TempDir::new("cq_gap");
        let queue = filled(&root, 3);
        assert_eq!(queue.put(9, entry(9)).unwrap(), PutOutcome::Appended);
        assert_eq!(queue.max_offset(), 10);
        for i in 3..9 {
            assert_eq!(queue.get(i), None);
        }
        assert_eq!(queue.get(9), Some(entry(9)));
        // Blanks are skipped, and reading goes on past a file of only blanks.
        assert_eq!(queue.entries_from(2, 10), vec![(2, entry(2))]);
        assert_eq!(queue.entries_from(3, 10), vec![(9, entry(9))]);
        // A gap of many files is a damaged offset, not something to fill.
        assert!(queue.put(1000, entry(10)).is_err());
        assert_eq!(queue.max_offset(), 10);
    }

    #[test]
    fn recover_keeps_all_valid_entries() {
        let root = TempDir::new("cq_recover_valid");
        drop(filled(&root, 11));
        let (queue, report) = reload(&root, 1100);
        assert_eq!(
            report,
            RecoverReport {
                truncated: false,
                max_phys_end: Some(1100)
            }
        );
        assert_eq!(queue.max_offset(), 11);
        assert_eq!(queue.entries_from(8, 10).len(), 3);
    }

    #[test]
    fn recover_cuts_an_entry_pointing_past_the_commit_log_end() {
        let root = TempDir::new("cq_recover_past_end");
        drop(filled(&root, 7));
        // The CommitLog's valid data ends inside message 5.
        let (queue, report) = reload(&root, 550);
        assert!(report.truncated);
        assert_eq!(report.max_phys_end, Some(500));
        assert_eq!(queue.max_offset(), 5);
        assert_eq!(queue.get(4), Some(entry(4)));
        assert_eq!(queue.get(5), None);
        assert_eq!(
            file_names(&queue_dir(&root)),
            ["00000000000000000000", "00000000000000000080"]
        );
        // The cut bytes are zeroed, so a later recovery sees unwritten space.
        drop(queue);
        let (queue, report) = reload(&root, 10_000);
        assert!(!report.truncated);
        assert_eq!(queue.max_offset(), 5);
    }

    #[test]
    fn recover_cuts_a_non_increasing_entry() {
        let root = TempDir::new("cq_recover_backwards");
        let queue = filled(&root, 6);
        // Entry 6 starts inside entry 5's record.
        queue
            .put(
                6,
                CqEntry {
                    phys_offset: 550,
                    size: SIZE,
                    tag_code: 0,
                },
            )
            .unwrap();
        queue.put(7, entry(8)).unwrap();
        drop(queue);
        let (queue, report) = reload(&root, 10_000);
        assert!(report.truncated);
        assert_eq!(queue.max_offset(), 6);
        assert_eq!(queue.max_phys_end(), Some(600));
    }

    #[test]
    fn recover_cuts_an_entry_with_a_flipped_byte() {
        let root = TempDir::new("cq_recover_flip");
        drop(filled(&root, 7));
        // The high byte of entry 5's size.
        write_raw(&root, 5 * ENTRY_BYTES + 8, &[0x40]);
        let (queue, report) = reload(&root, 700);
        assert!(report.truncated);
        assert_eq!(queue.max_offset(), 5);
        assert_eq!(queue.get(4), Some(entry(4)));
        assert_eq!(queue.get(5), None);
    }

    #[test]
    fn recover_steps_back_over_a_last_file_with_no_valid_entry() {
        let root = TempDir::new("cq_recover_step_back");
        drop(filled(&root, 9));
        // Entry 8, the only one in the last file, is garbage.
        write_raw(&root, 8 * ENTRY_BYTES, &[0xff; ENTRY_SIZE]);
        let (queue, report) = reload(&root, 900);
        assert!(report.truncated);
        assert_eq!(queue.max_offset(), 8);
        assert_eq!(queue.get(7), Some(entry(7)));
        assert_eq!(
            file_names(&queue_dir(&root)),
            ["00000000000000000000", "00000000000000000080"]
        );
    }

    #[test]
    fn recover_rejects_a_blank_after_a_real_entry() {
        let root = TempDir::new("cq_recover_blank");
        drop(filled(&root, 3));
        write_raw(&root, 2 * ENTRY_BYTES, &CqEntry::BLANK.encode());
        let (queue, report) = reload(&root, 300);
        assert!(report.truncated);
        assert_eq!(queue.max_offset(), 2);
    }

    #[test]
    fn recover_moves_min_offset_past_entries_below_the_commit_log_start() {
        let root = TempDir::new("cq_recover_min_phys");
        drop(filled(&root, 6));
        let queue = open(&root);
        let report = queue
            .recover(LogBounds {
                min_phys: 250,
                ..bounds(600)
            })
            .unwrap();
        assert!(!report.truncated);
        assert_eq!((queue.min_offset(), queue.max_offset()), (3, 6));
    }

    #[test]
    fn load_deletes_a_file_larger_than_configured_and_every_later_one() {
        let root = TempDir::new("cq_load_large");
        drop(filled(&root, 10));
        let second = queue_dir(&root).join(offset_file_name(80));
        std::fs::write(&second, vec![1u8; 2 * PER_FILE * ENTRY_SIZE]).unwrap();
        let (queue, _) = reload(&root, 1000);
        assert_eq!(file_names(&queue_dir(&root)), ["00000000000000000000"]);
        assert_eq!(queue.max_offset(), 4);
    }

    #[test]
    fn truncate_dirty_drops_entries_past_the_commit_log_end() {
        let root = TempDir::new("cq_dirty");
        let queue = filled(&root, 10);
        assert!(!queue.truncate_dirty(1000).unwrap());
        assert_eq!(queue.max_offset(), 10);
        assert!(queue.truncate_dirty(450).unwrap());
        assert_eq!(queue.max_offset(), 4);
        assert_eq!(queue.max_phys_end(), Some(400));
        assert_eq!(queue.get(3), Some(entry(3)));
        assert_eq!(queue.get(4), None);
        assert!(queue.truncate_dirty(0).unwrap());
        assert_eq!((queue.min_offset(), queue.max_offset()), (0, 0));
        assert_eq!(queue.max_phys_end(), None);
        assert_eq!(queue.put(0, entry(0)).unwrap(), PutOutcome::Appended);
    }

    #[test]
    fn delete_expired_deletes_old_files_and_advances_min_offset() {
        let root = TempDir::new("cq_expired");
        let queue = filled(&root, 10);
        // Messages 0..5 are gone: the first file (0..4) ends at 400 <= 500.
        assert_eq!(queue.delete_expired(500).unwrap(), 1);
        assert_eq!(queue.min_offset(), 5);
        assert_eq!(queue.max_offset(), 10);
        assert_eq!(queue.get(4), None);
        assert_eq!(queue.get(5), Some(entry(5)));
        assert_eq!(
            file_names(&queue_dir(&root)),
            ["00000000000000000080", "00000000000000000160"]
        );
        // Never the last file, even when everything is gone.
        assert_eq!(queue.delete_expired(5000).unwrap(), 1);
        assert_eq!(file_names(&queue_dir(&root)), ["00000000000000000160"]);
        assert_eq!((queue.min_offset(), queue.max_offset()), (10, 10));
        assert!(queue.entries_from(9, 10).is_empty());
        assert_eq!(queue.put(10, entry(10)).unwrap(), PutOutcome::Appended);
        assert_eq!(queue.get(10), Some(entry(10)));
    }

    #[test]
    fn offset_by_time_finds_the_first_message_at_or_after_a_time() {
        let root = TempDir::new("cq_by_time");
        let queue = open(&root);
        // Empty queue.
        assert_eq!(queue.offset_by_time(5, |_, _| Some(0)), 0);
        for i in 0..10 {
            queue.put(i, entry(i)).unwrap();
        }
        // Message n was stored at 1000 + 10n.
        let time = |phys: i64, _size: i32| Some(1000 + phys / i64::from(SIZE) * 10);
        assert_eq!(queue.offset_by_time(1050, time), 5, "exact hit");
        assert_eq!(queue.offset_by_time(1045, time), 5, "between two");
        assert_eq!(queue.offset_by_time(0, time), 0, "before all");
        assert_eq!(queue.offset_by_time(5000, time), 10, "after all");
        // Messages whose record cannot be read count as older.
        let gone_below_3 = |phys: i64, size: i32| if phys < 300 { None } else { time(phys, size) };
        assert_eq!(queue.offset_by_time(0, gone_below_3), 3);
    }

    #[test]
    fn consume_queues_load_skips_stray_directories() {
        let root = TempDir::new("cq_all_load");
        let cq_root = root.path().join("consumequeue");
        {
            let queues = ConsumeQueues::load(&cq_root, PER_FILE).unwrap();
            let queue = queues.get_or_create("A", 1);
            assert!(Arc::ptr_eq(&queue, &queues.get_or_create("A", 1)));
            queue.put(0, entry(0)).unwrap();
            queues.get_or_create("B", 0).put(0, entry(1)).unwrap();
            queues.get_or_create("A", 3).put(0, entry(2)).unwrap();
        }
        std::fs::create_dir_all(cq_root.join("A").join("nope")).unwrap();
        std::fs::create_dir_all(cq_root.join("A").join("+2")).unwrap();
        std::fs::write(cq_root.join("A").join("7"), b"a file").unwrap();
        std::fs::write(cq_root.join("stray"), b"a file").unwrap();

        let queues = ConsumeQueues::load(&cq_root, PER_FILE).unwrap();
        for queue in queues.all() {
            queue.recover(bounds(1000)).unwrap();
        }
        assert_eq!(queues.queue_ids("A"), [1, 3]);
        assert_eq!(queues.queue_ids("B"), [0]);
        assert!(queues.queue_ids("C").is_empty());
        assert_eq!(queues.all().len(), 3);
        let queue = queues.get("A", 1).unwrap();
        assert_eq!((queue.topic(), queue.queue_id()), ("A", 1));
        assert_eq!(queue.get(0), Some(entry(0)));
        assert_eq!(queues.get("B", 0).unwrap().get(0), Some(entry(1)));
        assert!(queues.get("A", 2).is_none());
    }

    #[test]
    fn delete_topic_removes_its_queues_and_directory() {
        let root = TempDir::new("cq_delete_topic");
        let cq_root = root.path().join("consumequeue");
        let queues = ConsumeQueues::load(&cq_root, PER_FILE).unwrap();
        queues.get_or_create("A", 0).put(0, entry(0)).unwrap();
        queues.get_or_create("A", 1).put(0, entry(1)).unwrap();
        queues.get_or_create("B", 0).put(0, entry(2)).unwrap();
        queues.delete_topic("A").unwrap();
        assert!(queues.get("A", 0).is_none());
        assert!(queues.queue_ids("A").is_empty());
        assert!(!cq_root.join("A").exists());
        assert_eq!(queues.get("B", 0).unwrap().get(0), Some(entry(2)));
        assert!(queues.delete_topic("..").is_err());
        // The topic can be used again from scratch.
        let queue = queues.get_or_create("A", 0);
        assert_eq!(queue.max_offset(), 0);
        assert_eq!(queue.put(0, entry(5)).unwrap(), PutOutcome::Appended);
    }
}
