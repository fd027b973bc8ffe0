//! `mq_push_consumer_t`, and the bridge between the core's push consumer
//! and the application's poll loop.
//!
//! The core pulls and flow-controls as for a Rust listener. Its listener
//! here is the bridge: each call puts its batch on a queue and blocks (on
//! the core's blocking pool, never the executor) until the application acks
//! the batch it polled, `consume_timeout_ms` passes (LATER), or the consumer
//! has been closing for `close_timeout_ms` (LATER). The queue holds at most
//! `consume_threads` batches, because that many listener calls run at once.
//! In orderly mode the core calls the listener for one queue at a time and
//! waits for its answer, so a queue's next batch is handed out only after
//! the ack.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender, TryRecvError};
use mq_client::{
    ClientInstance, ConsumeStatus, Listener, MessageExt, PushConsumer, PushConsumerConfig,
};

use crate::batch::mq_batch_t;
use crate::client::{block_on, instance, timeout, within};
use crate::config::{mq_config_t, Extra};
use crate::ffi::{arg, handle, ok, put, take, text, Out, Poison, Poisonable};
use crate::reply::{reply, Closing, Replier};
use crate::status::{mq_status_t, Error};

/// What the bridge queue carries.
enum Item {
    /// A listener call's batch and where its ack goes.
    Batch(Vec<MessageExt>, Replier<ConsumeStatus>),
    /// A nudge from `mq_push_consumer_wakeup` (the count is in `wakeups`).
    Wakeup,
}

/// What the core's listener calls and the pollers share.
struct Bridge {
    queue: (Sender<Item>, Receiver<Item>),
    closing: Arc<Closing>,
    consume_timeout: Duration,
    /// Wakeups not yet taken by a poll that would otherwise have waited.
    wakeups: AtomicUsize,
}

impl Bridge {
    /// The core's listener: hand the batch over and wait for its ack.
    fn consume(&self, msgs: &[MessageExt]) -> ConsumeStatus {
        if self.closing.is_closing() {
            return ConsumeStatus::Later;
        }
        let (replier, waiter) = reply(&self.closing);
        if self
            .queue
            .0
            .send_blocking(Item::Batch(msgs.to_vec(), replier))
            .is_err()
        {
            return ConsumeStatus::Later;
        }
        waiter
            .wait(self.consume_timeout, &self.closing)
            .unwrap_or(ConsumeStatus::Later)
    }

    fn take_wakeup(&self) -> bool {
        self.wakeups
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn batch(&self, msgs: Vec<MessageExt>, replier: Replier<ConsumeStatus>) -> mq_batch_t {
        mq_batch_t::new(msgs, Some(replier))
    }

    /// The next batch within `limit`; `None` at the limit or on a wakeup.
    fn poll(&self, limit: Duration) -> Result<Option<mq_batch_t>, Error> {
        let deadline = Instant::now().checked_add(limit);
        loop {
            let item = match self.queue.1.try_recv() {
                Ok(item) => Some(item),
                Err(TryRecvError::Closed) => return Err(Error::closed("push consumer")),
                Err(TryRecvError::Empty) => None,
            };
            match item {
                Some(Item::Batch(msgs, replier)) => return Ok(Some(self.batch(msgs, replier))),
                Some(Item::Wakeup) => continue,
                None => {}
            }
            if self.take_wakeup() {
                return Ok(None);
            }
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(None);
            }
            match block_on(within(left, self.queue.1.recv())) {
                Some(Ok(Item::Batch(msgs, replier))) => return Ok(Some(self.batch(msgs, replier))),
                Some(Ok(Item::Wakeup)) => continue,
                Some(Err(_)) => return Err(Error::closed("push consumer")),
                None => return Ok(None),
            }
        }
    }

