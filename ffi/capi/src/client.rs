//! The client instance a handle runs on, how application threads wait for
//! it, and libmq's logging.
//!
//! Each producer or consumer gets the instance of its config's client id
//! (`client_ip@instance_name`): its own unless `instance_name` is set to
//! share one, as RocketMQ's clients do. A handle holds its instance; the
//! instance stops its threads when the last handle (or object that needs
//! it, such as an un-ended transaction) is gone.
//!
//! Waiting: a blocking call runs its future on the calling thread with
//! [`mq_client::block_on`], which parks the thread while the future waits
//! (the instance's threads drive the I/O and wake it). A handle's [`Gate`]
//! ends the blocking calls in flight on it when it closes: they return
//! `MQ_ERR_CLOSED` at once instead of running to their timeout.
//!
//! Logging: libmq is silent unless the environment variable `MQ_LOG` holds
//! a level or filter (`warn`, `info`, `mq=debug`); it then logs to stderr.
//! There is no log callback: it would be application code on a library
//! thread.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mq_client::ClientInstance;

use crate::config::mq_config_t;
use crate::ffi::claim_process;
use crate::status::Error;

/// Starts (or shares) the client instance `cfg` names.
pub(crate) fn instance(cfg: &mq_config_t) -> Result<Arc<ClientInstance>, Error> {
    static LOG: Once = Once::new();
    LOG.call_once(|| {
        if let Ok(filter) = std::env::var("MQ_LOG") {
            // Fails when the host already set a logger: then that one logs.
            let _ = env_logger::Builder::new()
                .parse_filters(&filter)
                .target(env_logger::Target::Stderr)
                .try_init();
        }
    });
    let config = cfg.client()?;
    claim_process()?;
    Ok(ClientInstance::get_or_start(config)?)
}

/// Blocks the calling (application) thread on `f` (see the module doc).
pub(crate) fn block_on<T>(f: impl Future<Output = T>) -> T {
    mq_client::block_on(f)
}

/// What a negative C timeout means: no limit (as good as: `i32::MAX` ms,
/// about 24 days).
pub(crate) const FOREVER: Duration = Duration::from_millis(i32::MAX as u64);

/// A C timeout: negative is [`FOREVER`], else milliseconds.
pub(crate) fn timeout(ms: i32) -> Duration {
    if ms < 0 {
        FOREVER
    } else {
        Duration::from_millis(ms.unsigned_abs().into())
    }
}

/// `f`'s output, or `None` when `limit` passes first. A timer is made only
/// when `f` does not end at once and `limit` is not [`FOREVER`] (each
/// timer wakes async-io's thread).
pub(crate) async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    let mut f = pin!(f);
    if let Some(output) = futures_lite::future::poll_once(f.as_mut()).await {
        return Some(output);
    }
    if limit >= FOREVER {
        return Some(f.await);
    }
    futures_lite::future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}

/// Ends the blocking calls on a handle when the handle closes (see the
/// module doc). Each call in flight leaves its waker here while it waits.
#[derive(Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next: u64,
    wakers: HashMap<u64, Waker>,
}

impl Gate {
    /// Closes the gate: calls in flight return `MQ_ERR_CLOSED`, and so do
    /// later ones. Idempotent: true for the call that closed it.
    pub(crate) fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        let wakers = std::mem::take(
            &mut self
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .wakers,
        );
        for waker in wakers.into_values() {
            waker.wake();
        }
        true
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Runs `f` on the calling thread until it ends, or until the gate
    /// closes (then `f` is dropped, which abandons what it was doing, and
    /// the call fails with `MQ_ERR_CLOSED`, naming `what`).
    pub(crate) fn run<T>(&self, what: &str, f: impl Future<Output = T>) -> Result<T, Error> {
        if self.is_closed() {
            return Err(Error::closed(what));
        }
        block_on(Cut {
            gate: self,
            f: pin!(f),
            key: None,
        })
        .ok_or_else(|| Error::closed(what))
    }
}

/// `f`, ended early by its gate: `None` once the gate has closed.
struct Cut<'a, F> {
    gate: &'a Gate,
    f: Pin<&'a mut F>,
    /// Where this call's waker is in the gate, once it has waited.
    key: Option<u64>,
}

impl<F: Future> Future for Cut<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.gate.is_closed() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(output) = self.f.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if self.key.is_none() {
            // The calling thread's waker never changes (block_on): leave it
            // once. Checked again under the lock: a close that took the
            // wakers before this one was left has set `closed` already.
            let mut waiting = self
                .gate
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.gate.is_closed() {
                return Poll::Ready(None);
            }
            let key = waiting.next;
            waiting.next += 1;
            waiting.wakers.insert(key, cx.waker().clone());
            drop(waiting);
            self.key = Some(key);
        }
        Poll::Pending
    }
}

impl<F> Drop for Cut<'_, F> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.gate
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .wakers
                .remove(&key);
        }
    }
}

/// The next item of `rx`, waiting up to `limit` on the calling thread:
/// `Ok(None)` at the limit, `Err` once the channel is closed and empty.
pub(crate) fn next<T>(
    rx: &async_channel::Receiver<T>,
    limit: std::time::Duration,
) -> Result<Option<T>, async_channel::RecvError> {
    match rx.try_recv() {
        Ok(item) => Ok(Some(item)),
        Err(async_channel::TryRecvError::Closed) => Err(async_channel::RecvError),
        Err(async_channel::TryRecvError::Empty) => block_on(within(limit, rx.recv())).transpose(),
    }
}
