//! A fixed-size file mapped into memory (`mmap`, `MAP_SHARED`), the unit every
//! store structure is built from: CommitLog segments, ConsumeQueue files and
//! IndexFiles.
//!
//! Positions: the *write* position is how far bytes have been written and
//! published to readers; the *flush* position is how far `msync` has made them
//! durable. RocketMQ also keeps a *commit* position for its off-heap transient
//! store pool; mq always writes straight into the mapping, so its commit
//! position would always be the write position, and it keeps none.
//!
//! Space is reserved with `posix_fallocate` when a file is created, so a write
//! into the mapping never meets a full disk (which would be a SIGBUS, not an
//! error): a full disk shows up as a creation error the caller can return.
//!
//! This is one of the two files where `unsafe` lives (with `capi/`).

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::sys::mman::{mmap, msync, munmap, MapFlags, MsFlags, ProtFlags};

use super::error::{Result, StoreError};

/// The page size used to align `msync` ranges.
const PAGE: usize = 4096;

/// A memory-mapped store file of fixed size.
///
/// Writers: exactly one at a time (the CommitLog writes under its append lock;
/// ConsumeQueue and IndexFile files are written only by the dispatcher thread).
/// Readers: any number, concurrently with the writer, reading only bytes below
/// the write position, which never change once published.
pub struct MappedFile {
    /// Where the file lives; also used in every error and log line.
    path: PathBuf,
    /// Kept open for `fallocate` when a tail is zeroed during recovery.
    file: File,
    /// The offset of the first byte in the whole log, which is also the file name.
    base: u64,
    /// Length of the file and of the mapping.
    size: usize,
    /// Start of the mapping; valid for `size` bytes until `drop`.
    ptr: NonNull<u8>,
    /// Bytes written and visible to readers (Release on store, Acquire on load).
    wrote: AtomicUsize,
    /// Bytes known to be on disk.
    flushed: AtomicUsize,
    /// Set by retention: the file is unlinked and must not be written again.
    /// The mapping itself lives until the last reader drops its `Arc`.
    deleted: AtomicBool,
}

