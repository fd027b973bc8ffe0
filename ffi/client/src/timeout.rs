//! Waiting with a limit: a future raced against a timer (the house way to
//! time out, so that every wait in the client can end).
//!
//! The timer is made only when the future does not end at its first poll:
//! inserting one into async-io's reactor wakes the reactor's thread, a
//! context switch that a cached route or a queued item need not cost.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use async_channel::Receiver;

/// `f`'s output, or `None` when `limit` passes first (`f` is then dropped).
pub(crate) async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    let mut f = pin!(f);
    if let Some(output) = futures_lite::future::poll_once(f.as_mut()).await {
        return Some(output);
    }
    futures_lite::future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}

/// Waits for a signal on `rx` or until `timeout`; false on timeout, and at
/// once when the channel is closed.
pub(crate) async fn wait_signal(rx: &Receiver<()>, timeout: Duration) -> bool {
    within(timeout, rx.recv()).await.is_some_and(|r| r.is_ok())
}
