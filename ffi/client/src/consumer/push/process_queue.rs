//! One assigned queue's cached messages (Java's ProcessQueue): what was
//! pulled and is not yet done with, the offset a commit may store, the
//! flow-control figures the pull loop checks, and, in orderly mode, the
//! batch in the listener and the queue's broker lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};
use async_executor::Task;

use crate::consumer::queue_lock::LOCK_MAX_LIVE;
use crate::message::MessageExt;
use crate::timeout::wait_signal;

/// The queue's cached messages and pull position, under one lock.
struct PqState {
    /// Pulled and not yet done with (in concurrent mode this includes those
    /// in the listener), by queue offset.
    msgs: BTreeMap<i64, MessageExt>,
    /// Orderly: taken for the listener, not yet committed.
    consuming: BTreeMap<i64, MessageExt>,
    /// Body bytes of `msgs` and `consuming`.
    bytes: usize,
    /// Largest offset ever cached; -1 before the first.
    max_offset: i64,
    /// Offset of the next pull.
    next_offset: i64,
    /// Broker id the broker suggested for the next pull.
    broker_id: i64,
    /// Orderly: whether the broker lock is held, and when it was last renewed.
    locked: bool,
    last_lock: Instant,
}

/// One assigned queue of a push consumer.
pub(super) struct ProcessQueue {
    state: Mutex<PqState>,
    /// Set when the queue leaves this consumer: nothing more is pulled,
    /// consumed or committed for it.
    dropped: AtomicBool,
    /// Orderly: held while the listener runs on this queue, so a removal can
    /// wait for the batch in flight.
    pub(super) consume_lock: async_lock::Mutex<()>,
    /// Orderly: signalled when messages arrive or the lock is obtained.
    wake: (Sender<()>, Receiver<()>),
    /// The pull loop; dropping it cancels the loop.
    pull_task: Mutex<Option<Task<()>>>,
    /// Orderly: the consume loop. Never cancelled while it may be inside the
    /// listener (the blocking call would outlive its permit).
    consume_task: Mutex<Option<Task<()>>>,
}

