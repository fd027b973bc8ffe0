//! `mq_pull_consumer_t`: the lite pull consumer. The application polls for
//! batches; queues come from a subscription (the group's rebalance) or from
//! `assign`; positions move with `seek`; what polls returned is committed
//! automatically (`auto_commit`) or by `commit`.

use std::ffi::c_char;
use std::future::Future;

use mq_client::PullConsumer;

use crate::batch::mq_batch_t;
use crate::client::{block_on, instance, timeout, Gate};
use crate::config::mq_config_t;
use crate::ffi::{arg, handle, ok, put, take, text, text_opt, Out, Poison, Poisonable};
use crate::queue_list::{mq_queue_list_t, queue};
use crate::status::{mq_status_t, Error};

/// A lite pull consumer. Thread-safe: every function may be called from any
/// thread, at the same time as any other, except `mq_pull_consumer_destroy`,
/// which must be the last call on it.
pub struct mq_pull_consumer_t {
    consumer: PullConsumer,
    /// Closed by close: calls fail with `MQ_ERR_CLOSED`, also those in
    /// flight.
    gate: Gate,
    /// Set when a call on it panicked.
    poison: Poison,
}

impl Poisonable for mq_pull_consumer_t {
    fn poison(&self) -> &Poison {
        &self.poison
    }
}

impl mq_pull_consumer_t {
    fn open(&self) -> Result<&PullConsumer, Error> {
        if self.gate.is_closed() {
            return Err(Error::closed("pull consumer"));
        }
        Ok(&self.consumer)
    }

    /// Runs a blocking call on the calling thread; close ends it.
    fn run<T>(&self, call: impl Future<Output = mq_client::Result<T>>) -> Result<T, Error> {
        Ok(self.gate.run("pull consumer", call)??)
    }

    fn close(&self) {
        // Calls in flight end now (MQ_ERR_CLOSED).
        self.gate.close();
        // Idempotent; wakes waiting polls first, then commits.
        block_on(self.consumer.shutdown());
    }
}

/// Creates and starts a lite pull consumer; it reads nothing until
/// subscribe or assign. Config keys: `namesrv_addr` and `group`
/// (required), `message_model`, `consume_from`, `auto_commit` (true),
/// `auto_commit_interval_ms` (5000), `pull_batch_size` (32, the most one
/// poll returns), `offset_dir`, and the client's keys.
///
/// Ownership: `*out` is the caller's: close, then destroy it.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CONFIG`, `MQ_ERR_NO_NAMESRV`, `MQ_ERR_IO`.
///
/// # Safety
///
/// `cfg` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_new(
    cfg: *const mq_config_t,
    out: *mut *mut mq_pull_consumer_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, cfg) = unsafe { (Out::new(out, "out")?, arg(cfg, "cfg")?) };
        let config = cfg.pull_consumer()?;
        let consumer = PullConsumer::start(instance(cfg)?, config)?;
        out.set(mq_pull_consumer_t {
            consumer,
            gate: Gate::default(),
            poison: Poison::default(),
        });
        ok()
    }
}

/// Subscribes to `topic` with a tag expression (NULL means `"*"`); the
/// group's rebalance decides which of its queues this consumer reads. Not
/// together with assign.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`, `MQ_ERR_STATE` (assigned
/// before), `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `topic` and `expr` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_subscribe(
    c: *const mq_pull_consumer_t,
    topic: *const c_char,
    expr: *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, topic, expr) = unsafe {
            (handle(c, "consumer")?, text(topic, "topic")?, text_opt(expr, "expr")?)
        };
        c.run(c.open()?.subscribe(topic, expr.unwrap_or("*")))?;
        ok()
    }
}

/// The readable queues of `topic`, from its route as the NameServer has it
/// now (Java's `fetchMessageQueues`): what to choose from for
/// `mq_pull_consumer_assign`.
///
/// Ownership: `*out` is the caller's: free it with `mq_queue_list_free`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (not UTF-8, empty),
/// `MQ_ERR_NO_ROUTE` (no route, or no readable queue), `MQ_ERR_NO_NAMESRV`,
/// `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `topic` is NULL or a NUL-terminated
/// string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_fetch_queues(
    c: *const mq_pull_consumer_t,
    topic: *const c_char,
    out: *mut *mut mq_queue_list_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, c, topic) = unsafe { (Out::new(out, "out")?, handle(c, "consumer")?, text(topic, "topic")?) };
        let queues = c.run(c.open()?.fetch_queues(topic))?;
        out.set(mq_queue_list_t::new(queues));
        ok()
    }
}

/// Reads exactly the queues in `queues` (no rebalance), replacing an earlier
/// assignment. The list is copied. Not together with subscribe.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (subscribed before),
/// `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `queues` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_assign(
    c: *const mq_pull_consumer_t,
    queues: *const mq_queue_list_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, queues) = unsafe { (handle(c, "consumer")?, arg(queues, "queues")?) };
        c.run(c.open()?.assign(queues.queues()))?;
        ok()
    }
}

