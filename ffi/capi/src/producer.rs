//! `mq_producer_t`: sync, ordered, one-way, batch and async sends. Async
//! outcomes are queued as reports for `mq_producer_poll` (libmq never calls
//! the application); `mq_producer_flush` waits for sends in flight; close
//! flushes within `close_timeout_ms`.

use std::ffi::{c_char, c_void};
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{unbounded, Receiver, Sender};
use mq_client::{Message, Producer};

use crate::client::{block_on, instance, next, timeout, Gate};
use crate::config::{mq_config_t, Extra};
use crate::ffi::{arg, handle, ok, put, take, text, Out, Poison, Poisonable};
use crate::message::mq_message_t;
use crate::send_result::{mq_send_report_t, mq_send_result_t};
use crate::status::{mq_status_t, Error, MQ_ERR_QUEUE_FULL, MQ_ERR_TIMEOUT};

/// A producer. Thread-safe: every function may be called from any thread,
/// at the same time as any other, except `mq_producer_destroy`, which must
/// be the last call on it.
pub struct mq_producer_t {
    producer: Producer,
    extra: Extra,
    async_sends: Arc<AsyncSends>,
    /// Closed by close: sends fail with `MQ_ERR_CLOSED`, also those in
    /// flight.
    gate: Gate,
    /// Set when a call on it panicked.
    poison: Poison,
}

impl Poisonable for mq_producer_t {
    fn poison(&self) -> &Poison {
        &self.poison
    }
}

/// What async sends share with their completions (which run on a library
/// thread and only queue a report).
struct AsyncSends {
    reports: (Sender<mq_send_report_t>, Receiver<mq_send_report_t>),
    /// Sent and not yet polled: what `max_inflight_async` caps.
    outstanding: AtomicUsize,
    /// Sent and not yet completed: what flush waits for.
    unfinished: Mutex<usize>,
    finished: Condvar,
    /// The application's descriptor to signal when reports wait (-1: none);
    /// locked while written, so that once `mq_producer_set_report_fd`
    /// returns, the old one is not written any more.
    report_fd: Mutex<RawFd>,
    /// A signal is on its way and no poll has found the queue empty since:
    /// reports queued meanwhile need none of their own.
    signalled: AtomicBool,
}

impl AsyncSends {
    fn done(&self, report: mq_send_report_t) {
        // Unbounded: never blocks a library thread. Closed after close's
        // flush: a report that late is dropped (close waited for it).
        let _ = self.reports.0.try_send(report);
        if !self.signalled.swap(true, Ordering::SeqCst) {
            self.signal();
        }
        let mut n = self
            .unfinished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        // Flush waits for none left; waking it on every report would cost a
        // futex call per send.
        if *n == 0 {
            self.finished.notify_all();
        }
    }

