//! [`MessageStore`]: the store as the broker sees it. Opening runs recovery;
//! appends go to the CommitLog (waiting for a flush under SYNC_FLUSH); reads go
//! through the ConsumeQueues and the IndexFiles that the dispatcher builds;
//! closing drains the dispatcher, flushes everything, writes the checkpoint and
//! removes the abort marker.
//!
//! Threads: segment pre-creation (`mq-allocate`), CommitLog flush (`mq-flush`),
//! dispatch (`mq-dispatch`), and housekeeping (`mq-housekeeping`: the disk
//! check every second; ConsumeQueue, IndexFile and checkpoint flushes every
//! `flushIntervalConsumeQueue`; retention every `cleanResourceInterval`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use mq_protocol::message::{Record, StoredMessage};
use mq_protocol::properties::{self, keys, KEY_SEPARATOR};

use super::checkpoint::{sync_dir, Checkpoint, CheckpointFile};
use super::commit_log::{AppendResult, CommitLog, PutMessage, RecordBytes};
use super::config::{FlushDiskType, StoreConfig};
use super::consume_queue::{ConsumeQueues, CqEntry, LogBounds};
use super::disk_guard::{DiskGuard, DiskReading};
use super::dispatch::{ArrivalListener, Dispatcher};
use super::doorbell::Doorbell;
use super::error::{Result, StoreError};
use super::flush::FlushService;
use super::index_file::IndexService;
use super::recovery;
use super::retention::{self, RetentionState};

/// How durable a stored message is when `put` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// As the flush mode promises (in the mapping for ASYNC_FLUSH, on disk for SYNC_FLUSH).
    Done,
    /// SYNC_FLUSH: no flush covered the message within `syncFlushTimeout`
    /// (the broker answers FLUSH_DISK_TIMEOUT). The message is stored.
    FlushTimeout,
    /// SYNC_FLUSH: the flush failed. The message is in the log but may not be on disk.
    FlushFailed(String),
}

/// The outcome of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Where the messages landed.
    pub append: AppendResult,
    /// Whether the flush the mode promises happened.
    pub durability: Durability,
}

/// Why a read found what it found (RocketMQ `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    /// Messages were found.
    Found,
    /// Entries were there but none passed the filter.
    NoMatchedMessage,
    /// The entries point at CommitLog data that retention removed.
    MessageWasRemoving,
    /// An entry pointed at bytes that could not be read.
    OffsetFoundNull,
    /// The offset is past the end by more than one.
    OffsetOverflowBadly,
    /// The offset is exactly the end: nothing new yet (long polling waits here).
    OffsetOverflowOne,
    /// The offset is below the queue's minimum.
    OffsetTooSmall,
    /// No such topic and queue.
    NoMatchedLogicQueue,
    /// The queue exists but has never held a message.
    NoMessageInQueue,
}

