//! The client instance a handle runs on, and libmq's logging.
//!
//! Each producer or consumer gets the instance of its config's client id
//! (`client_ip@instance_name`): its own unless `instance_name` is set to
//! share one, as RocketMQ's clients do. A handle holds its instance; the
//! instance stops its threads when the last handle (or object that needs
//! it, such as an un-ended transaction) is gone.
//!
//! Logging: libmq is silent unless the environment variable `MQ_LOG` holds
//! a level or filter (`warn`, `info`, `mq=debug`); it then logs to stderr.
//! There is no log callback: it would be application code on a library
//! thread.

use std::sync::{Arc, Once};

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

/// Blocks the calling (application) thread on `f`.
pub(crate) fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    async_io::block_on(f)
}

/// A C timeout: negative is "without limit" (as good as: `i32::MAX` ms,
/// about 24 days), else milliseconds.
pub(crate) fn timeout(ms: i32) -> std::time::Duration {
    let ms = if ms < 0 { i32::MAX } else { ms };
    std::time::Duration::from_millis(ms.unsigned_abs().into())
}

/// `f`'s output, or `None` when `limit` passes first.
pub(crate) async fn within<T>(
    limit: std::time::Duration,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
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
