//! A one-shot answer from an application thread to a library thread that
//! waits for it with a deadline: a push batch's ack, a check-back's answer.
//!
//! The waiter runs on the blocking pool inside the core's listener call,
//! and gives up at its deadline or once its handle has been closing for
//! longer than the close grace; an answer that comes later is refused (the
//! application learns it from the status). A reply dropped unanswered (the
//! batch or check freed) wakes the waiter at once.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::status::{Error, MQ_ERR_CLOSED, MQ_ERR_TIMEOUT};

/// How often a waiter looks at its handle's closing deadline.
const SLICE: Duration = Duration::from_millis(50);

/// Whether a handle is closing, and until when its waiters may still wait.
#[derive(Default)]
pub(crate) struct Closing {
    deadline: Mutex<Option<Instant>>,
}

impl Closing {
    /// Starts closing: waiters give up `grace` from now. Idempotent (the
    /// first deadline stays).
    pub(crate) fn start(&self, grace: Duration) {
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        if deadline.is_none() {
            *deadline = Some(Instant::now() + grace);
        }
    }

    /// Whether closing has started.
    pub(crate) fn is_closing(&self) -> bool {
        self.deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn expired(&self) -> bool {
        self.deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|d| Instant::now() >= d)
    }
}

/// The application's end: answers once.
pub(crate) struct Replier<T> {
    tx: SyncSender<T>,
    /// The handle's closing state, to tell a refused answer why.
    closing: Arc<Closing>,
}

/// The library's end: waits for the answer.
pub(crate) struct Waiter<T>(Receiver<T>);

/// A new answer slot for a handle with `closing`.
pub(crate) fn reply<T>(closing: &Arc<Closing>) -> (Replier<T>, Waiter<T>) {
    let (tx, rx) = sync_channel(1);
    let replier = Replier {
        tx,
        closing: closing.clone(),
    };
    (replier, Waiter(rx))
}

impl<T> Replier<T> {
    /// Answers. When the waiter gave up already, `MQ_ERR_CLOSED` (its
    /// handle closed) or `MQ_ERR_TIMEOUT` (`limit_key` passed), saying that
    /// `fallback` was used instead.
    pub(crate) fn send(self, answer: T, limit_key: &str, fallback: &str) -> Result<(), Error> {
        if self.tx.try_send(answer).is_ok() {
            return Ok(());
        }
        Err(if self.closing.is_closing() {
            Error::new(
                MQ_ERR_CLOSED,
                format!("closed before this answer; {fallback} was used"),
            )
        } else {
            Error::new(
                MQ_ERR_TIMEOUT,
                format!("{limit_key} passed before this answer; {fallback} was used"),
            )
        })
    }
}

impl<T> Waiter<T> {
    /// The answer, or `None` after `limit`, once `closing` has expired, or
    /// when the replier was dropped unanswered.
    pub(crate) fn wait(self, limit: Duration, closing: &Closing) -> Option<T> {
        let deadline = Instant::now().checked_add(limit);
        loop {
            let left = deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() || closing.expired() {
                return None;
            }
            match self.0.recv_timeout(left.min(SLICE)) {
                Ok(answer) => return Some(answer),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_a_timeout_a_drop_and_a_close() {
        let closing = Arc::new(Closing::default());
        let (r, w) = reply(&closing);
        assert!(r.send(7, "limit", "none").is_ok());
        assert_eq!(w.wait(Duration::from_secs(5), &closing), Some(7));

        let (r, w) = reply::<i32>(&closing);
        assert_eq!(w.wait(Duration::from_millis(20), &closing), None);
        let late = r.send(1, "limit", "none").expect_err("the waiter gave up");
        assert_eq!(late.status, MQ_ERR_TIMEOUT);

        let (r, w) = reply::<i32>(&closing);
        drop(r);
        assert_eq!(w.wait(Duration::from_secs(60), &closing), None);

        let (r, w) = reply::<i32>(&closing);
        closing.start(Duration::ZERO);
        let started = Instant::now();
        assert_eq!(w.wait(Duration::from_secs(60), &closing), None);
        assert!(started.elapsed() < Duration::from_secs(5));
        let late = r.send(1, "limit", "none").expect_err("closed");
        assert_eq!(late.status, MQ_ERR_CLOSED);
    }
}
