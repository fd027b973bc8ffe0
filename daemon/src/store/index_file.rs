//! The key index: RocketMQ's IndexFile, byte for byte, and the service that
//! keeps every IndexFile of one directory (`<store root>/index/`).
//!
//! The index maps `topic#key` (the UNIQ_KEY and each word of KEYS) to the
//! CommitLog offsets of the messages carrying it, for QUERY_MESSAGE. It is
//! derived data: anything that looks wrong on disk is dropped, never trusted,
//! and re-indexing from the CommitLog brings it back.
//!
//! Layout of one file (all big-endian):
//!
//! | Offset                         | Width              | Field                          |
//! |--------------------------------|--------------------|--------------------------------|
//! | 0                              | 8                  | beginTimestamp (first entry)   |
//! | 8                              | 8                  | endTimestamp (last entry)      |
//! | 16                             | 8                  | beginPhyOffset                 |
//! | 24                             | 8                  | endPhyOffset                   |
//! | 32                             | 4                  | hashSlotCount (slots used)     |
//! | 36                             | 4                  | indexCount (next entry, from 1)|
//! | 40                             | `hash_slots` × 4   | slots                          |
//! | 40 + `hash_slots` × 4          | `max_entries` × 20 | entries                        |
//!
//! Slot: i32 index of the newest entry whose key hash falls in the bucket
//! (0 = empty). Entry 0 is never used, so 0 can mean "none".
//!
//! | Entry offset | Width | Field                                             |
//! |--------------|-------|---------------------------------------------------|
//! | 0            | 4     | keyHash: `abs(javaHash(topic#key))`, 0 for MIN    |
//! | 4            | 8     | phyOffset: the message's CommitLog offset         |
//! | 12           | 4     | timeDiff: seconds since beginTimestamp, >= 0      |
//! | 16           | 4     | prevIndex: older entry in the same slot, 0 = end  |
//!
//! Files are named by their creation time, `yyyyMMddHHmmssSSS`, so that name
//! order is age order.
//!
//! Concurrency: one writer (`put`, `truncate_from`, `delete_before`, serialised
//! by a mutex) and any number of readers. The header fields live in atomics as
//! well as in the file, so readers never parse a half-written header. Slots and
//! entries change in place while queries read them, so the files are
//! [`InPlace`] files: every slot and every 4-byte part of an entry is an atomic
//! word (all fields are 4-aligned: the header is 40 bytes, slots 4, entries 20,
//! so the 8-byte phyOffset is read as two words). A word is never torn; an
//! entry may be seen half written only if the reader got past `index_count`,
//! which it does not, and every index read from a slot or an entry is
//! bounds-checked before use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use mq_protocol::properties::java_string_hash;

use super::error::{Result, StoreError};
use super::mapped_file::{InPlace, MappedFile};
use mq_protocol::time::{now_ms, DateTime};

/// Bytes of the file header.
const HEADER_SIZE: usize = 40;
/// Bytes of one slot.
const SLOT_SIZE: usize = 4;
/// Bytes of one entry.
const ENTRY_SIZE: usize = 20;
/// Length of a file name: `yyyyMMddHHmmssSSS`.
const NAME_LEN: usize = 17;
/// Header field offsets.
const BEGIN_TIMESTAMP_AT: usize = 0;
const END_TIMESTAMP_AT: usize = 8;
const BEGIN_PHY_OFFSET_AT: usize = 16;
const END_PHY_OFFSET_AT: usize = 24;
const HASH_SLOT_COUNT_AT: usize = 32;
const INDEX_COUNT_AT: usize = 36;
/// Lossless widening; mq only builds for targets where `usize` is >= 32 bits.
fn to_usize(v: u32) -> usize {
    usize::try_from(v).expect("usize is at least 32 bits")
}

/// `abs(javaHash(topic#key))` as RocketMQ computes it: `Math.abs` of
/// `Integer.MIN_VALUE` stays negative there and is then replaced by 0.
fn key_hash(topic: &str, key: &str) -> i32 {
    java_string_hash(&format!("{topic}#{key}"))
        .checked_abs()
        .unwrap_or(0)
}

/// The file name for a creation time in ms since the epoch:
/// `yyyyMMddHHmmssSSS`.
///
/// RocketMQ formats this in the broker's local time zone. mq uses UTC: names
/// must sort in creation order for `load`, and local time goes backwards once
/// a year when daylight saving time ends (or when the zone is changed), which
/// would load a newer file before an older one. UTC also needs no time-zone
/// database. Nothing reads meaning from the name beyond its order.
pub fn index_file_name(ms: i64) -> String {
    let t = DateTime::from_ms(ms);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.milli
    )
}

/// Parses a name made by [`index_file_name`] back into ms since the epoch;
/// `None` if it is not 17 digits or not a valid date and time.
fn parse_index_file_name(name: &str) -> Option<i64> {
    if name.len() != NAME_LEN || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| name.get(range)?.parse::<i64>().ok();
    DateTime {
        year: field(0..4)?,
        month: field(4..6)?,
        day: field(6..8)?,
        hour: field(8..10)?,
        minute: field(10..12)?,
        second: field(12..14)?,
        milli: field(14..17)?,
    }
    .to_ms()
}

/// Whether `name` has the shape of an index file name (17 digits).
fn is_index_file_name(name: &str) -> bool {
    name.len() == NAME_LEN && name.bytes().all(|b| b.is_ascii_digit())
}