/// The queues this consumer reads now, as a new list.
///
/// Ownership: `*out` is the caller's: free it with `mq_queue_list_free`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_assignment(
    c: *const mq_pull_consumer_t,
    out: *mut *mut mq_queue_list_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, c) = unsafe { (Out::new(out, "out")?, handle(c, "consumer")?) };
        let queues = block_on(c.open()?.assignment());
        out.set(mq_queue_list_t::new(queues));
        ok()
    }
}

/// Up to `pull_batch_size` messages of one queue, waiting up to
/// `timeout_ms` (negative: until messages come, a wakeup, or close).
/// `*out` is NULL when none came. Free the batch with `mq_batch_free`.
///
/// Thread: any; `mq_pull_consumer_wakeup` or `mq_pull_consumer_close` on
/// another thread ends a waiting poll (close: with `MQ_ERR_CLOSED`).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_poll(
    c: *const mq_pull_consumer_t,
    timeout_ms: i32,
    out: *mut *mut mq_batch_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, c) = unsafe { (Out::new(out, "out")?, handle(c, "consumer")?) };
        let msgs = block_on(c.open()?.poll(timeout(timeout_ms)))?;
        if !msgs.is_empty() {
            out.set(mq_batch_t::new(msgs, None));
        }
        ok()
    }
}

/// Moves a queue's position to `offset` (within the queue's min and max
/// offsets), dropping what was buffered.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (offset out of range),
/// `MQ_ERR_STATE` (queue not assigned), `MQ_ERR_CLOSED`, transport errors.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `topic` and `broker` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_seek(
    c: *const mq_pull_consumer_t,
    topic: *const c_char,
    broker: *const c_char,
    queue_id: i32,
    offset: i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, mq) = unsafe { (handle(c, "consumer")?, queue(topic, broker, queue_id)?) };
        c.run(c.open()?.seek(&mq, offset))?;
        ok()
    }
}

/// Moves a queue's position to its first message stored at or after
/// `timestamp_ms` (ms since the epoch).
///
/// Errors: as `mq_pull_consumer_seek`.
///
/// # Safety
///
/// As for `mq_pull_consumer_seek`.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_seek_to_timestamp(
    c: *const mq_pull_consumer_t,
    topic: *const c_char,
    broker: *const c_char,
    queue_id: i32,
    timestamp_ms: i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, mq) = unsafe { (handle(c, "consumer")?, queue(topic, broker, queue_id)?) };
        c.run(c.open()?.seek_to_timestamp(&mq, timestamp_ms))?;
        ok()
    }
}

/// Commits, for every assigned queue, the position after what polls
/// returned (to the broker, or the offsets file when broadcasting).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CLOSED`, transport errors.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_commit(c: *const mq_pull_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let c = unsafe { handle(c, "consumer") }?;
        c.run(c.open()?.commit())?;
        ok()
    }
}

/// The group's committed offset of a queue, asked of the broker (or read
/// from the offsets file): `*offset` is -1 when there is none.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`, `MQ_ERR_CLOSED`, transport
/// errors.
///
/// # Safety
///
/// As for `mq_pull_consumer_seek`; `offset` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_committed(
    c: *const mq_pull_consumer_t,
    topic: *const c_char,
    broker: *const c_char,
    queue_id: i32,
    offset: *mut i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, mq) = unsafe { (handle(c, "consumer")?, queue(topic, broker, queue_id)?) };
        if offset.is_null() {
            return Err(Error::null("offset"));
        }
        let committed = c.run(c.open()?.committed(&mq))?;
        // SAFETY: checked non-NULL; writable by the caller's promise.
        unsafe { put(offset, committed.unwrap_or(-1)) };
        ok()
    }
}

/// Makes one `mq_pull_consumer_poll` return at once with what it has
/// (possibly nothing): one waiting now, or else the next one that would
/// wait.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_wakeup(c: *const mq_pull_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg(c, "consumer") }?.consumer.wakeup();
        ok()
    }
}

/// Closes the consumer: calls in flight on other threads (polls, and
/// subscribe, assign, fetch_queues, seek, commit, committed) return
/// `MQ_ERR_CLOSED` at once, then positions are committed (with
/// auto-commit) and the brokers told. Idempotent; safe while other threads
/// use the consumer.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_close(c: *const mq_pull_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg(c, "consumer") }?.close();
        ok()
    }
}

/// Closes the consumer if needed and frees it. NULL is a no-op. Batches it
/// handed out stay valid. In a forked child it only leaks.
///
/// # Safety
///
/// `c` is NULL or a consumer from `mq_pull_consumer_new`, not destroyed
/// before; no other call on it runs now or later.
#[no_mangle]
pub unsafe extern "C" fn mq_pull_consumer_destroy(c: *mut mq_pull_consumer_t) {
    ffi! {
        // SAFETY: the caller's promise.
        if let Some(c) = unsafe { take(c) } {
            c.close();
        }
        Ok(())
    }
}
