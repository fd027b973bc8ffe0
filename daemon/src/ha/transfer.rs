//! Group commit for replication (RocketMQ's GroupTransferService): sends on a
//! SYNC_MASTER wait here until a slave reports an offset covering them, and
//! one report releases every waiter it covers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_channel::{bounded, Receiver, Sender};

/// Waiters pruned of those that gave up once there are this many: a slave
/// that stops reporting leaves every timed-out send's entry behind.
const PRUNE_AT: usize = 1024;

/// The highest offset slaves have acknowledged, and the sends waiting for more.
#[derive(Default)]
pub(crate) struct GroupTransfer {
    /// RocketMQ's push2SlaveMaxOffset: only grows.
    acked: AtomicI64,
    /// Each waiter's target offset and how to release it.
    waiters: Mutex<Vec<(i64, Sender<()>)>>,
}

impl GroupTransfer {
    /// The highest offset a slave has acknowledged.
    pub(crate) fn acked(&self) -> i64 {
        self.acked.load(Ordering::Acquire)
    }

    /// A slave acknowledged everything before `offset`: releases every waiter
    /// it covers.
    pub(crate) fn ack(&self, offset: i64) {
        if self.acked.fetch_max(offset, Ordering::AcqRel) >= offset {
            return;
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.retain(|(target, done)| {
            if *target <= offset {
                // The waiter may have timed out already; nothing to tell then.
                let _ = done.try_send(());
                false
            } else {
                true
            }
        });
    }

    /// Waits until a slave acknowledges `target`, at most `timeout`; whether it did.
    pub(crate) async fn wait(&self, target: i64, timeout: Duration) -> bool {
        let Some(done) = self.enqueue(target) else {
            return true;
        };
        futures_lite::future::or(async { done.recv().await.is_ok() }, async {
            async_io::Timer::after(timeout).await;
            false
        })
        .await
    }

    /// Registers a waiter for `target`; `None` if it is acknowledged already.
    fn enqueue(&self, target: i64) -> Option<Receiver<()>> {
        if self.acked() >= target {
            return None;
        }
        let (tx, rx) = bounded(1);
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked again under the lock: `ack` raises the offset before it
        // takes the lock, so a waiter is either seen by it or sees its offset.
        if self.acked() >= target {
            return None;
        }
        if waiters.len() >= PRUNE_AT {
            waiters.retain(|(_, done)| !done.is_closed());
        }
        waiters.push((target, tx));
        Some(rx)
    }

    /// Waiters registered and not yet released (for tests and stats).
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
        let released: Vec<bool> = waits.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(released, [true, true, false], "300 timed out");
        assert_eq!(transfer.pending(), 1);
        // Covered already: no wait at all.
        assert!(async_io::block_on(transfer.wait(250, Duration::ZERO)));
        transfer.ack(300);
        assert_eq!(transfer.pending(), 0);
        // Offsets only grow.
        transfer.ack(10);
        assert_eq!(transfer.acked(), 300);
    }
}
