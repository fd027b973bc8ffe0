//! libmq end to end: the built `libmq.so`, loaded with `dlopen` and called
//! through its C ABI, against a real `mqd`: sync and async sends (reports
//! polled, flush), the lite pull consumer (poll, seek, commit, committed),
//! the push consumer (a LATER ack redelivered with `reconsume_times` 1), a
//! transaction ended directly and one committed by a check-back answered
//! from a poll, and close while another thread waits in a poll.

use std::collections::{BTreeMap, BTreeSet};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use crate::support::libmq::*;
use crate::support::*;

const MQ_CONSUME_SUCCESS: i32 = 0;
const MQ_CONSUME_LATER: i32 = 1;
const MQ_TXN_COMMIT: i32 = 0;
const MQ_ERR_CLOSED: i32 = 10;

/// A handle that may cross threads (libmq's handles are thread-safe).
#[derive(Clone, Copy)]
struct Shared(H);
// SAFETY: producers and consumers are documented thread-safe.
unsafe impl Send for Shared {}

/// Messages received so far, by body.
type Seen = BTreeMap<Vec<u8>, Received>;

fn message(mq: &Mq, topic: &str, body: &[u8]) -> H {
    let mut m = null_mut();
    // SAFETY: valid pointers and strings; the body is `body.len()` bytes.
    unsafe {
        mq.ok((mq.mq_message_new)(cs(topic).as_ptr(), &mut m));
        mq.ok((mq.mq_message_set_body)(m, body.as_ptr(), body.len()));
    }
    m
}

/// Polls a pull consumer until `done` says so or 30 s pass; every message
/// polled goes through `seen`.
fn pull_until(mq: &Mq, c: H, what: &str, mut done: impl FnMut(H, &MessageView) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "pull: no {what} within 30 s");
        let mut batch = null_mut();
        // SAFETY: a live consumer; the batch is freed below.
        unsafe {
            mq.ok((mq.mq_pull_consumer_poll)(c, 500, &mut batch));
            if batch.is_null() {
                continue;
            }
            let mut finished = false;
            for i in 0..(mq.mq_batch_len)(batch) {
                let m = (mq.mq_batch_get)(batch, i);
                finished |= done(m, &mq.view(m));
            }
            (mq.mq_batch_free)(batch);
            if finished {
                return;
            }
        }
    }
}