// SAFETY: the mapping is plain memory owned by this value until `drop`. Writes go
// only to bytes at or above the write position, by the single writer the owner
// guarantees; readers only look below it (see the struct's doc), so no byte is
// read while it is being written, except in IndexFile slots, which read via
// `read_array` (a copy) and tolerate a stale value.
unsafe impl Send for MappedFile {}
// SAFETY: as above.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Creates a new file of `size` bytes at `path`, reserves its disk blocks and
    /// maps it. Fails if the file exists or the disk has no room.
    pub fn create(path: &Path, base: u64, size: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io("create", path, e))?;
        let len = i64::try_from(size)
            .map_err(|_| StoreError::Config(format!("file size {size} too large")))?;
        if let Err(errno) = nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, len) {
            // Leave no half-made file behind to confuse the next start.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(StoreError::io(
                "reserve space for",
                path,
                io::Error::from(errno),
            ));
        }
        Self::map(path.to_path_buf(), file, base, size, 0)
    }

    /// Maps an existing file, which must be exactly `size` bytes long (a shorter
    /// one is a file cut short by a crash or a full disk and is grown to size).
    /// The write and flush positions start at `size`; recovery sets them.
    pub fn open(path: &Path, base: u64, size: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("open", path, e))?;
        let actual = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        if actual != size as u64 {
            if actual > size as u64 {
                return Err(StoreError::Config(format!(
                    "{} is {actual} bytes, larger than the configured {size}; \
                     was the store made with a larger file size?",
                    path.display()
                )));
            }
            log::warn!(
                "{} is {actual} bytes, expected {size}: growing it (a crash during creation?)",
                path.display()
            );
            let len = i64::try_from(size)
                .map_err(|_| StoreError::Config(format!("file size {size} too large")))?;
            nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, len)
                .map_err(|e| StoreError::io("reserve space for", path, io::Error::from(e)))?;
        }
        Self::map(path.to_path_buf(), file, base, size, size)
    }

    fn map(path: PathBuf, file: File, base: u64, size: usize, position: usize) -> Result<Self> {
        let length =
            NonZeroUsize::new(size).ok_or_else(|| StoreError::Config("file size 0".into()))?;
        // SAFETY: a fresh shared mapping of a file we just opened read-write and
        // sized to `length`; nothing else in this process maps it. Other
        // processes could, but the store's lock file keeps other mq instances out.
        let ptr = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| StoreError::io("mmap", &path, io::Error::from(e)))?;
        Ok(MappedFile {
            path,
            file,
            base,
            size,
            ptr: ptr.cast(),
            wrote: AtomicUsize::new(position),
            flushed: AtomicUsize::new(position),
            deleted: AtomicBool::new(false),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the file's first byte in the whole log (its name).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Length of the file.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes written and visible to readers.
    pub fn wrote_position(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }

    /// Bytes known to be on disk.
    pub fn flushed_position(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }

    /// Bytes left after the write position.
    pub fn remaining(&self) -> usize {
        self.size - self.wrote_position()
    }

    /// Whether the write position has reached the end.
    pub fn is_full(&self) -> bool {
        self.wrote_position() >= self.size
    }

    /// Copies `bytes` to the write position and publishes them. The caller is the
    /// single writer and has checked that they fit.
    ///
    /// # Panics
    /// If `bytes` does not fit: callers check [`remaining`](Self::remaining) first.
    pub fn append(&self, bytes: &[u8]) -> usize {
        let pos = self.wrote.load(Ordering::Relaxed);
        self.write_at(pos, bytes);
        self.wrote.store(pos + bytes.len(), Ordering::Release);
        pos
    }

    /// Writes `bytes` at `pos` without moving the write position. Used by the
    /// IndexFile for slots and header, and by the ConsumeQueue to fill gaps.
    ///
    /// # Panics
    /// If the range is outside the file: a caller bug, never input-driven (callers
    /// compute positions from checked values).
    pub fn write_at(&self, pos: usize, bytes: &[u8]) {
        let end = pos
            .checked_add(bytes.len())
            .expect("write position overflows");
        assert!(
            end <= self.size,
            "write of {}..{end} past the end of {}",
            pos,
            self.path.display()
        );
        assert!(
            !self.deleted.load(Ordering::Relaxed),
            "write to deleted file {}",
            self.path.display()
        );
        // SAFETY: `pos..end` lies inside the mapping (checked above); the single
        // writer is the only one touching bytes at or above the write position,
        // and readers of below-the-write-position bytes never see these (the
        // IndexFile's in-place updates are read through copies).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(pos), bytes.len());
        }
    }

    /// Sets the write position (recovery, and the dispatcher's own files).
    pub fn set_wrote_position(&self, pos: usize) {
        assert!(pos <= self.size);
        self.wrote.store(pos, Ordering::Release);
    }

    /// Sets both positions after recovery found where valid data ends.
    pub fn set_positions(&self, pos: usize) {
        assert!(pos <= self.size);
        self.wrote.store(pos, Ordering::Release);
        self.flushed.store(pos, Ordering::Release);
    }

    /// The written bytes `pos..pos + len`, or `None` if any lies at or past the
    /// write position.
    pub fn slice(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.wrote_position() {
            return None;
        }
        // SAFETY: the range is inside the mapping and below the write position, so
        // its bytes are published and no longer written; the mapping lives as
        // long as `self`, which the returned borrow cannot outlive.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(pos), len) })
    }

    /// The bytes `pos..pos + len` whatever the write position (recovery scans a
    /// file before it knows where valid data ends). `None` past the file's end.
    pub fn slice_unchecked_position(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.size {
            return None;
        }
        // SAFETY: inside the mapping. Recovery runs before any writer starts, and
        // the dispatcher's own files have no concurrent writer when it reads them.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(pos), len) })
    }

    /// Copies `N` bytes at `pos`, whatever the write position; used for the
    /// IndexFile's slots and header, which change in place while being read.
    pub fn read_array<const N: usize>(&self, pos: usize) -> Option<[u8; N]> {
        let end = pos.checked_add(N)?;
        if end > self.size {
            return None;
        }
        let mut out = [0u8; N];
        // SAFETY: inside the mapping; a concurrent in-place update may be seen
        // half done, which the IndexFile tolerates (it checks what it reads).
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(pos), out.as_mut_ptr(), N);
        }
        Some(out)
    }

    /// Reads a big-endian i64 at `pos` (see [`read_array`](Self::read_array)).
    pub fn read_i64(&self, pos: usize) -> Option<i64> {
        self.read_array(pos).map(i64::from_be_bytes)
    }

    /// Reads a big-endian i32 at `pos` (see [`read_array`](Self::read_array)).
    pub fn read_i32(&self, pos: usize) -> Option<i32> {
        self.read_array(pos).map(i32::from_be_bytes)
    }

    /// Makes everything written so far durable with `msync`. Returns the new flush
    /// position. Only pages that changed since the last flush are synced.
    pub fn flush(&self) -> Result<usize> {
        let target = self.wrote_position();
        self.flush_range_to(target)?;
        Ok(target)
    }

    /// Makes the whole file durable, including bytes written in place below or
    /// above the write position (the IndexFile writes its slots there).
    pub fn flush_all(&self) -> Result<()> {
        self.msync(0, self.size)?;
        let wrote = self.wrote_position();
        self.flushed.fetch_max(wrote, Ordering::AcqRel);
        Ok(())
    }

    fn flush_range_to(&self, target: usize) -> Result<()> {
        let from = self.flushed_position();
        if target <= from {
            return Ok(());
        }
        let start = from / PAGE * PAGE;
        self.msync(start, target - start)?;
        self.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn msync(&self, start: usize, len: usize) -> Result<()> {
        debug_assert_eq!(start % PAGE, 0);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `start` is page aligned and `start..start + len` lies inside the
        // mapping (callers pass positions <= size); msync only writes back pages.
        unsafe {
            let addr = NonNull::new_unchecked(self.ptr.as_ptr().add(start)).cast();
            msync(addr, len, MsFlags::MS_SYNC)
        }
        .map_err(|e| StoreError::io("msync", &self.path, io::Error::from(e)))
    }

    /// Zeroes everything from `pos` to the end of the file, so that bytes left
    /// after a truncation can never be mistaken for records by a later scan.
    pub fn zero_from(&self, pos: usize) -> Result<()> {
        if pos >= self.size {
            return Ok(());
        }
        let first_page_end = pos.div_ceil(PAGE) * PAGE;
        let head = first_page_end.min(self.size) - pos;
        self.write_zeros(pos, head);
        if first_page_end < self.size {
            // Zeroing through the file keeps the blocks allocated and does not
            // fault every page in; fall back to writing zeros where unsupported.
            let res = nix::fcntl::fallocate(
                self.file.as_raw_fd(),
                nix::fcntl::FallocateFlags::FALLOC_FL_ZERO_RANGE,
                first_page_end as i64,
                (self.size - first_page_end) as i64,
            );
            if res.is_err() {
                self.write_zeros(first_page_end, self.size - first_page_end);
            }
        }
        self.msync(pos / PAGE * PAGE, self.size - pos / PAGE * PAGE)
    }

    fn write_zeros(&self, pos: usize, len: usize) {
        assert!(pos + len <= self.size);
        // SAFETY: inside the mapping; called only by the file's single writer on
        // bytes at or above the write position.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(pos), 0, len) };
    }

    /// Unlinks the file. Readers holding the `Arc` keep the mapping until they
    /// drop it; nothing is written to it again.
    pub fn destroy(&self) -> Result<()> {
        self.deleted.store(true, Ordering::Release);
        std::fs::remove_file(&self.path).map_err(|e| StoreError::io("delete", &self.path, e))
    }

    /// Last modification time of the file, for retention.
    pub fn modified(&self) -> Result<std::time::SystemTime> {
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| StoreError::io("stat", &self.path, e))
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this pointer and size, and
        // every borrow of it (`slice`) is tied to `&self`, so none outlives this.
        let res = unsafe { munmap(self.ptr.cast(), self.size) };
        if let Err(e) = res {
            log::error!("munmap {}: {e}", self.path.display());
        }
    }
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("base", &self.base)
            .field("size", &self.size)
            .field("wrote", &self.wrote_position())
            .field("flushed", &self.flushed_position())
            .finish()
    }
}