impl GetStatus {
    /// The name RocketMQ's GetMessageStatus gives this status (PULL responses
    /// carry it in their remark).
    pub fn java_name(self) -> &'static str {
        match self {
            GetStatus::Found => "FOUND",
            GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            GetStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
            GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            GetStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// What [`MessageStore::truncate_replica`] dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Where the log ends now.
    pub from: i64,
    /// Where it ended before.
    pub to: i64,
    /// Messages whose records did not end before `from`.
    pub messages: usize,
}

/// What a read returns.
pub struct GetResult {
    /// Why.
    pub status: GetStatus,
    /// Where the consumer should read next.
    pub next_begin_offset: i64,
    /// The queue's minimum offset.
    pub min_offset: i64,
    /// The queue's maximum offset (next to be written).
    pub max_offset: i64,
    /// The records found, each exactly as stored.
    pub messages: Vec<RecordBytes>,
    /// The reader is far behind the log's end, more than
    /// `accessMessageInMemoryMaxRatio` of memory: a master tells the consumer
    /// to pull from its slave (when `slaveReadEnable`).
    pub suggest_pulling_from_slave: bool,
}

impl GetResult {
    /// Total bytes of the records found.
    pub fn bytes(&self) -> usize {
        self.messages.iter().map(|m| m.len()).sum()
    }
}

/// The message store. Cheap to share: clone the `Arc` it lives in.
pub struct MessageStore {
    config: StoreConfig,
    log: Arc<CommitLog>,
    queues: Arc<ConsumeQueues>,
    index: Option<Arc<IndexService>>,
    dispatcher: Arc<Dispatcher>,
    flusher: Arc<FlushService>,
    checkpoint: CheckpointFile,
    /// Refuses appends while the disk is too full.
    disk: Arc<DiskGuard>,
    retention: RetentionState,
    housekeeping: Housekeeping,
    /// Holds the store's `lock` file (flock) until close.
    lock: Mutex<Option<Flock<File>>>,
    closed: AtomicBool,
    /// Rung after every append (replication's senders wait on it).
    new_data: Doorbell,
    /// Bytes behind the log's end a reader may be before it is told to read
    /// from the slave: `accessMessageInMemoryMaxRatio` of physical memory.
    memory_for_reads: i64,
}

/// The housekeeping thread's handle and its stop signal.
#[derive(Default)]
struct Housekeeping {
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl MessageStore {
    /// Opens the store under `config.root`, creating it if new, and recovers it:
    /// a clean open checks only the last segment; an open after a crash (the
    /// `abort` marker is there) checks from the checkpoint on and re-dispatches.
    pub fn open(config: StoreConfig) -> Result<Arc<Self>> {
        config.validate().map_err(StoreError::Config)?;
        let root = config.root.clone();
        std::fs::create_dir_all(&root).map_err(|e| StoreError::io("create", &root, e))?;
        let lock = lock_store(&root)?;

        let abort_path = root.join("abort");
        let crashed = abort_path.exists();
        let checkpoint = CheckpointFile::new(root.join("checkpoint"));
        let saved = checkpoint.load();
        if crashed {
            log::warn!(
                "{} was not closed cleanly: running crash recovery",
                root.display()
            );
        }
        File::create(&abort_path).map_err(|e| StoreError::io("create", &abort_path, e))?;
        sync_dir(&root)?;

        let disk = Arc::new(DiskGuard::new(
            root.clone(),
            config.disk_space_warning_level_ratio,
            config.derived_files_reserve(),
        ));
        disk.refresh();
        let log = Arc::new(CommitLog::load(
            &root.join("commitlog"),
            config.commit_log_file_size,
            config.store_host,
            config.max_message_size,
            disk.clone(),
        )?);
        log.set_replica(config.replica);
        log.set_write_through(config.flush_disk_type == FlushDiskType::SyncFlush);
        let queues = Arc::new(ConsumeQueues::load(
            &root.join("consumequeue"),
            config.consume_queue_entries_per_file,
        )?);
        let index = if config.message_index_enable {
            Some(Arc::new(IndexService::load(
                &root.join("index"),
                config.index_hash_slots,
                config.index_max_entries,
            )?))
        } else {
            None
        };

        // 1. Where does the valid CommitLog end?
        let started = Instant::now();
        let min_ts = saved.map(|cp| cp.min_timestamp(config.message_index_enable) - 3000);
        let recovery::Recovered { scan_from, end } =
            recovery::recover_commit_log(&log, crashed, min_ts)?;

        // 2. Queues and index: drop what points past the end, and find the
        //    earliest record whose entries may be missing.
        let bounds = LogBounds {
            min_phys: log.min_offset(),
            end_phys: end,
            max_record_size: i32::try_from(config.max_message_size + 64 * 1024).unwrap_or(i32::MAX),
        };
        let mut redispatch_from = if crashed { scan_from } else { end };
        let mut queue_progress = None;
        for queue in queues.all() {
            let report = queue.recover(bounds)?;
            // recover() checks the newest files; this catches entries in older
            // ones that point past a log cut back further than that.
            let cut_older = queue.truncate_dirty(end)?;
            if report.truncated || cut_older {
                redispatch_from =
                    redispatch_from.min(queue.max_phys_end().unwrap_or(bounds.min_phys));
            }
            queue_progress = queue_progress.max(queue.max_phys_end());
        }
        // Queues are built in log order, so the most advanced one tells how far
        // dispatch got; with no queue at all (the consumequeue directory was
        // deleted, the way RocketMQ users rebuild it) everything is dispatched again.
        redispatch_from = redispatch_from.min(queue_progress.unwrap_or(bounds.min_phys));
        if let Some(index) = &index {
            if let Some(from) = index.truncate_from(end)? {
                redispatch_from = redispatch_from.min(from);
            }
        }
        let redispatch_from = redispatch_from.max(log.min_offset()).min(end);

        // 3. Rebuild what is missing from the log itself.
        let delay_levels = config.delay_levels().map_err(StoreError::Config)?;
        let dispatcher = Dispatcher::new(
            log.clone(),
            queues.clone(),
            index.clone(),
            disk.clone(),
            delay_levels,
            redispatch_from,
        );
        dispatcher.redispatch_on_open(end)?;
        let mut offsets: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for queue in queues.all() {
            offsets
                .entry(queue.topic().to_owned())
                .or_default()
                .insert(queue.queue_id(), queue.max_offset());
        }
        log.set_queue_offsets(offsets);
        log::info!(
            "store {} opened in {:?}: commit log {}..{end}, re-dispatched from {redispatch_from}",
            root.display(),
            started.elapsed(),
            log.min_offset()
        );

        let memory_for_reads = (physical_memory() as f64
            * f64::from(config.access_message_in_memory_max_ratio)
            / 100.0) as i64;
        let flusher = FlushService::start(
            log.clone(),
            config.flush_disk_type,
            config.flush_interval_commit_log,
            config.flush_commit_log_least_pages,
            config.flush_commit_log_thorough_interval,
            config.sync_flush_timeout,
        );
        dispatcher.start();
        log.prepare_next_segment();
        let store = Arc::new(MessageStore {
            config,
            log,
            queues,
            index,
            dispatcher,
            flusher,
            checkpoint,
            disk,
            retention: RetentionState::default(),
            housekeeping: Housekeeping::default(),
            lock: Mutex::new(Some(lock)),
            closed: AtomicBool::new(false),
            new_data: Doorbell::new(),
            memory_for_reads,
        });
        store.disk.refresh();
        store.start_housekeeping();
        Ok(store)
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Appends `messages` as one unit (a batch), then, under SYNC_FLUSH and when
    /// `wait_store` is true (the WAIT property), waits for a flush that covers them.
    pub async fn put(&self, messages: &[PutMessage<'_>], wait_store: bool) -> Result<Stored> {
        let append = self.append(messages)?;
        let durability = self.wait_durable(&append, wait_store).await;
        Ok(Stored { append, durability })
    }

    /// The first half of [`put`](Self::put): appends `messages` as one unit
    /// and returns once they are in the mapping, ringing [`new_data`](Self::new_data).
    pub fn append(&self, messages: &[PutMessage<'_>]) -> Result<AppendResult> {
        if self.config.replica {
            return Err(StoreError::Replica {
                offset: self.log.max_offset(),
                why: "a slave's log is written only by replication".into(),
            });
        }
        self.disk.check_writable()?;
        let append = self.log.append(messages)?;
        self.dispatcher.wake();
        self.new_data.ring();
        Ok(append)
    }

    /// The second half of [`put`](Self::put): under SYNC_FLUSH, waits for a
    /// flush covering `append` when `wait_store` is true.
    pub async fn wait_durable(&self, append: &AppendResult, wait_store: bool) -> Durability {
        if self.config.flush_disk_type != FlushDiskType::SyncFlush {
            return Durability::Done;
        }
        if !wait_store {
            self.flusher.wake_up();
            return Durability::Done;
        }
        match self.flusher.wait_flushed(append.end_offset()).await {
            Ok(()) => Durability::Done,
            Err(StoreError::FlushTimeout { .. }) => Durability::FlushTimeout,
            Err(e) => Durability::FlushFailed(e.to_string()),
        }
    }

    /// Rung after every append: replication waits here for bytes to send.
    pub fn new_data(&self) -> &Doorbell {
        &self.new_data
    }

    /// A slave appends `data`, the master's CommitLog bytes from `offset`, as
    /// they are: byte for byte at the master's offsets, possibly ending inside
    /// a record. The dispatcher builds the slave's own ConsumeQueues and index
    /// from them once records are complete. Refused while the disk is full.
    pub fn append_replica(&self, offset: i64, data: &[u8]) -> Result<()> {
        self.disk.check_writable()?;
        self.log.append_replica(offset, data)?;
        self.dispatcher.wake();
        self.new_data.ring();
        Ok(())
    }

    /// Under SYNC_FLUSH, waits for a flush of everything up to `offset` (a
    /// slave does before it reports `offset` to its master, so that the
    /// master's acknowledgement means "on the slave's disk" too); at once
    /// under ASYNC_FLUSH.
    pub async fn flush_replica(&self, offset: i64) -> Result<()> {
        if self.config.flush_disk_type != FlushDiskType::SyncFlush {
            return Ok(());
        }
        self.flusher.wait_flushed(offset).await
    }

    /// Up to `max` bytes of the CommitLog from `offset`, within one segment:
    /// what a master sends a slave in one frame. `None` when nothing is
    /// written there yet (or the segment is gone).
    pub fn replication_data(&self, offset: i64, max: usize) -> Option<RecordBytes> {
        self.log.read_published(offset, max)
    }

    /// Cuts a slave's store back to `end`, where its master's log ends: the
    /// CommitLog (live, see [`CommitLog::truncate_live`]), then the queue and
    /// index entries of records that do not end before `end`, which are
    /// dispatched again as the master's bytes arrive. Logs every message
    /// dropped (up to a limit) and returns what was dropped. Blocking.
    pub fn truncate_replica(&self, end: i64) -> Result<Truncated> {
        let old_end = self.log.max_offset();
        let mut report = Truncated {
            from: end,
            to: old_end,
            messages: 0,
        };
        if end >= old_end {
            return Ok(report);
        }
        let first_cut = self.record_start_at_or_before(end);
        report.messages = self.report_dropped(first_cut, end, old_end);
        let queues = &self.queues;
        let index = &self.index;
        let log = &self.log;
        self.dispatcher.rewind(|| {
            log.truncate_live(end)?;
            for queue in queues.all() {
                queue.truncate_dirty(end)?;
            }
            let mut from = first_cut;
            if let Some(index) = index {
                if let Some(begin) = index.truncate_from(end)? {
                    from = from.min(begin);
                }
            }
            Ok(from.max(log.min_offset()))
        })?;
        Ok(report)
    }

    /// Where the record holding log offset `at` starts (or `at` itself, if it
    /// is the start of a record or the end of the log): records are walked
    /// from the start of the segment holding `at`.
    fn record_start_at_or_before(&self, at: i64) -> i64 {
        let Some(file) = self.log.file_for(at) else {
            return at;
        };
        let mut offset = file.base() as i64;
        while offset < at {
            let pos = (offset as u64 - file.base()) as usize;
            let Some((size, magic)) = file
                .slice(pos, mq_protocol::message::BLANK_MARKER_LEN)
                .and_then(mq_protocol::message::peek_header)
            else {
                return offset;
            };
            let size = i64::from(size.max(1));
            if magic != mq_protocol::message::MESSAGE_MAGIC || offset + size > at {
                return offset;
            }
            offset += size;
        }
        at
    }

    /// Logs the messages of `from..old_end` (records starting there; the one at
    /// `from` may straddle `end`), before a slave cuts its log at `end`.
    /// Returns how many there were.
    fn report_dropped(&self, from: i64, end: i64, old_end: i64) -> usize {
        /// Messages logged one by one; the rest are counted.
        const LOGGED: usize = 20;
        let mut count = 0;
        let mut offset = from;
        while offset < old_end {
            let Some(record) = self.log.read_record(offset) else {
                // A blank marker (the rest of the segment) or a partial record.
                let size = self.log.file_size() as i64;
                let next = (offset / size + 1) * size;
                if self.log.file_for(offset).is_some_and(|f| {
                    f.slice((offset as u64 - f.base()) as usize, 8)
                        .and_then(mq_protocol::message::peek_header)
                        .is_some_and(|(_, m)| m == mq_protocol::message::BLANK_MAGIC)
                }) {
                    offset = next;
                    continue;
                }
                break;
            };
            if let Some(msg) = record.decode() {
                if count < LOGGED {
                    log::warn!(
                        "replication: dropping message {} ({} queue {} offset {}, stored at {}): \
                         the master does not have it",
                        mq_protocol::message::offset_msg_id(&msg.store_host, offset),
                        msg.topic,
                        msg.queue_id,
                        msg.queue_offset,
                        msg.store_timestamp
                    );
                }
                count += 1;
            }
            offset += record.len() as i64;
        }
        log::warn!(
            "replication: this slave held commit log {end}..{old_end} that its master does \
             not have (the master lost it); dropping it: {count} message(s) from {from} on",
        );
        count
    }

    /// [`put`](Self::put) for callers without an executor.
    pub fn put_blocking(&self, messages: &[PutMessage<'_>], wait_store: bool) -> Result<Stored> {
        async_io::block_on(self.put(messages, wait_store))
    }

    /// Reads up to `max_count` messages (and about `max_bytes`) of a queue from
    /// `offset`, keeping those whose tag code `filter` accepts.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn Fn(i64) -> bool,
    ) -> GetResult {
        let Some(queue) = self.queues.get(topic, queue_id) else {
            return GetResult {
                status: GetStatus::NoMatchedLogicQueue,
                next_begin_offset: 0,
                min_offset: 0,
                max_offset: 0,
                messages: Vec::new(),
                suggest_pulling_from_slave: false,
            };
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        let mut result = GetResult {
            status: GetStatus::NoMessageInQueue,
            next_begin_offset: offset,
            min_offset: min,
            max_offset: max,
            messages: Vec::new(),
            suggest_pulling_from_slave: false,
        };
        if max == 0 {
            result.next_begin_offset = 0;
            return result;
        }
        if offset < min {
            result.status = GetStatus::OffsetTooSmall;
            result.next_begin_offset = min;
            return result;
        }
        if offset == max {
            result.status = GetStatus::OffsetOverflowOne;
            return result;
        }
        if offset > max {
            result.status = GetStatus::OffsetOverflowBadly;
            result.next_begin_offset = if min == 0 { min } else { max };
            return result;
        }
        // Look at a bounded number of entries, so a selective filter cannot make
        // one pull scan a whole queue (RocketMQ: maxFilterMessageCount).
        let scan_limit = max_count.max(800);
        let log_min = self.log.min_offset();
        let mut next = offset;
        let mut status = GetStatus::NoMatchedMessage;
        let mut bytes = 0;
        let mut last_phys: i64 = -1;
        'scan: while next < max && next - offset < scan_limit as i64 {
            let entries = queue.entries_from(next, (scan_limit as i64 - (next - offset)) as usize);
            if entries.is_empty() {
                break;
            }
            for (logical, entry) in entries {
                if result.messages.len() >= max_count
                    || (bytes >= max_bytes && !result.messages.is_empty())
                {
                    break 'scan;
                }
                next = logical + 1;
                last_phys = entry.phys_offset;
                if entry.phys_offset < log_min {
                    status = GetStatus::MessageWasRemoving;
                    continue;
                }
                if !filter(entry.tag_code) {
                    continue;
                }
                let Some(record) = usize::try_from(entry.size)
                    .ok()
                    .and_then(|size| self.log.read(entry.phys_offset, size))
                    .filter(|r| r.get(..4) == Some(&entry.size.to_be_bytes()[..]))
                else {
                    // Never hand out bytes that are not the record the entry names.
                    log::warn!(
                        "{topic}/{queue_id} offset {logical}: entry ({}, {}) does not match the commit log",
                        entry.phys_offset,
                        entry.size
                    );
                    status = GetStatus::OffsetFoundNull;
                    continue;
                };
                bytes += record.len();
                result.messages.push(record);
            }
        }
        result.status = if result.messages.is_empty() {
            status
        } else {
            GetStatus::Found
        };
        result.next_begin_offset = next;
        // As RocketMQ: measured from the last entry looked at.
        if last_phys >= 0 {
            result.suggest_pulling_from_slave =
                self.log.max_offset() - last_phys > self.memory_for_reads;
        }
        result
    }

    /// The smallest offset a consumer of the queue may read (0 if no such queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .get(topic, queue_id)
            .map_or(0, |q| q.min_offset())
    }

    /// The next offset to be written in the queue (0 if no such queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queues
            .get(topic, queue_id)
            .map_or(0, |q| q.max_offset())
    }

    /// The first offset of the queue whose message was stored at or after `timestamp` (ms).
    pub fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp: i64) -> i64 {
        self.queues.get(topic, queue_id).map_or(0, |q| {
            q.offset_by_time(timestamp, |phys, size| {
                self.log.store_timestamp_at(phys, size)
            })
        })
    }

    /// Store time of the queue's oldest message still stored.
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let queue = self.queues.get(topic, queue_id)?;
        let (_, entry) = queue
            .entries_from(queue.min_offset(), 1)
            .into_iter()
            .next()?;
        self.log.store_timestamp_at(entry.phys_offset, entry.size)
    }

