//! Requests of one kind being handled now, and since when the oldest of them
//! waits: what RocketMQ reports as a thread pool's queue size and "head wait
//! time". mq has no such queue (each request runs on its own task as soon as
//! it is read), so the nearest true figures are the requests not yet answered
//! and the age of the oldest one.
//!
//! Without a lock: a request takes one of a fixed set of slots with a
//! compare-and-swap and writes its start time there. When more requests are in
//! flight than there are slots, the extra ones are counted but not timed; the
//! oldest ones hold their slots, so the age stays right.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

const SLOTS: usize = 64;
/// Slots tried before giving up on timing a request.
const PROBES: usize = 8;

/// One kind of request in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    count: AtomicI64,
    /// Start time in ms since the epoch, 0 when free.
    slots: [AtomicI64; SLOTS],
    next: AtomicUsize,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            count: AtomicI64::new(0),
            slots: std::array::from_fn(|_| AtomicI64::new(0)),
            next: AtomicUsize::new(0),
        }
    }
}

/// Held while a request is handled; dropping it ends the request.
pub(crate) struct Ticket<'a> {
    tracker: &'a InFlight,
    slot: Option<usize>,
}

impl InFlight {
    /// A request began at `now_ms`.
    pub(crate) fn begin(&self, now_ms: i64) -> Ticket<'_> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = (0..PROBES).map(|i| (start + i) % SLOTS).find(|&i| {
            self.slots[i]
                .compare_exchange(0, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        Ticket {
            tracker: self,
            slot,
        }
    }

    /// Requests being handled.
    pub(crate) fn len(&self) -> i64 {
        self.count.load(Ordering::Relaxed).max(0)
    }

    /// How long the oldest request in flight has been waiting, ms (0 if none).
    pub(crate) fn oldest_wait_ms(&self, now_ms: i64) -> i64 {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&t| t != 0)
            .min()
            .map_or(0, |oldest| (now_ms - oldest).max(0))
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.tracker.slots[slot].store(0, Ordering::Release);
        }
        self.tracker.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ages_requests_in_flight() {
        let f = InFlight::default();
        assert_eq!((f.len(), f.oldest_wait_ms(100)), (0, 0));
        let a = f.begin(1_000);
        let b = f.begin(1_500);
        assert_eq!(f.len(), 2);
        assert_eq!(f.oldest_wait_ms(2_000), 1_000);
        drop(a);
        assert_eq!(f.oldest_wait_ms(2_000), 500);
        drop(b);
        assert_eq!((f.len(), f.oldest_wait_ms(2_000)), (0, 0));
    }

    #[test]
    fn more_requests_than_slots_are_still_counted() {
        let f = InFlight::default();
        let tickets: Vec<_> = (0..100).map(|i| f.begin(1_000 + i)).collect();
        assert_eq!(f.len(), 100);
        assert_eq!(f.oldest_wait_ms(2_000), 1_000);
        drop(tickets);
        assert_eq!(f.len(), 0);
    }
}