/// One IndexFile: the mapping plus its header, mirrored in atomics.
///
/// The atomics are the source of truth while running; the header bytes in the
/// file are written alongside them for the next start. `index_count` is
/// stored last (Release) by the writer and loaded first (Acquire) by readers,
/// so every entry below the count a reader sees is fully written.
struct IndexFile {
    /// The file itself; writes are in place, its write position is unused.
    mapped: Arc<MappedFile<InPlace>>,
    /// The file name (creation time), kept to order new files after it.
    name: String,
    /// Number of slots, fixed per store configuration.
    hash_slots: u32,
    /// Number of entries including the unused entry 0.
    max_entries: u32,
    /// Store time of the first entry (0 while empty).
    begin_timestamp: AtomicI64,
    /// Store time of the newest entry.
    end_timestamp: AtomicI64,
    /// CommitLog offset of the first entry.
    begin_phy_offset: AtomicI64,
    /// CommitLog offset of the newest entry.
    end_phy_offset: AtomicI64,
    /// Slots in use; informational (RocketMQ keeps it), never used to navigate.
    hash_slot_count: AtomicU32,
    /// Index of the next entry to write; 1 means empty.
    index_count: AtomicU32,
    /// Set before each write, cleared by `flush`, so only changed files are synced.
    dirty: AtomicBool,
}

/// One header as read from disk, before validation.
struct Header {
    begin_timestamp: i64,
    end_timestamp: i64,
    begin_phy_offset: i64,
    end_phy_offset: i64,
    hash_slot_count: i32,
    index_count: i32,
}

impl Header {
    fn read(mapped: &MappedFile<InPlace>) -> Option<Header> {
        Some(Header {
            begin_timestamp: mapped.read_i64(BEGIN_TIMESTAMP_AT)?,
            end_timestamp: mapped.read_i64(END_TIMESTAMP_AT)?,
            begin_phy_offset: mapped.read_i64(BEGIN_PHY_OFFSET_AT)?,
            end_phy_offset: mapped.read_i64(END_PHY_OFFSET_AT)?,
            hash_slot_count: mapped.read_i32(HASH_SLOT_COUNT_AT)?,
            index_count: mapped.read_i32(INDEX_COUNT_AT)?,
        })
    }

    fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[BEGIN_TIMESTAMP_AT..][..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        out[END_TIMESTAMP_AT..][..8].copy_from_slice(&self.end_timestamp.to_be_bytes());
        out[BEGIN_PHY_OFFSET_AT..][..8].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        out[END_PHY_OFFSET_AT..][..8].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        out[HASH_SLOT_COUNT_AT..][..4].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        out[INDEX_COUNT_AT..][..4].copy_from_slice(&self.index_count.to_be_bytes());
        out
    }
}

/// Size in bytes of a file with these numbers, `None` if it overflows.
pub(crate) fn file_size(hash_slots: u32, max_entries: u32) -> Option<usize> {
    let slots = to_usize(hash_slots).checked_mul(SLOT_SIZE)?;
    let entries = to_usize(max_entries).checked_mul(ENTRY_SIZE)?;
    HEADER_SIZE.checked_add(slots)?.checked_add(entries)
}

impl IndexFile {
    /// Creates an empty file and writes its header (indexCount 1).
    fn create(
        path: &Path,
        name: String,
        hash_slots: u32,
        max_entries: u32,
        size: usize,
    ) -> Result<IndexFile> {
        let mapped = MappedFile::<InPlace>::create(path, 0, size)?;
        // Writes are in place; mark the whole file as written so the
        // MappedFile's own bookkeeping (is_full, flush positions) is not misled.
        mapped.set_wrote_position(size);
        let file = IndexFile {
            mapped: Arc::new(mapped),
            name,
            hash_slots,
            max_entries,
            begin_timestamp: AtomicI64::new(0),
            end_timestamp: AtomicI64::new(0),
            begin_phy_offset: AtomicI64::new(0),
            end_phy_offset: AtomicI64::new(0),
            hash_slot_count: AtomicU32::new(0),
            index_count: AtomicU32::new(1),
            dirty: AtomicBool::new(true),
        };
        // RocketMQ leaves the header zero until the first put; writing it now
        // means a file that survives with no entries still loads as valid.
        file.write_header();
        Ok(file)
    }

    /// Validates the header of a mapped existing file. `Err` holds the reason
    /// the file cannot be used.
    fn from_mapped(
        mapped: MappedFile<InPlace>,
        name: String,
        hash_slots: u32,
        max_entries: u32,
    ) -> std::result::Result<IndexFile, (MappedFile<InPlace>, String)> {
        let header = match Header::read(&mapped) {
            Some(h) => h,
            None => return Err((mapped, "file shorter than its header".into())),
        };
        let index_count = match u32::try_from(header.index_count) {
            Ok(n) if (1..=max_entries).contains(&n) => n,
            _ => {
                let why = format!(
                    "indexCount {} outside 1..={max_entries}",
                    header.index_count
                );
                return Err((mapped, why));
            }
        };
        // Every slot that went from empty to used did so with a new entry.
        let slot_limit = hash_slots.min(index_count - 1);
        let hash_slot_count = match u32::try_from(header.hash_slot_count) {
            Ok(n) if n <= slot_limit => n,
            _ => {
                let why = format!(
                    "hashSlotCount {} outside 0..={slot_limit}",
                    header.hash_slot_count
                );
                return Err((mapped, why));
            }
        };
        if index_count > 1
            && (header.begin_phy_offset < 0 || header.begin_phy_offset > header.end_phy_offset)
        {
            let why = format!(
                "phyOffset range {}..{} is not a range of log offsets",
                header.begin_phy_offset, header.end_phy_offset
            );
            return Err((mapped, why));
        }
        Ok(IndexFile {
            mapped: Arc::new(mapped),
            name,
            hash_slots,
            max_entries,
            begin_timestamp: AtomicI64::new(header.begin_timestamp),
            end_timestamp: AtomicI64::new(header.end_timestamp),
            begin_phy_offset: AtomicI64::new(header.begin_phy_offset),
            end_phy_offset: AtomicI64::new(header.end_phy_offset),
            hash_slot_count: AtomicU32::new(hash_slot_count),
            index_count: AtomicU32::new(index_count),
            dirty: AtomicBool::new(false),
        })
    }