    /// Writes 1 as 8 native-endian bytes to the report descriptor: what an
    /// eventfd takes, and a pipe's reader just drains. A full pipe or
    /// eventfd (EAGAIN) already wakes its reader; other errors have no one
    /// to go to, so they are logged.
    fn signal(&self) {
        let fd = self
            .report_fd
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *fd < 0 {
            return;
        }
        // SAFETY: the application keeps the descriptor open while it is set
        // (`mq_producer_set_report_fd`); ManuallyDrop leaves it open.
        let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(*fd) });
        match file.write(&1u64.to_ne_bytes()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => log::warn!("signalling report descriptor {}: {e}", *fd),
        }
    }

    /// Takes the next report, waiting up to `limit`. Finding none at first
    /// re-arms the signal before looking again, so a report queued after
    /// that look signals the descriptor.
    fn next(&self, limit: Duration) -> Result<Option<mq_send_report_t>, ()> {
        if let Ok(report) = self.reports.1.try_recv() {
            return Ok(Some(report));
        }
        self.signalled.store(false, Ordering::SeqCst);
        next(&self.reports.1, limit).map_err(|_| ())
    }

    /// Waits until no send is unfinished; false at `limit`.
    fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now().checked_add(limit);
        let mut n = self
            .unfinished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *n > 0 {
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            n = self
                .finished
                .wait_timeout(n, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl mq_producer_t {
    fn open(&self) -> Result<&Producer, Error> {
        if self.gate.is_closed() {
            return Err(Error::closed("producer"));
        }
        Ok(&self.producer)
    }

    /// Runs a blocking send on the calling thread; close ends it.
    fn run<T>(
        &self,
        send: impl std::future::Future<Output = mq_client::Result<T>>,
    ) -> Result<T, Error> {
        Ok(self.gate.run("producer", send)??)
    }

    /// The send budget of a call: `timeout_ms`, or `send_timeout_ms` when
    /// it is negative.
    fn budget(&self, timeout_ms: i32) -> Duration {
        if timeout_ms < 0 {
            self.producer.config().send_timeout
        } else {
            Duration::from_millis(timeout_ms.unsigned_abs().into())
        }
    }

    fn close(&self) {
        // Sync sends in flight end now (MQ_ERR_CLOSED); async ones are
        // waited for.
        if !self.gate.close() {
            return;
        }
        if !self.async_sends.flush(self.extra.close_timeout) {
            log::warn!(
                "{}: async sends still in flight after close_timeout_ms; their reports are dropped",
                self.producer.config().group
            );
        }
        block_on(self.producer.shutdown());
        // Pollers take what is queued, then get MQ_ERR_CLOSED; one waiting
        // on the report descriptor is woken to see that.
        self.async_sends.reports.0.close();
        self.async_sends.signal();
    }
}

/// Hands a result to the caller if it asked for one.
fn give(out: Option<Out<mq_send_result_t>>, r: mq_client::SendResult) {
    if let Some(out) = out {
        out.set(mq_send_result_t::from_owned(r));
    }
}

/// Creates and starts a producer. Config keys: `namesrv_addr` and `group`
/// (required), `send_timeout_ms`, `retry_times_when_send_failed`,
/// `max_inflight_async`, `close_timeout_ms`, and the client's keys.
///
/// Ownership: `*out` is the caller's: `mq_producer_close` it, then
/// `mq_producer_destroy` it. `cfg` stays the caller's (copied).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CONFIG` (a required key missing),
/// `MQ_ERR_NO_NAMESRV`, `MQ_ERR_IO` (threads could not start),
/// `MQ_ERR_FORKED`.
///
/// # Safety
///
/// `cfg` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_new(
    cfg: *const mq_config_t,
    out: *mut *mut mq_producer_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, cfg) = unsafe { (Out::new(out, "out")?, arg(cfg, "cfg")?) };
        let config = cfg.producer()?;
        let producer = Producer::start(instance(cfg)?, config)?;
        out.set(mq_producer_t {
            producer,
            extra: cfg.extra(),
            async_sends: Arc::new(AsyncSends {
                reports: unbounded(),
                outstanding: AtomicUsize::new(0),
                unfinished: Mutex::new(0),
                finished: Condvar::new(),
                report_fd: Mutex::new(-1),
                signalled: AtomicBool::new(false),
            }),
            gate: Gate::default(),
            poison: Poison::default(),
        });
        ok()
    }
}

/// Sends `m` and waits for the broker (retrying on another broker within
/// the budget): `timeout_ms`, or `send_timeout_ms` when negative. `m` is
/// copied; it may be freed or reused as soon as this returns.
///
/// Ownership: `*out` (when `out` is not NULL) is the caller's: free it with
/// `mq_send_result_free`. Pass NULL to skip making it.
///
/// Thread: `mq_producer_close` on another thread ends the call with
/// `MQ_ERR_CLOSED` at once (the message may have been stored or not).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (empty body, too large),
/// `MQ_ERR_TIMEOUT`, `MQ_ERR_TRANSPORT`, `MQ_ERR_BROKER`, `MQ_ERR_NO_ROUTE`,
/// `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `p` is NULL or a live producer; `m` is NULL or a live message not changed
/// during the call; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_send(
    p: *const mq_producer_t,
    m: *const mq_message_t,
    timeout_ms: i32,
    out: *mut *mut mq_send_result_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, p, m) = unsafe { (Out::optional(out), handle(p, "producer")?, arg(m, "message")?) };
        let r = p.run(p.open()?.send_within(m.message(), p.budget(timeout_ms)))?;
        give(out, r);
        ok()
    }
}