    /// Starts closing: pollers wake with `MQ_ERR_CLOSED`, batches not yet
    /// polled count as LATER at once, polled ones get `grace` for their ack.
    fn close(&self, grace: Duration) {
        self.closing.start(grace);
        self.queue.0.close();
        while let Ok(item) = self.queue.1.try_recv() {
            // Dropping the replier answers LATER.
            drop(item);
        }
    }
}

/// Where a push consumer is in its life.
enum Life {
    /// Made, collecting subscriptions.
    Created(Vec<(String, String)>),
    /// Started.
    Running(PushConsumer),
    /// Closed (or closing).
    Closed,
}

/// A push consumer. Thread-safe: every function may be called from any
/// thread, at the same time as any other, except `mq_push_consumer_destroy`,
/// which must be the last call on it.
pub struct mq_push_consumer_t {
    instance: Arc<ClientInstance>,
    config: PushConsumerConfig,
    extra: Extra,
    bridge: Arc<Bridge>,
    life: Mutex<Life>,
    /// Set when a call on it panicked.
    poison: Poison,
}

impl Poisonable for mq_push_consumer_t {
    fn poison(&self) -> &Poison {
        &self.poison
    }
}

impl mq_push_consumer_t {
    fn close(&self) {
        let life = std::mem::replace(
            &mut *self.life.lock().unwrap_or_else(PoisonError::into_inner),
            Life::Closed,
        );
        self.bridge.close(self.extra.close_timeout);
        if let Life::Running(consumer) = life {
            // Listener calls end within the grace; then offsets are
            // committed, queue locks released, the brokers told.
            consumer.shutdown_blocking();
        }
    }
}

/// Creates a push consumer (not started: subscribe, then start). Config
/// keys: `namesrv_addr` and `group` (required), `message_model`
/// (clustering|broadcasting), `consume_from` (last|first|timestamp:MS),
/// `orderly`, `consume_threads`, `consume_batch_max_size`,
/// `pull_batch_size`, `max_reconsume_times`, `consume_timeout_ms` (15 min),
/// `close_timeout_ms` (30 s), `offset_dir`, and the client's keys.
///
/// Ownership: `*out` is the caller's: close, then destroy it.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CONFIG`, `MQ_ERR_NO_NAMESRV`, `MQ_ERR_IO`.
///
/// # Safety
///
/// `cfg` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_new(
    cfg: *const mq_config_t,
    out: *mut *mut mq_push_consumer_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, cfg) = unsafe { (Out::new(out, "out")?, arg(cfg, "cfg")?) };
        let config = cfg.push_consumer()?;
        let extra = cfg.extra();
        let bridge = Arc::new(Bridge {
            queue: bounded(config.consume_threads.max(1)),
            closing: Arc::default(),
            consume_timeout: extra.consume_timeout,
            wakeups: AtomicUsize::new(0),
        });
        out.set(mq_push_consumer_t {
            instance: instance(cfg)?,
            config,
            extra,
            bridge,
            life: Mutex::new(Life::Created(Vec::new())),
            poison: Poison::default(),
        });
        ok()
    }
}

/// Subscribes to `topic` with a tag expression (`"*"`, `"TagA || TagB"`;
/// NULL means `"*"`). Before `mq_push_consumer_start` only.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (not UTF-8, empty topic),
/// `MQ_ERR_STATE` (started), `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `topic` and `expr` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_subscribe(
    c: *const mq_push_consumer_t,
    topic: *const c_char,
    expr: *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (c, topic, expr) = unsafe {
            (handle(c, "consumer")?, text(topic, "topic")?, crate::ffi::text_opt(expr, "expr")?)
        };
        if topic.is_empty() {
            return Err(Error::invalid("topic is empty"));
        }
        match &mut *c.life.lock().unwrap_or_else(PoisonError::into_inner) {
            Life::Created(subs) => {
                subs.retain(|(t, _)| t != topic);
                subs.push((topic.to_owned(), expr.unwrap_or("*").to_owned()));
                ok()
            }
            Life::Running(_) => Err(Error::state("subscribe before mq_push_consumer_start")),
            Life::Closed => Err(Error::closed("push consumer")),
        }
    }
}

