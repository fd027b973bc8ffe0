//! Group commit for replication (RocketMQ's GroupTransferService): sends on a
//! SYNC_MASTER wait here until a slave reports an offset covering them, and
//! one report releases every waiter it covers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};

/// How often [`GroupTransfer::expire`] should run: the precision of a
/// send's `slaveTimeout`.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_millis(20);

/// One send waiting for a slave.
struct Waiter {
    /// The offset a report must reach.
    target: i64,
    /// When it gives up (FLUSH_SLAVE_TIMEOUT).
    deadline: Instant,
    /// Told `true` when covered, `false` when expired.
    done: Sender<bool>,
}

/// The highest offset slaves have acknowledged, and the sends waiting for more.
///
/// A waiter's timeout is not a timer of its own: arming and dropping one per
/// send cost a SYNC_MASTER a wake-up of the reactor thread and a
/// `timerfd_settime` each (perf: about a tenth of its CPU). One sweep every
/// [`SWEEP_INTERVAL`] expires them all instead.
#[derive(Default)]
pub(crate) struct GroupTransfer {
    /// RocketMQ's push2SlaveMaxOffset: only grows.
    acked: AtomicI64,
    /// The sends waiting, each with its target and deadline.
    waiters: Mutex<Vec<Waiter>>,
}

impl GroupTransfer {
    /// The highest acknowledged offset.
    pub(crate) fn acked(&self) -> i64 {
        self.acked.load(Ordering::Acquire)
    }

    /// A slave reported `offset`: releases every send it covers.
    pub(crate) fn ack(&self, offset: i64) {
        if self.acked.fetch_max(offset, Ordering::AcqRel) >= offset {
            return;
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.retain(|w| {
            if w.target <= offset {
                let _ = w.done.try_send(true);
                false
            } else {
                true
            }
        });
    }

    /// Gives up on every waiter whose deadline is past `now`; a caller that
    /// went away is dropped too. Run every [`SWEEP_INTERVAL`].
    pub(crate) fn expire(&self, now: Instant) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.is_empty() {
            return;
        }
        waiters.retain(|w| {
            if w.deadline <= now {
                let _ = w.done.try_send(false);
                false
            } else {
                !w.done.is_closed()
            }
        });
    }

    /// Waits until a report covers `target` (true) or `timeout` passes
    /// (false). The timeout is kept only while [`expire`](Self::expire)
    /// runs: the HA service sweeps from the moment it serves a slave, and
    /// only then is there anything to wait for.
    pub(crate) async fn wait(&self, target: i64, timeout: Duration) -> bool {
        let Some(done) = self.enqueue(target, timeout) else {
            return true;
        };
        done.recv().await.unwrap_or(false)
    }

    fn enqueue(&self, target: i64, timeout: Duration) -> Option<Receiver<bool>> {
        if self.acked() >= target {
            return None;
        }
        let (tx, rx) = bounded(1);
        let deadline = Instant::now() + timeout;
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // A report may have landed between the check and the lock.
        if self.acked() >= target {
            return None;
        }
        waiters.push(Waiter {
            target,
            deadline,
            done: tx,
        });
        Some(rx)
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_report_releases_every_send_it_covers_and_no_other() {
        let transfer = Arc::new(GroupTransfer::default());
        let waits: Vec<_> = [100, 200, 300]
            .into_iter()
            .map(|target| {
                let t = transfer.clone();
                std::thread::spawn(move || {
                    async_io::block_on(t.wait(target, Duration::from_millis(500)))
                })
            })
            .collect();
        while transfer.pending() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        transfer.ack(250);
        // 300 gives up at the next sweep past its deadline.
        std::thread::sleep(Duration::from_millis(500));
        transfer.expire(Instant::now());
        let released: Vec<bool> = waits.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(released, [true, true, false], "300 timed out");
        assert_eq!(transfer.pending(), 0, "the expired waiter is gone");
        // Covered already: no wait at all.
        assert!(async_io::block_on(transfer.wait(250, Duration::ZERO)));
        transfer.ack(300);
        assert_eq!(transfer.pending(), 0);
        // Offsets only grow.
        transfer.ack(10);
        assert_eq!(transfer.acked(), 300);
    }
}
