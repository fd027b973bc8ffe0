//! Waiting with a limit: a future raced against a timer (the house way to
//! time out, so that every wait in the client can end).

use std::future::Future;
use std::time::Duration;

use async_channel::Receiver;

/// `f`'s output, or `None` when `limit` passes first (`f` is then dropped).
pub(crate) async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
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