impl ProcessQueue {
    /// A queue to be pulled from `next_offset`; `locked` when its broker lock
    /// is already held.
    pub(super) fn new(next_offset: i64, locked: bool) -> Self {
        ProcessQueue {
            state: Mutex::new(PqState {
                msgs: BTreeMap::new(),
                consuming: BTreeMap::new(),
                bytes: 0,
                max_offset: -1,
                next_offset,
                broker_id: 0,
                locked,
                last_lock: Instant::now(),
            }),
            dropped: AtomicBool::new(false),
            consume_lock: async_lock::Mutex::new(()),
            wake: bounded(1),
            pull_task: Mutex::new(None),
            consume_task: Mutex::new(None),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, PqState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the queue's loops: dropping a task cancels it.
    pub(super) fn set_tasks(&self, pull: Option<Task<()>>, consume: Option<Task<()>>) {
        *self
            .pull_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = pull;
        *self
            .consume_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = consume;
    }

    /// Cancels the pull loop (safe at any time: it holds no listener call).
    pub(super) fn stop_pulling(&self) {
        drop(
            self.pull_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// Cancels the orderly consume loop; only once no listener call runs.
    pub(super) fn stop_consuming(&self) {
        drop(
            self.consume_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// The queue left this consumer: its loops end, nothing of it is
    /// committed any more.
    pub(super) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    pub(super) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Wakes the orderly loop (messages arrived, the lock changed, the queue
    /// was dropped); a wake already pending is enough.
    pub(super) fn wake(&self) {
        let _ = self.wake.0.try_send(());
    }

    /// Waits for [`wake`](Self::wake) or `timeout`.
    pub(super) async fn wait_wake(&self, timeout: Duration) {
        wait_signal(&self.wake.1, timeout).await;
    }

    /// Offset of the next pull, and the broker id to pull from.
    pub(super) fn pull_position(&self) -> (i64, i64) {
        let s = self.lock_state();
        (s.next_offset, s.broker_id)
    }

    /// Where the next pull goes, as the last answer said.
    pub(super) fn set_pull_position(&self, next_offset: i64, broker_id: i64) {
        let mut s = self.lock_state();
        s.next_offset = next_offset;
        s.broker_id = broker_id;
    }

    /// Orderly: the broker lock was renewed (`true`) or refused.
    pub(super) fn set_locked(&self, locked: bool) {
        let mut s = self.lock_state();
        s.locked = locked;
        if locked {
            s.last_lock = Instant::now();
        }
        drop(s);
        self.wake();
    }

    /// Caches pulled messages.
    pub(super) fn put(&self, msgs: &[MessageExt]) {
        let mut s = self.lock_state();
        for m in msgs {
            if s.msgs.insert(m.queue_offset, m.clone()).is_none() {
                s.bytes += m.body.len();
            }
            s.max_offset = s.max_offset.max(m.queue_offset);
        }
        drop(s);
        self.wake();
    }

    /// Removes finished messages; the offset to commit: the smallest offset
    /// still cached, or the one after the largest ever cached; -1 if nothing
    /// was ever cached.
    pub(super) fn remove(&self, offsets: &[i64]) -> i64 {
        let mut s = self.lock_state();
        for o in offsets {
            if let Some(m) = s.msgs.remove(o) {
                s.bytes = s.bytes.saturating_sub(m.body.len());
            }
        }
        match s.msgs.keys().next() {
            Some(first) => *first,
            None if s.max_offset >= 0 => s.max_offset + 1,
            None => -1,
        }
    }

    /// Messages cached (in the listener included) and their body bytes.
    pub(super) fn cached(&self) -> (usize, usize) {
        let s = self.lock_state();
        (s.msgs.len() + s.consuming.len(), s.bytes)
    }

    /// How far consumption has run past the oldest message still in
    /// process: offsets from it to the newest ever cached; 0 when nothing is
    /// cached. Java's getMaxSpan stops at the newest message still cached, so
    /// once the messages after a slow one are done its queue is pulled on as
    /// if nothing held it; this does not forget them.
    pub(super) fn span(&self) -> usize {
        let s = self.lock_state();
        s.msgs.keys().next().map_or(0, |first| {
            usize::try_from(s.max_offset - first).unwrap_or(usize::MAX)
        })
    }

    /// Orderly: whether the broker lock is held and was renewed recently
    /// enough to trust.
    pub(super) fn lock_is_fresh(&self) -> bool {
        let s = self.lock_state();
        s.locked && s.last_lock.elapsed() < LOCK_MAX_LIVE
    }

    /// Orderly: moves the first `n` messages to `consuming` and returns them.
    pub(super) fn take(&self, n: usize) -> Vec<MessageExt> {
        let mut s = self.lock_state();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some((offset, m)) = s.msgs.pop_first() else {
                break;
            };
            s.consuming.insert(offset, m.clone());
            out.push(m);
        }
        out
    }

    /// Orderly: the batch in `consuming` is done; the offset after it.
    pub(super) fn commit(&self) -> i64 {
        let mut s = self.lock_state();
        let consuming = std::mem::take(&mut s.consuming);
        let bytes: usize = consuming.values().map(|m| m.body.len()).sum();
        s.bytes = s.bytes.saturating_sub(bytes);
        consuming.keys().next_back().map_or(-1, |last| last + 1)
    }

    /// Orderly: puts a batch back to be consumed again (with its updated
    /// reconsume counts).
    pub(super) fn consume_again(&self, msgs: Vec<MessageExt>) {
        let mut s = self.lock_state();
        for m in msgs {
            s.consuming.remove(&m.queue_offset);
            s.msgs.insert(m.queue_offset, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_offset_never_passes_a_message_in_process() {
        let pq = ProcessQueue::new(0, false);
        assert_eq!(pq.remove(&[]), -1);
        pq.put(&[
            MessageExt::for_test(3),
            MessageExt::for_test(4),
            MessageExt::for_test(5),
        ]);
        // 4 finished first: 3 is still in process.
        assert_eq!(pq.remove(&[4]), 3);
        assert_eq!(pq.remove(&[3]), 5);
        assert_eq!(pq.remove(&[5]), 6);
        assert_eq!(pq.cached(), (0, 0));
    }

    #[test]
    fn span_reaches_from_the_oldest_in_process_to_the_newest_cached() {
        let pq = ProcessQueue::new(0, false);
        assert_eq!(pq.span(), 0);
        pq.put(&[MessageExt::for_test(10)]);
        assert_eq!(pq.span(), 0);
        pq.put(&[MessageExt::for_test(11), MessageExt::for_test(2500)]);
        assert_eq!(pq.span(), 2490);
        // Everything after 10 is done, 10 still in process: the span stays.
        pq.remove(&[11, 2500]);
        assert_eq!(pq.span(), 2490);
        pq.remove(&[10]);
        assert_eq!(pq.span(), 0);
        pq.put(&[MessageExt::for_test(2501)]);
        assert_eq!(pq.span(), 0);
    }

    #[test]
    fn orderly_batches_are_taken_in_order_and_can_be_retried() {
        let pq = ProcessQueue::new(0, true);
        pq.put(&[
            MessageExt::for_test(7),
            MessageExt::for_test(5),
            MessageExt::for_test(6),
        ]);
        let batch = pq.take(2);
        let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
        assert_eq!(offsets, [5, 6]);
        pq.consume_again(batch);
        let batch = pq.take(2);
        assert_eq!(batch[0].queue_offset, 5);
        assert_eq!(pq.commit(), 7);
        assert_eq!(pq.take(5).len(), 1);
        assert_eq!(pq.commit(), 8);
        assert_eq!(pq.cached(), (0, 0));
    }
}