/// The 20-digit zero-padded file name of a log offset.
pub fn offset_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Parses a 20-digit offset file name; `None` for anything else (stray files are
/// skipped with a warning by the callers).
pub fn parse_offset_file_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Lists the offset-named files in `dir`, sorted by offset, warning about others.
pub fn list_offset_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        match name
            .to_str()
            .and_then(parse_offset_file_name)
            .filter(|_| is_file)
        {
            Some(offset) => out.push((offset, entry.path())),
            None => log::warn!("ignoring stray file {}", entry.path().display()),
        }
    }
    out.sort_by_key(|(offset, _)| *offset);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    #[test]
    fn append_publishes_and_flush_follows() {
        let dir = TempDir::new("mapped_file");
        let path = dir.path().join(offset_file_name(0));
        let file = MappedFile::create(&path, 0, 8192).unwrap();
        assert_eq!(file.wrote_position(), 0);
        assert!(file.slice(0, 1).is_none());
        assert_eq!(file.append(b"hello"), 0);
        assert_eq!(file.append(b" world"), 5);
        assert_eq!(file.slice(0, 11), Some(&b"hello world"[..]));
        assert!(file.slice(0, 12).is_none());
        assert_eq!(file.flushed_position(), 0);
        assert_eq!(file.flush().unwrap(), 11);
        assert_eq!(file.flushed_position(), 11);
        drop(file);

        let again = MappedFile::open(&path, 0, 8192).unwrap();
        assert_eq!(
            again.slice_unchecked_position(0, 11),
            Some(&b"hello world"[..])
        );
        again.set_positions(5);
        again.zero_from(5).unwrap();
        assert_eq!(
            again.slice_unchecked_position(0, 11),
            Some(&b"hello\0\0\0\0\0\0"[..])
        );
    }

    #[test]
    fn create_refuses_an_existing_file_and_open_grows_a_short_one() {
        let dir = TempDir::new("mapped_file_exists");
        let path = dir.path().join(offset_file_name(4096));
        std::fs::write(&path, b"short").unwrap();
        assert!(MappedFile::create(&path, 4096, 4096).is_err());
        let file = MappedFile::open(&path, 4096, 4096).unwrap();
        assert_eq!(file.size(), 4096);
        assert_eq!(file.slice_unchecked_position(0, 5), Some(&b"short"[..]));
        assert!(file.slice_unchecked_position(4095, 2).is_none());
    }

    #[test]
    fn file_names_are_twenty_digits() {
        assert_eq!(offset_file_name(1073741824), "00000000001073741824");
        assert_eq!(
            parse_offset_file_name("00000000001073741824"),
            Some(1073741824)
        );
        assert_eq!(parse_offset_file_name("1073741824"), None);
        assert_eq!(parse_offset_file_name("0000000000107374182x"), None);
    }
}