    /// Up to `max` ConsumeQueue entries of a queue from `offset`, each with its
    /// logical offset (the schedule service reads delivery times from them).
    pub fn queue_entries(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max: usize,
    ) -> Vec<(i64, CqEntry)> {
        self.queues
            .get(topic, queue_id)
            .map(|q| q.entries_from(offset, max))
            .unwrap_or_default()
    }

    /// The record of a ConsumeQueue entry, if it is still stored and matches.
    pub fn read_entry(&self, entry: &CqEntry) -> Option<RecordBytes> {
        let size = usize::try_from(entry.size).ok()?;
        self.log
            .read(entry.phys_offset, size)
            .filter(|r| r.get(..4) == Some(&entry.size.to_be_bytes()[..]))
    }

    /// CommitLog offset of the message at `offset` of the queue.
    pub fn first_entry_phys_offset(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        self.queues
            .get(topic, queue_id)?
            .get(offset)
            .map(|e| e.phys_offset)
    }

    /// Store time of the message at `offset` of the queue.
    pub fn message_store_time(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let entry = self.queues.get(topic, queue_id)?.get(offset)?;
        self.log.store_timestamp_at(entry.phys_offset, entry.size)
    }

    /// The record at CommitLog offset `phys` (VIEW_MESSAGE_BY_ID).
    pub fn look_message(&self, phys: i64) -> Option<RecordBytes> {
        self.log.read_record(phys)
    }