#[test]
fn libmq_produces_consumes_and_transacts_against_mqd() {
    let levels = vec!["1s"; 18].join(" ");
    let daemon = Standalone::start_with(&[
        "--messageDelayLevel",
        &levels,
        "--transactionCheckInterval",
        "300",
        "--transactionTimeOut",
        "500",
    ]);
    let mq = libmq();
    let ns = daemon.namesrv.as_str();
    let topic = "CapiTopic";

    // Sync sends, with tag, keys, a property and a body with NUL bytes.
    let cfg = mq.config(&[("namesrv_addr", ns), ("group", "capi_producer")]);
    let mut p = null_mut();
    // SAFETY: valid config and out-pointer.
    unsafe { mq.ok((mq.mq_producer_new)(cfg, &mut p)) };
    let sync_bodies: [&[u8]; 3] = [b"sync-0\0zero\0", b"sync-1", b"later-me"];
    for (i, body) in sync_bodies.iter().enumerate() {
        let m = message(mq, topic, body);
        let mut result = null_mut();
        // SAFETY: live producer and message; the result is freed here.
        unsafe {
            mq.ok((mq.mq_message_set_tags)(m, cs("TagA").as_ptr()));
            mq.ok((mq.mq_message_set_keys)(m, cs(&format!("k-{i}")).as_ptr()));
            mq.ok((mq.mq_message_set_property)(
                m,
                cs("color").as_ptr(),
                cs("blue").as_ptr(),
            ));
            mq.ok((mq.mq_producer_send)(p, m, -1, &mut result));
            assert_eq!((mq.mq_send_result_status)(result), 0);
            assert_eq!(
                text((mq.mq_send_result_msg_id)(result)).map(|s| s.len()),
                Some(32)
            );
            (mq.mq_send_result_free)(result);
            (mq.mq_message_free)(m);
        }
    }

    // Async sends: reports carry their tokens; flush waits for all.
    for token in 100..105u64 {
        let m = message(mq, topic, format!("async-{token}").as_bytes());
        // SAFETY: live producer and message (copied by the call).
        unsafe {
            mq.ok((mq.mq_producer_send_async)(p, m, token));
            (mq.mq_message_free)(m);
        }
    }
    // SAFETY: a live producer.
    unsafe { mq.ok((mq.mq_producer_flush)(p, 10_000)) };
    let mut tokens = BTreeSet::new();
    while tokens.len() < 5 {
        let mut rep = null_mut();
        // SAFETY: live producer; each report freed once.
        unsafe {
            mq.ok((mq.mq_producer_poll)(p, 5000, &mut rep));
            assert!(!rep.is_null(), "a report after flush");
            let mut error = std::ptr::null();
            let status = (mq.mq_send_report_status)(rep, &mut error, null_mut());
            assert_eq!(status, 0, "async send failed: {:?}", text(error));
            assert!(!(mq.mq_send_report_result)(rep).is_null());
            tokens.insert((mq.mq_send_report_token)(rep));
            (mq.mq_send_report_free)(rep);
        }
    }
    assert_eq!(tokens, (100..105).collect());

    // The lite pull consumer: everything, whole; then seek back and commit.
    let pull_cfg = mq.config(&[
        ("namesrv_addr", ns),
        ("group", "capi_pull"),
        ("consume_from", "first"),
        ("auto_commit", "false"),
    ]);
    let mut pull = null_mut();
    // SAFETY: valid config and pointers.
    unsafe {
        mq.ok((mq.mq_pull_consumer_new)(pull_cfg, &mut pull));
        mq.ok((mq.mq_pull_consumer_subscribe)(
            pull,
            cs(topic).as_ptr(),
            cs("*").as_ptr(),
        ));
    }
    let mut seen = Seen::new();
    let mut colors = BTreeSet::new();
    pull_until(mq, pull, "8 messages", |m, v| {
        // SAFETY: a message of the batch being read; a NUL-terminated name.
        colors.insert(text(unsafe {
            (mq.mq_message_property)(m, cs("color").as_ptr())
        }));
        seen.insert(v.body(), v.copy());
        seen.len() == 8
    });
    assert!(colors.contains(&Some("blue".to_owned())), "{colors:?}");
    let zero = &seen[&b"sync-0\0zero\0"[..]];
    assert_eq!(zero.tags.as_deref(), Some("TagA"));
    assert_eq!(zero.keys.as_deref(), Some("k-0"));
    assert_eq!(zero.topic.as_deref(), Some(topic));
    assert!(zero.born_timestamp > 0 && zero.store_timestamp >= zero.born_timestamp);
    assert!(zero.store_host.is_some() && zero.offset_msg_id.is_some());
    let one = &seen[&b"sync-1"[..]];
    let (broker, queue, offset) = (
        one.broker_name.clone().unwrap(),
        one.queue_id,
        one.queue_offset,
    );
    // SAFETY: a live consumer and NUL-terminated strings.
    unsafe {
        mq.ok((mq.mq_pull_consumer_seek)(
            pull,
            cs(topic).as_ptr(),
            cs(&broker).as_ptr(),
            queue,
            offset,
        ));
    }
    pull_until(mq, pull, "sync-1 again after the seek", |_, v| {
        v.body() == b"sync-1"
    });
    let mut committed = -1;
    // SAFETY: as above; `committed` is writable.
    unsafe {
        mq.ok((mq.mq_pull_consumer_commit)(pull));
        mq.ok((mq.mq_pull_consumer_committed)(
            pull,
            cs(topic).as_ptr(),
            cs(&broker).as_ptr(),
            queue,
            &mut committed,
        ));
        mq.ok((mq.mq_pull_consumer_close)(pull));
        (mq.mq_pull_consumer_destroy)(pull);
        (mq.mq_config_free)(pull_cfg);
    }
    assert!(
        committed > offset,
        "committed {committed}, seeked to {offset}"
    );

    // The push consumer: LATER once, and the message comes back with
    // reconsume_times 1.
    let push_cfg = mq.config(&[
        ("namesrv_addr", ns),
        ("group", "capi_push"),
        ("consume_from", "first"),
    ]);
    let mut push = null_mut();
    // SAFETY: valid config and pointers.
    unsafe {
        mq.ok((mq.mq_push_consumer_new)(push_cfg, &mut push));
        mq.ok((mq.mq_push_consumer_subscribe)(
            push,
            cs(topic).as_ptr(),
            std::ptr::null(),
        ));
        mq.ok((mq.mq_push_consumer_start)(push));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut later_seen = Vec::new();
    while later_seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "push: redelivery not seen: {later_seen:?}"
        );
        let mut batch = null_mut();
        // SAFETY: a live consumer; each batch acked once.
        unsafe {
            mq.ok((mq.mq_push_consumer_poll)(push, 500, &mut batch));
            if batch.is_null() {
                continue;
            }
            let mut status = MQ_CONSUME_SUCCESS;
            for i in 0..(mq.mq_batch_len)(batch) {
                let v = mq.view((mq.mq_batch_get)(batch, i));
                if v.body() == b"later-me" {
                    later_seen.push(v.reconsume_times);
                    if v.reconsume_times == 0 {
                        status = MQ_CONSUME_LATER;
                    }
                }
            }
            mq.ok((mq.mq_batch_ack)(batch, status));
        }
    }
    assert_eq!(later_seen, [0, 1]);
    // SAFETY: live consumer, destroyed once.
    unsafe {
        mq.ok((mq.mq_push_consumer_close)(push));
        (mq.mq_push_consumer_destroy)(push);
        (mq.mq_config_free)(push_cfg);
    }

    // Transactions: one committed by the application, one left open and
    // committed by the answer to the broker's check-back.
    let txn_topic = "CapiTxn";
    // The broker checks back only producers it has heard from: the
    // producer's heartbeat goes out when its first send learns the broker
    // (the periodic one is 30 s away).
    let txn_cfg = mq.config(&[("namesrv_addr", ns), ("group", "capi_txn")]);
    let mut tp = null_mut();
    // SAFETY: valid pointers; each transaction ended or freed once.
    unsafe {
        mq.ok((mq.mq_txn_producer_new)(txn_cfg, &mut tp));
        for (body, end) in [("txn-commit", true), ("txn-check", false)] {
            let m = message(mq, txn_topic, body.as_bytes());
            let mut txn = null_mut();
            mq.ok((mq.mq_txn_producer_send_half)(tp, m, -1, &mut txn));
            if end {
                mq.ok((mq.mq_txn_end)(txn, MQ_TXN_COMMIT, -1));
            } else {
                (mq.mq_txn_free)(txn);
            }
            (mq.mq_message_free)(m);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no check-back for txn-check");
        let mut check = null_mut();
        // SAFETY: a live producer; each check answered once.
        unsafe {
            mq.ok((mq.mq_txn_producer_poll_check)(tp, 500, &mut check));
            if check.is_null() {
                continue;
            }
            let v = mq.view((mq.mq_txn_check_message)(check));
            let body = v.body();
            mq.ok((mq.mq_txn_check_answer)(check, MQ_TXN_COMMIT));
            if body == b"txn-check" {
                break;
            }
        }
    }
    let reader_cfg = mq.config(&[
        ("namesrv_addr", ns),
        ("group", "capi_txn_reader"),
        ("consume_from", "first"),
    ]);
    let mut reader = null_mut();
    // SAFETY: valid pointers.
    unsafe {
        mq.ok((mq.mq_pull_consumer_new)(reader_cfg, &mut reader));
        mq.ok((mq.mq_pull_consumer_subscribe)(
            reader,
            cs(txn_topic).as_ptr(),
            std::ptr::null(),
        ));
    }
    let mut committed_bodies = BTreeSet::new();
    pull_until(mq, reader, "both committed transactions", |_, v| {
        committed_bodies.insert(v.body());
        committed_bodies.len() == 2
    });
    assert!(committed_bodies.contains(&b"txn-check"[..]));
    // SAFETY: every handle destroyed once, configs freed once.
    unsafe {
        (mq.mq_pull_consumer_destroy)(reader);
        mq.ok((mq.mq_txn_producer_close)(tp));
        (mq.mq_txn_producer_destroy)(tp);
        mq.ok((mq.mq_producer_close)(p));
        mq.ok((mq.mq_producer_close)(p));
        (mq.mq_producer_destroy)(p);
        for c in [cfg, reader_cfg, txn_cfg] {
            (mq.mq_config_free)(c);
        }
    }
}