    fn path(&self) -> &Path {
        self.mapped.path()
    }

    fn index_count(&self) -> u32 {
        self.index_count.load(Ordering::Acquire)
    }

    fn has_entries(&self) -> bool {
        self.index_count() > 1
    }

    fn is_full(&self) -> bool {
        self.index_count() >= self.max_entries
    }

    fn begin_phy_offset(&self) -> i64 {
        self.begin_phy_offset.load(Ordering::Acquire)
    }

    fn end_phy_offset(&self) -> i64 {
        self.end_phy_offset.load(Ordering::Acquire)
    }

    fn end_timestamp(&self) -> i64 {
        self.end_timestamp.load(Ordering::Acquire)
    }

    fn slot_position(&self, hash: i32) -> usize {
        HEADER_SIZE + to_usize(hash.unsigned_abs() % self.hash_slots) * SLOT_SIZE
    }

    /// Position of entry `index`, which the caller has checked is < max_entries.
    fn entry_position(&self, index: u32) -> usize {
        HEADER_SIZE + to_usize(self.hash_slots) * SLOT_SIZE + to_usize(index) * ENTRY_SIZE
    }

    /// Writes the atomics' current values to the header bytes.
    fn write_header(&self) {
        let header = Header {
            begin_timestamp: self.begin_timestamp.load(Ordering::Relaxed),
            end_timestamp: self.end_timestamp.load(Ordering::Relaxed),
            begin_phy_offset: self.begin_phy_offset.load(Ordering::Relaxed),
            end_phy_offset: self.end_phy_offset.load(Ordering::Relaxed),
            hash_slot_count: i32::try_from(self.hash_slot_count.load(Ordering::Relaxed))
                .expect("hash slot count <= hash_slots <= i32::MAX"),
            index_count: i32::try_from(self.index_count.load(Ordering::Relaxed))
                .expect("index count <= max_entries <= i32::MAX"),
        };
        self.mapped.write_at(0, &header.encode());
    }

    /// Appends one entry. The caller is the single writer and has checked that
    /// the file is not full.
    fn put_key(&self, hash: i32, phys_offset: i64, store_timestamp: i64) {
        let count = self.index_count.load(Ordering::Relaxed);
        debug_assert!(count >= 1 && count < self.max_entries);
        // Set before touching the bytes, so a flush that sees this entry's
        // header values (Acquire) also sees the file as dirty.
        self.dirty.store(true, Ordering::Release);

        let slot_pos = self.slot_position(hash);
        let prev = match self.mapped.read_i32(slot_pos).map(u32::try_from) {
            // Anything but an existing entry is treated as an empty slot, as
            // RocketMQ does, so a damaged slot cannot link the chain astray.
            Some(Ok(v)) if v >= 1 && v < count => v,
            _ => 0,
        };
        let first = count == 1;
        let begin_timestamp = if first {
            store_timestamp
        } else {
            self.begin_timestamp.load(Ordering::Relaxed)
        };
        let seconds = store_timestamp.saturating_sub(begin_timestamp) / 1000;
        let time_diff = i32::try_from(seconds.max(0)).unwrap_or(i32::MAX);

        let mut entry = [0u8; ENTRY_SIZE];
        entry[0..4].copy_from_slice(&hash.to_be_bytes());
        entry[4..12].copy_from_slice(&phys_offset.to_be_bytes());
        entry[12..16].copy_from_slice(&time_diff.to_be_bytes());
        entry[16..20].copy_from_slice(
            &i32::try_from(prev)
                .expect("prev < max_entries")
                .to_be_bytes(),
        );
        self.mapped.write_at(self.entry_position(count), &entry);
        let index = i32::try_from(count).expect("count < max_entries <= i32::MAX");
        self.mapped.write_at(slot_pos, &index.to_be_bytes());

        if first {
            self.begin_timestamp
                .store(store_timestamp, Ordering::Release);
            self.begin_phy_offset.store(phys_offset, Ordering::Release);
        }
        self.end_timestamp.store(store_timestamp, Ordering::Release);
        self.end_phy_offset.store(phys_offset, Ordering::Release);
        if prev == 0 {
            self.hash_slot_count.fetch_add(1, Ordering::Relaxed);
        }
        self.index_count.store(count + 1, Ordering::Release);
        self.write_header();
    }

    /// Collects offsets of entries with `hash` and time in `[begin, end]`,
    /// newest first, until `out` holds `max`.
    fn query(&self, hash: i32, begin: i64, end: i64, max: usize, out: &mut Vec<i64>) {
        // Loaded first: entries below it are complete (see the struct doc). An
        // entry being written right now is simply not seen.
        let count = self.index_count();
        if count <= 1 {
            return;
        }
        let begin_timestamp = self.begin_timestamp.load(Ordering::Acquire);
        let mut index = match self
            .mapped
            .read_i32(self.slot_position(hash))
            .map(u32::try_from)
        {
            Some(Ok(v)) => v,
            _ => return,
        };
        // Each step needs 0 < index < count and the next index strictly
        // smaller, so a chain of any content ends within `count` steps.
        while out.len() < max && index >= 1 && index < count {
            let Some(entry) = self
                .mapped
                .read_array::<ENTRY_SIZE>(self.entry_position(index))
            else {
                return;
            };
            let field4 = |at: usize| {
                i32::from_be_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
            };
            let entry_hash = field4(0);
            let mut phy = [0u8; 8];
            phy.copy_from_slice(&entry[4..12]);
            let phys_offset = i64::from_be_bytes(phy);
            let time_diff = field4(12);
            let prev = field4(16);

            if time_diff < 0 {
                return;
            }
            let Some(time) = i64::from(time_diff)
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(begin_timestamp))
            else {
                return;
            };
            if entry_hash == hash && time >= begin && time <= end && phys_offset >= 0 {
                out.push(phys_offset);
            }
            // Older entries in the chain were stored earlier: RocketMQ stops
            // here too (a clock stepping back can hide entries, as in RocketMQ).
            if time < begin {
                return;
            }
            index = match u32::try_from(prev) {
                Ok(p) if p < index => p,
                _ => return,
            };
        }
    }
}

