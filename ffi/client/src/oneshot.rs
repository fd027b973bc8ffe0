//! A one-shot channel: one value from one sender to one receiver, for a
//! request's response. Lighter than a `bounded(1)` channel (one lock, no
//! listener list): a send takes the lock once and wakes the receiver's
//! waker, if it has one yet.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the two ends share.
struct Slot<T> {
    value: Option<T>,
    /// The receiver's waker, once it has waited.
    waker: Option<Waker>,
    /// The sender is gone (sent or dropped).
    done: bool,
}

/// The sending end: [`send`](Sender::send) once, or drop it (the receiver
/// then gets `None`).
pub(crate) struct Sender<T>(Arc<Mutex<Slot<T>>>);

/// The receiving end: a future of the value, `None` when the sender was
/// dropped without sending.
pub(crate) struct Receiver<T>(Arc<Mutex<Slot<T>>>);

/// A new channel.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        done: false,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    /// Sends `value` (kept for the receiver even if it never waits).
    pub(crate) fn send(self, value: T) {
        self.finish(Some(value));
    }

    fn finish(&self, value: Option<T>) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.done {
                return;
            }
            slot.done = true;
            if value.is_some() {
                slot.value = value;
            }
            slot.waker.take()
        };
        // Woken outside the lock: the receiver takes it at once.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.done {
            return Poll::Ready(None);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_a_drop_and_a_value_sent_before_the_wait() {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(7);
        });
        assert_eq!(crate::block_on(rx), Some(7));
        t.join().unwrap();

        let (tx, rx) = channel::<i32>();
        drop(tx);
        assert_eq!(crate::block_on(rx), None);

        let (tx, rx) = channel();
        tx.send("early");
        assert_eq!(crate::block_on(rx), Some("early"));
    }
}