#[test]
fn libmq_close_ends_polls_waiting_on_a_live_broker() {
    let daemon = Standalone::start();
    let mq = libmq();
    let ns = daemon.namesrv.as_str();
    let cfg = mq.config(&[("namesrv_addr", ns), ("group", "capi_close")]);
    let (mut pull, mut push) = (null_mut(), null_mut());
    // SAFETY: valid pointers.
    unsafe {
        mq.ok((mq.mq_pull_consumer_new)(cfg, &mut pull));
        mq.ok((mq.mq_pull_consumer_subscribe)(
            pull,
            cs("CapiIdle").as_ptr(),
            std::ptr::null(),
        ));
        mq.ok((mq.mq_push_consumer_new)(cfg, &mut push));
        mq.ok((mq.mq_push_consumer_subscribe)(
            push,
            cs("CapiIdle").as_ptr(),
            std::ptr::null(),
        ));
        mq.ok((mq.mq_push_consumer_start)(push));
    }
    let (pull_h, push_h) = (Shared(pull), Shared(push));
    let pulling = std::thread::spawn(move || {
        let h = pull_h;
        let mut batch = null_mut();
        let started = Instant::now();
        // SAFETY: the consumer outlives this thread (joined before destroy).
        let status = unsafe { (libmq().mq_pull_consumer_poll)(h.0, -1, &mut batch) };
        (status, started.elapsed())
    });
    let pushing = std::thread::spawn(move || {
        let h = push_h;
        let mut batch = null_mut();
        let started = Instant::now();
        // SAFETY: as above.
        let status = unsafe { (libmq().mq_push_consumer_poll)(h.0, -1, &mut batch) };
        (status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: live consumers; close may overlap the polls.
    unsafe {
        mq.ok((mq.mq_pull_consumer_close)(pull));
        mq.ok((mq.mq_push_consumer_close)(push));
    }
    for (name, t) in [("pull", pulling), ("push", pushing)] {
        let (status, took) = t.join().expect("the poller");
        assert_eq!(status, MQ_ERR_CLOSED, "{name} poll");
        assert!(took < Duration::from_secs(15), "{name} poll took {took:?}");
    }
    // SAFETY: destroyed once, after the pollers returned.
    unsafe {
        (mq.mq_pull_consumer_destroy)(pull);
        (mq.mq_push_consumer_destroy)(push);
        (mq.mq_config_free)(cfg);
    }
}