/// Sends `m` to the queue `sharding_key` hashes to, so that messages with
/// one key are stored (and, by an orderly consumer, consumed) in order. No
/// retry on another queue. Otherwise as `mq_producer_send`.
///
/// # Safety
///
/// As for `mq_producer_send`; `sharding_key` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_send_ordered(
    p: *const mq_producer_t,
    m: *const mq_message_t,
    sharding_key: *const c_char,
    timeout_ms: i32,
    out: *mut *mut mq_send_result_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, p, m, key) = unsafe {
            (
                Out::optional(out),
                handle(p, "producer")?,
                arg(m, "message")?,
                text(sharding_key, "sharding_key")?,
            )
        };
        let budget = p.budget(timeout_ms);
        let r = p.run(p.open()?.send_ordered_within(m.message(), key, budget))?;
        give(out, r);
        ok()
    }
}

/// Sends `m` without waiting for the broker's answer (no result, no
/// retry), within `send_timeout_ms` (the route lookup and the connection).
/// `m` is copied. Close ends it as it ends `mq_producer_send`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`, `MQ_ERR_TRANSPORT`,
/// `MQ_ERR_NO_ROUTE`, `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `p` is NULL or a live producer; `m` is NULL or a live message not changed
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_send_oneway(
    p: *const mq_producer_t,
    m: *const mq_message_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (p, m) = unsafe { (handle(p, "producer")?, arg(m, "message")?) };
        p.run(p.open()?.send_oneway(m.message()))?;
        ok()
    }
}

/// Sends `n` messages of one topic as one batch (one request, consecutive
/// offsets in one queue). The messages are copied and not changed (`msgs`
/// is `mq_message_t *const *` so that an `mq_message_t **` array is
/// accepted without a cast). The result's ids are comma-joined. Otherwise
/// as `mq_producer_send`.
///
/// Errors: as `mq_producer_send`; `MQ_ERR_INVALID_ARG` for an empty batch,
/// several topics or a delayed message; `MQ_ERR_NULL` when `msgs` or one
/// of its elements is NULL.
///
/// # Safety
///
/// As for `mq_producer_send`; `msgs` is NULL or points to `n` message
/// pointers.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_send_batch(
    p: *const mq_producer_t,
    msgs: *const *mut mq_message_t,
    n: usize,
    timeout_ms: i32,
    out: *mut *mut mq_send_result_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, p) = unsafe { (Out::optional(out), handle(p, "producer")?) };
        if msgs.is_null() {
            return Err(Error::null("msgs"));
        }
        // SAFETY: `msgs` points to `n` pointers (the caller's promise).
        let ptrs = unsafe { std::slice::from_raw_parts(msgs, n) };
        let batch = ptrs
            .iter()
            .enumerate()
            // SAFETY: each is NULL or a live message (the caller's promise).
            .map(|(i, m)| unsafe { arg(m.cast_const(), &format!("msgs[{i}]")) }.map(|m| m.message().clone()))
            .collect::<Result<Vec<Message>, Error>>()?;
        let budget = p.budget(timeout_ms);
        let r = p.run(p.open()?.send_batch_within(&batch, budget))?;
        give(out, r);
        ok()
    }
}

