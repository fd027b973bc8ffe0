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
//! # Who touches the bytes, and how
//!
//! A mapping is memory shared by threads, so every access must be free of data
//! races in Rust's memory model. The file's type parameter says how it is
//! accessed, and the methods each type offers keep to it:
//!
//! - [`MappedFile<AppendOnly>`] (CommitLog segments). Bytes below the write
//!   position never change again, and any thread borrows them as `&[u8]`
//!   ([`MappedFile::slice`]). Bytes are written only through the file's one
//!   [`Appender`] (claimed at run time, like a lock that is never waited
//!   for), only at or above the write position, which it only ever raises
//!   (Release, after the bytes). So a file opened from disk publishes nothing:
//!   recovery reads it through the appender and then says where valid data ends.
//! - [`MappedFile<InPlace>`] (ConsumeQueue files and IndexFiles, whose entries
//!   and hash slots are rewritten while queries read them). Every read and
//!   write of the contents is one aligned atomic 32-bit word (`AtomicU32`,
//!   Relaxed), and no `&[u8]` of such a file exists, so a rewrite can race
//!   with a read without undefined behaviour. The write position and the
//!   callers' own atomics (Release/Acquire) order the words; a field wider
//!   than a word may be read half updated, which its readers check for. A word
//!   is stored with the very bytes it replaces, so the on-disk layout (all
//!   big-endian fields, RocketMQ's) is unchanged.
//!
//! The kernel also touches the pages (`msync`, `fallocate` zeroing) as another
//! process would; the store's lock file keeps other processes out.
//!
//! This is one of the two files where `unsafe` lives (with `capi/`).

use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use nix::sys::mman::{mmap, msync, munmap, MapFlags, MsFlags, ProtFlags};

use super::error::{Result, StoreError};

/// The page size used to align `msync` ranges.
const PAGE: usize = 4096;

/// Bytes of the atomic word every access to an [`InPlace`] file is made of.
const WORD: usize = 4;

/// How the contents of a [`MappedFile`] are accessed (see the module doc).
/// Implemented only by [`AppendOnly`] and [`InPlace`].
pub(crate) trait Access {
    /// Whether [`MappedFile::open`] publishes the whole file (sets the write
    /// and flush positions to its size); otherwise it publishes nothing.
    const OPENS_PUBLISHED: bool;
    /// What the file size must be a multiple of.
    const UNIT: usize;
}

/// Append-only files: published bytes never change and are read as `&[u8]`;
/// one [`Appender`] writes. Opening publishes nothing until recovery has looked.
pub(crate) enum AppendOnly {}

/// Files changed in place, read and written only as aligned atomic 32-bit
/// words. Opening publishes the whole file: its bytes are checked by its
/// readers, not trusted.
pub(crate) enum InPlace {}

impl Access for AppendOnly {
    const OPENS_PUBLISHED: bool = false;
    const UNIT: usize = 1;
}

impl Access for InPlace {
    const OPENS_PUBLISHED: bool = true;
    const UNIT: usize = WORD;
}

/// A memory-mapped store file of fixed size, accessed as `K` says.
pub(crate) struct MappedFile<K = AppendOnly> {
    /// Where the file lives; also used in every error and log line.
    path: PathBuf,
    /// Kept open for `fallocate` when a tail is zeroed.
    file: File,
    /// The offset of the first byte in the whole log, which is also the file name.
    base: u64,
    /// Length of the file and of the mapping.
    size: usize,
    /// Start of the mapping (page aligned); valid for `size` bytes until `drop`.
    ptr: NonNull<u8>,
    /// Bytes written and visible to readers (Release on store, Acquire on load).
    wrote: AtomicUsize,
    /// Bytes known to be on disk.
    flushed: AtomicUsize,
    /// Set by retention: the file is unlinked and must not be written again.
    /// The mapping itself lives until the last reader drops its `Arc`.
    deleted: AtomicBool,
    /// Whether an [`Appender`] of this file exists (append-only files only):
    /// set with Acquire when one is claimed, cleared with Release when it is
    /// dropped, so one appender's writes happen before the next one's.
    appender: AtomicBool,
    /// The access discipline; a type, not a value.
    kind: PhantomData<K>,
}

