//! [`Doorbell`]: tells tasks waiting for new CommitLog data that some arrived,
//! at the cost of a fence and a load on the append path when nobody waits.
//!
//! The replication service's senders wait here for appends. An ASYNC_MASTER
//! with no slave rings it on every append, so ringing must cost next to
//! nothing: `event_listener::Event::notify` takes a lock even without
//! listeners, so the bell counts its waiters and notifies only when there are
//! some.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::time::Duration;

use event_listener::Event;

/// A wake-up for tasks waiting on a condition that appends make true.
#[derive(Default)]
pub struct Doorbell {
    /// Tasks between announcing that they wait and waking up.
    waiting: AtomicUsize,
    /// What they wait on.
    event: Event,
}

/// Counts a waiter in [`Doorbell::waiting`] while it lives, so that a
/// cancelled wait (a dropped future) is counted out too.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Doorbell {
    /// A bell nobody waits on yet.
    pub fn new() -> Self {
        Doorbell::default()
    }

    /// Wakes every waiter. Call after the change that makes their condition
    /// true is published.
    pub fn ring(&self) {
        // Pairs with the SeqCst increment in `wait_until`: either this load
        // sees the waiter, or the waiter's check after its increment sees
        // the change made before this fence.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.event.notify(usize::MAX);
        }
    }

    /// Waits until `ready()` holds, or `timeout` passes; returns `ready()`.
    pub async fn wait_until(&self, ready: impl Fn() -> bool, timeout: Duration) -> bool {
        if ready() {
            return true;
        }
        let deadline = async_io::Timer::after(timeout);
        futures_lite::pin!(deadline);
        loop {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _counted = Waiting(&self.waiting);
            let listener = self.event.listen();
            if ready() {
                return true;
            }
            let rang = futures_lite::future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    (&mut deadline).await;
                    false
                },
            )
            .await;
            if !rang || ready() {
                return ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_ring_after_the_change_wakes_the_waiter_and_silence_times_out() {
        let bell = Arc::new(Doorbell::new());
        let flag = Arc::new(AtomicBool::new(false));
        let quiet = async_io::block_on(
            bell.wait_until(|| flag.load(Ordering::Acquire), Duration::from_millis(20)),
        );
        assert!(!quiet);
        let (b, f) = (bell.clone(), flag.clone());
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f.store(true, Ordering::Release);
            b.ring();
        });
        let woken = async_io::block_on(
            bell.wait_until(|| flag.load(Ordering::Acquire), Duration::from_secs(10)),
        );
        assert!(woken);
        ringer.join().unwrap();
        assert_eq!(bell.waiting.load(Ordering::SeqCst), 0);
    }
}