/// Starts consuming: from now on batches wait for `mq_push_consumer_poll`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (no subscription),
/// `MQ_ERR_STATE` (started already), `MQ_ERR_CLOSED`, `MQ_ERR_IO`.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_start(c: *const mq_push_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let c = unsafe { handle(c, "consumer") }?;
        let mut life = c.life.lock().unwrap_or_else(PoisonError::into_inner);
        let subs = match &*life {
            Life::Created(subs) => subs.clone(),
            Life::Running(_) => return Err(Error::state("the push consumer is started already")),
            Life::Closed => return Err(Error::closed("push consumer")),
        };
        let bridge = c.bridge.clone();
        let listener: Listener = Arc::new(move |msgs: &[MessageExt]| bridge.consume(msgs));
        let consumer = PushConsumer::start(c.instance.clone(), c.config.clone(), subs, listener)?;
        *life = Life::Running(consumer);
        ok()
    }
}

/// Takes the next batch, waiting up to `timeout_ms` (negative: until one
/// comes, a wakeup, or close). `*out` is NULL when none came in time or
/// after `mq_push_consumer_wakeup`. Settle each batch with `mq_batch_ack`
/// within `consume_timeout_ms`.
///
/// Ownership: `*out` is the caller's until acked or freed.
///
/// Thread: any; several threads may poll at once (each batch goes to one),
/// which is how batches are consumed in parallel. `mq_push_consumer_close`
/// on another thread makes a waiting poll return `MQ_ERR_CLOSED`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (not started), `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_poll(
    c: *const mq_push_consumer_t,
    timeout_ms: i32,
    out: *mut *mut mq_batch_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, c) = unsafe { (Out::new(out, "out")?, handle(c, "consumer")?) };
        if let Life::Created(_) = &*c.life.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(Error::state("poll after mq_push_consumer_start"));
        }
        if let Some(batch) = c.bridge.poll(timeout(timeout_ms))? {
            out.set(batch);
        }
        ok()
    }
}

/// A handler for `mq_push_consumer_serve`: consumes `batch` and returns
/// `MQ_CONSUME_SUCCESS` or `MQ_CONSUME_LATER`. It runs on the thread that
/// called `mq_push_consumer_serve`, never on a libmq thread; `batch` is
/// valid only during the call. It must not unwind (C++ exceptions,
/// `longjmp`) through libmq.
pub type mq_batch_handler_t =
    Option<unsafe extern "C" fn(batch: *const mq_batch_t, opaque: *mut c_void) -> i32>;

/// For C programs that want a callback: waits up to `timeout_ms` for one
/// batch (as `mq_push_consumer_poll`), calls `handler(batch, opaque)` on
/// this thread, and acks the batch with what it returned (any other value
/// than `MQ_CONSUME_SUCCESS` or `MQ_CONSUME_LATER` counts as LATER and
/// makes this return `MQ_ERR_INVALID_ARG`). `*served` (may be NULL) is 1
/// when a batch was handled, else 0. Call it in a loop on as many threads
/// as batches should be consumed at once. Bindings use poll and ack.
///
/// Errors: as `mq_push_consumer_poll`, `MQ_ERR_NULL` for a NULL handler,
/// and those of `mq_batch_ack`.
///
/// # Safety
///
/// `c` is NULL or a live consumer; `handler` is NULL or a function of the
/// type's contract, which may use `opaque` as it likes; `served` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_serve(
    c: *const mq_push_consumer_t,
    timeout_ms: i32,
    handler: mq_batch_handler_t,
    opaque: *mut c_void,
    served: *mut usize,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        unsafe { put(served, 0) };
        let c = unsafe { handle(c, "consumer") }?;
        let handler = handler.ok_or_else(|| Error::null("handler"))?;
        if let Life::Created(_) = &*c.life.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(Error::state("serve after mq_push_consumer_start"));
        }
        let Some(batch) = c.bridge.poll(timeout(timeout_ms))? else {
            return ok();
        };
        let batch = Box::into_raw(Box::new(batch));
        // SAFETY: the handler's contract; `batch` is live for the call.
        let status = unsafe { handler(batch, opaque) };
        // SAFETY: the caller's promise; `batch` is ours and acked once.
        unsafe {
            put(served, 1);
            crate::ffi::status_result(crate::batch::mq_batch_ack(batch, status))
        }
    }
}