/// Sends `m` in the background and returns at once; the outcome comes back
/// as an `mq_send_report_t` carrying `token` from `mq_producer_poll`. `m`
/// is copied. Sends and reports not yet polled are capped by
/// `max_inflight_async` (10000): over it this returns `MQ_ERR_QUEUE_FULL`
/// and never blocks.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_QUEUE_FULL`, `MQ_ERR_CLOSED`. Everything
/// else arrives in the report.
///
/// # Safety
///
/// `p` is NULL or a live producer; `m` is NULL or a live message not changed
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_send_async(
    p: *const mq_producer_t,
    m: *const mq_message_t,
    token: u64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (p, m) = unsafe { (handle(p, "producer")?, arg(m, "message")?) };
        let producer = p.open()?;
        let sends = &p.async_sends;
        if sends.outstanding.fetch_add(1, Ordering::AcqRel) >= p.extra.max_inflight_async {
            sends.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                MQ_ERR_QUEUE_FULL,
                format!(
                    "{} async sends and reports outstanding (max_inflight_async); poll reports first",
                    p.extra.max_inflight_async
                ),
            ));
        }
        {
            // Counted and checked under the lock close's flush takes after
            // closing the gate: a send racing close is either counted before
            // the flush looks (so close waits for its report) or sees the
            // gate closed here, never started and forgotten.
            let mut unfinished = sends.unfinished.lock().unwrap_or_else(PoisonError::into_inner);
            if p.gate.is_closed() {
                drop(unfinished);
                sends.outstanding.fetch_sub(1, Ordering::AcqRel);
                return Err(Error::closed("producer"));
            }
            *unfinished += 1;
        }
        let sends = sends.clone();
        producer.send_async(m.shared(), move |outcome| {
            sends.done(mq_send_report_t::new(token, outcome));
        });
        ok()
    }
}

/// Takes the next async-send report, waiting up to `timeout_ms` (negative:
/// until one comes or the producer is closed). `*out` is NULL when none
/// came in time.
///
/// Ownership: `*out` is the caller's: free it with `mq_send_report_free`.
///
/// Thread: any; several threads may poll at once (each report goes to one).
/// `mq_producer_close` on another thread wakes a waiting poll.
///
/// Errors: `MQ_ERR_NULL`; `MQ_ERR_CLOSED` once the producer is closed and
/// every report was taken.
///
/// # Safety
///
/// `p` is NULL or a live producer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_poll(
    p: *const mq_producer_t,
    timeout_ms: i32,
    out: *mut *mut mq_send_report_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, p) = unsafe { (Out::new(out, "out")?, handle(p, "producer")?) };
        match p.async_sends.next(timeout(timeout_ms)) {
            Ok(Some(report)) => {
                p.async_sends.outstanding.fetch_sub(1, Ordering::AcqRel);
                out.set(report);
                ok()
            }
            Ok(None) => ok(),
            Err(_) => Err(Error::closed("producer")),
        }
    }
}

/// Has libmq signal `fd` when async-send reports wait, for programs that
/// wait in `epoll`, `poll` or `select` (or Go's netpoller) rather than in
/// `mq_producer_poll`: libmq writes 1 as 8 native-endian bytes to it (what
/// an eventfd takes; a pipe's reader drains the bytes) when a report is
/// queued after a poll found none, and when the producer closes. The
/// program then reads `fd` and calls `mq_producer_poll` with timeout 0
/// until it gives no report (or `MQ_ERR_CLOSED`). -1 stops the signals.
///
/// `fd` stays the caller's. It should be non-blocking (`EFD_NONBLOCK`,
/// `O_NONBLOCK`): a write that would block is skipped, as its reader is due
/// to wake anyway. Keep it open until this is called again (once that
/// returns, libmq does not write the old one) or the producer is destroyed.
///
/// Errors: `MQ_ERR_NULL`; `MQ_ERR_INVALID_ARG` for a negative `fd` other
/// than -1.
///
/// # Safety
///
/// `p` is NULL or a live producer.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_set_report_fd(
    p: *const mq_producer_t,
    fd: i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let p = unsafe { handle(p, "producer") }?;
        if fd < -1 {
            return Err(Error::invalid(format!("report descriptor {fd}: not a descriptor or -1")));
        }
        let sends = &p.async_sends;
        *sends.report_fd.lock().unwrap_or_else(PoisonError::into_inner) = fd;
        // Reports already queued, or a producer already closed, have had
        // their signal: give this descriptor its own.
        if fd >= 0 && (!sends.reports.1.is_empty() || sends.reports.0.is_closed()) {
            sends.signalled.store(true, Ordering::SeqCst);
            sends.signal();
        }
        ok()
    }
}

