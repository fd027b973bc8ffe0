//! `mq_batch_t`: the messages one poll returned, from either consumer. A
//! push batch is settled with `mq_batch_ack` (SUCCESS or LATER); a pull
//! batch is just freed (the pull consumer commits positions instead).
//! A batch owns its messages, so it outlives its consumer.

use mq_client::{ConsumeStatus, MessageExt};

use crate::ffi::{arg, choice, ok, take};
use crate::message::mq_message_t;
use crate::reply::Replier;
use crate::status::{mq_status_t, Error};

/// A push batch was consumed: its offsets may move past it.
pub const MQ_CONSUME_SUCCESS: i32 = 0;
/// A push batch was not consumed: deliver it again later (concurrent mode:
/// through the retry topic, with `reconsume_times` one higher; orderly
/// mode: the same messages after a pause).
pub const MQ_CONSUME_LATER: i32 = 1;

/// Messages from one poll (all of one queue). Read-only: safe to read from
/// several threads at once; ack or free it once.
pub struct mq_batch_t {
    messages: Vec<mq_message_t>,
    /// Where a push batch's ack goes; `None` for a pull batch.
    ack: Option<Replier<ConsumeStatus>>,
}

impl mq_batch_t {
    pub(crate) fn new(msgs: Vec<MessageExt>, ack: Option<Replier<ConsumeStatus>>) -> mq_batch_t {
        mq_batch_t {
            messages: msgs.into_iter().map(mq_message_t::received).collect(),
            ack,
        }
    }
}

/// The number of messages; 0 when `b` is NULL.
///
/// # Safety
///
/// `b` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn mq_batch_len(b: *const mq_batch_t) -> usize {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(b, "batch") }?.messages.len())
    }
}

/// Message `i` (`0 <= i < mq_batch_len(b)`); NULL when out of range or `b`
/// is NULL.
///
/// Ownership: borrowed from `b`: valid until `b` is acked or freed; do not
/// free it (`mq_message_free` ignores it).
///
/// # Safety
///
/// `b` is NULL or a live batch.
#[no_mangle]
pub unsafe extern "C" fn mq_batch_get(b: *const mq_batch_t, i: usize) -> *const mq_message_t {
    ffi! {
        // SAFETY: the caller's promise.
        let b = unsafe { arg(b, "batch") }?;
        b.messages
            .get(i)
            .map(std::ptr::from_ref)
            .ok_or_else(|| Error::invalid(format!("message {i} of {}", b.messages.len())))
    }
}

/// Settles a push batch with `status` (`MQ_CONSUME_SUCCESS` or
/// `MQ_CONSUME_LATER`) and frees it: `b` is gone after this call, whatever
/// it returns (unless `b` is NULL).
///
/// Errors: `MQ_ERR_NULL`; `MQ_ERR_INVALID_ARG` for another status (the
/// batch counts as LATER); `MQ_ERR_STATE` for a pull batch (freed, nothing
/// to ack); `MQ_ERR_TIMEOUT` when `consume_timeout_ms` had passed and
/// `MQ_ERR_CLOSED` when the consumer had been closed for longer than
/// `close_timeout_ms` (in both the batch already counted as LATER).
///
/// Thread: any, not only the one that polled it.
///
/// # Safety
///
/// `b` is NULL or a live batch, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_batch_ack(b: *mut mq_batch_t, status: i32) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let b = unsafe { take(b) }.ok_or_else(|| Error::null("batch"))?;
        let Some(ack) = b.ack else {
            return Err(Error::state("a pull batch is not acked; free it"));
        };
        let status = choice(
            status,
            &[
                (MQ_CONSUME_SUCCESS, ConsumeStatus::Success),
                (MQ_CONSUME_LATER, ConsumeStatus::Later),
            ],
            "consume status",
        )?;
        ack.send(status, "consume_timeout_ms", "LATER")?;
        ok()
    }
}

/// Frees a batch. A push batch freed without `mq_batch_ack` counts as
/// LATER. NULL is a no-op.
///
/// # Safety
///
/// `b` is NULL or a live batch, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_batch_free(b: *mut mq_batch_t) {
    ffi! {
        // SAFETY: the caller's promise. Dropping an un-acked reply tells
        // the waiting listener call at once (LATER).
        drop(unsafe { take(b) });
        Ok(())
    }
}
