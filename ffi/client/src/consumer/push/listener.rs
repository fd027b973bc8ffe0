//! The application's side of a push consumer: the [`Listener`] messages are
//! handed to, what it answers, and how it is called (on the blocking thread
//! pool, so that a slow or blocking listener never holds up the library's
//! executor; a panic is caught and counts as [`ConsumeStatus::Later`]).

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use super::state::Inner;
use crate::message::MessageExt;

thread_local! {
    /// The consumer (its [`Inner`]'s address) whose listener this thread is
    /// running now; 0 when none. A listener that shuts its own consumer
    /// down holds a permit that shutdown would otherwise wait for.
    static RUNNING_FOR: Cell<usize> = const { Cell::new(0) };
}

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

/// Runs `inner`'s listener on a blocking thread; a panic counts as `Later`.
pub(super) async fn call(inner: &Inner, msgs: Vec<MessageExt>) -> ConsumeStatus {
    let listener = inner.listener.clone();
    let consumer = consumer_id(inner);
    blocking::unblock(move || {
        let outer = RUNNING_FOR.replace(consumer);
        let status =
            std::panic::catch_unwind(AssertUnwindSafe(|| listener(&msgs))).unwrap_or_else(|_| {
                log::warn!("the message listener panicked; the messages will be retried");
                ConsumeStatus::Later
            });
        RUNNING_FOR.set(outer);
        status
    })
    .await
}

/// Whether this thread is inside a call of `inner`'s listener.
pub(super) fn is_running_for(inner: &Inner) -> bool {
    RUNNING_FOR.get() == consumer_id(inner)
}

fn consumer_id(inner: &Inner) -> usize {
    inner as *const Inner as usize
}