/// A handler for `mq_producer_serve`: sees one async-send report. It runs
/// on the thread that called `mq_producer_serve`, never on a libmq thread;
/// `report` is valid only during the call (libmq frees it after). It must
/// not unwind (C++ exceptions, `longjmp`) through libmq.
pub type mq_report_handler_t =
    Option<unsafe extern "C" fn(report: *const mq_send_report_t, opaque: *mut c_void)>;

/// For C programs that want a callback: waits up to `timeout_ms` for a
/// report (as `mq_producer_poll`), then calls `handler(report, opaque)` on
/// this thread for it and for every other report already queued, freeing
/// each after its call. `*served` (may be NULL) counts the reports handled.
/// Bindings use poll.
///
/// Errors: as `mq_producer_poll`; `MQ_ERR_NULL` for a NULL handler.
///
/// # Safety
///
/// `p` is NULL or a live producer; `handler` is NULL or a function of the
/// type's contract, which may use `opaque` as it likes; `served` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_serve(
    p: *const mq_producer_t,
    timeout_ms: i32,
    handler: mq_report_handler_t,
    opaque: *mut c_void,
    served: *mut usize,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        unsafe { put(served, 0) };
        let p = unsafe { handle(p, "producer") }?;
        let handler = handler.ok_or_else(|| Error::null("handler"))?;
        let mut limit = timeout(timeout_ms);
        let mut n = 0;
        loop {
            let report = match p.async_sends.next(limit) {
                Ok(Some(report)) => report,
                Ok(None) => break,
                Err(_) if n > 0 => break,
                Err(_) => return Err(Error::closed("producer")),
            };
            p.async_sends.outstanding.fetch_sub(1, Ordering::AcqRel);
            // SAFETY: the handler's contract; the report lives for the call.
            unsafe { handler(&report, opaque) };
            n += 1;
            // SAFETY: the caller's promise.
            unsafe { put(served, n) };
            limit = Duration::ZERO;
        }
        ok()
    }
}

/// Waits until every async send so far has completed (its report is queued
/// for `mq_producer_poll`), up to `timeout_ms` (negative: without limit).
///
/// Errors: `MQ_ERR_NULL`; `MQ_ERR_TIMEOUT` when sends remain.
///
/// # Safety
///
/// `p` is NULL or a live producer.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_flush(
    p: *const mq_producer_t,
    timeout_ms: i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let p = unsafe { handle(p, "producer") }?;
        if p.async_sends.flush(timeout(timeout_ms)) {
            ok()
        } else {
            Err(Error::new(MQ_ERR_TIMEOUT, "async sends still in flight"))
        }
    }
}

/// Closes the producer: sync sends in flight on other threads return
/// `MQ_ERR_CLOSED` at once, async sends in flight are waited for up to
/// `close_timeout_ms` (30 s), then the brokers are told it left.
/// Idempotent; safe while other threads send or poll (sends then fail with
/// `MQ_ERR_CLOSED`; polls return the reports queued, then
/// `MQ_ERR_CLOSED`).
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `p` is NULL or a live producer.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_close(p: *const mq_producer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg(p, "producer") }?.close();
        ok()
    }
}

/// Closes the producer if needed and frees it. NULL is a no-op. Results and
/// reports it handed out stay valid. In a forked child it only leaks (the
/// threads it would stop are not there).
///
/// # Safety
///
/// `p` is NULL or a producer from `mq_producer_new`, not destroyed before;
/// no other call on it runs now or later.
#[no_mangle]
pub unsafe extern "C" fn mq_producer_destroy(p: *mut mq_producer_t) {
    ffi! {
        // SAFETY: the caller's promise.
        if let Some(p) = unsafe { take(p) } {
            p.close();
        }
        Ok(())
    }
}
