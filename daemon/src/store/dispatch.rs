//! The dispatcher ("reput" in RocketMQ): a thread that follows the CommitLog
//! behind its write position and, for each new record, appends the 20-byte entry
//! to the record's ConsumeQueue and indexes its keys. The CommitLog stays the one
//! truth; everything here can be rebuilt by dispatching again, which recovery does.

use std::sync::atomic::{fence, AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mq_protocol::message::{self, sys_flag, Record, StoredMessage, BLANK_MARKER_LEN};
use mq_protocol::properties::{self, keys, KEY_SEPARATOR};

use super::commit_log::CommitLog;
use super::consume_queue::{ConsumeQueues, CqEntry};
use super::disk_guard::DiskGuard;
use super::error::{Result, StoreError};
use super::index_file::IndexService;

/// The topic delayed messages wait in; its tag codes are delivery times.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// A message that has reached its ConsumeQueue (long polling listens for these).
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// The message's topic.
    pub topic: &'a str,
    /// The message's queue.
    pub queue_id: i32,
    /// The queue's new max offset (the message's queue offset + 1).
    pub max_offset: i64,
    /// The message's tag code.
    pub tag_code: i64,
    /// The message's store time.
    pub store_timestamp: i64,
}

/// Called on the dispatcher thread for every dispatched message; must be quick.
pub type ArrivalListener = Arc<dyn Fn(&Arrival<'_>) + Send + Sync>;

/// Follows the CommitLog and keeps ConsumeQueues and IndexFiles up to date.
pub struct Dispatcher {
    log: Arc<CommitLog>,
    queues: Arc<ConsumeQueues>,
    index: Option<Arc<IndexService>>,
    /// Told when a queue or index file cannot be created for lack of space,
    /// so that appends stop until what is stored can be dispatched.
    disk: Arc<DiskGuard>,
    delay_levels: Vec<Duration>,
    /// The next CommitLog offset to dispatch.
    reput: AtomicI64,
    /// Store time of the last dispatched record (the checkpoint's logics time).
    dispatched_store_timestamp: AtomicI64,
    listener: RwLock<Option<ArrivalListener>>,
    /// Signalled after each dispatched range, for `wait_dispatched`.
    progress: (Mutex<()>, Condvar),
    /// Held by the thread while it dispatches a range, and by
    /// [`rewind`](Self::rewind) while the log and the queues are cut back.
    work: Mutex<()>,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The thread, to unpark; set when it starts.
    parker: OnceLock<std::thread::Thread>,
    /// Set while the thread is parked after a long idle spell: an append
    /// then unparks it ([`wake`](Self::wake)).
    parked: AtomicBool,
}

/// Polls in a row without progress (1 ms apart) before the thread parks
/// until an append wakes it.
const IDLE_POLLS_BEFORE_PARKING: u32 = 100;

/// The longest a parked thread sleeps without a wake-up: a safety net only.
const PARKED_AT_MOST: Duration = Duration::from_secs(1);

impl Dispatcher {
    /// A dispatcher that will start at `from`; call [`Dispatcher::start`] to run it.
    pub fn new(
        log: Arc<CommitLog>,
        queues: Arc<ConsumeQueues>,
        index: Option<Arc<IndexService>>,
        disk: Arc<DiskGuard>,
        delay_levels: Vec<Duration>,
        from: i64,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            log,
            queues,
            index,
            disk,
            delay_levels,
            reput: AtomicI64::new(from),
            dispatched_store_timestamp: AtomicI64::new(0),
            listener: RwLock::new(None),
            progress: (Mutex::new(()), Condvar::new()),
            work: Mutex::new(()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            parker: OnceLock::new(),
            parked: AtomicBool::new(false),
        })
    }

    /// Runs the dispatcher on its own thread.
    pub fn start(self: &Arc<Self>) {
        let worker = self.clone();
        let handle = std::thread::Builder::new()
            .name("mq-dispatch".into())
            .spawn(move || worker.run())
            .expect("spawn dispatch thread");
        let _ = self.parker.set(handle.thread().clone());
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Installs the listener told of every dispatched message.
    pub fn set_listener(&self, listener: Option<ArrivalListener>) {
        *self
            .listener
            .write()
            .unwrap_or_else(PoisonError::into_inner) = listener;
    }

    /// The next CommitLog offset to dispatch: everything before it is in the
    /// ConsumeQueues and IndexFiles.
    pub fn dispatched_offset(&self) -> i64 {
        self.reput.load(Ordering::Acquire)
    }

    /// Store time of the last dispatched record.
    pub fn dispatched_store_timestamp(&self) -> i64 {
        self.dispatched_store_timestamp.load(Ordering::Acquire)
    }

    /// Waits until everything before `offset` is dispatched, or `timeout` passes.
    pub fn wait_dispatched(&self, offset: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &self.progress;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.dispatched_offset() < offset {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cond
                .wait_timeout(guard, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Dispatches every record from the current position up to `to`.
    pub fn dispatch_until(&self, to: i64) -> Result<()> {
        loop {
            let from = self.reput.load(Ordering::Acquire);
            if from >= to {
                return Ok(());
            }
            let Some(file) = self.log.file_for(from) else {
                // Retention removed the segment: carry on from the oldest one left.
                let min = self.log.min_offset();
                if from < min {
                    self.reput.store(min, Ordering::Release);
                    continue;
                }
                return Ok(());
            };
            // Walk this segment's records without looking the segment up again.
            let base = file.base() as i64;
            let next_file = base + file.size() as i64;
            let mut offset = from;
            while offset < to && offset < next_file {
                let pos = (offset - base) as usize;
                let Some(header) = file.slice(pos, BLANK_MARKER_LEN) else {
                    // Not written yet (a blank marker can end a segment with fewer
                    // than 8 bytes left only at its very end, handled below).
                    break;
                };
                let (size, magic) = message::peek_header(header).expect("8 bytes were sliced");
                if magic == message::BLANK_MAGIC {
                    offset = next_file;
                    break;
                }
                let Some(size) = usize::try_from(size)
                    .ok()
                    .filter(|&size| size >= BLANK_MARKER_LEN && pos + size <= file.size())
                else {
                    return Err(corrupt(
                        offset,
                        format!("record size {size} does not fit the segment"),
                    ));
                };
                let Some(record) = file.slice(pos, size) else {
                    // Not all written yet: a slave receives the master's log in
                    // pieces that may end inside a record (a master's appends
                    // publish whole records).
                    break;
                };
                let msg = match message::decode_record(record, false) {
                    Ok(Record::Message(msg, _)) => msg,
                    Ok(Record::Blank(_)) => unreachable!("blank handled above"),
                    Err(e) => return Err(corrupt(offset, e.to_string())),
                };
                self.dispatch_one(&msg, offset, record.len())?;
                offset += record.len() as i64;
                self.reput.store(offset, Ordering::Release);
            }
            if offset >= next_file {
                self.reput.store(next_file, Ordering::Release);
            } else if offset == from {
                return Ok(());
            }
        }
    }

    /// Dispatches up to `to` while the store opens. A record that cannot be
    /// dispatched there lies before the part recovery verified (bit rot in an old
    /// segment): it is logged and the rest of its segment is skipped, so the
    /// store still opens. (The running thread stops at such a record instead,
    /// since there it can only be data the store wrote moments ago.)
    /// Other errors (a queue file that cannot be created) are returned.
    pub fn redispatch_on_open(&self, to: i64) -> Result<()> {
        loop {
            match self.dispatch_until(to) {
                Ok(()) => return Ok(()),
                Err(e @ StoreError::Corrupt { .. }) => {
                    let at = self.dispatched_offset();
                    let size = self.log.file_size() as i64;
                    let next = (at / size + 1) * size;
                    log::error!(
                        "recovery: {e}; queue and index entries of {at}..{} are not rebuilt",
                        next.min(to)
                    );
                    self.reput.store(next.min(to), Ordering::Release);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn dispatch_one(&self, msg: &StoredMessage<'_>, phys: i64, size: usize) -> Result<()> {
        let tx = sys_flag::transaction_type(msg.sys_flag);
        let size_i32 = i32::try_from(size).expect("record sizes fit i32");
        if tx != sys_flag::TRANSACTION_PREPARED && tx != sys_flag::TRANSACTION_ROLLBACK {
            let tag_code = self.tag_code(msg);
            let queue = self.queues.get_or_create(msg.topic, msg.queue_id);
            queue.put(
                msg.queue_offset,
                CqEntry {
                    phys_offset: phys,
                    size: size_i32,
                    tag_code,
                },
            )?;
            let listener = self
                .listener
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(listener) = listener {
                listener(&Arrival {
                    topic: msg.topic,
                    queue_id: msg.queue_id,
                    max_offset: msg.queue_offset + 1,
                    tag_code,
                    store_timestamp: msg.store_timestamp,
                });
            }
        }
        if let Some(index) = &self.index {
            if tx != sys_flag::TRANSACTION_ROLLBACK {
                let mut keys: Vec<&str> = Vec::new();
                for (name, value) in properties::iter(msg.properties) {
                    match name {
                        keys::UNIQ_KEY => keys.push(value),
                        keys::KEYS => {
                            keys.extend(value.split(KEY_SEPARATOR).filter(|k| !k.is_empty()))
                        }
                        _ => {}
                    }
                }
                if !keys.is_empty() {
                    index.put(msg.topic, &keys, phys, msg.store_timestamp)?;
                }
            }
        }
        self.dispatched_store_timestamp
            .store(msg.store_timestamp, Ordering::Release);
        if self.log.is_replica() {
            self.log.note_replica_timestamp(msg.store_timestamp);
        }
        Ok(())
    }

    /// The ConsumeQueue tag code: the tag's Java hash, or for a delayed message
    /// its delivery time (store time plus the level's delay).
    fn tag_code(&self, msg: &StoredMessage<'_>) -> i64 {
        if msg.topic == SCHEDULE_TOPIC {
            let level = properties::get(msg.properties, keys::DELAY)
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .clamp(1, self.delay_levels.len().max(1));
            let delay = self
                .delay_levels
                .get(level - 1)
                .map_or(0, |d| d.as_millis() as i64);
            return msg.store_timestamp + delay;
        }
        properties::tag_hash(properties::get(msg.properties, keys::TAGS))
    }

    /// Wakes the thread if it is parked (after an append: one load and a
    /// fence on the append path while it is busy).
    pub fn wake(&self) {
        // Pairs with the fence in `park_if_still_idle`: either this sees the
        // flag, or the thread sees the new end before it parks.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) {
            self.unpark();
        }
    }

    /// Parks until [`wake`](Self::wake) (or [`PARKED_AT_MOST`]) unless the
    /// log has grown past `end` meanwhile.
    fn park_if_still_idle(&self, end: i64) {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.log.max_offset() == end && !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(PARKED_AT_MOST);
        }
        self.parked.store(false, Ordering::Relaxed);
    }

    fn run(&self) {
        let mut last_error: Option<String> = None;
        let mut idle_polls = 0u32;
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let end = self.log.max_offset();
            let before = self.dispatched_offset();
            let round = {
                let _working = self.work.lock().unwrap_or_else(PoisonError::into_inner);
                self.dispatch_until(end)
            };
            match round {
                Ok(()) => last_error = None,
                Err(e) => {
                    if e.is_out_of_space() {
                        // Retried below once space is freed; until then no
                        // append may add to what waits.
                        self.disk.out_of_space(self.disk.reserve_bytes());
                    }
                    // Log a failure once, not on every retry.
                    let text = e.to_string();
                    if last_error.as_deref() != Some(&text) {
                        log::error!("dispatch stalled at {}: {text}", self.dispatched_offset());
                    }
                    last_error = Some(text);
                    if stopping {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if self.dispatched_offset() != before {
                let _guard = self
                    .progress
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.progress.1.notify_all();
            }
            if stopping {
                return;
            }
            let progressed = self.dispatched_offset() != before;
            if progressed {
                idle_polls = 0;
            }
            let idle = self.dispatched_offset() >= end || !progressed;
            if idle {
                if idle_polls < IDLE_POLLS_BEFORE_PARKING {
                    // RocketMQ's reput polls every millisecond; while appends
                    // come, so does this (a wake-up per append would cost the
                    // append path more). (On a slave the log may end inside
                    // a record: no progress then.)
                    idle_polls += 1;
                    std::thread::sleep(Duration::from_millis(1));
                } else {
                    // Idle for a while: park, so that an idle broker does not
                    // wake a thousand times a second.
                    self.park_if_still_idle(end);
                }
            }
        }
    }

    /// Runs `cut` (which cuts the log, the queues and the index back) while the
    /// thread is kept from dispatching, then moves the dispatch position back
    /// to the offset `cut` returns if it was past it: what follows is
    /// dispatched again from the log as it is now.
    pub fn rewind(&self, cut: impl FnOnce() -> Result<i64>) -> Result<i64> {
        let dispatched = {
            let _working = self.work.lock().unwrap_or_else(PoisonError::into_inner);
            let from = cut()?;
            self.reput.fetch_min(from, Ordering::AcqRel);
            self.dispatched_offset()
        };
        // What follows is dispatched again, whether or not an append comes.
        self.unpark();
        Ok(dispatched)
    }

    /// Whether the thread is parked after an idle spell.
    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    fn unpark(&self) {
        if let Some(thread) = self.parker.get() {
            thread.unpark();
        }
    }

    /// Dispatches what is left and stops the thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.unpark();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                log::error!("dispatch thread panicked");
            }
        }
    }
}

fn corrupt(offset: i64, why: String) -> StoreError {
    StoreError::Corrupt { offset, why }
}