// SAFETY: the mapping is memory owned by this value, not tied to the thread that
// made it; `munmap` in `drop` may run on any thread.
unsafe impl<K> Send for MappedFile<K> {}

// SAFETY: through `&MappedFile<AppendOnly>` the contents are only read, and only
// below the write position (`slice`, Acquire). Those bytes never change: bytes
// are written only through the one `Appender` (claimed by compare-exchange),
// only at or above the write position, which only the appender moves, and only
// up, with Release after the bytes.
unsafe impl Sync for MappedFile<AppendOnly> {}

// SAFETY: every access to the contents of an in-place file is an aligned atomic
// 32-bit word (`word`); nothing hands out a `&[u8]` of it.
unsafe impl Sync for MappedFile<InPlace> {}

impl<K: Access> MappedFile<K> {
    /// Creates a new file of `size` bytes at `path`, reserves its disk blocks and
    /// maps it, with nothing written. Fails if the file exists or the disk has
    /// no room.
    pub(crate) fn create(path: &Path, base: u64, size: usize) -> Result<Self> {
        let length = Self::check_size(size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StoreError::io("create", path, e))?;
        if let Err(errno) = nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, length) {
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
    /// The write and flush positions start at `size` if `K` opens published
    /// ([`InPlace`]), else at 0 ([`AppendOnly`]: recovery raises them).
    pub(crate) fn open(path: &Path, base: u64, size: usize) -> Result<Self> {
        let length = Self::check_size(size)?;
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
            nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, length)
                .map_err(|e| StoreError::io("reserve space for", path, io::Error::from(e)))?;
        }
        let position = if K::OPENS_PUBLISHED { size } else { 0 };
        Self::map(path.to_path_buf(), file, base, size, position)
    }

    /// Checks that a file of `size` bytes can be made and accessed as `K`;
    /// returns the size as `fallocate` takes it.
    fn check_size(size: usize) -> Result<i64> {
        if size == 0 || !size.is_multiple_of(K::UNIT) {
            return Err(StoreError::Config(format!(
                "file size {size} is not a positive multiple of {}",
                K::UNIT
            )));
        }
        i64::try_from(size).map_err(|_| StoreError::Config(format!("file size {size} too large")))
    }

    fn map(path: PathBuf, file: File, base: u64, size: usize, position: usize) -> Result<Self> {
        let length = NonZeroUsize::new(size).expect("check_size refuses 0");
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
            appender: AtomicBool::new(false),
            kind: PhantomData,
        })
    }
}

impl<K> MappedFile<K> {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the file's first byte in the whole log (its name).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Length of the file.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Bytes written and visible to readers.
    pub(crate) fn wrote_position(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }

    /// Bytes known to be on disk.
    pub(crate) fn flushed_position(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }

    /// Bytes left after the write position.
    pub(crate) fn remaining(&self) -> usize {
        self.size - self.wrote_position()
    }

    /// Whether the write position has reached the end.
    pub(crate) fn is_full(&self) -> bool {
        self.wrote_position() >= self.size
    }

    /// Makes everything written so far durable with `msync`. Returns the new flush
    /// position. Only pages that changed since the last flush are synced.
    pub(crate) fn flush(&self) -> Result<usize> {
        let target = self.wrote_position();
        self.flush_range_to(target)?;
        Ok(target)
    }

    /// Makes the whole file durable, including bytes written in place below or
    /// above the write position (the IndexFile writes its slots there).
    pub(crate) fn flush_all(&self) -> Result<()> {
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
        assert!(start + len <= self.size, "msync past the end");
        // SAFETY: `start` is page aligned and `start..start + len` lies inside the
        // mapping (asserted); msync reads pages back to the file and changes no
        // byte of the mapping.
        unsafe {
            let addr = NonNull::new_unchecked(self.ptr.as_ptr().add(start)).cast();
            msync(addr, len, MsFlags::MS_SYNC)
        }
        .map_err(|e| StoreError::io("msync", &self.path, io::Error::from(e)))
    }