/// Makes one `mq_push_consumer_poll` return at once with `*out` NULL: one
/// waiting now, or else the next one that would wait.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_wakeup(c: *const mq_push_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let c = unsafe { arg(c, "consumer") }?;
        c.bridge.wakeups.fetch_add(1, Ordering::AcqRel);
        // Full: batches are waiting, and a poller takes them first anyway.
        let _ = c.bridge.queue.0.try_send(Item::Wakeup);
        ok()
    }
}

/// Closes the consumer: waiting polls return `MQ_ERR_CLOSED`, batches not
/// yet polled count as LATER, polled ones get `close_timeout_ms` for their
/// ack (later acks return `MQ_ERR_CLOSED` and count as LATER); then offsets
/// are committed and the brokers told. Idempotent, and safe while other
/// threads poll or ack. Do not call it from a thread that holds an
/// un-acked batch it will ack only after close returns: ack first.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `c` is NULL or a live consumer.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_close(c: *const mq_push_consumer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg(c, "consumer") }?.close();
        ok()
    }
}

/// Closes the consumer if needed and frees it. NULL is a no-op. Batches it
/// handed out stay valid (their acks then return `MQ_ERR_CLOSED`). In a
/// forked child it only leaks.
///
/// # Safety
///
/// `c` is NULL or a consumer from `mq_push_consumer_new`, not destroyed
/// before; no other call on it runs now or later.
#[no_mangle]
pub unsafe extern "C" fn mq_push_consumer_destroy(c: *mut mq_push_consumer_t) {
    ffi! {
        // SAFETY: the caller's promise.
        if let Some(c) = unsafe { take(c) } {
            c.close();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{mq_batch_ack, mq_batch_free, MQ_CONSUME_LATER, MQ_CONSUME_SUCCESS};
    use crate::status::{MQ_ERR_CLOSED, MQ_ERR_INVALID_ARG, MQ_ERR_TIMEOUT, MQ_OK};

    fn bridge(consume_timeout: Duration) -> Arc<Bridge> {
        Arc::new(Bridge {
            queue: bounded(4),
            closing: Arc::default(),
            consume_timeout,
            wakeups: AtomicUsize::new(0),
        })
    }

    /// A listener call on another thread, as the core makes it.
    fn listener_call(b: &Arc<Bridge>) -> std::thread::JoinHandle<ConsumeStatus> {
        let b = b.clone();
        std::thread::spawn(move || b.consume(&[crate::message::for_test(Default::default(), b"x")]))
    }

    fn polled(b: &Bridge) -> *mut mq_batch_t {
        let batch = b.poll(Duration::from_secs(10)).unwrap().expect("a batch");
        Box::into_raw(Box::new(batch))
    }

    #[test]
    fn an_ack_reaches_the_listener_call() {
        let b = bridge(Duration::from_secs(60));
        for (status, want) in [
            (MQ_CONSUME_SUCCESS, ConsumeStatus::Success),
            (MQ_CONSUME_LATER, ConsumeStatus::Later),
        ] {
            let call = listener_call(&b);
            // SAFETY: a batch made here, acked once.
            assert_eq!(unsafe { mq_batch_ack(polled(&b), status) }, MQ_OK);
            assert_eq!(call.join().unwrap(), want);
        }
    }

    #[test]
    fn a_freed_bad_or_late_ack_counts_as_later() {
        let b = bridge(Duration::from_millis(100));
        let call = listener_call(&b);
        // SAFETY: freed once.
        unsafe { mq_batch_free(polled(&b)) };
        assert_eq!(call.join().unwrap(), ConsumeStatus::Later);

        let call = listener_call(&b);
        // SAFETY: acked once.
        assert_eq!(unsafe { mq_batch_ack(polled(&b), 7) }, MQ_ERR_INVALID_ARG);
        assert_eq!(call.join().unwrap(), ConsumeStatus::Later);

        let call = listener_call(&b);
        let batch = polled(&b);
        assert_eq!(
            call.join().unwrap(),
            ConsumeStatus::Later,
            "consume_timeout_ms"
        );
        // SAFETY: acked once.
        assert_eq!(
            unsafe { mq_batch_ack(batch, MQ_CONSUME_SUCCESS) },
            MQ_ERR_TIMEOUT
        );
    }

    unsafe extern "C" fn later_if_opaque(batch: *const mq_batch_t, opaque: *mut c_void) -> i32 {
        // SAFETY: the batch is live during the call.
        assert_eq!(unsafe { crate::batch::mq_batch_len(batch) }, 1);
        if opaque.is_null() {
            MQ_CONSUME_SUCCESS
        } else {
            MQ_CONSUME_LATER
        }
    }

    #[test]
    fn serve_calls_the_handler_on_this_thread_and_acks_its_answer() {
        let cfg = crate::tests::config(&[]);
        let mut c = std::ptr::null_mut();
        // SAFETY: valid pointers; the consumer is destroyed once.
        unsafe {
            assert_eq!(mq_push_consumer_new(cfg, &mut c), MQ_OK);
            let topic = c"T".as_ptr();
            assert_eq!(
                mq_push_consumer_subscribe(c, topic, std::ptr::null()),
                MQ_OK
            );
            assert_eq!(mq_push_consumer_start(c), MQ_OK);
            let b = (*c).bridge.clone();
            for (opaque, want) in [
                (std::ptr::null_mut(), ConsumeStatus::Success),
                (c.cast::<c_void>(), ConsumeStatus::Later),
            ] {
                let call = listener_call(&b);
                let mut served = 0;
                let status =
                    mq_push_consumer_serve(c, 10_000, Some(later_if_opaque), opaque, &mut served);
                assert_eq!((status, served), (MQ_OK, 1));
                assert_eq!(call.join().unwrap(), want);
            }
            let mut served = 7;
            assert_eq!(
                mq_push_consumer_serve(
                    c,
                    0,
                    Some(later_if_opaque),
                    std::ptr::null_mut(),
                    &mut served
                ),
                MQ_OK
            );
            assert_eq!(served, 0, "nothing came");
            assert_eq!(
                mq_push_consumer_serve(c, 0, None, std::ptr::null_mut(), &mut served),
                crate::status::MQ_ERR_NULL
            );
            mq_push_consumer_destroy(c);
        }
        crate::tests::free_config(cfg);
    }

    #[test]
    fn close_releases_queued_and_polled_batches() {
        let b = bridge(Duration::from_secs(60));
        let polled_call = listener_call(&b);
        let batch = polled(&b);
        let queued_call = listener_call(&b);
        while b.queue.0.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        b.close(Duration::from_millis(100));
        assert_eq!(queued_call.join().unwrap(), ConsumeStatus::Later);
        assert_eq!(polled_call.join().unwrap(), ConsumeStatus::Later);
        // SAFETY: acked once.
        assert_eq!(
            unsafe { mq_batch_ack(batch, MQ_CONSUME_SUCCESS) },
            MQ_ERR_CLOSED
        );
        assert!(b.poll(Duration::ZERO).is_err());
        assert_eq!(
            b.consume(&[]),
            ConsumeStatus::Later,
            "no call waits after close"
        );
    }
}
