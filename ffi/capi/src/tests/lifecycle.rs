//! Close and destroy: idempotent close, calls after close, and close while
//! another thread waits in a poll or a blocking call.

use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use super::*;
use crate::message::*;
use crate::producer::*;
use crate::pull_consumer::*;
use crate::push_consumer::*;
use crate::send_result::*;
use crate::status::*;
use crate::txn::*;

/// A raw pointer that may cross threads (the handle is thread-safe).
struct Shared<T>(*const T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the handles behind these pointers are documented thread-safe.
unsafe impl<T> Send for Shared<T> {}

/// Runs `poll` on another thread, waits a moment, runs `close`, and
/// checks that the poll ended with MQ_ERR_CLOSED soon after.
fn close_ends_a_waiting_poll<T: 'static>(
    handle: *const T,
    poll: unsafe fn(*const T) -> mq_status_t,
    close: unsafe fn(*const T) -> mq_status_t,
) {
    let shared = Shared(handle);
    let waiting = std::thread::spawn(move || {
        let h = shared;
        let started = Instant::now();
        // SAFETY: the handle lives until after this thread is joined.
        let status = unsafe { poll(h.0) };
        (status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: a live handle; close may overlap the poll.
    expect(unsafe { close(handle) }, MQ_OK);
    let (status, took) = waiting.join().expect("the poller");
    assert_eq!(status, MQ_ERR_CLOSED);
    assert!(took < Duration::from_secs(20), "the poll took {took:?}");
    // SAFETY: idempotent.
    expect(unsafe { close(handle) }, MQ_OK);
}

#[test]
fn a_producer_closes_once_and_refuses_afterwards() {
    let cfg = config(&[("max_inflight_async", "1"), ("send_timeout_ms", "300")]);
    let mut p = null_mut();
    let mut m = null_mut();
    // SAFETY: valid pointers throughout; each object freed once.
    unsafe {
        expect(mq_producer_new(cfg, &mut p), MQ_OK);
        expect(mq_message_new(c("T").as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_body(m, b"x".as_ptr(), 1), MQ_OK);
        // No NameServer answers: the async send fails into its report.
        expect(mq_producer_send_async(p, m, 6), MQ_OK);
        expect(mq_producer_send_async(p, m, 8), MQ_ERR_QUEUE_FULL);
        expect(mq_producer_flush(p, 10_000), MQ_OK);
        // The callback sugar: the handler runs here, on this thread.
        unsafe extern "C" fn note_token(
            rep: *const mq_send_report_t,
            opaque: *mut std::ffi::c_void,
        ) {
            // SAFETY: the report lives for the call; `opaque` is the u64 below.
            unsafe { *opaque.cast::<u64>() = mq_send_report_token(rep) };
        }
        let (mut token, mut served) = (0u64, 0);
        let opaque = std::ptr::from_mut(&mut token).cast();
        expect(
            mq_producer_serve(p, 1000, Some(note_token), opaque, &mut served),
            MQ_OK,
        );
        assert_eq!((served, token), (1, 6));
        expect(mq_producer_send_async(p, m, 7), MQ_OK);
        expect(mq_producer_flush(p, 10_000), MQ_OK);
        let mut rep = null_mut();
        expect(mq_producer_poll(p, 1000, &mut rep), MQ_OK);
        assert!(!rep.is_null());
        assert_eq!(mq_send_report_token(rep), 7);
        let mut error = null();
        let status = mq_send_report_status(rep, &mut error, null_mut());
        assert_ne!(status, MQ_OK);
        assert!(!error.is_null());
        assert!(mq_send_report_result(rep).is_null());
        mq_send_report_free(rep);
        let mut none = null_mut();
        expect(mq_producer_poll(p, 0, &mut none), MQ_OK);
        assert!(none.is_null(), "no report: NULL on timeout");

        unsafe fn poll(p: *const mq_producer_t) -> mq_status_t {
            let mut rep = null_mut();
            // SAFETY: passed on from the test.
            unsafe { mq_producer_poll(p, -1, &mut rep) }
        }
        unsafe fn close(p: *const mq_producer_t) -> mq_status_t {
            // SAFETY: passed on from the test.
            unsafe { mq_producer_close(p) }
        }
        close_ends_a_waiting_poll(p, poll, close);
        expect(mq_producer_send(p, m, -1, null_mut()), MQ_ERR_CLOSED);
        expect(mq_producer_send_async(p, m, 9), MQ_ERR_CLOSED);
        expect(mq_producer_send_oneway(p, m), MQ_ERR_CLOSED);
        mq_producer_destroy(p);
        mq_message_free(m);
    }
    free_config(cfg);
}

#[test]
fn the_report_descriptor_is_signalled_when_reports_wait_and_at_close() {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let (mut signals, writer) = std::io::pipe().expect("a pipe");
    // One signal: 1 as 8 native-endian bytes. Read only when one is due
    // (the pipe blocks).
    let mut signalled = || {
        let mut bytes = [0u8; 8];
        signals.read_exact(&mut bytes).expect("a signal");
        assert_eq!(u64::from_ne_bytes(bytes), 1);
    };
    let cfg = config(&[("send_timeout_ms", "300")]);
    let (mut p, mut m) = (null_mut(), null_mut());
    // SAFETY: valid pointers throughout; each object freed once; the pipe
    // outlives the producer.
    unsafe {
        expect(mq_producer_new(cfg, &mut p), MQ_OK);
        expect(mq_message_new(c("T").as_ptr(), &mut m), MQ_OK);
        expect(mq_producer_set_report_fd(p, -2), MQ_ERR_INVALID_ARG);
        expect(mq_producer_set_report_fd(p, writer.as_raw_fd()), MQ_OK);
        let take = |p| {
            let mut rep = null_mut();
            expect(mq_producer_poll(p, 0, &mut rep), MQ_OK);
            let token = (!rep.is_null()).then(|| mq_send_report_token(rep));
            mq_send_report_free(rep);
            token
        };
        // No NameServer answers: each send fails into its report, which is
        // queued (and signalled) before flush returns.
        expect(mq_producer_send_async(p, m, 1), MQ_OK);
        expect(mq_producer_flush(p, 10_000), MQ_OK);
        signalled();
        assert_eq!(take(p), Some(1));
        assert_eq!(take(p), None, "a poll that finds none re-arms the signal");
        expect(mq_producer_send_async(p, m, 2), MQ_OK);
        expect(mq_producer_send_async(p, m, 3), MQ_OK);
        expect(mq_producer_flush(p, 10_000), MQ_OK);
        signalled();
        // Both, in the order their outcomes came (each on a client thread,
        // so either may be first), then none.
        let mut both = [take(p), take(p)];
        both.sort();
        assert_eq!(both, [Some(2), Some(3)]);
        assert_eq!(take(p), None);
        expect(mq_producer_close(p), MQ_OK);
        signalled();
        let mut rep = null_mut();
        expect(mq_producer_poll(p, 0, &mut rep), MQ_ERR_CLOSED);
        expect(mq_producer_set_report_fd(p, -1), MQ_OK);
        mq_producer_destroy(p);
        mq_message_free(m);
    }
    free_config(cfg);
}

#[test]
fn a_pull_consumer_closes_once_and_wakes_a_waiting_poll() {
    let cfg = config(&[]);
    let mut c_ = null_mut();
    // SAFETY: valid pointers; freed once.
    unsafe {
        expect(mq_pull_consumer_new(cfg, &mut c_), MQ_OK);
        // A wakeup releases the next poll at once.
        expect(mq_pull_consumer_wakeup(c_), MQ_OK);
        let mut batch = null_mut();
        expect(mq_pull_consumer_poll(c_, -1, &mut batch), MQ_OK);
        assert!(batch.is_null());
        unsafe fn poll(c: *const mq_pull_consumer_t) -> mq_status_t {
            let mut b = null_mut();
            // SAFETY: passed on from the test.
            unsafe { mq_pull_consumer_poll(c, -1, &mut b) }
        }
        unsafe fn close(c: *const mq_pull_consumer_t) -> mq_status_t {
            // SAFETY: passed on from the test.
            unsafe { mq_pull_consumer_close(c) }
        }
        close_ends_a_waiting_poll(c_, poll, close);
        expect(
            mq_pull_consumer_subscribe(c_, c("T").as_ptr(), null()),
            MQ_ERR_CLOSED,
        );
        expect(mq_pull_consumer_commit(c_), MQ_ERR_CLOSED);
        let mut list = null_mut();
        expect(mq_pull_consumer_assignment(c_, &mut list), MQ_ERR_CLOSED);
        mq_pull_consumer_destroy(c_);
    }
    free_config(cfg);
}

#[test]
fn a_push_consumer_closes_once_and_wakes_a_waiting_poll() {
    let cfg = config(&[]);
    let mut c_ = null_mut();
    // SAFETY: valid pointers; freed once.
    unsafe {
        expect(mq_push_consumer_new(cfg, &mut c_), MQ_OK);
        let mut batch = null_mut();
        expect(mq_push_consumer_poll(c_, 0, &mut batch), MQ_ERR_STATE);
        expect(mq_push_consumer_start(c_), MQ_ERR_INVALID_ARG);
        expect(
            mq_push_consumer_subscribe(c_, c("T").as_ptr(), null()),
            MQ_OK,
        );
        expect(mq_push_consumer_start(c_), MQ_OK);
        expect(mq_push_consumer_start(c_), MQ_ERR_STATE);
        expect(
            mq_push_consumer_subscribe(c_, c("U").as_ptr(), null()),
            MQ_ERR_STATE,
        );
        expect(mq_push_consumer_wakeup(c_), MQ_OK);
        expect(mq_push_consumer_poll(c_, -1, &mut batch), MQ_OK);
        assert!(batch.is_null());
        unsafe fn poll(c: *const mq_push_consumer_t) -> mq_status_t {
            let mut b = null_mut();
            // SAFETY: passed on from the test.
            unsafe { mq_push_consumer_poll(c, -1, &mut b) }
        }
        unsafe fn close(c: *const mq_push_consumer_t) -> mq_status_t {
            // SAFETY: passed on from the test.
            unsafe { mq_push_consumer_close(c) }
        }
        close_ends_a_waiting_poll(c_, poll, close);
        expect(mq_push_consumer_start(c_), MQ_ERR_CLOSED);
        mq_push_consumer_destroy(c_);
    }
    free_config(cfg);
}

#[test]
fn a_transactional_producer_closes_once_and_wakes_a_waiting_poll() {
    let cfg = config(&[]);
    let mut tp = null_mut();
    let mut m = null_mut();
    // SAFETY: valid pointers; freed once.
    unsafe {
        expect(mq_txn_producer_new(cfg, &mut tp), MQ_OK);
        unsafe fn poll(tp: *const mq_txn_producer_t) -> mq_status_t {
            let mut check = null_mut();
            // SAFETY: passed on from the test.
            unsafe { mq_txn_producer_poll_check(tp, -1, &mut check) }
        }
        unsafe fn close(tp: *const mq_txn_producer_t) -> mq_status_t {
            // SAFETY: passed on from the test.
            unsafe { mq_txn_producer_close(tp) }
        }
        close_ends_a_waiting_poll(tp, poll, close);
        expect(mq_message_new(c("T").as_ptr(), &mut m), MQ_OK);
        let mut txn = null_mut();
        expect(
            mq_txn_producer_send_half(tp, m, -1, &mut txn),
            MQ_ERR_CLOSED,
        );
        assert!(txn.is_null());
        mq_txn_producer_destroy(tp);
        mq_message_free(m);
    }
    free_config(cfg);
}

/// A NameServer that accepts connections and never answers: a call that
/// needs a route waits until its timeout (a minute here) or until close.
fn silent_namesrv() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let addr = l.local_addr().expect("its address").to_string();
    (l, addr)
}

#[test]
fn close_ends_blocking_calls_in_flight_with_mq_err_closed() {
    let (_silent, addr) = silent_namesrv();
    let cfg = config(&[
        ("namesrv_addr", &addr),
        ("request_timeout_ms", "60000"),
        ("send_timeout_ms", "60000"),
    ]);
    let (mut p, mut tp, mut pc, mut m) = (null_mut(), null_mut(), null_mut(), null_mut());
    // SAFETY: valid pointers; each object freed once, after the threads
    // that use it are joined.
    unsafe {
        expect(mq_producer_new(cfg, &mut p), MQ_OK);
        expect(mq_txn_producer_new(cfg, &mut tp), MQ_OK);
        expect(mq_pull_consumer_new(cfg, &mut pc), MQ_OK);
        expect(mq_message_new(c("T").as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_body(m, b"x".as_ptr(), 1), MQ_OK);
    }
    let (sp, stp, spc, sm) = (
        Shared(p.cast_const()),
        Shared(tp.cast_const()),
        Shared(pc.cast_const()),
        Shared(m.cast_const()),
    );
    type Call = Box<dyn FnOnce() -> mq_status_t + Send>;
    let calls: Vec<(&str, Call)> = vec![
        // SAFETY (each): live handles and message, destroyed only after
        // the threads are joined.
        (
            "send",
            Box::new(move || unsafe {
                let (p, m) = (sp, sm);
                mq_producer_send(p.0, m.0, -1, null_mut())
            }),
        ),
        (
            "send_oneway",
            Box::new(move || unsafe {
                let (p, m) = (sp, sm);
                mq_producer_send_oneway(p.0, m.0)
            }),
        ),
        (
            "send_half",
            Box::new(move || unsafe {
                let (tp, m) = (stp, sm);
                let mut txn = null_mut();
                mq_txn_producer_send_half(tp.0, m.0, -1, &mut txn)
            }),
        ),
        (
            "subscribe",
            Box::new(move || unsafe {
                let pc = spc;
                mq_pull_consumer_subscribe(pc.0, c("T").as_ptr(), null())
            }),
        ),
        (
            "fetch_queues",
            Box::new(move || unsafe {
                let pc = spc;
                let mut list = null_mut();
                mq_pull_consumer_fetch_queues(pc.0, c("T").as_ptr(), &mut list)
            }),
        ),
        (
            "committed",
            Box::new(move || unsafe {
                let pc = spc;
                let mut offset = 0;
                mq_pull_consumer_committed(pc.0, c("T").as_ptr(), c("b").as_ptr(), 0, &mut offset)
            }),
        ),
    ];
    let threads: Vec<_> = calls
        .into_iter()
        .map(|(name, call)| {
            let t = std::thread::spawn(move || {
                let started = Instant::now();
                (call(), started.elapsed())
            });
            (name, t)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: live handles; close may overlap the calls.
    unsafe {
        expect(mq_producer_close(p), MQ_OK);
        expect(mq_txn_producer_close(tp), MQ_OK);
        expect(mq_pull_consumer_close(pc), MQ_OK);
    }
    for (name, t) in threads {
        let (status, took) = t.join().expect("the caller");
        assert_eq!(status, MQ_ERR_CLOSED, "{name}");
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
    }
    // SAFETY: no call is in them any more; each destroyed once.
    unsafe {
        mq_producer_destroy(p);
        mq_txn_producer_destroy(tp);
        mq_pull_consumer_destroy(pc);
        mq_message_free(m);
    }
    free_config(cfg);
}
