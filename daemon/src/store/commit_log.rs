//! The CommitLog: one sequential log of every message of every topic, in fixed-size
//! mapped segments named by their 20-digit start offset.
//!
//! An append encodes its records outside any lock, then, in one short critical
//! section, assigns queue offsets and physical offsets, stamps the store time and
//! copies the bytes into the mapping. A batch is one append. A record that does
//! not fit the rest of a segment (with 8 bytes to spare) leaves a blank marker and
//! goes to the next segment, which a background thread has usually created already.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use mq_protocol::message::{
    self, sys_flag, Record, StoredMessage, BLANK_MAGIC, BLANK_MARKER_LEN, PHYSICAL_OFFSET_POS,
    QUEUE_OFFSET_POS,
};

use super::disk_guard::DiskGuard;
use super::error::{Result, StoreError};
use super::mapped_file::{list_offset_files, offset_file_name, Appender, MappedFile};

/// A message as a producer hands it to the store; the store adds the queue
/// offset, physical offset, store time and store host.
#[derive(Debug, Clone)]
pub struct PutMessage<'a> {
    /// Topic, at most 127 bytes.
    pub topic: &'a str,
    /// Queue within the topic.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// [`sys_flag`] bits (compression, transaction type); host bits are derived.
    pub sys_flag: i32,
    /// When the producer made it (ms).
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// Times consumed before (retries).
    pub reconsume_times: i32,
    /// Offset of the half message, for transaction commit and rollback records.
    pub prepared_transaction_offset: i64,
    /// The body as it will be stored.
    pub body: &'a [u8],
    /// The properties string.
    pub properties: &'a str,
}