    /// Messages of `topic` carrying `key` (in KEYS, or as UNIQ_KEY) stored in
    /// `[begin, end]` ms, newest first, at most `max`. Hash collisions of the
    /// index are filtered out here.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Vec<RecordBytes> {
        let Some(index) = &self.index else {
            return Vec::new();
        };
        // Ask for more than `max`: collisions are dropped below.
        let offsets = index.query(topic, key, max.saturating_mul(2).max(32), begin, end);
        let mut out = Vec::new();
        for phys in offsets {
            if out.len() >= max {
                break;
            }
            let Some(record) = self.log.read_record(phys) else {
                continue;
            };
            let matches = match mq_protocol::message::decode_record(&record, false) {
                Ok(Record::Message(msg, _)) => msg.topic == topic && has_key(&msg, key),
                _ => false,
            };
            if matches {
                out.push(record);
            }
        }
        out
    }

    /// CommitLog bounds: first stored byte and end of written data.
    pub fn commit_log_range(&self) -> (i64, i64) {
        (self.log.min_offset(), self.log.max_offset())
    }

    /// Store time of the oldest message in the CommitLog; `None` when it holds none.
    pub fn earliest_store_time(&self) -> Option<i64> {
        let min = self.log.min_offset();
        let record = self.log.read_record(min)?;
        let size = i32::from_be_bytes(record.get(..4)?.try_into().ok()?);
        self.log.store_timestamp_at(min, size)
    }