/// The key index over all IndexFiles in one directory.
pub struct IndexService {
    /// The `index/` directory.
    dir: PathBuf,
    /// Slots per file (`maxHashSlotNum`).
    hash_slots: u32,
    /// Entries per file including the unused entry 0 (`maxIndexNum`).
    max_entries: u32,
    /// Size of every file, from the two numbers above.
    file_size: usize,
    /// The files, oldest first. Readers clone the list and release the lock
    /// before walking chains, so a query never blocks `put` for long.
    files: RwLock<Vec<Arc<IndexFile>>>,
    /// Serialises the writers (`put`, `truncate_from`, `delete_before`):
    /// MappedFile allows one writer per file, and this keeps that true even if
    /// a caller slips.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for IndexService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexService")
            .field("dir", &self.dir)
            .field("hash_slots", &self.hash_slots)
            .field("max_entries", &self.max_entries)
            .field("files", &self.file_count())
            .finish()
    }
}

impl IndexService {
    /// Opens the directory (creating it if missing) and maps existing files, oldest first.
    ///
    /// A file whose size is not `40 + slots*4 + entries*20` for the configured
    /// numbers, or whose header is nonsense (indexCount < 1 or > max_entries,
    /// hashSlotCount out of range, a negative or reversed offset range), is
    /// logged with `log::warn!` and deleted: the index is derived data, rebuilt
    /// from the CommitLog. Files whose names are not 17 digits are ignored.
    pub fn load(dir: &Path, hash_slots: u32, max_entries: u32) -> Result<Self> {
        // Indexes and counts are stored as i32; entry 0 is unused, so a file
        // needs at least two entries to hold anything.
        let max_i32 = i32::MAX.unsigned_abs();
        if hash_slots == 0 || hash_slots > max_i32 || max_entries < 2 || max_entries > max_i32 {
            return Err(StoreError::Config(format!(
                "index hash slots {hash_slots} / max entries {max_entries}: need 1..=2^31-1 slots and 2..=2^31-1 entries"
            )));
        }
        let size = file_size(hash_slots, max_entries)
            .ok_or_else(|| StoreError::Config("index file size overflows".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;

        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
            let path = entry.path();
            let is_file = entry
                .file_type()
                .map_err(|e| StoreError::io("stat", &path, e))?
                .is_file();
            match entry.file_name().to_str() {
                Some(name) if is_file && is_index_file_name(name) => names.push(name.to_owned()),
                _ => log::warn!(
                    "ignoring stray file {} in the index directory",
                    path.display()
                ),
            }
        }
        // Fixed-width digits: name order is creation order.
        names.sort();

        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let actual = std::fs::metadata(&path)
                .map_err(|e| StoreError::io("stat", &path, e))?
                .len();
            if u64::try_from(size).ok() != Some(actual) {
                discard(&path, &format!("size {actual} bytes, expected {size}"));
                continue;
            }
            let mapped = MappedFile::open(&path, 0, size)?;
            match IndexFile::from_mapped(mapped, name, hash_slots, max_entries) {
                Ok(file) => files.push(Arc::new(file)),
                Err((mapped, why)) => {
                    log::warn!("deleting index file {}: {why}", path.display());
                    if let Err(e) = mapped.destroy() {
                        log::error!("could not delete index file: {e}");
                    }
                }
            }
        }
        log::info!("loaded {} index files from {}", files.len(), dir.display());
        Ok(IndexService {
            dir: dir.to_path_buf(),
            hash_slots,
            max_entries,
            file_size: size,
            files: RwLock::new(files),
            write_lock: Mutex::new(()),
        })
    }

    /// A snapshot of the file list.
    fn snapshot(&self) -> Vec<Arc<IndexFile>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The newest file that holds entries.
    fn newest_with_entries(&self) -> Option<Arc<IndexFile>> {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files.iter().rev().find(|f| f.has_entries()).cloned()
    }