impl<'a> PutMessage<'a> {
    /// A stored message stored again (a delayed message reaching its topic, a
    /// retry, a committed or re-checked half message): its flags, times, hosts,
    /// retry count, transaction offset and body, under `topic`, `queue_id` and
    /// `properties`. Callers change the fields that differ.
    pub fn again(
        msg: &StoredMessage<'a>,
        topic: &'a str,
        queue_id: i32,
        properties: &'a str,
    ) -> Self {
        PutMessage {
            topic,
            queue_id,
            flag: msg.flag,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            born_host: msg.born_host,
            reconsume_times: msg.reconsume_times,
            prepared_transaction_offset: msg.prepared_transaction_offset,
            body: msg.body,
            properties,
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Physical offset of the first record.
    pub wrote_offset: i64,
    /// Bytes appended (all records, not counting a blank marker).
    pub wrote_bytes: usize,
    /// Physical offset and queue offset of each message, in order.
    pub messages: Vec<(i64, i64)>,
    /// The store timestamp stamped on every record of the append.
    pub store_timestamp: i64,
}

impl AppendResult {
    /// Offset just past the last appended byte: what a flush must reach.
    pub fn end_offset(&self) -> i64 {
        self.wrote_offset + self.wrote_bytes as i64
    }
}

/// How far ahead of the appends the segment's pages are faulted in, and in
/// what steps (see [`MappedFile::populate`]).
const WARM_AHEAD: usize = 4 << 20;
const WARM_STEP: usize = 1 << 20;

/// Records encoded outside the lock, waiting for offsets.
struct Encoded {
    bytes: Vec<u8>,
    /// Start and length of each record within `bytes`.
    records: Vec<(usize, usize)>,
}

/// State that only the appender touches, under one lock.
struct AppendState {
    /// Next queue offset per topic and queue id.
    queue_offsets: HashMap<String, HashMap<i32, i64>>,
    /// The segment being written, through its one writer. `None` until
    /// recovery hands over the last segment (or while the log has none).
    current: Option<Appender>,
}

/// The one log of the store.
pub struct CommitLog {
    file_size: usize,
    /// Every live segment, oldest first, contiguous.
    files: RwLock<Vec<Arc<MappedFile>>>,
    append: Mutex<AppendState>,
    allocator: Arc<Allocator>,
    /// Told when a segment cannot be created for lack of space.
    disk: Arc<DiskGuard>,
    store_host: SocketAddr,
    max_message_size: usize,
    /// Store time of the last appended record; with the write position it tells
    /// the flusher which store time its flush covers.
    last_store_timestamp: AtomicI64,
    /// Offset up to which data is known to be flushed.
    flushed_where: AtomicI64,
    /// When the append holding the lock took it, ms since the epoch; 0 when
    /// no append holds it (RocketMQ's `pageCacheLockTimeMills` is its age).
    locked_since: AtomicI64,
    /// Set at shutdown; appends then fail with [`StoreError::Closed`].
    closed: AtomicBool,
    /// A slave's log: written only by [`append_replica`](Self::append_replica),
    /// and its store times learnt from the dispatcher rather than the appender.
    replica: AtomicBool,
    /// Appends go in with `pwrite` rather than through the mapping: set
    /// under SYNC_FLUSH (see [`set_write_through`](Self::set_write_through)).
    write_through: AtomicBool,
}

impl CommitLog {
    /// Maps the segments in `dir` (created if missing). They publish nothing
    /// until recovery ([`super::recovery::recover_commit_log`]) has scanned them
    /// and set their positions, which it must do before the log is used. `disk`
    /// is refreshed each time a segment is created, and told when one does not fit.
    pub fn load(
        dir: &Path,
        file_size: usize,
        store_host: SocketAddr,
        max_message_size: usize,
        disk: Arc<DiskGuard>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        let mut files = Vec::new();
        for (base, path) in list_offset_files(dir)? {
            if base % file_size as u64 != 0 {
                return Err(StoreError::Config(format!(
                    "{} does not start at a multiple of the segment size {file_size}; \
                     was the store made with another mappedFileSizeCommitLog?",
                    path.display()
                )));
            }
            if let Some(prev) = files.last().map(|f: &Arc<MappedFile>| f.base()) {
                if base != prev + file_size as u64 {
                    return Err(StoreError::Config(format!(
                        "commit log segment {} is missing (next is {}); refusing to open a log with a hole",
                        offset_file_name(prev + file_size as u64),
                        path.display()
                    )));
                }
            }
            files.push(Arc::new(MappedFile::open(&path, base, file_size)?));
        }
        Ok(CommitLog {
            file_size,
            files: RwLock::new(files),
            append: Mutex::new(AppendState {
                queue_offsets: HashMap::new(),
                current: None,
            }),
            allocator: Allocator::start(dir.to_path_buf(), file_size, disk.clone()),
            disk,
            store_host,
            max_message_size,
            last_store_timestamp: AtomicI64::new(0),
            flushed_where: AtomicI64::new(0),
            locked_since: AtomicI64::new(0),
            closed: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            write_through: AtomicBool::new(false),
        })
    }

    /// Bytes per segment.
    pub fn file_size(&self) -> usize {
        self.file_size
    }

    /// A snapshot of the live segments, oldest first.
    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Offset of the first byte still stored.
    pub fn min_offset(&self) -> i64 {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files.first().map_or(0, |f| f.base() as i64)
    }

    /// Offset just past the last written byte.
    pub fn max_offset(&self) -> i64 {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files
            .last()
            .map_or(0, |f| (f.base() + f.wrote_position() as u64) as i64)
    }

    /// Offset up to which everything is flushed.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_where.load(Ordering::Acquire)
    }

    /// How long the append in progress has held the append lock, ms; 0 when
    /// no append is in progress.
    pub fn lock_time_ms(&self) -> i64 {
        match self.locked_since.load(Ordering::Relaxed) {
            0 => 0,
            since => (mq_protocol::time::now_ms() - since).max(0),
        }
    }

    /// Store timestamp of the last appended record.
    pub fn last_store_timestamp(&self) -> i64 {
        self.last_store_timestamp.load(Ordering::Acquire)
    }

    /// The segment holding `offset`, if it is still stored.
    pub fn file_for(&self, offset: i64) -> Option<Arc<MappedFile>> {
        let offset = u64::try_from(offset).ok()?;
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        let first = files.first()?.base();
        let index = usize::try_from(offset.checked_sub(first)? / self.file_size as u64).ok()?;
        files.get(index).cloned()
    }

    /// The bytes of the record at `offset` whose size the caller knows (from a
    /// ConsumeQueue entry), if they are stored and written.
    pub fn read(&self, offset: i64, size: usize) -> Option<RecordBytes> {
        let file = self.file_for(offset)?;
        let pos = usize::try_from(offset as u64 - file.base()).ok()?;
        file.slice(pos, size)?;
        Some(RecordBytes {
            file,
            pos,
            len: size,
        })
    }

    /// The record starting at `offset`, its size read from the log itself.
    pub fn read_record(&self, offset: i64) -> Option<RecordBytes> {
        let file = self.file_for(offset)?;
        let pos = usize::try_from(offset as u64 - file.base()).ok()?;
        let (size, magic) = message::peek_header(file.slice(pos, BLANK_MARKER_LEN)?)?;
        if magic != message::MESSAGE_MAGIC {
            return None;
        }
        self.read(offset, usize::try_from(size).ok()?)
    }

    /// Store timestamp of the record at `offset` with `size` bytes (the
    /// ConsumeQueue's time search uses it).
    pub fn store_timestamp_at(&self, offset: i64, size: i32) -> Option<i64> {
        let record = self.read(offset, usize::try_from(size).ok()?)?;
        let flag = i32::from_be_bytes(
            record
                .get(message::SYS_FLAG_POS..message::SYS_FLAG_POS + 4)?
                .try_into()
                .ok()?,
        );
        let pos = message::store_timestamp_pos(flag);
        Some(i64::from_be_bytes(
            record.get(pos..pos + 8)?.try_into().ok()?,
        ))
    }

    /// Encodes `messages` (outside any lock).
    fn encode(&self, messages: &[PutMessage<'_>]) -> Result<Encoded> {
        if messages.is_empty() {
            return Err(StoreError::EmptyBatch);
        }
        let mut bytes = Vec::new();
        let mut records = Vec::with_capacity(messages.len());
        for m in messages {
            if m.body.len() > self.max_message_size {
                return Err(StoreError::MessageTooLarge {
                    size: m.body.len(),
                    limit: self.max_message_size,
                });
            }
            let record = StoredMessage {
                body_crc: 0,
                queue_id: m.queue_id,
                flag: m.flag,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag: m.sys_flag,
                born_timestamp: m.born_timestamp,
                born_host: m.born_host,
                store_timestamp: 0,
                store_host: self.store_host,
                reconsume_times: m.reconsume_times,
                prepared_transaction_offset: m.prepared_transaction_offset,
                body: m.body,
                topic: m.topic,
                properties: m.properties,
            };
            let start = bytes.len();
            let len = record.encode_into(&mut bytes)?;
            records.push((start, len));
        }
        // A segment must hold the whole append plus room for a blank marker.
        if bytes.len() + BLANK_MARKER_LEN > self.file_size {
            return Err(StoreError::MessageTooLarge {
                size: bytes.len(),
                limit: self.file_size - BLANK_MARKER_LEN,
            });
        }
        Ok(Encoded { bytes, records })
    }

    /// Appends `messages` as one unit: consecutive physical offsets, and within a
    /// queue consecutive queue offsets. Returns once the bytes are in the mapping
    /// (flushing is the caller's business).
    pub fn append(&self, messages: &[PutMessage<'_>]) -> Result<AppendResult> {
        let mut encoded = self.encode(messages)?;
        let total = encoded.bytes.len();
        let mut state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let AppendState {
            queue_offsets,
            current,
        } = &mut *state;
        let file = self.writable_file(current, total)?;
        let store_timestamp = mq_protocol::time::now_ms();
        self.locked_since.store(store_timestamp, Ordering::Relaxed);
        let wrote_offset = (file.base() + file.wrote_position() as u64) as i64;
        let mut placed = Vec::with_capacity(messages.len());
        for (m, &(start, len)) in messages.iter().zip(&encoded.records) {
            let phys = wrote_offset + start as i64;
            let queue_offset = if takes_queue_offset(m.sys_flag) {
                let next = next_queue_offset(queue_offsets, m.topic, m.queue_id);
                let offset = *next;
                *next += 1;
                offset
            } else {
                0
            };
            let rec = &mut encoded.bytes[start..start + len];
            rec[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8]
                .copy_from_slice(&queue_offset.to_be_bytes());
            rec[PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8].copy_from_slice(&phys.to_be_bytes());
            let flag = i32::from_be_bytes(
                rec[message::SYS_FLAG_POS..message::SYS_FLAG_POS + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            let ts = message::store_timestamp_pos(flag);
            rec[ts..ts + 8].copy_from_slice(&store_timestamp.to_be_bytes());
            placed.push((phys, queue_offset));
        }
        if self.write_through.load(Ordering::Relaxed) {
            if let Err(e) = file.append_written(&encoded.bytes) {
                // Nothing was published: give the queue offsets back, so
                // that the next append takes them and no queue has a gap.
                for (m, &(_, queue_offset)) in messages.iter().zip(&placed).rev() {
                    if takes_queue_offset(m.sys_flag) {
                        *next_queue_offset(queue_offsets, m.topic, m.queue_id) = queue_offset;
                    }
                }
                self.locked_since.store(0, Ordering::Relaxed);
                return Err(e);
            }
        } else {
            file.append(&encoded.bytes);
            if let Some((segment, start, len)) = file.warm_due(WARM_AHEAD, WARM_STEP) {
                self.allocator.warm(segment, start, len);
            }
        }
        self.last_store_timestamp
            .store(store_timestamp, Ordering::Release);
        self.locked_since.store(0, Ordering::Relaxed);
        drop(state);
        Ok(AppendResult {
            wrote_offset,
            wrote_bytes: total,
            messages: placed,
            store_timestamp,
        })
    }

    /// The segment to write `len` bytes to (`current`, the append state's),
    /// rolling over (blank marker, next segment) when they do not fit with 8
    /// bytes to spare.
    fn writable_file<'a>(
        &self,
        current: &'a mut Option<Appender>,
        len: usize,
    ) -> Result<&'a mut Appender> {
        if current
            .as_ref()
            .is_some_and(|file| len + BLANK_MARKER_LEN <= file.remaining())
        {
            return Ok(current.as_mut().expect("checked above"));
        }
        let next_base = match current.as_mut() {
            Some(file) => {
                if !file.is_full() {
                    file.append(&blank_marker(file.remaining()));
                    let size = file.size();
                    file.publish(size);
                }
                file.base() + self.file_size as u64
            }
            None => 0,
        };
        let appender = self.add_segment(next_base)?;
        Ok(current.insert(appender))
    }

    /// Adds the segment at `base` (made ahead of time, or now) to the end of
    /// the log, asks for the one after it, and returns its writer.
    fn add_segment(&self, base: u64) -> Result<Appender> {
        let next = self
            .allocator
            .take(base)
            .map_err(|e| self.out_of_space(e))?;
        let appender = next
            .appender()
            .expect("a segment new to the log has no writer yet");
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(next);
        self.allocator.request(base + self.file_size as u64);
        Ok(appender)
    }

    /// Has appends write with `pwrite` (at open, before use). Under
    /// SYNC_FLUSH every append waits for a flush, and the disk takes pages
    /// written that way sooner: measured here, a 64 KiB flush of pages
    /// stored through the mapping took about 530 µs and of pages written
    /// with `pwrite` about 300 µs (the mapping's pages must be faulted in,
    /// made writable and cleaned again for each flush). Under ASYNC_FLUSH
    /// the syscall per append would cost more than it saves.
    pub fn set_write_through(&self, write_through: bool) {
        self.write_through.store(write_through, Ordering::Release);
    }

    /// Makes this a slave's log (at open, before use): see
    /// [`append_replica`](Self::append_replica).
    pub fn set_replica(&self, replica: bool) {
        self.replica.store(replica, Ordering::Release);
    }

    /// Whether this is a slave's log.
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    /// A slave's log learns the store time of its records from the dispatcher,
    /// which sees each one once it is complete: the flusher then knows which
    /// store time a flush covers (the checkpoint's physic time).
    pub fn note_replica_timestamp(&self, store_timestamp: i64) {
        self.last_store_timestamp
            .fetch_max(store_timestamp, Ordering::AcqRel);
    }

    /// Appends `data`, bytes of the master's log that start at `offset`, as
    /// they are (they may end inside a record; the rest follows). `offset`
    /// must be where this log ends, or, for an empty log, the start of a
    /// segment; `data` must fit the segment (the master never sends across a
    /// segment's end: its blank marker fills the end, and the next bytes start
    /// the next segment).
    pub fn append_replica(&self, offset: i64, data: &[u8]) -> Result<()> {
        let mut state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let replica = |why: String| StoreError::Replica { offset, why };
        let size = self.file_size as u64;
        let end = match state.current.as_ref() {
            Some(file) => file.base() + file.wrote_position() as u64,
            None => {
                let first = u64::try_from(offset)
                    .ok()
                    .filter(|o| o % size == 0)
                    .ok_or_else(|| {
                        replica(format!(
                            "an empty log starts at a segment boundary (a multiple of {size})"
                        ))
                    })?;
                state.current = Some(self.add_segment(first)?);
                first
            }
        };
        if u64::try_from(offset).ok() != Some(end) {
            return Err(replica(format!("this log ends at {end}")));
        }
        if data.is_empty() {
            return Ok(());
        }
        if state.current.as_ref().is_some_and(|file| file.is_full()) {
            state.current = Some(self.add_segment(end)?);
        }
        let file = state.current.as_mut().expect("set above");
        if data.len() > file.remaining() {
            return Err(replica(format!(
                "{} bytes do not fit the {} left in segment {}",
                data.len(),
                file.remaining(),
                file.base()
            )));
        }
        file.append_written(data)?;
        Ok(())
    }

    /// Tells the disk guard when a segment could not be created for lack of space.
    fn out_of_space(&self, e: StoreError) -> StoreError {
        if e.is_out_of_space() {
            log::warn!("{e}");
            self.disk.out_of_space(self.file_size as u64)
        } else {
            e
        }
    }

    /// Up to `max` written bytes from `offset` on, within the segment holding
    /// `offset` (what a master sends its slave in one frame). `None` when
    /// nothing is written there yet, or the segment is no longer stored.
    pub fn read_published(&self, offset: i64, max: usize) -> Option<RecordBytes> {
        let file = self.file_for(offset)?;
        let pos = usize::try_from(offset as u64 - file.base()).ok()?;
        let len = file.wrote_position().checked_sub(pos)?.min(max);
        if len == 0 {
            return None;
        }
        self.read(offset, len)
    }

    /// Cuts a slave's log back to `end` while it is in use (its master has
    /// less than it has). Segments that start at or after `end` are deleted.
    /// The segment holding `end` is replaced by a copy of its bytes before
    /// `end`, renamed over it: readers may still hold the old one's bytes
    /// (published bytes never change), so they are not rewritten in place.
    /// The caller keeps the dispatcher away meanwhile.
    pub fn truncate_live(&self, end: i64) -> Result<()> {
        let end_u = u64::try_from(end).map_err(|_| StoreError::Replica {
            offset: end,
            why: "a negative offset".into(),
        })?;
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        state.current = None;
        while let Some(last) = files.last() {
            if last.base() < end_u {
                break;
            }
            log::warn!(
                "replication: deleting commit log segment {}: the master's log ends at {end}",
                last.path().display()
            );
            last.destroy()?;
            files.pop();
        }
        if let Some(last) = files.last().cloned() {
            let keep = usize::try_from(end_u - last.base()).expect("inside the segment");
            if keep < last.wrote_position() {
                *files.last_mut().expect("checked above") = copy_prefix(&last, keep)?;
            }
            let last = files.last().expect("checked above");
            state.current = Some(
                last.appender()
                    .expect("the log let go of every appender above"),
            );
        }
        // A segment made ahead of time for a base past the new end would be
        // a file after a hole at the next start.
        let next = files
            .last()
            .map_or(end_u - end_u % self.file_size as u64, |last| {
                last.base() + self.file_size as u64
            });
        self.allocator.reset(next);
        self.flushed_where.fetch_min(end, Ordering::AcqRel);
        Ok(())
    }

    /// Sets the next queue offset of every queue (after recovery).
    pub fn set_queue_offsets(&self, offsets: HashMap<String, HashMap<i32, i64>>) {
        self.append
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue_offsets = offsets;
    }

    /// Forgets the queue offsets of a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        self.append
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue_offsets
            .remove(topic);
    }

    /// Flushes every segment up to the write position. Returns the flushed offset.
    pub fn flush(&self) -> Result<i64> {
        loop {
            let from = self.flushed_where.load(Ordering::Acquire);
            let Some(file) = self.file_for(from) else {
                // Retention may have removed the segment the flush position was in.
                let min = self.min_offset();
                if from < min && self.file_for(min).is_some() {
                    self.flushed_where.fetch_max(min, Ordering::AcqRel);
                    continue;
                }
                return Ok(from);
            };
            let flushed = file.flush()?;
            let reached = (file.base() + flushed as u64) as i64;
            self.flushed_where.fetch_max(reached, Ordering::AcqRel);
            // Move on only when this segment is complete and a later one exists.
            if flushed < file.size() || self.file_for(reached).is_none() {
                return Ok(self.flushed_where.load(Ordering::Acquire));
            }
        }
    }

    /// Sets where flushing stands (after recovery).
    pub fn set_flushed_offset(&self, offset: i64) {
        self.flushed_where.store(offset, Ordering::Release);
    }

    /// Drops every segment that starts after `end` (recovery truncation; they hold
    /// nothing valid, or are empty pre-created segments) and continues appending
    /// in the last one left. Logs what it deletes. Recovery calls it once it has
    /// let go of every segment's appender.
    pub fn truncate_to(&self, end: i64) -> Result<()> {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        state.current = None;
        while let Some(last) = files.last() {
            if last.base() as i64 <= end {
                break;
            }
            log::info!(
                "recovery: removing commit log segment {} after the recovered end {end}",
                last.path().display()
            );
            last.destroy()?;
            files.pop();
        }
        state.current = files.last().map(|last| {
            last.appender()
                .expect("recovery lets go of every segment before truncating")
        });
        Ok(())
    }

    /// Deletes the oldest segments whose last modification is older than
    /// `expired_before` (or all eligible ones when `force`), never the segment
    /// being written and never a segment the dispatcher has not finished
    /// (`dispatched`). At most `max` per call. Returns how many were deleted.
    pub fn delete_expired(
        &self,
        expired_before: SystemTime,
        force: bool,
        dispatched: i64,
        max: usize,
    ) -> Result<usize> {
        let mut deleted = 0;
        while deleted < max {
            let candidate = {
                let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
                if files.len() <= 1 {
                    break;
                }
                files[0].clone()
            };
            let end = (candidate.base() + candidate.size() as u64) as i64;
            if end > dispatched || end > self.flushed_offset() {
                break;
            }
            if !force && candidate.modified()? >= expired_before {
                break;
            }
            log::info!(
                "retention: deleting commit log segment {}{}",
                candidate.path().display(),
                if force {
                    " (disk nearly full)"
                } else {
                    " (expired)"
                }
            );
            {
                let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
                if files.first().map(|f| f.base()) == Some(candidate.base()) {
                    files.remove(0);
                }
            }
            candidate.destroy()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Asks for the segment after the current one (or the first) to be created
    /// in the background now, so that the first roll-over after opening does not
    /// wait for file creation either.
    pub fn prepare_next_segment(&self) {
        let state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        let next = state
            .current
            .as_ref()
            .map_or(0, |file| file.base() + self.file_size as u64);
        drop(state);
        self.allocator.request(next);
    }

    /// Refuses further appends (shutdown) and waits for the one in progress.
    pub fn close(&self) {
        let _state = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Release);
        self.allocator.stop();
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        // Ends the allocator thread even when opening the store failed half way.
        self.allocator.stop();
    }
}

/// A new segment file with the first `len` bytes of `old` and nothing after
/// them, in `old`'s place: written beside it, synced and renamed over it.
/// `old` keeps its (now unlinked) mapping for whoever still reads it.
fn copy_prefix(old: &MappedFile, len: usize) -> Result<Arc<MappedFile>> {
    use std::io::Write;
    let path = old.path().to_path_buf();
    let tmp = path.with_extension("truncating");
    let prefix = old.slice(0, len).expect("below the write position");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(prefix)?;
        file.set_len(old.size() as u64)?;
        file.sync_all()
    };
    write().map_err(|e| StoreError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &tmp, e))?;
    if let Some(dir) = path.parent() {
        super::checkpoint::sync_dir(dir)?;
    }
    let copy = Arc::new(MappedFile::open(&path, old.base(), old.size())?);
    // Publishes the prefix and reserves the blocks of the rest (zeroed).
    copy.appender()
        .expect("a file just opened has no writer")
        .recover_to(len)?;
    Ok(copy)
}

/// The marker that fills the `remaining` bytes at the end of a segment: their
/// count as TOTALSIZE, then [`BLANK_MAGIC`].
pub(crate) fn blank_marker(remaining: usize) -> [u8; BLANK_MARKER_LEN] {
    let mut marker = [0u8; BLANK_MARKER_LEN];
    let remaining = i32::try_from(remaining).expect("segment size fits i32");
    marker[..4].copy_from_slice(&remaining.to_be_bytes());
    marker[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    marker
}

/// The next queue offset slot of a queue, creating it at 0. Allocates the topic
/// string only the first time a topic is seen.
/// Half messages and rollbacks never reach a ConsumeQueue, so they do not
/// take a queue offset (RocketMQ stores 0 for them).
fn takes_queue_offset(sys_flag: i32) -> bool {
    let tx = sys_flag::transaction_type(sys_flag);
    tx != sys_flag::TRANSACTION_PREPARED && tx != sys_flag::TRANSACTION_ROLLBACK
}

fn next_queue_offset<'a>(
    table: &'a mut HashMap<String, HashMap<i32, i64>>,
    topic: &str,
    queue_id: i32,
) -> &'a mut i64 {
    if !table.contains_key(topic) {
        table.insert(topic.to_owned(), HashMap::new());
    }
    table
        .get_mut(topic)
        .expect("inserted above")
        .entry(queue_id)
        .or_insert(0)
}