    /// How long the append in progress has held the CommitLog's lock, ms (0
    /// when none is in progress).
    pub fn lock_time_ms(&self) -> i64 {
        self.log.lock_time_ms()
    }

    /// How long the CommitLog's flushes took so far.
    pub fn flush_latency(&self) -> crate::metrics::histogram::HistogramValues {
        self.flusher.latency.values()
    }

    /// Bytes appended to the CommitLog and not yet flushed.
    pub fn unflushed_bytes(&self) -> i64 {
        (self.log.max_offset() - self.log.flushed_offset()).max(0)
    }

    /// Queue ids the store has ConsumeQueues for, per topic.
    pub fn queue_ids(&self, topic: &str) -> Vec<i32> {
        self.queues.queue_ids(topic)
    }

    /// Deletes a topic's ConsumeQueues (its CommitLog records age out normally).
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        self.queues.delete_topic(topic)?;
        self.log.remove_topic(topic);
        Ok(())
    }

    /// Tells `listener` of every message as it reaches its ConsumeQueue.
    pub fn set_arrival_listener(&self, listener: Option<ArrivalListener>) {
        self.dispatcher.set_listener(listener);
    }

    /// Everything before this CommitLog offset is in the ConsumeQueues.
    pub fn dispatched_offset(&self) -> i64 {
        self.dispatcher.dispatched_offset()
    }

    /// Waits until everything appended so far is in the ConsumeQueues.
    pub fn wait_dispatched(&self, timeout: Duration) -> bool {
        self.dispatcher
            .wait_dispatched(self.log.max_offset(), timeout)
    }

    /// Whether appends are refused because the disk is too full.
    pub fn is_disk_full(&self) -> bool {
        self.disk.is_full()
    }

    /// The last reading of the store's disk (at most a second old).
    pub fn disk_reading(&self) -> DiskReading {
        self.disk.reading()
    }

    /// Runs one retention round now, as if it were `deleteWhen` (mqadmin's
    /// deleteExpiredCommitLog). Returns how many CommitLog segments were deleted.
    pub fn delete_expired_now(&self) -> Result<usize> {
        retention::clean(self, true)
    }

    pub(crate) fn commit_log(&self) -> &CommitLog {
        &self.log
    }

    pub(crate) fn consume_queues(&self) -> &ConsumeQueues {
        &self.queues
    }

    pub(crate) fn index(&self) -> Option<&IndexService> {
        self.index.as_deref()
    }

    pub(crate) fn disk_guard(&self) -> &DiskGuard {
        &self.disk
    }

    pub(crate) fn retention_state(&self) -> &RetentionState {
        &self.retention
    }

    fn start_housekeeping(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("mq-housekeeping".into())
            .spawn(move || housekeeping_loop(weak))
            .expect("spawn housekeeping thread");
        *self
            .housekeeping
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Flushes ConsumeQueues and IndexFiles, then records in the checkpoint how
    /// far the CommitLog, the queues and the index are durable.
    fn flush_derived(&self) -> Result<()> {
        // Read the times before flushing: everything up to them is then covered.
        let logics = self.dispatcher.dispatched_store_timestamp();
        let physic = self.flusher.flushed_store_timestamp();
        for queue in self.queues.all() {
            queue.flush()?;
        }
        let index_ts = match &self.index {
            Some(index) => index.flush()?.unwrap_or(0),
            None => 0,
        };
        let cp = Checkpoint {
            physic_msg_timestamp: physic,
            logics_msg_timestamp: logics,
            index_msg_timestamp: index_ts,
        };
        if self.checkpoint.load() != Some(cp) {
            self.checkpoint.save(&cp)?;
        }
        Ok(())
    }

    /// Shuts the store down cleanly: refuses new appends, dispatches and flushes
    /// everything, writes the checkpoint and removes the abort marker. Idempotent.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut stop = self
                .housekeeping
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *stop = true;
            self.housekeeping.wake.notify_all();
        }
        if let Some(handle) = self
            .housekeeping
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            // The thread holds only a Weak; joining cannot deadlock on our Arc.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                log::error!("housekeeping thread panicked");
            }
        }
        self.log.close();
        self.flusher.stop();
        self.dispatcher.stop();
        let end = self.log.max_offset();
        if self.dispatcher.dispatched_offset() < end {
            // The thread stopped on an error; try once more here.
            self.dispatcher.dispatch_until(end)?;
        }
        self.flusher.flush_now()?;
        self.flush_derived()?;
        let abort = self.config.root.join("abort");
        std::fs::remove_file(&abort).map_err(|e| StoreError::io("remove", &abort, e))?;
        sync_dir(&self.config.root)?;
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        log::info!(
            "store {} closed at commit log offset {end}",
            self.config.root.display()
        );
        Ok(())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.config.root
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing store {}: {e}", self.config.root.display());
        }
    }
}

