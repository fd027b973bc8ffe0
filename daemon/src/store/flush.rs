//! Flushing the CommitLog to disk.
//!
//! ASYNC_FLUSH: a thread flushes every `flushIntervalCommitLog` once enough pages
//! are dirty (or the thorough interval passed). SYNC_FLUSH: group commit — an
//! append queues a request and waits; the thread takes every queued request,
//! runs one `msync` up to the current write position, and completes each
//! request it covers, so one flush serves every waiter of that moment. Two
//! threads do that under SYNC_FLUSH, so that while one waits for the disk the
//! other starts on what was appended meanwhile (the disk takes two flushes at
//! once faster than one after the other).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Sender};

use super::commit_log::CommitLog;
use super::config::FlushDiskType;
use super::error::{Result, StoreError};
use crate::metrics::histogram::Histogram;

/// Flusher threads under SYNC_FLUSH. Measured with `store_bench --case
/// sync-1k`: 2 raised throughput by about a fifth over 1; 3 and 4 made each
/// flush smaller and were slower than 2.
const SYNC_FLUSH_THREADS: usize = 2;

/// One waiter of a SYNC_FLUSH append.
struct FlushRequest {
    /// The offset a flush must reach.
    target: i64,
    /// Completed with `Ok` once flushed, or the flush error's text.
    done: Sender<std::result::Result<(), String>>,
}

/// The CommitLog's flusher thread and its waiters.
pub struct FlushService {
    log: Arc<CommitLog>,
    mode: FlushDiskType,
    interval: Duration,
    least_bytes: i64,
    thorough_interval: Duration,
    timeout: Duration,
    requests: Mutex<Vec<FlushRequest>>,
    wake: Condvar,
    stop: AtomicBool,
    /// Store time of the last record covered by a completed flush (checkpoint).
    flushed_store_timestamp: AtomicI64,
    /// Joined by `stop`, so that shutdown returns after the last flush.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// How long each flush took, for the metrics endpoint.
    pub(crate) latency: Histogram,
}

