//! The application's side of a push consumer: the [`Listener`] messages are
//! handed to, what it answers, and how it is called (on the blocking thread
//! pool, so that a slow or blocking listener never holds up the library's
//! executor; a panic is caught and counts as [`ConsumeStatus::Later`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::message::MessageExt;

/// What the listener did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeStatus {
    /// Consumed; the offset may move past the batch.
    Success,
    /// Not consumed: deliver again later (concurrent: through the retry
    /// topic; orderly: the same messages after 1 s).
    Later,
}

/// The function messages are handed to. It is called on a blocking thread;
/// a panic counts as [`ConsumeStatus::Later`].
pub type Listener = Arc<dyn Fn(&[MessageExt]) -> ConsumeStatus + Send + Sync>;

/// Runs the listener on a blocking thread; a panic counts as `Later`.
pub(super) async fn call(listener: &Listener, msgs: Vec<MessageExt>) -> ConsumeStatus {
    let listener = listener.clone();
    blocking::unblock(move || {
        std::panic::catch_unwind(AssertUnwindSafe(|| listener(&msgs))).unwrap_or_else(|_| {
            log::warn!("the message listener panicked; the messages will be retried");
            ConsumeStatus::Later
        })
    })
    .await
}