fn has_key(msg: &StoredMessage<'_>, key: &str) -> bool {
    properties::iter(msg.properties).any(|(name, value)| match name {
        keys::UNIQ_KEY => value == key,
        keys::KEYS => value.split(KEY_SEPARATOR).any(|k| k == key),
        _ => false,
    })
}

/// Bytes of physical memory (0 if the system does not say).
pub fn physical_memory() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    let pages = sysconf(SysconfVar::_PHYS_PAGES).ok().flatten().unwrap_or(0);
    let size = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    u64::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(u64::try_from(size).unwrap_or(4096))
}

/// Takes the store's `lock` file so that two processes never open one store.
fn lock_store(root: &Path) -> Result<Flock<File>> {
    let path: PathBuf = root.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io("open", &path, e))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            StoreError::Locked {
                path: root.to_path_buf(),
            }
        } else {
            StoreError::io("lock", &path, std::io::Error::from(errno))
        }
    })
}

/// How often the housekeeping thread wakes: the disk is read every second
/// at least, so that sends resume within a second of space being freed.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

fn housekeeping_loop(store: std::sync::Weak<MessageStore>) {
    let (flush_every, clean_every) = match store.upgrade() {
        Some(s) => (
            s.config.flush_interval_consume_queue,
            s.config.clean_resource_interval,
        ),
        None => return,
    };
    let tick = flush_every.min(DISK_CHECK_INTERVAL);
    let mut last_flush = Instant::now();
    let mut last_clean = Instant::now();
    loop {
        let Some(s) = store.upgrade() else { return };
        {
            let stop = s
                .housekeeping
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (stop, _) = s
                .housekeeping
                .wake
                .wait_timeout_while(stop, tick, |stop| !*stop)
                .unwrap_or_else(PoisonError::into_inner);
            if *stop {
                return;
            }
        }
        s.disk.refresh();
        if last_flush.elapsed() >= flush_every {
            last_flush = Instant::now();
            if let Err(e) = s.flush_derived() {
                log::error!("flushing consume queues, index and checkpoint: {e}");
            }
        }
        if last_clean.elapsed() >= clean_every {
            last_clean = Instant::now();
            if let Err(e) = retention::clean(&s, false) {
                log::error!("retention: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{
        damage_body, end_with_blank, message, segment, write_segments, TempDir, TOPIC,
    };

    /// Bytes per CommitLog segment in these tests, the smallest a store accepts.
    const SIZE: usize = 4096;

    /// Opens a store over hand-built CommitLog segments (oldest first, from
    /// offset 0) as after a crash: the abort marker is there, and there is no
    /// checkpoint, queue or index, so every valid record is dispatched again.
    fn open_over(dir: &TempDir, segments: &[&[u8]]) -> Arc<MessageStore> {
        write_segments(&dir.path().join("commitlog"), SIZE, segments);
        std::fs::write(dir.path().join("abort"), b"").unwrap();
        MessageStore::open(small_config(dir)).unwrap()
    }

    /// A store of [`SIZE`]-byte segments and small queue and index files.
    fn small_config(dir: &TempDir) -> StoreConfig {
        let mut config = StoreConfig::new(dir.path());
        config.commit_log_file_size = SIZE;
        config.consume_queue_entries_per_file = 16;
        config.index_hash_slots = 16;
        config.index_max_entries = 64;
        config
    }

    /// The bodies in queue 0 of [`TOPIC`], in queue order.
    fn bodies(store: &MessageStore) -> Vec<Vec<u8>> {
        let got = store.get_messages(TOPIC, 0, 0, 100, usize::MAX, &|_| true);
        let decoded = got
            .messages
            .iter()
            .map(|r| r.decode().unwrap().body.to_vec());
        decoded.collect()
    }

    /// Puts one message and waits for its queue entry; returns its physical
    /// and queue offsets.
    fn put(store: &MessageStore, body: &[u8]) -> (i64, i64) {
        let stored = store.put_blocking(&[message(body)], false).unwrap();
        assert!(store.wait_dispatched(Duration::from_secs(10)));
        stored.append.messages[0]
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_next_put_takes_its_place() {
        let dir = TempDir::new("store_torn");
        let (mut seg, at, end) = segment(SIZE, 0, 0, &[b"one", b"two", b"three"]);
        seg[at[2] + 40..end].fill(0);
        let store = open_over(&dir, &[&seg]);
        assert_eq!(store.commit_log_range(), (0, at[2] as i64));
        assert_eq!(bodies(&store), [b"one", b"two"]);
        assert_eq!(store.max_offset(TOPIC, 0), 2);
        assert_eq!(put(&store, b"three again"), (at[2] as i64, 2));
        assert_eq!(bodies(&store)[2], b"three again");
    }

    #[test]
    fn a_bad_crc_ends_the_log_before_the_record() {
        let dir = TempDir::new("store_crc");
        let (mut seg, at, _) = segment(SIZE, 0, 0, &[b"one", b"two", b"three"]);
        damage_body(&mut seg, at[1], b"two");
        let store = open_over(&dir, &[&seg]);
        assert_eq!(store.commit_log_range(), (0, at[1] as i64));
        assert_eq!(bodies(&store), [b"one"]);
        assert_eq!(put(&store, b"two again"), (at[1] as i64, 1));
    }

    #[test]
    fn records_claiming_another_offset_are_not_dispatched() {
        let dir = TempDir::new("store_offset");
        let (mut first, _, end) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        end_with_blank(&mut first, end);
        // The second segment is a copy of the first: its records claim offsets 0.. .
        let store = open_over(&dir, &[&first, &first]);
        assert_eq!(store.commit_log_range(), (0, SIZE as i64));
        assert_eq!(bodies(&store), [b"one", b"two"]);
        assert_eq!(put(&store, b"three"), (SIZE as i64, 2));
    }

    #[test]
    fn records_after_a_blank_tail_are_read_from_the_next_segment() {
        let dir = TempDir::new("store_blank");
        let (mut first, _, end) = segment(SIZE, 0, 0, &[b"one", b"two"]);
        end_with_blank(&mut first, end);
        let (second, _, second_end) = segment(SIZE, SIZE as u64, 2, &[b"three"]);
        let store = open_over(&dir, &[&first, &second]);
        let log_end = (SIZE + second_end) as i64;
        assert_eq!(store.commit_log_range(), (0, log_end));
        assert_eq!(bodies(&store), [&b"one"[..], b"two", b"three"]);
        assert_eq!(store.message_store_time(TOPIC, 0, 2), Some(1000));
        assert_eq!(put(&store, b"four"), (log_end, 3));
    }

    #[test]
    fn an_idle_dispatcher_parks_and_the_next_append_wakes_it() {
        let dir = TempDir::new("store_dispatch_park");
        let store = MessageStore::open(small_config(&dir)).unwrap();
        put(&store, b"first");
        let idle_since = std::time::Instant::now();
        while !store.dispatcher.is_parked() {
            assert!(
                idle_since.elapsed() < Duration::from_secs(10),
                "the dispatcher never parked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Parked for up to a second unless woken: well within that, the
        // next message is in its queue.
        store.put_blocking(&[message(b"second")], false).unwrap();
        assert!(store.wait_dispatched(Duration::from_millis(500)));
        assert_eq!(bodies(&store), [b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn sync_flush_appends_from_many_threads_are_all_there_after_a_reopen() {
        let dir = TempDir::new("store_sync_flush");
        let config = || StoreConfig {
            flush_disk_type: FlushDiskType::SyncFlush,
            ..small_config(&dir)
        };
        let store = MessageStore::open(config()).unwrap();
        // Written with pwrite and flushed by two threads at once; each put
        // returns once a flush covers it, across several segment ends.
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let body = format!("t{t}-{i}");
                        store
                            .put_blocking(&[message(body.as_bytes())], true)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(store.wait_dispatched(Duration::from_secs(10)));
        let end = store.commit_log_range().1;
        assert!(end > 4 * SIZE as i64, "the puts span several segments");
        store.close().unwrap();
        drop(store);
        let store = MessageStore::open(config()).unwrap();
        assert_eq!(store.commit_log_range().1, end);
        assert_eq!(store.max_offset(TOPIC, 0), 200);
        let mut got = Vec::new();
        while got.len() < 200 {
            let from = got.len() as i64;
            let read = store.get_messages(TOPIC, 0, from, 32, usize::MAX, &|_| true);
            assert!(!read.messages.is_empty(), "queue offset {from} is readable");
            for r in &read.messages {
                let m = r.decode().unwrap();
                assert_eq!(m.queue_offset, got.len() as i64, "no gap");
                got.push(String::from_utf8(m.body.to_vec()).unwrap());
            }
        }
        got.sort();
        let mut want: Vec<String> = (0..8)
            .flat_map(|t| (0..25).map(move |i| format!("t{t}-{i}")))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    /// A store of [`SIZE`]-byte segments in `dir`, a slave's when `replica`.
    fn open_store(dir: &TempDir, replica: bool) -> Arc<MessageStore> {
        MessageStore::open(StoreConfig {
            replica,
            ..small_config(dir)
        })
        .unwrap()
    }

    /// Sends `slave` what `master` has beyond the slave's end, in pieces of
    /// at most `piece` bytes, as replication does.
    fn replicate(master: &MessageStore, slave: &MessageStore, piece: usize) {
        let mut offset = slave.commit_log_range().1;
        while let Some(data) = master.replication_data(offset, piece) {
            slave.append_replica(offset, &data).unwrap();
            offset += data.len() as i64;
        }
        assert_eq!(offset, master.commit_log_range().1);
    }

    /// The CommitLog bytes of a store from `from` to its end.
    fn log_bytes(store: &MessageStore, from: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = from;
        while let Some(data) = store.replication_data(offset, usize::MAX) {
            out.extend_from_slice(&data);
            offset += data.len() as i64;
        }
        out
    }

    fn bodies_of(range: std::ops::Range<u8>) -> Vec<Vec<u8>> {
        range.map(|i| vec![b'a' + i % 26; 300]).collect()
    }

    #[test]
    fn a_slave_fed_the_masters_bytes_in_pieces_has_the_same_log_and_queues() {
        let (mdir, sdir) = (TempDir::new("replica_m"), TempDir::new("replica_s"));
        let master = open_store(&mdir, false);
        let slave = open_store(&sdir, true);
        let sent = bodies_of(0..30);
        for body in &sent {
            put(&master, body);
        }
        // Pieces of 100 bytes end inside records and cross no segment end.
        replicate(&master, &slave, 100);
        assert!(slave.wait_dispatched(Duration::from_secs(10)));
        assert_eq!(slave.commit_log_range(), master.commit_log_range());
        assert!(master.commit_log_range().1 > 2 * SIZE as i64, "rolled over");
        assert_eq!(log_bytes(&slave, 0), log_bytes(&master, 0));
        assert_eq!(bodies(&slave), sent);
        assert_eq!(slave.max_offset(TOPIC, 0), 30);
        // A slave's own sends are refused; it only replicates.
        assert!(slave.put_blocking(&[message(b"no")], false).is_err());
        // Bytes that do not start where the slave ends are refused.
        let end = slave.commit_log_range().1;
        assert!(slave.append_replica(end + 1, b"x").is_err());
        assert!(slave.append_replica(end - 1, b"x").is_err());
    }

    #[test]
    fn a_slave_restarted_mid_record_recovers_to_a_record_and_catches_up() {
        let (mdir, sdir) = (TempDir::new("replica_m2"), TempDir::new("replica_s2"));
        let master = open_store(&mdir, false);
        let sent = bodies_of(0..8);
        for body in &sent {
            put(&master, body);
        }
        let cut;
        {
            let slave = open_store(&sdir, true);
            // Everything but the last 50 bytes: the last record is partial.
            let data = master.replication_data(0, usize::MAX).unwrap();
            cut = data.len() - 50;
            slave.append_replica(0, &data[..cut]).unwrap();
            slave.close().unwrap();
        }
        let slave = open_store(&sdir, true);
        let (_, end) = slave.commit_log_range();
        assert!(end < cut as i64, "the partial record is cut: {end}");
        assert_eq!(bodies(&slave), sent[..7]);
        replicate(&master, &slave, 4096);
        assert!(slave.wait_dispatched(Duration::from_secs(10)));
        assert_eq!(bodies(&slave), sent);
    }

    #[test]
    fn a_slave_ahead_of_its_master_cuts_back_and_takes_the_masters_bytes() {
        let (mdir, sdir, m2dir) = (
            TempDir::new("replica_m3"),
            TempDir::new("replica_s3"),
            TempDir::new("replica_m3b"),
        );
        let old = bodies_of(0..30);
        let lost_from;
        {
            let master = open_store(&mdir, false);
            let mut at = Vec::new();
            for body in &old {
                at.push(put(&master, body).0);
            }
            let slave = open_store(&sdir, true);
            replicate(&master, &slave, 1000);
            slave.close().unwrap();
            master.close().unwrap();
            // The master comes back having lost everything from message 5 on
            // (its first segment's tail and the segments after it): a copy of
            // its first segment with zeros from there, opened after a crash.
            lost_from = at[5];
            let seg = std::fs::read(
                mdir.path()
                    .join("commitlog")
                    .join(super::super::mapped_file::offset_file_name(0)),
            )
            .unwrap();
            let mut seg = seg;
            seg[lost_from as usize..].fill(0);
            write_segments(&m2dir.path().join("commitlog"), SIZE, &[&seg]);
            std::fs::write(m2dir.path().join("abort"), b"").unwrap();
        }
        let master = open_store(&m2dir, false);
        assert_eq!(master.commit_log_range().1, lost_from);
        let new = bodies_of(100..104);
        for body in &new {
            put(&master, body);
        }
        let slave = open_store(&sdir, true);
        assert!(slave.wait_dispatched(Duration::from_secs(10)));
        assert_eq!(slave.max_offset(TOPIC, 0), 30);
        let dropped = slave.truncate_replica(lost_from).unwrap();
        assert_eq!(dropped.messages, 25);
        assert_eq!(slave.commit_log_range().1, lost_from);
        assert_eq!(slave.max_offset(TOPIC, 0), 5);
        replicate(&master, &slave, 333);
        assert!(slave.wait_dispatched(Duration::from_secs(10)));
        assert_eq!(log_bytes(&slave, 0), log_bytes(&master, 0));
        let mut expect = old[..5].to_vec();
        expect.extend(new);
        assert_eq!(bodies(&slave), expect);
        assert_eq!(slave.max_offset(TOPIC, 0), 9);
        // And so it stays after a restart.
        slave.close().unwrap();
        drop(slave);
        let slave = open_store(&sdir, true);
        assert_eq!(bodies(&slave), expect);
    }
}