impl FlushService {
    /// Starts the flusher thread.
    pub fn start(
        log: Arc<CommitLog>,
        mode: FlushDiskType,
        interval: Duration,
        least_pages: usize,
        thorough_interval: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        let service = Arc::new(FlushService {
            flushed_store_timestamp: AtomicI64::new(log.last_store_timestamp()),
            log,
            mode,
            interval,
            least_bytes: (least_pages * 4096) as i64,
            thorough_interval,
            timeout,
            requests: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            latency: Histogram::default(),
        });
        let count = match mode {
            FlushDiskType::SyncFlush => SYNC_FLUSH_THREADS,
            FlushDiskType::AsyncFlush => 1,
        };
        for i in 0..count {
            let worker = service.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mq-flush-{i}"))
                .spawn(move || worker.run())
                .expect("spawn flush thread");
            service
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        service
    }

    /// Store time of the last record known to be on disk.
    pub fn flushed_store_timestamp(&self) -> i64 {
        self.flushed_store_timestamp.load(Ordering::Acquire)
    }

    /// Flushes everything written so far, now, on the calling thread.
    pub fn flush_now(&self) -> Result<i64> {
        let ts = self.log.last_store_timestamp();
        let flushed = self.log.flush()?;
        self.flushed_store_timestamp.fetch_max(ts, Ordering::AcqRel);
        Ok(flushed)
    }

    /// Waits until a flush covers `target` (SYNC_FLUSH). Fails with
    /// [`StoreError::FlushTimeout`] after `syncFlushTimeout`.
    pub async fn wait_flushed(&self, target: i64) -> Result<()> {
        if self.log.flushed_offset() >= target {
            return Ok(());
        }
        let (done, result) = bounded(1);
        {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            if self.stop.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            requests.push(FlushRequest { target, done });
        }
        self.wake.notify_one();
        let timeout = self.timeout;
        let outcome = futures_lite::future::or(async { Some(result.recv().await) }, async {
            async_io::Timer::after(timeout).await;
            None
        })
        .await;
        match outcome {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(why))) => Err(StoreError::FlushFailed(why)),
            Some(Err(_)) => Err(StoreError::Closed),
            None => Err(StoreError::FlushTimeout {
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Wakes the thread for a flush of whatever is written (a SYNC_FLUSH append
    /// that does not wait still wants to be flushed soon).
    pub fn wake_up(&self) {
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut last_thorough = Instant::now();
        // Group commit: how many waiters the next round should gather, and how
        // long the last flush took.
        let mut expected = 0usize;
        let mut last_flush = Duration::ZERO;
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if !requests.is_empty() && requests.len() < expected {
                // The waiters just answered usually append again within
                // microseconds. Waiting briefly for them makes one flush serve
                // them all instead of alternating half-size rounds; a flush costs
                // nearly the same for 32 KiB as for 64 KiB. The wait is bounded
                // by a fraction of a flush, so a lone appender barely notices.
                let deadline = Instant::now() + (last_flush / 4).min(Duration::from_micros(500));
                while requests.len() < expected && !self.stop.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    requests = self
                        .wake
                        .wait_timeout(requests, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            let pending = std::mem::take(&mut *requests);
            if pending.is_empty() {
                let wait = match self.mode {
                    FlushDiskType::SyncFlush => Duration::from_millis(10),
                    FlushDiskType::AsyncFlush => self.interval,
                };
                let (guard, _) = self
                    .wake
                    .wait_timeout(requests, wait)
                    .unwrap_or_else(PoisonError::into_inner);
                requests = guard;
                if !requests.is_empty() || self.stop.load(Ordering::Acquire) {
                    continue;
                }
                // A periodic round: in async mode only once enough is dirty.
                let dirty = self.log.max_offset() - self.log.flushed_offset();
                let thorough = last_thorough.elapsed() >= self.thorough_interval;
                if dirty <= 0
                    || (self.mode == FlushDiskType::AsyncFlush
                        && dirty < self.least_bytes
                        && !thorough)
                {
                    continue;
                }
                if thorough {
                    last_thorough = Instant::now();
                }
            }
            drop(requests);
            let started = Instant::now();
            let outcome = self.flush_now();
            last_flush = started.elapsed();
            self.latency.record(last_flush);
            requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            expected = pending.len() + requests.len();
            let flushed = self.log.flushed_offset();
            for req in pending {
                match &outcome {
                    Err(e) => {
                        log::error!("commit log flush failed: {e}");
                        // The waiter may have timed out already; nothing to tell then.
                        let _ = req.done.try_send(Err(e.to_string()));
                    }
                    Ok(_) if flushed >= req.target => {
                        let _ = req.done.try_send(Ok(()));
                    }
                    // Written after this flush began: the next round covers it.
                    Ok(_) => requests.push(req),
                }
            }
        }
        // Answer whoever still waits with the outcome of a last flush.
        let pending = std::mem::take(&mut *requests);
        drop(requests);
        let outcome = self.flush_now().map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            log::error!("final commit log flush failed: {e}");
        }
        let flushed = self.log.flushed_offset();
        for req in pending {
            let answer = match &outcome {
                Ok(_) if flushed >= req.target => Ok(()),
                Ok(_) => Err("store closed before the message was flushed".to_string()),
                Err(e) => Err(e.clone()),
            };
            // The waiter may have given up already.
            let _ = req.done.try_send(answer);
        }
    }

    /// Stops the thread after a last flush; waiting appends are answered.
    pub fn stop(&self) {
        {
            let _guard = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            self.stop.store(true, Ordering::Release);
            self.wake.notify_all();
        }
        let handles =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in handles {
            if handle.join().is_err() {
                log::error!("flush thread panicked");
            }
        }
    }
}