    /// Panics unless `pos..pos + len` lies inside the file and the file is not
    /// deleted: a caller bug, never input-driven (callers compute positions
    /// from checked values).
    fn check_write(&self, pos: usize, len: usize) {
        let end = pos.checked_add(len).expect("write position overflows");
        assert!(
            end <= self.size,
            "write of {pos}..{end} past the end of {}",
            self.path.display()
        );
        assert!(
            !self.deleted.load(Ordering::Relaxed),
            "write to deleted file {}",
            self.path.display()
        );
    }

    /// Zeroes everything from `pos` to the end of the file and syncs it, so that
    /// bytes left after a truncation can never be mistaken for data by a later
    /// scan. `write_zeros(at, len)` zeroes through the mapping in the way `K`
    /// allows: the part before the next page boundary, and everything when the
    /// file system cannot zero a range itself.
    fn zero_tail(&self, pos: usize, write_zeros: impl Fn(usize, usize)) -> Result<()> {
        if pos >= self.size {
            return Ok(());
        }
        let first_page_end = pos.div_ceil(PAGE) * PAGE;
        write_zeros(pos, first_page_end.min(self.size) - pos);
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
                write_zeros(first_page_end, self.size - first_page_end);
            }
        }
        self.msync(pos / PAGE * PAGE, self.size - pos / PAGE * PAGE)
    }

    /// Unlinks the file. Readers holding the `Arc` keep the mapping until they
    /// drop it; nothing is written to it again.
    pub(crate) fn destroy(&self) -> Result<()> {
        self.deleted.store(true, Ordering::Release);
        std::fs::remove_file(&self.path).map_err(|e| StoreError::io("delete", &self.path, e))
    }

    /// Last modification time of the file, for retention.
    pub(crate) fn modified(&self) -> Result<std::time::SystemTime> {
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| StoreError::io("stat", &self.path, e))
    }
}

impl MappedFile<AppendOnly> {
    /// The written bytes `pos..pos + len`, or `None` if any lies at or past the
    /// write position.
    pub(crate) fn slice(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.wrote_position() {
            return None;
        }
        // SAFETY: the range is inside the mapping and below the write position
        // (loaded with Acquire), so its bytes are published and never written
        // again (see `Sync`); the mapping lives as long as `self`, which the
        // returned borrow cannot outlive.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(pos), len) })
    }

    /// The file's one writer, or `None` while another [`Appender`] of it exists
    /// (a caller bug: each file has one owner that writes it).
    pub(crate) fn appender(self: &Arc<Self>) -> Option<Appender> {
        self.appender
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(Appender {
            file: Arc::clone(self),
            warmed: 0,
        })
    }