    /// The newest file if it has room, else a new one. Caller holds `write_lock`.
    fn writable_file(&self) -> Result<Arc<IndexFile>> {
        let newest = self
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned();
        if let Some(file) = newest.as_ref().filter(|f| !f.is_full()) {
            return Ok(Arc::clone(file));
        }
        // Strictly after the newest name, so a clock that stepped back cannot
        // create a file that loads before an older one.
        let mut ms = now_ms();
        if let Some(last) = newest.as_ref().and_then(|f| parse_index_file_name(&f.name)) {
            ms = ms.max(last.saturating_add(1));
        }
        let (name, path) = loop {
            let name = index_file_name(ms);
            let path = self.dir.join(&name);
            if !path
                .try_exists()
                .map_err(|e| StoreError::io("stat", &path, e))?
            {
                break (name, path);
            }
            ms = ms.saturating_add(1);
        };
        let file = Arc::new(IndexFile::create(
            &path,
            name,
            self.hash_slots,
            self.max_entries,
            self.file_size,
        )?);
        log::info!("created index file {}", path.display());
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&file));
        Ok(file)
    }

    /// Indexes one message: every key in `keys` under `topic#key` (callers pass
    /// UNIQ_KEY and each space-separated word of KEYS; empty strings are skipped).
    ///
    /// Creates a new file when the newest is full (indexCount >= max_entries)
    /// or when there is none. Skips the whole message (returns `Ok`) if
    /// `phys_offset` is at or below the endPhyOffset of the newest file with
    /// entries: that message was already indexed (re-dispatch after recovery).
    pub fn put(
        &self,
        topic: &str,
        keys: &[&str],
        phys_offset: i64,
        store_timestamp: i64,
    ) -> Result<()> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.end_phy_offset().is_some_and(|end| phys_offset <= end) {
            log::debug!("index: offset {phys_offset} already indexed, skipped");
            return Ok(());
        }
        for key in keys.iter().filter(|k| !k.is_empty()) {
            let file = self.writable_file()?;
            file.put_key(key_hash(topic, key), phys_offset, store_timestamp);
        }
        Ok(())
    }

    /// Physical offsets of messages indexed under `topic#key` with store time
    /// in `[begin, end]` (ms, inclusive), newest first, at most `max`.
    ///
    /// Only files whose `[beginTimestamp, endTimestamp]` overlaps the window
    /// are read, newest first. Entry times have one-second resolution
    /// (`beginTimestamp + timeDiff*1000`), as in RocketMQ. Hash collisions are
    /// possible: callers re-check keys against the messages.
    pub fn query(&self, topic: &str, key: &str, max: usize, begin: i64, end: i64) -> Vec<i64> {
        let mut out = Vec::new();
        if max == 0 || begin > end {
            return out;
        }
        let hash = key_hash(topic, key);
        for file in self.snapshot().iter().rev() {
            if out.len() >= max {
                break;
            }
            if !file.has_entries() {
                continue;
            }
            let file_begin = file.begin_timestamp.load(Ordering::Acquire);
            if file_begin > end || file.end_timestamp() < begin {
                continue;
            }
            file.query(hash, begin, end, max, &mut out);
        }
        out
    }

    /// endPhyOffset of the newest file that holds entries (the last indexed
    /// message), `None` if nothing is indexed.
    pub fn end_phy_offset(&self) -> Option<i64> {
        self.newest_with_entries().map(|f| f.end_phy_offset())
    }

    /// Recovery: drops every file with entries whose endPhyOffset >=
    /// `commit_log_end` (it may point at bytes past the recovered end of the
    /// log), oldest first, logging each. Returns the smallest beginPhyOffset of
    /// the dropped files (where re-indexing must start), or `None` if nothing
    /// was dropped.
    pub fn truncate_from(&self, commit_log_end: i64) -> Result<Option<i64>> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let dropped = self
            .remove_where(|file, _| file.has_entries() && file.end_phy_offset() >= commit_log_end);
        for file in &dropped {
            log::warn!(
                "dropping index file {}: endPhyOffset {} >= recovered CommitLog end {commit_log_end}",
                file.path().display(),
                file.end_phy_offset()
            );
        }
        let begin = dropped.iter().map(|f| f.begin_phy_offset()).min();
        destroy_all(&dropped)?;
        Ok(begin)
    }

    /// Retention: deletes files whose endPhyOffset < `commit_log_min` (their
    /// messages are gone), and any empty file, except the newest file.
    /// Returns how many were deleted.
    pub fn delete_before(&self, commit_log_min: i64) -> Result<usize> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let dropped = self.remove_where(|file, newest| {
            !newest && (!file.has_entries() || file.end_phy_offset() < commit_log_min)
        });
        for file in &dropped {
            log::info!(
                "deleting index file {}: endPhyOffset {} < CommitLog min {commit_log_min}",
                file.path().display(),
                file.end_phy_offset()
            );
        }
        destroy_all(&dropped)?;
        Ok(dropped.len())
    }

    /// Takes the files matching `pred(file, is_newest)` out of the list, oldest first.
    fn remove_where(&self, pred: impl Fn(&IndexFile, bool) -> bool) -> Vec<Arc<IndexFile>> {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let last = files.len().saturating_sub(1);
        let (dropped, kept) = std::mem::take(&mut *files)
            .into_iter()
            .enumerate()
            .partition::<Vec<_>, _>(|(i, f)| pred(f, *i == last));
        *files = kept.into_iter().map(|(_, f)| f).collect();
        dropped.into_iter().map(|(_, f)| f).collect()
    }

    /// Flushes every file written since the last flush (`msync`) and returns
    /// the endTimestamp of the newest file with entries (for the checkpoint's
    /// indexMsgTimestamp), or `None` if nothing is indexed.
    pub fn flush(&self) -> Result<Option<i64>> {
        // Read before syncing: every entry up to this timestamp marked its file
        // dirty before publishing it, so the sync below covers it.
        let timestamp = self.newest_with_entries().map(|f| f.end_timestamp());
        for file in self.snapshot() {
            if file.dirty.swap(false, Ordering::AcqRel) {
                if let Err(e) = file.mapped.flush_all() {
                    file.dirty.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(timestamp)
    }

    /// Number of index files (for tests and stats).
    pub fn file_count(&self) -> usize {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Deletes an unusable file found at load, logging why.
fn discard(path: &Path, why: &str) {
    log::warn!("deleting index file {}: {why}", path.display());
    if let Err(e) = std::fs::remove_file(path) {
        log::error!("could not delete index file {}: {e}", path.display());
    }
}

/// Unlinks files already taken out of the list; all are tried, the first
/// error is returned.
fn destroy_all(files: &[Arc<IndexFile>]) -> Result<()> {
    let mut first_error = None;
    for file in files {
        if let Err(e) = file.mapped.destroy() {
            log::error!("could not delete index file: {e}");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;
    use std::io::{Seek, SeekFrom, Write};

    const SLOTS: u32 = 64;
    const ENTRIES: u32 = 16;
    /// A store time in ms, on a whole second.
    const T0: i64 = 1_700_000_000_000;

    fn service(dir: &TempDir) -> IndexService {
        IndexService::load(dir.path(), SLOTS, ENTRIES).unwrap()
    }

    fn all(svc: &IndexService, topic: &str, key: &str) -> Vec<i64> {
        svc.query(topic, key, usize::MAX, 0, i64::MAX)
    }

    /// The index files in `dir`, oldest first.
    fn file_paths(dir: &Path) -> Vec<PathBuf> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
    }

    fn write_bytes(path: &Path, pos: u64, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(pos)).unwrap();
        f.write_all(bytes).unwrap();
    }

    fn slot_pos(topic: &str, key: &str) -> u64 {
        (HEADER_SIZE + to_usize(key_hash(topic, key).unsigned_abs() % SLOTS) * SLOT_SIZE) as u64
    }

    fn entry_pos(index: u64) -> u64 {
        (HEADER_SIZE + to_usize(SLOTS) * SLOT_SIZE) as u64 + index * ENTRY_SIZE as u64
    }

    #[test]
    fn service_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<IndexService>();
    }

    #[test]
    fn file_names_are_utc_milliseconds() {
        assert_eq!(index_file_name(0), "19700101000000000");
        assert_eq!(index_file_name(1_700_000_000_123), "20231114221320123");
        assert_eq!(index_file_name(951_782_400_000), "20000229000000000");
        assert_eq!(index_file_name(-1), "19691231235959999");
        for ms in [0, 1, 951_782_400_000, 1_700_000_000_123, 4_102_444_799_999] {
            assert_eq!(parse_index_file_name(&index_file_name(ms)), Some(ms));
        }
        assert_eq!(parse_index_file_name("20231314221320123"), None);
        assert_eq!(parse_index_file_name("2023111422132012"), None);
        assert_eq!(parse_index_file_name("2023111422132012x"), None);
    }

    #[test]
    fn key_hash_is_java_abs_of_topic_hash_key() {
        // "TopicTest#KEY0" hashes to -1656969517 in Java.
        assert_eq!(key_hash("TopicTest", "KEY0"), 1_656_969_517);
    }

    #[test]
    fn put_then_query_finds_the_offset() {
        let dir = TempDir::new("index_put");
        let svc = service(&dir);
        assert_eq!(svc.end_phy_offset(), None);
        assert_eq!(svc.flush().unwrap(), None);
        svc.put("TopicTest", &["KEY0"], 100, T0).unwrap();
        assert_eq!(svc.file_count(), 1);
        assert_eq!(all(&svc, "TopicTest", "KEY0"), vec![100]);
        assert!(all(&svc, "TopicTest", "KEY1").is_empty());
        assert!(all(&svc, "OtherTopic", "KEY0").is_empty());
        assert_eq!(svc.end_phy_offset(), Some(100));
        assert_eq!(svc.flush().unwrap(), Some(T0));
    }

    #[test]
    fn header_and_entry_bytes_follow_the_rocketmq_layout() {
        let dir = TempDir::new("index_layout");
        let svc = service(&dir);
        svc.put("TopicTest", &["KEY0"], 100, T0).unwrap();
        svc.put("TopicTest", &["KEY0"], 200, T0 + 3_500).unwrap();
        svc.flush().unwrap();
        let bytes = std::fs::read(&file_paths(dir.path())[0]).unwrap();
        assert_eq!(bytes.len(), 40 + 64 * 4 + 16 * 20);
        let i64_at = |p: usize| i64::from_be_bytes(bytes[p..p + 8].try_into().unwrap());
        let i32_at = |p: usize| i32::from_be_bytes(bytes[p..p + 4].try_into().unwrap());
        assert_eq!(
            (i64_at(0), i64_at(8), i64_at(16), i64_at(24)),
            (T0, T0 + 3_500, 100, 200)
        );
        assert_eq!((i32_at(32), i32_at(36)), (1, 3));
        let hash = 1_656_969_517;
        assert_eq!(i32_at(40 + (hash % 64) as usize * 4), 2);
        let e1 = 40 + 64 * 4 + 20;
        assert_eq!(
            (i32_at(e1), i64_at(e1 + 4), i32_at(e1 + 12), i32_at(e1 + 16)),
            (hash, 100, 0, 0)
        );
        let e2 = e1 + 20;
        assert_eq!(
            (i32_at(e2), i64_at(e2 + 4), i32_at(e2 + 12), i32_at(e2 + 16)),
            (hash, 200, 3, 1)
        );
    }

    #[test]
    fn every_key_of_a_message_is_indexed_and_empty_keys_skipped() {
        let dir = TempDir::new("index_keys");
        let svc = service(&dir);
        svc.put("T", &["uniq-1", "", "order-7", "user-9"], 4096, T0)
            .unwrap();
        for key in ["uniq-1", "order-7", "user-9"] {
            assert_eq!(all(&svc, "T", key), vec![4096], "{key}");
        }
        assert!(all(&svc, "T", "").is_empty());
    }

    #[test]
    fn keys_sharing_a_slot_are_each_found_through_the_chain() {
        let dir = TempDir::new("index_collide");
        let svc = service(&dir);
        // Five distinct hashes that fall into one slot.
        let target = key_hash("T", "k0").unsigned_abs() % SLOTS;
        let keys: Vec<String> = (0..)
            .map(|i| format!("k{i}"))
            .filter(|k| key_hash("T", k).unsigned_abs() % SLOTS == target)
            .take(5)
            .collect();
        let mut hashes: Vec<_> = keys.iter().map(|k| key_hash("T", k)).collect();
        hashes.dedup();
        assert_eq!(hashes.len(), 5);
        for (i, key) in keys.iter().enumerate() {
            svc.put("T", &[key.as_str()], 1000 + i as i64, T0).unwrap();
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(all(&svc, "T", key), vec![1000 + i as i64], "{key}");
        }
        // "Aa" and "BB" have the same Java hash: both come back, and the caller
        // re-checks the keys against the messages.
        svc.put("T", &["Aa"], 2000, T0).unwrap();
        svc.put("T", &["BB"], 2001, T0).unwrap();
        assert_eq!(all(&svc, "T", "Aa"), vec![2001, 2000]);
    }

    #[test]
    fn the_time_window_filters_entries() {
        let dir = TempDir::new("index_window");
        let svc = service(&dir);
        svc.put("T", &["k"], 10, T0).unwrap();
        svc.put("T", &["k"], 20, T0 + 10_000).unwrap();
        svc.put("T", &["k"], 30, T0 + 20_000).unwrap();
        assert_eq!(svc.query("T", "k", 10, T0 + 5_000, T0 + 15_000), vec![20]);
        assert_eq!(
            svc.query("T", "k", 10, T0 + 10_000, T0 + 20_000),
            vec![30, 20]
        );
        assert_eq!(svc.query("T", "k", 10, T0, T0), vec![10]);
        assert!(svc.query("T", "k", 10, T0 + 30_000, T0 + 40_000).is_empty());
        assert!(svc.query("T", "k", 10, T0 - 10_000, T0 - 1).is_empty());
        assert!(svc.query("T", "k", 10, T0 + 20_000, T0).is_empty());
    }

    #[test]
    fn max_limits_results_newest_first() {
        let dir = TempDir::new("index_max");
        let svc = service(&dir);
        for i in 0..10 {
            svc.put("T", &["k"], i * 100, T0 + i * 1000).unwrap();
        }
        assert_eq!(svc.query("T", "k", 3, 0, i64::MAX), vec![900, 800, 700]);
        assert!(svc.query("T", "k", 0, 0, i64::MAX).is_empty());
        assert_eq!(all(&svc, "T", "k").len(), 10);
    }

    #[test]
    fn a_full_file_rolls_over_and_queries_span_files() {
        let dir = TempDir::new("index_roll");
        let svc = service(&dir);
        // 15 usable entries per file (entry 0 is unused): 40 messages -> 3 files.
        for i in 0..40 {
            svc.put("T", &["same"], i * 10, T0 + i * 1000).unwrap();
        }
        assert_eq!(svc.file_count(), 3);
        let names = file_paths(dir.path());
        assert_eq!(names.len(), 3);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let expected: Vec<i64> = (0..40).rev().map(|i| i * 10).collect();
        assert_eq!(all(&svc, "T", "same"), expected);
        assert_eq!(
            svc.query("T", "same", 20, 0, i64::MAX),
            expected[..20].to_vec()
        );
        // A window inside the first file only.
        assert_eq!(
            svc.query("T", "same", 100, T0 + 2_000, T0 + 4_000),
            vec![40, 30, 20]
        );
        assert_eq!(svc.end_phy_offset(), Some(390));
    }

    #[test]
    fn reload_keeps_every_entry_and_continues_the_newest_file() {
        let dir = TempDir::new("index_reload");
        {
            let svc = service(&dir);
            for i in 0..20 {
                svc.put("T", &["k", &format!("u{i}")], i * 10, T0 + i * 1000)
                    .unwrap();
            }
            assert_eq!(svc.flush().unwrap(), Some(T0 + 19_000));
        }
        let svc = service(&dir);
        assert_eq!(svc.file_count(), 3);
        assert_eq!(svc.end_phy_offset(), Some(190));
        assert_eq!(
            all(&svc, "T", "k"),
            (0..20).rev().map(|i| i * 10).collect::<Vec<_>>()
        );
        assert_eq!(all(&svc, "T", "u7"), vec![70]);
        svc.put("T", &["k"], 200, T0 + 20_000).unwrap();
        assert_eq!(svc.file_count(), 3);
        assert_eq!(all(&svc, "T", "k")[..2], [200, 190]);
        assert_eq!(svc.flush().unwrap(), Some(T0 + 20_000));
    }

    #[test]
    fn an_already_indexed_offset_is_skipped() {
        let dir = TempDir::new("index_skip");
        let svc = service(&dir);
        svc.put("T", &["a"], 100, T0).unwrap();
        svc.put("T", &["b"], 100, T0).unwrap();
        svc.put("T", &["c"], 50, T0).unwrap();
        assert!(all(&svc, "T", "b").is_empty());
        assert!(all(&svc, "T", "c").is_empty());
        svc.put("T", &["d"], 101, T0).unwrap();
        assert_eq!(all(&svc, "T", "d"), vec![101]);
    }

    #[test]
    fn truncate_from_drops_files_past_the_log_end() {
        let dir = TempDir::new("index_truncate");
        let svc = service(&dir);
        for i in 0..40 {
            svc.put("T", &["k"], i * 10, T0 + i * 1000).unwrap();
        }
        // Files hold offsets 0..=140, 150..=290, 300..=390.
        assert_eq!(svc.truncate_from(1_000).unwrap(), None);
        assert_eq!(svc.file_count(), 3);
        assert_eq!(svc.truncate_from(200).unwrap(), Some(150));
        assert_eq!(svc.file_count(), 1);
        assert_eq!(file_paths(dir.path()).len(), 1);
        assert_eq!(svc.end_phy_offset(), Some(140));
        assert_eq!(all(&svc, "T", "k").len(), 15);
        // Re-indexing continues from the returned offset.
        svc.put("T", &["k"], 150, T0 + 15_000).unwrap();
        assert_eq!(svc.file_count(), 2);
        assert_eq!(svc.truncate_from(0).unwrap(), Some(0));
        assert_eq!(svc.file_count(), 0);
        assert_eq!(svc.end_phy_offset(), None);
    }

    #[test]
    fn delete_before_removes_old_files_but_never_the_newest() {
        let dir = TempDir::new("index_retention");
        let svc = service(&dir);
        for i in 0..40 {
            svc.put("T", &["k"], i * 10, T0 + i * 1000).unwrap();
        }
        assert_eq!(svc.delete_before(140).unwrap(), 0);
        assert_eq!(svc.delete_before(141).unwrap(), 1);
        assert_eq!(svc.file_count(), 2);
        assert_eq!(all(&svc, "T", "k").len(), 25);
        assert_eq!(svc.delete_before(i64::MAX).unwrap(), 1);
        assert_eq!(svc.file_count(), 1);
        assert_eq!(file_paths(dir.path()).len(), 1);
        assert_eq!(all(&svc, "T", "k").len(), 10);
    }

    #[test]
    fn a_file_of_the_wrong_size_is_deleted_and_stray_files_ignored() {
        let dir = TempDir::new("index_size");
        {
            let svc = service(&dir);
            svc.put("T", &["k"], 1, T0).unwrap();
        }
        let good = file_paths(dir.path())[0].clone();
        let short = dir.path().join("20200101000000000");
        std::fs::write(&short, [0u8; 100]).unwrap();
        let stray = dir.path().join("notes.txt");
        std::fs::write(&stray, b"hello").unwrap();
        // Built with other numbers: the good file no longer matches either.
        {
            let svc = IndexService::load(dir.path(), SLOTS, ENTRIES + 1).unwrap();
            assert_eq!(svc.file_count(), 0);
        }
        assert!(!short.exists());
        assert!(!good.exists());
        assert!(stray.exists());
    }

    #[test]
    fn a_nonsense_header_deletes_the_file_on_load() {
        let cases: [(u64, &[u8]); 4] = [
            (36, &0i32.to_be_bytes()),
            (36, &(ENTRIES as i32 + 1).to_be_bytes()),
            (32, &(-1i32).to_be_bytes()),
            (16, &(-5i64).to_be_bytes()),
        ];
        for (pos, bytes) in cases {
            let dir = TempDir::new("index_header");
            {
                let svc = service(&dir);
                svc.put("T", &["k"], 7, T0).unwrap();
                svc.put("T", &["k"], 8, T0).unwrap();
            }
            let path = file_paths(dir.path())[0].clone();
            write_bytes(&path, pos, bytes);
            let svc = service(&dir);
            assert_eq!(svc.file_count(), 0, "garbage at {pos}");
            assert!(!path.exists());
            assert_eq!(svc.end_phy_offset(), None);
        }
    }

    #[test]
    fn corrupt_slots_and_chains_end_the_walk_without_panic() {
        let dir = TempDir::new("index_chain");
        {
            let svc = service(&dir);
            for i in 1..=5 {
                svc.put("T", &["k"], i * 10, T0 + i * 1000).unwrap();
            }
        }
        let mut path = file_paths(dir.path())[0].clone();
        let slot = slot_pos("T", "k");

        // Entries 1..=5 are the chain 5 -> 4 -> 3 -> 2 -> 1.
        let svc = service(&dir);
        assert_eq!(all(&svc, "T", "k"), vec![50, 40, 30, 20, 10]);
        drop(svc);

        // prevIndex of entry 4 points at itself, then forward, then negative.
        for bad in [4i32, 5, 9, -3, i32::MAX] {
            write_bytes(&path, entry_pos(4) + 16, &bad.to_be_bytes());
            let svc = service(&dir);
            assert_eq!(all(&svc, "T", "k"), vec![50, 40], "prevIndex {bad}");
        }
        write_bytes(&path, entry_pos(4) + 16, &3i32.to_be_bytes());

        // A negative timeDiff in entry 3 stops the chain there.
        write_bytes(&path, entry_pos(3) + 12, &(-1i32).to_be_bytes());
        assert_eq!(all(&service(&dir), "T", "k"), vec![50, 40]);
        write_bytes(&path, entry_pos(3) + 12, &3i32.to_be_bytes());

        // The slot points past the written entries, past the file, or is negative.
        for bad in [6i32, ENTRIES as i32, i32::MAX, -1, i32::MIN] {
            write_bytes(&path, slot, &bad.to_be_bytes());
            let svc = service(&dir);
            assert!(all(&svc, "T", "k").is_empty(), "slot {bad}");
            // A put over a damaged slot starts a fresh chain instead of following it.
            svc.put("T", &["k"], 60, T0 + 6000).unwrap();
            assert_eq!(all(&svc, "T", "k"), vec![60]);
            drop(svc);
            std::fs::remove_file(&path).unwrap();
            let svc = service(&dir);
            for i in 1..=5 {
                svc.put("T", &["k"], i * 10, T0 + i * 1000).unwrap();
            }
            drop(svc);
            path = file_paths(dir.path())[0].clone();
        }
    }

    #[test]
    fn queries_run_while_put_writes() {
        let dir = TempDir::new("index_concurrent");
        let svc = Arc::new(service(&dir));
        let reader = {
            let svc = Arc::clone(&svc);
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 100 {
                    let found = all(&svc, "T", "k");
                    // Always newest first and never anything that was not put.
                    assert!(found.windows(2).all(|w| w[0] > w[1]));
                    assert!(found.iter().all(|o| o % 10 == 0 && *o < 1000));
                    seen = found.len();
                }
            })
        };
        for i in 0..100 {
            svc.put("T", &["k"], i * 10, T0 + i * 1000).unwrap();
        }
        reader.join().unwrap();
        assert_eq!(svc.file_count(), 7);
    }
}