/// A record's bytes inside a segment; keeps the segment mapped while held.
pub struct RecordBytes {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl std::ops::Deref for RecordBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.file
            .slice(self.pos, self.len)
            .expect("range was checked when the RecordBytes was made")
    }
}

impl RecordBytes {
    /// Decodes the record (without checking the CRC).
    pub fn decode(&self) -> Option<StoredMessage<'_>> {
        match message::decode_record(self, false) {
            Ok(Record::Message(msg, _)) => Some(msg),
            _ => None,
        }
    }
}

/// Creates the next segment ahead of time on its own thread, so that an append
/// crossing into a new segment does not wait for file creation and `fallocate`.
pub(crate) struct Allocator {
    dir: PathBuf,
    file_size: usize,
    /// Refreshed after every creation: a new segment takes a whole segment's
    /// blocks at once.
    disk: Arc<DiskGuard>,
    slot: Mutex<AllocSlot>,
    changed: Condvar,
}

#[derive(Default)]
struct AllocSlot {
    /// The base the thread should create next.
    requested: Option<u64>,
    /// Pages of the segment being written to fault in ahead of the appends.
    warm: Option<(Arc<MappedFile>, usize, usize)>,
    /// The outcome of the last creation, by base.
    ready: Option<(u64, Result<Arc<MappedFile>>)>,
    /// The thread is creating a file now.
    busy: bool,
    stop: bool,
}