    /// Faults the pages of `start..start + len` in, writable, without
    /// changing a byte (`MADV_POPULATE_WRITE`): the kernel zero-fills a fresh
    /// page of the reserved, unwritten blocks at its first touch, and doing
    /// that here, on a thread of the store's own, keeps it off the appends.
    /// The pages become dirty and may be written back as zeros before the
    /// log reaches them, which is what those blocks read as anyway.
    pub(crate) fn populate(&self, start: usize, len: usize) -> Result<()> {
        let start = start / PAGE * PAGE;
        let end = start.saturating_add(len).min(self.size);
        if end <= start || self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: `start..end` lies inside the mapping, which lives as long
        // as `self`; populating reads and writes no byte of it.
        let rc = unsafe {
            nix::libc::madvise(
                self.ptr.as_ptr().add(start).cast(),
                end - start,
                nix::libc::MADV_POPULATE_WRITE,
            )
        };
        if rc != 0 {
            return Err(StoreError::io(
                "populate",
                &self.path,
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

/// The one writer of an append-only file: the CommitLog keeps the current
/// segment's in its append state, and recovery holds every segment's while it
/// scans. Writing takes `&mut self`, so no borrow of [`contents`](Self::contents)
/// is alive then, and the type's uniqueness means no other thread writes.
/// Dropping it lets the file's [`MappedFile::appender`] hand out a new one.
pub(crate) struct Appender {
    file: Arc<MappedFile<AppendOnly>>,
    /// How far pages were asked to be faulted in ahead of the writes.
    warmed: usize,
}

impl Appender {
    /// The whole file, written or not: recovery scans it before anything is
    /// published.
    pub(crate) fn contents(&self) -> &[u8] {
        // SAFETY: the whole mapping, which lives as long as `self.file`. Bytes
        // below the write position never change; bytes at or above it change
        // only through this appender, which cannot write while this shared
        // borrow of it lives.
        unsafe { std::slice::from_raw_parts(self.file.ptr.as_ptr(), self.file.size) }
    }

    /// Writes `bytes` at the write position with `pwrite` and publishes
    /// them, as [`append`](Self::append) does through the mapping. A slave
    /// appends its master's stream this way: a store through the mapping
    /// faults each fresh page in first (the kernel zero-fills a readahead
    /// window of the reserved, unwritten blocks), which `pwrite` of whole
    /// pages skips. The mapping sees the bytes at once (one page cache).
    pub(crate) fn append_written(&mut self, bytes: &[u8]) -> Result<usize> {
        // Relaxed: only this appender stores the write position.
        let pos = self.file.wrote.load(Ordering::Relaxed);
        self.file.check_write(pos, bytes.len());
        let mut done = 0;
        while done < bytes.len() {
            let at = (pos + done) as i64;
            match nix::sys::uio::pwrite(&self.file.file, &bytes[done..], at) {
                Ok(0) => {
                    return Err(StoreError::io(
                        "pwrite",
                        &self.file.path,
                        io::Error::from(io::ErrorKind::WriteZero),
                    ))
                }
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(StoreError::io("pwrite", &self.file.path, e.into())),
            }
        }
        self.file.wrote.store(pos + bytes.len(), Ordering::Release);
        Ok(pos)
    }

    /// Copies `bytes` to the write position and publishes them. Returns where
    /// they start.
    ///
    /// # Panics
    /// If `bytes` does not fit: callers check [`remaining`](MappedFile::remaining) first.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> usize {
        // Relaxed: only this appender stores the write position.
        let pos = self.file.wrote.load(Ordering::Relaxed);
        self.file.check_write(pos, bytes.len());
        // SAFETY: `pos..pos + len` lies inside the mapping (checked above) and at
        // or above the write position, where no reader looks and nothing but this
        // appender writes; `&mut self` rules out a live `contents` borrow.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.file.ptr.as_ptr().add(pos),
                bytes.len(),
            );
        }
        self.file.wrote.store(pos + bytes.len(), Ordering::Release);
        pos
    }

    /// The pages to fault in ahead of the writes ([`MappedFile::populate`]),
    /// when less than `ahead - step` bytes past the write position were
    /// asked for: the range from there to `ahead` past it, in whole steps.
    /// It is taken as asked for.
    pub(crate) fn warm_due(
        &mut self,
        ahead: usize,
        step: usize,
    ) -> Option<(Arc<MappedFile<AppendOnly>>, usize, usize)> {
        let wrote = self.file.wrote.load(Ordering::Relaxed);
        if self.warmed >= self.file.size || wrote + ahead - step < self.warmed {
            return None;
        }
        let start = self.warmed.max(wrote / step * step);
        let end = (wrote / step * step + ahead).min(self.file.size);
        self.warmed = end;
        Some((self.file.clone(), start, end - start))
    }

    /// Publishes the bytes up to `pos` as they are (the rest of a segment after
    /// its blank marker).
    ///
    /// # Panics
    /// If `pos` is behind the write position or past the end: published bytes
    /// stay published.
    pub(crate) fn publish(&mut self, pos: usize) {
        let wrote = self.file.wrote.load(Ordering::Relaxed);
        assert!(
            wrote <= pos && pos <= self.file.size,
            "publishing {pos} of {} with {wrote} already published",
            self.file.path.display()
        );
        self.file.wrote.store(pos, Ordering::Release);
    }

    /// Recovery found that the valid data ends at `pos`: zeroes everything
    /// after it (so that no later scan mistakes leftovers for records) and sets
    /// the write and flush positions to `pos`.
    ///
    /// # Panics
    /// As [`publish`](Self::publish).
    pub(crate) fn recover_to(&mut self, pos: usize) -> Result<()> {
        let file = &*self.file;
        let wrote = file.wrote.load(Ordering::Relaxed);
        assert!(
            wrote <= pos && pos <= file.size,
            "recovering {} to {pos} with {wrote} already published",
            file.path.display()
        );
        file.zero_tail(pos, |at, len| {
            file.check_write(at, len);
            // SAFETY: inside the mapping (checked) and at or above `pos`, so above
            // the write position: no reader looks there, and this appender,
            // borrowed mutably, is the only writer.
            unsafe { std::ptr::write_bytes(file.ptr.as_ptr().add(at), 0, len) };
        })?;
        file.flushed.store(pos, Ordering::Release);
        file.wrote.store(pos, Ordering::Release);
        Ok(())
    }
}

impl std::ops::Deref for Appender {
    type Target = MappedFile<AppendOnly>;

    fn deref(&self) -> &MappedFile<AppendOnly> {
        &self.file
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.file.appender.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Appender").field(&*self.file).finish()
    }
}

impl MappedFile<InPlace> {
    /// The word at `pos`, or `None` if it does not lie inside the file.
    ///
    /// # Panics
    /// If `pos` is not a multiple of 4: every field of the in-place layouts is
    /// (a caller bug, never input-driven).
    fn word(&self, pos: usize) -> Option<&AtomicU32> {
        assert!(
            pos.is_multiple_of(WORD),
            "unaligned word at {pos} in {}",
            self.path.display()
        );
        if pos.checked_add(WORD)? > self.size {
            return None;
        }
        // SAFETY: `pos..pos + 4` lies inside the mapping, which lives as long as
        // `self` and so outlives the borrow; the address is 4-aligned (the
        // mapping is page aligned, `pos` a multiple of 4), as `AtomicU32` needs;
        // and every access to an in-place file's contents is such an atomic
        // word, so no non-atomic or differently sized access races with it.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(pos).cast::<u32>()) })
    }

    /// Copies `N` bytes at `pos`, whatever the write position, word by word; a
    /// concurrent rewrite may be seen half done (callers check what they read).
    /// `None` past the end of the file.
    pub(crate) fn read_array<const N: usize>(&self, pos: usize) -> Option<[u8; N]> {
        const { assert!(N.is_multiple_of(WORD), "in-place reads are whole words") };
        if pos.checked_add(N)? > self.size {
            return None;
        }
        let mut out = [0u8; N];
        for (at, chunk) in (pos..).step_by(WORD).zip(out.chunks_exact_mut(WORD)) {
            let word = self.word(at)?;
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        Some(out)
    }

    /// Reads a big-endian i32 at `pos` (see [`read_array`](Self::read_array)).
    pub(crate) fn read_i32(&self, pos: usize) -> Option<i32> {
        self.read_array(pos).map(i32::from_be_bytes)
    }

    /// Reads a big-endian i64 at `pos` as two words (see
    /// [`read_array`](Self::read_array)).
    pub(crate) fn read_i64(&self, pos: usize) -> Option<i64> {
        self.read_array(pos).map(i64::from_be_bytes)
    }

    /// Writes `bytes` at `pos`, word by word, without moving the write position.
    /// Callers serialise their writes (one writer per file, by their own lock);
    /// readers may read at the same time.
    ///
    /// # Panics
    /// If the range is outside the file or not whole words: a caller bug.
    pub(crate) fn write_at(&self, pos: usize, bytes: &[u8]) {
        self.store_words(pos, bytes.len(), |i| {
            let chunk = &bytes[i * WORD..][..WORD];
            u32::from_ne_bytes(chunk.try_into().expect("a word's bytes"))
        });
    }

    /// Stores the `len / 4` words from `pos` on, the `i`th being `value(i)`.
    fn store_words(&self, pos: usize, len: usize, value: impl Fn(usize) -> u32) {
        self.check_write(pos, len);
        assert!(len.is_multiple_of(WORD), "in-place write of {len} bytes");
        for (i, at) in (pos..pos + len).step_by(WORD).enumerate() {
            self.word(at)
                .expect("range checked above")
                .store(value(i), Ordering::Relaxed);
        }
    }

    /// Writes `bytes` at the write position and publishes them (Release).
    /// Returns where they start. Callers serialise, as for
    /// [`write_at`](Self::write_at).
    pub(crate) fn append(&self, bytes: &[u8]) -> usize {
        let pos = self.wrote.load(Ordering::Acquire);
        self.write_at(pos, bytes);
        self.wrote.store(pos + bytes.len(), Ordering::Release);
        pos
    }

    /// Sets the write position (the IndexFile, which writes in place anywhere).
    pub(crate) fn set_wrote_position(&self, pos: usize) {
        assert!(pos <= self.size);
        self.wrote.store(pos, Ordering::Release);
    }

    /// Sets both positions (recovery, and cutting a ConsumeQueue).
    pub(crate) fn set_positions(&self, pos: usize) {
        assert!(pos <= self.size);
        self.wrote.store(pos, Ordering::Release);
        self.flushed.store(pos, Ordering::Release);
    }

    /// Zeroes everything from `pos` to the end of the file and syncs it, so that
    /// entries left after a truncation can never be mistaken for valid ones.
    pub(crate) fn zero_from(&self, pos: usize) -> Result<()> {
        self.zero_tail(pos, |at, len| self.store_words(at, len, |_| 0))
    }
}

impl<K> Drop for MappedFile<K> {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this pointer and size, and
        // every borrow of it (`slice`, `contents`, `word`) is tied to a borrow of
        // this value, so none outlives it.
        let res = unsafe { munmap(self.ptr.cast(), self.size) };
        if let Err(e) = res {
            log::error!("munmap {}: {e}", self.path.display());
        }
    }
}

impl<K> std::fmt::Debug for MappedFile<K> {
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
pub(crate) fn offset_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Parses a 20-digit offset file name; `None` for anything else (stray files are
/// skipped with a warning by the callers).
pub(crate) fn parse_offset_file_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Lists the offset-named files in `dir`, sorted by offset, warning about others.
pub(crate) fn list_offset_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
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

    fn append_only(dir: &TempDir, size: usize) -> Arc<MappedFile> {
        let path = dir.path().join(offset_file_name(0));
        Arc::new(MappedFile::create(&path, 0, size).unwrap())
    }

    #[test]
    fn pages_are_warmed_a_window_ahead_in_steps_and_keep_their_bytes() {
        let dir = TempDir::new("mapped_file_warm");
        let file = append_only(&dir, 64 * 1024);
        let mut appender = file.appender().unwrap();
        let due = |a: &mut Appender| a.warm_due(16384, 4096).map(|(_, s, l)| (s, l));
        assert_eq!(due(&mut appender), Some((0, 16384)));
        assert_eq!(due(&mut appender), None, "asked for already");
        appender.append(&[7; 8193]);
        // 8 KiB in, less than 16 - 4 KiB is left of the window: the next part.
        assert_eq!(due(&mut appender), Some((16384, 8192)));
        assert_eq!(due(&mut appender), None);
        appender.append(&vec![8; 64 * 1024 - 8193 - 100]);
        // Pages the writes have passed are not worth it any more.
        assert_eq!(due(&mut appender), Some((61440, 4096)), "up to the end");
        assert_eq!(due(&mut appender), None, "nothing past the end");

        // Faulting pages in changes no byte, written or not.
        file.populate(0, 64 * 1024).unwrap();
        file.populate(60 * 1024, 1 << 20).unwrap();
        let contents = appender.contents();
        assert!(contents[..8193].iter().all(|&b| b == 7));
        assert!(contents[8193..64 * 1024 - 100].iter().all(|&b| b == 8));
        assert!(contents[64 * 1024 - 100..].iter().all(|&b| b == 0));
    }

    #[test]
    fn append_publishes_and_flush_follows() {
        let dir = TempDir::new("mapped_file");
        let file = append_only(&dir, 8192);
        let mut appender = file.appender().unwrap();
        assert_eq!(file.wrote_position(), 0);
        assert!(file.slice(0, 1).is_none());
        assert_eq!(appender.append(b"hello"), 0);
        assert_eq!(appender.append(b" world"), 5);
        assert_eq!(file.slice(0, 11), Some(&b"hello world"[..]));
        assert!(file.slice(0, 12).is_none());
        assert_eq!(file.flushed_position(), 0);
        assert_eq!(file.flush().unwrap(), 11);
        assert_eq!(file.flushed_position(), 11);
        drop((appender, file));

        // Reopened, nothing is published until recovery says where data ends.
        let path = dir.path().join(offset_file_name(0));
        let again = Arc::new(MappedFile::<AppendOnly>::open(&path, 0, 8192).unwrap());
        assert_eq!(again.wrote_position(), 0);
        assert!(again.slice(0, 1).is_none());
        let mut appender = again.appender().unwrap();
        assert_eq!(&appender.contents()[..11], b"hello world");
        appender.recover_to(5).unwrap();
        assert_eq!(again.slice(0, 5), Some(&b"hello"[..]));
        assert_eq!(again.flushed_position(), 5);
        assert_eq!(&appender.contents()[..11], b"hello\0\0\0\0\0\0");
        assert!(appender.contents()[5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn an_append_only_file_has_one_appender_at_a_time() {
        let dir = TempDir::new("mapped_file_appender");
        let file = append_only(&dir, 4096);
        let mut first = file.appender().unwrap();
        assert!(file.appender().is_none());
        first.append(b"abcd");
        drop(first);
        let mut second = file.appender().unwrap();
        assert_eq!(second.append(b"efgh"), 4);
        second.publish(4096);
        assert!(file.is_full());
        assert_eq!(file.slice(0, 8), Some(&b"abcdefgh"[..]));
    }

    #[test]
    #[should_panic(expected = "already published")]
    fn published_bytes_stay_published() {
        let dir = TempDir::new("mapped_file_publish");
        let file = append_only(&dir, 4096);
        let mut appender = file.appender().unwrap();
        appender.append(b"abcd");
        appender.recover_to(2).unwrap();
    }

    #[test]
    fn create_refuses_an_existing_file_and_open_grows_a_short_one() {
        let dir = TempDir::new("mapped_file_exists");
        let path = dir.path().join(offset_file_name(4096));
        std::fs::write(&path, b"short").unwrap();
        assert!(MappedFile::<AppendOnly>::create(&path, 4096, 4096).is_err());
        let file = Arc::new(MappedFile::<AppendOnly>::open(&path, 4096, 4096).unwrap());
        assert_eq!(file.size(), 4096);
        let appender = file.appender().unwrap();
        assert_eq!(appender.contents().len(), 4096);
        assert_eq!(&appender.contents()[..6], b"short\0");
    }

    #[test]
    fn in_place_words_keep_the_bytes_big_endian_fields_have_on_disk() {
        let dir = TempDir::new("mapped_file_in_place");
        let path = dir.path().join("words");
        let file = MappedFile::<InPlace>::create(&path, 0, 24).unwrap();
        file.write_at(4, &0x0102_0304_0506_0708i64.to_be_bytes());
        file.write_at(12, &(-2i32).to_be_bytes());
        assert_eq!(file.read_i64(4), Some(0x0102_0304_0506_0708));
        assert_eq!(file.read_i32(12), Some(-2));
        assert_eq!(file.read_array::<8>(16), Some([0; 8]));
        assert_eq!(file.read_i32(24), None);
        assert_eq!(file.read_i64(20), None);
        assert_eq!(file.append(&[9; 8]), 0);
        assert_eq!(file.wrote_position(), 8);
        file.flush_all().unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes[..16],
            [9, 9, 9, 9, 9, 9, 9, 9, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xfe]
        );

        // Opening publishes an in-place file whole; zeroing keeps what is before.
        let file = MappedFile::<InPlace>::open(&path, 0, 24).unwrap();
        assert_eq!(file.wrote_position(), 24);
        file.zero_from(8).unwrap();
        assert_eq!(
            file.read_array::<12>(4),
            Some([9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn in_place_files_are_whole_words() {
        let dir = TempDir::new("mapped_file_words");
        let path = dir.path().join("odd");
        assert!(matches!(
            MappedFile::<InPlace>::create(&path, 0, 22),
            Err(StoreError::Config(_))
        ));
        assert!(!path.exists());
        let file = MappedFile::<InPlace>::create(&path, 0, 24).unwrap();
        let unaligned = std::panic::catch_unwind(|| file.read_i32(2));
        assert!(unaligned.is_err());
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
