//! The one shutdown signal of a process: [`Shutdown`] is cloned into every
//! listener, connection and background loop, which stop when it fires;
//! [`ShutdownTrigger`] fires it (on SIGTERM in `mqd`) and then waits, up to a
//! limit, for the requests in flight to be answered.

use std::time::Duration;

use async_channel::{bounded, Receiver, Sender};

/// Tells every loop of a server to stop, and lets the stopper wait for the
/// requests in flight to finish.
#[derive(Clone)]
pub struct Shutdown {
    /// Closed when shutdown begins.
    signal: Receiver<()>,
    /// Upgraded into a token per in-flight request; when all tokens and the
    /// trigger's sender are gone, the trigger's `done` ends.
    in_flight: async_channel::WeakSender<()>,
}

/// The side that triggers a [`Shutdown`].
pub struct ShutdownTrigger {
    signal: Option<Sender<()>>,
    done: Receiver<()>,
    in_flight: Option<Sender<()>>,
}

impl Shutdown {
    /// A new shutdown signal and its trigger.
    pub fn new() -> (Shutdown, ShutdownTrigger) {
        let (signal_tx, signal_rx) = bounded(1);
        let (in_flight_tx, done_rx) = bounded(1);
        (
            Shutdown {
                signal: signal_rx,
                in_flight: in_flight_tx.downgrade(),
            },
            ShutdownTrigger {
                signal: Some(signal_tx),
                done: done_rx,
                in_flight: Some(in_flight_tx),
            },
        )
    }

    /// Resolves when shutdown begins.
    pub async fn wait(&self) {
        // Nothing is ever sent: the channel closing is the signal.
        let _ = self.signal.recv().await;
    }

    /// Waits for `wake` to finish; `true` if shutdown began first (the loops of
    /// the servers use this between rounds).
    pub async fn wait_or<F: std::future::Future>(&self, wake: F) -> bool {
        futures_lite::future::or(
            async {
                self.wait().await;
                true
            },
            async {
                wake.await;
                false
            },
        )
        .await
    }

    /// Sleeps for `period`; `true` if shutdown began first.
    pub async fn sleep(&self, period: Duration) -> bool {
        self.wait_or(async_io::Timer::after(period)).await
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.signal.is_closed()
    }

    /// A token held while a request is handled (`None` once shutdown has
    /// finished waiting).
    pub fn track(&self) -> Option<Sender<()>> {
        self.in_flight.upgrade()
    }
}

impl ShutdownTrigger {
    /// Begins shutdown.
    pub fn trigger(&mut self) {
        self.signal.take();
    }

    /// Begins shutdown and waits (up to `timeout`) for the requests in flight.
    pub async fn trigger_and_wait(mut self, timeout: Duration) {
        self.trigger();
        self.in_flight.take();
        let done = self.done.clone();
        futures_lite::future::or(
            async move {
                // Ends when every in-flight token is dropped.
                let _ = done.recv().await;
            },
            async {
                async_io::Timer::after(timeout).await;
                log::warn!("requests still in flight after {timeout:?}; stopping anyway");
            },
        )
        .await;
    }
}