impl Allocator {
    fn start(dir: PathBuf, file_size: usize, disk: Arc<DiskGuard>) -> Arc<Self> {
        let alloc = Arc::new(Allocator {
            dir,
            file_size,
            disk,
            slot: Mutex::new(AllocSlot::default()),
            changed: Condvar::new(),
        });
        let worker = alloc.clone();
        // Detached on purpose: the thread ends when `stop` is set at close.
        std::thread::Builder::new()
            .name("mq-allocate".into())
            .spawn(move || worker.run())
            .expect("spawn allocator thread");
        alloc
    }

    fn path_for(&self, base: u64) -> PathBuf {
        self.dir.join(offset_file_name(base))
    }

    fn run(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if slot.stop {
                return;
            }
            let Some(base) = slot.requested.take() else {
                if let Some((file, start, len)) = slot.warm.take() {
                    drop(slot);
                    if let Err(e) = file.populate(start, len) {
                        // Only a cost: the appends fault the pages in themselves.
                        log::debug!("{e}");
                    }
                    slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
                slot = self
                    .changed
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            slot.busy = true;
            drop(slot);
            let made = MappedFile::create(&self.path_for(base), base, self.file_size).map(Arc::new);
            if let Err(e) = &made {
                // Appends go on in the current segment; the one that needs
                // this segment tries again and reports the error.
                log::warn!("pre-creating commit log segment {base}: {e}");
            }
            self.disk.refresh();
            slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.busy = false;
            // A segment made for a base nobody took (after a stop) is removed below.
            slot.ready = Some((base, made));
            self.changed.notify_all();
        }
    }

    /// Asks for the segment at `base` to be created in the background.
    fn request(&self, base: u64) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(&slot.ready, Some((b, Ok(_))) if *b == base) || slot.stop {
            return;
        }
        slot.requested = Some(base);
        self.changed.notify_all();
    }

    /// Asks for `len` bytes of `file` from `start` to be faulted in, in the
    /// background; replaces a request not yet taken up.
    fn warm(&self, file: Arc<MappedFile>, start: usize, len: usize) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let end = start + len;
        let start = match &slot.warm {
            // Not taken up yet: the new range takes over the old one's start.
            Some((f, s, _)) if Arc::ptr_eq(f, &file) && *s < start => *s,
            _ => start,
        };
        slot.warm = Some((file, start, end - start));
        self.changed.notify_all();
    }

    /// The segment at `base`: the pre-created one if it is ready or being made,
    /// otherwise created now. A failed background creation is retried here once,
    /// so a full disk that has since been cleaned does not stick.
    fn take(&self, base: u64) -> Result<Arc<MappedFile>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match slot.ready.take() {
                Some((b, Ok(file))) if b == base => return Ok(file),
                Some((b, Ok(file))) => {
                    log::warn!("dropping pre-created segment {b}, wanted {base}");
                    let _ = file.destroy();
                }
                Some(_) | None => {}
            }
            if slot.busy || slot.requested == Some(base) && !slot.stop {
                slot = self
                    .changed
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            break;
        }
        drop(slot);
        let path = self.path_for(base);
        // A pre-created file left by a previous run (named but never written to)
        // is reused rather than refused.
        let made = if path.exists() {
            // Opened with nothing published: appends start at its beginning.
            MappedFile::open(&path, base, self.file_size).map(Arc::new)
        } else {
            MappedFile::create(&path, base, self.file_size).map(Arc::new)
        };
        if made.is_ok() {
            self.disk.refresh();
        }
        made
    }

    /// Forgets a segment made ahead of time for another base than `next`
    /// (deleting its file), and asks for `next` instead.
    fn reset(&self, next: u64) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        while slot.busy {
            slot = self
                .changed
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match slot.ready.take() {
            Some((base, Ok(file))) if base != next => {
                if let Err(e) = file.destroy() {
                    log::warn!("deleting pre-created segment {base}: {e}");
                }
            }
            other => slot.ready = other,
        }
        drop(slot);
        self.request(next);
    }

    fn stop(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.stop = true;
        // The pre-created segment stays on disk: it is empty, and the next start
        // reuses it as the next segment.
        slot.ready = None;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::recovery::{recover_commit_log, scan_segment, SegmentEnd};
    use crate::store::test_util::{
        damage_body, end_with_blank, message, segment, write_segments, TempDir,
    };

    /// Bytes per segment in these tests, the smallest a store accepts.
    const SIZE: usize = 4096;

    fn log_dir(dir: &TempDir) -> PathBuf {
        dir.path().join("commitlog")
    }

    /// Loads the log in `dir` and recovers it as after a crash (from its first
    /// segment); returns it and its recovered end.
    fn recover(dir: &TempDir) -> (CommitLog, i64) {
        let disk = Arc::new(DiskGuard::new(dir.path().to_path_buf(), 100, 0));
        let host = SocketAddr::from(([127, 0, 0, 1], 10911));
        let log = CommitLog::load(&log_dir(dir), SIZE, host, 2048, disk).unwrap();
        let end = recover_commit_log(&log, true, None).unwrap().end;
        (log, end)
    }

    /// The body of the record at `offset`, if it is a valid, written message.
    fn body_at(log: &CommitLog, offset: usize) -> Option<Vec<u8>> {
        let record = log.read_record(i64::try_from(offset).unwrap())?;
        Some(record.decode()?.body.to_vec())
    }

    /// A segment's bytes on disk (the mapping's writes reach the page cache
    /// without a flush).
    fn on_disk(dir: &TempDir, base: usize) -> Vec<u8> {
        std::fs::read(log_dir(dir).join(offset_file_name(base as u64))).unwrap()
    }

    #[test]
    fn appends_continue_where_a_torn_record_was_cut() {
        let dir = TempDir::new("log_torn");
        let (mut seg, at, end) = segment(SIZE, 0, 0, &[b"one", b"two", b"three"]);
        seg[at[2] + 20..end].fill(0);
        write_segments(&log_dir(&dir), SIZE, &[&seg]);
        let (log, recovered) = recover(&dir);
        assert_eq!(recovered, at[2] as i64);
        assert_eq!((log.min_offset(), log.max_offset()), (0, at[2] as i64));
        assert_eq!(body_at(&log, 0).as_deref(), Some(&b"one"[..]));
        assert_eq!(body_at(&log, at[1]).as_deref(), Some(&b"two"[..]));
        assert!(log.read_record(at[2] as i64).is_none());

        let four = log.append(&[message(b"four")]).unwrap();
        assert_eq!(four.wrote_offset, at[2] as i64);
        let stored = log.read_record(four.wrote_offset).unwrap();
        let stored = stored.decode().unwrap();
        assert_eq!(stored.physical_offset, four.wrote_offset);
        assert_eq!(stored.store_timestamp, four.store_timestamp);
        assert_eq!(stored.body, b"four");
        // Nothing of the torn record is left after the new one.
        let written = usize::try_from(four.end_offset()).unwrap();
        assert_eq!(
            scan_segment(&on_disk(&dir, 0), 0),
            SegmentEnd::EndOfData(written)
        );
    }

    #[test]
    fn a_bad_crc_cuts_the_log_and_drops_the_segments_after_it() {
        let dir = TempDir::new("log_crc");
        let (mut first, at, _) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        damage_body(&mut first, at[1], b"two");
        let (second, _, _) = segment(SIZE, SIZE as u64, 2, &[b"three"]);
        write_segments(&log_dir(&dir), SIZE, &[&first, &second]);
        let (log, end) = recover(&dir);
        assert_eq!(end, at[1] as i64);
        assert_eq!(log.files().len(), 1);
        assert!(!log_dir(&dir).join(offset_file_name(SIZE as u64)).exists());
        assert!(log.read_record(at[1] as i64).is_none());
        assert!(log.read(at[1] as i64, 1).is_none());
        assert!(on_disk(&dir, 0)[at[1]..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_segment_claiming_another_segments_offsets_is_emptied_and_reused() {
        let dir = TempDir::new("log_offset");
        let (mut first, _, end) = segment(SIZE, 0, 0, &[b"one"]);
        end_with_blank(&mut first, end);
        // The second segment is a copy of the first: its records claim offset 0.
        write_segments(&log_dir(&dir), SIZE, &[&first, &first]);
        let (log, recovered) = recover(&dir);
        assert_eq!(recovered, SIZE as i64);
        assert_eq!(log.files().len(), 2);
        assert!(log.read_record(SIZE as i64).is_none());
        let two = log.append(&[message(b"two")]).unwrap();
        assert_eq!(two.wrote_offset, SIZE as i64);
        assert_eq!(body_at(&log, SIZE).as_deref(), Some(&b"two"[..]));
        assert_eq!(
            scan_segment(&on_disk(&dir, SIZE), SIZE as u64),
            SegmentEnd::EndOfData(two.wrote_bytes)
        );
    }

    #[test]
    fn a_blank_tail_sends_reads_and_appends_to_the_next_segment() {
        let dir = TempDir::new("log_blank");
        let (mut first, at, end) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        end_with_blank(&mut first, end);
        let (second, _, second_end) = segment(SIZE, SIZE as u64, 2, &[b"three"]);
        write_segments(&log_dir(&dir), SIZE, &[&first, &second]);
        let (log, recovered) = recover(&dir);
        assert_eq!(recovered, (SIZE + second_end) as i64);
        // The marker is no message; the bytes after it are published but unused.
        assert!(log.read_record(end as i64).is_none());
        assert!(log.read(end as i64, SIZE - end).is_some());
        assert_eq!(body_at(&log, SIZE).as_deref(), Some(&b"three"[..]));
        let size_of = |len: usize| i32::try_from(len).unwrap();
        assert_eq!(
            log.store_timestamp_at(at[1] as i64, size_of(end - at[1])),
            Some(2000)
        );
        assert_eq!(
            log.store_timestamp_at(SIZE as i64, size_of(second_end)),
            Some(1000)
        );
        let four = log.append(&[message(b"four")]).unwrap();
        assert_eq!(four.wrote_offset, recovered);
    }

    #[test]
    fn what_appends_write_across_segments_is_what_recovery_accepts() {
        let dir = TempDir::new("log_roll");
        let (log, end) = recover(&dir);
        assert_eq!(end, 0);
        let body = [7u8; 1000];
        let appended: Vec<AppendResult> = (0..5)
            .map(|_| log.append(&[message(&body)]).unwrap())
            .collect();
        // Three records fit the first segment; the fourth rolled over.
        assert_eq!(appended[3].wrote_offset, SIZE as i64);
        let last_end = appended[4].end_offset();
        assert_eq!(log.max_offset(), last_end);
        drop(log);
        assert_eq!(scan_segment(&on_disk(&dir, 0), 0), SegmentEnd::Complete);
        assert_eq!(
            scan_segment(&on_disk(&dir, SIZE), SIZE as u64),
            SegmentEnd::EndOfData(usize::try_from(last_end).unwrap() - SIZE)
        );
        let (log, end) = recover(&dir);
        assert_eq!(end, last_end);
        assert_eq!(body_at(&log, SIZE).as_deref(), Some(&body[..]));
    }
}
