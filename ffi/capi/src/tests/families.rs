//! Every family of exports against NULL, invalid UTF-8 and enum values out
//! of range: statuses, never crashes.

use std::ffi::c_char;
use std::ptr::{null, null_mut};

use super::*;
use crate::batch::*;
use crate::config::*;
use crate::message::*;
use crate::producer::*;
use crate::pull_consumer::*;
use crate::push_consumer::*;
use crate::queue_list::*;
use crate::send_result::*;
use crate::status::*;
use crate::txn::*;

#[test]
fn null_handles_and_out_pointers_are_mq_err_null() {
    let cfg = config(&[]);
    let t = c("T");
    // SAFETY: every pointer is NULL or valid; NULL must be refused.
    unsafe {
        expect(mq_config_new(null_mut()), MQ_ERR_NULL);
        expect(
            mq_config_set(null_mut(), t.as_ptr(), t.as_ptr()),
            MQ_ERR_NULL,
        );
        expect(mq_config_set(cfg, null(), t.as_ptr()), MQ_ERR_NULL);
        expect(mq_config_set(cfg, t.as_ptr(), null()), MQ_ERR_NULL);
        assert!(mq_config_get(null(), t.as_ptr()).is_null());

        expect(mq_message_new(null(), &mut null_mut()), MQ_ERR_NULL);
        expect(mq_message_new(t.as_ptr(), null_mut()), MQ_ERR_NULL);
        expect(mq_message_set_body(null_mut(), null(), 0), MQ_ERR_NULL);
        expect(mq_message_set_tags(null_mut(), t.as_ptr()), MQ_ERR_NULL);
        expect(mq_message_set_keys(null_mut(), t.as_ptr()), MQ_ERR_NULL);
        expect(
            mq_message_set_property(null_mut(), t.as_ptr(), t.as_ptr()),
            MQ_ERR_NULL,
        );
        expect(mq_message_set_delay_level(null_mut(), 1), MQ_ERR_NULL);
        expect(mq_message_set_flag(null_mut(), 1), MQ_ERR_NULL);
        assert!(mq_message_topic(null()).is_null());
        assert!(mq_message_tags(null()).is_null());
        assert!(mq_message_keys(null()).is_null());
        let mut len = 5;
        assert!(mq_message_body(null(), &mut len).is_null());
        assert_eq!(len, 0);
        assert!(mq_message_property(null(), t.as_ptr()).is_null());
        assert_eq!(mq_message_property_count(null()), 0);
        expect(
            mq_message_property_at(null(), 0, null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
        assert!(mq_message_id(null()).is_null());
        assert!(mq_message_offset_id(null()).is_null());
        expect(
            mq_message_queue(null(), null_mut(), null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_message_timestamps(null(), null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_message_hosts(null(), null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
        assert_eq!(mq_message_reconsume_times(null()), -1);
        expect(mq_message_view(null(), null_mut(), 0), MQ_ERR_NULL);

        expect(mq_producer_new(null(), &mut null_mut()), MQ_ERR_NULL);
        expect(mq_producer_new(cfg, null_mut()), MQ_ERR_NULL);
        expect(
            mq_producer_send(null(), null(), -1, null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_producer_send_ordered(null(), null(), null(), -1, null_mut()),
            MQ_ERR_NULL,
        );
        expect(mq_producer_send_oneway(null(), null()), MQ_ERR_NULL);
        expect(
            mq_producer_send_batch(null(), null(), 0, -1, null_mut()),
            MQ_ERR_NULL,
        );
        expect(mq_producer_send_async(null(), null(), 1), MQ_ERR_NULL);
        expect(mq_producer_poll(null(), 0, &mut null_mut()), MQ_ERR_NULL);
        expect(mq_producer_flush(null(), 0), MQ_ERR_NULL);
        expect(mq_producer_set_report_fd(null(), -1), MQ_ERR_NULL);
        expect(mq_producer_close(null()), MQ_ERR_NULL);

        assert_eq!(mq_send_result_status(null()), -1);
        assert!(mq_send_result_msg_id(null()).is_null());
        assert!(mq_send_result_offset_msg_id(null()).is_null());
        assert!(mq_send_result_transaction_id(null()).is_null());
        expect(
            mq_send_result_queue(null(), null_mut(), null_mut(), null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
        expect(mq_send_result_view(null(), null_mut(), 0), MQ_ERR_NULL);
        assert_eq!(mq_send_report_token(null()), 0);
        let mut error: *const c_char = t.as_ptr();
        expect(
            mq_send_report_status(null(), &mut error, null_mut()),
            MQ_ERR_NULL,
        );
        assert!(error.is_null());
        assert!(mq_send_report_result(null()).is_null());

        expect(mq_txn_producer_new(null(), &mut null_mut()), MQ_ERR_NULL);
        expect(
            mq_txn_producer_send_half(null(), null(), -1, &mut null_mut()),
            MQ_ERR_NULL,
        );
        assert!(mq_txn_result(null()).is_null());
        expect(mq_txn_end(null_mut(), MQ_TXN_COMMIT, -1), MQ_ERR_NULL);
        expect(
            mq_txn_producer_poll_check(null(), 0, &mut null_mut()),
            MQ_ERR_NULL,
        );
        assert!(mq_txn_check_message(null()).is_null());
        expect(mq_txn_check_answer(null_mut(), MQ_TXN_COMMIT), MQ_ERR_NULL);
        expect(mq_txn_producer_close(null()), MQ_ERR_NULL);

        expect(mq_push_consumer_new(null(), &mut null_mut()), MQ_ERR_NULL);
        expect(
            mq_push_consumer_subscribe(null(), t.as_ptr(), null()),
            MQ_ERR_NULL,
        );
        expect(mq_push_consumer_start(null()), MQ_ERR_NULL);
        expect(
            mq_push_consumer_poll(null(), 0, &mut null_mut()),
            MQ_ERR_NULL,
        );
        expect(mq_push_consumer_wakeup(null()), MQ_ERR_NULL);
        expect(mq_push_consumer_close(null()), MQ_ERR_NULL);

        assert_eq!(mq_batch_len(null()), 0);
        assert!(mq_batch_get(null(), 0).is_null());
        expect(mq_batch_ack(null_mut(), MQ_CONSUME_SUCCESS), MQ_ERR_NULL);

        expect(mq_pull_consumer_new(null(), &mut null_mut()), MQ_ERR_NULL);
        expect(
            mq_pull_consumer_subscribe(null(), t.as_ptr(), null()),
            MQ_ERR_NULL,
        );
        expect(mq_pull_consumer_assign(null(), null()), MQ_ERR_NULL);
        expect(
            mq_pull_consumer_fetch_queues(null(), t.as_ptr(), &mut null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_pull_consumer_assignment(null(), &mut null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_pull_consumer_poll(null(), 0, &mut null_mut()),
            MQ_ERR_NULL,
        );
        expect(
            mq_pull_consumer_seek(null(), t.as_ptr(), t.as_ptr(), 0, 0),
            MQ_ERR_NULL,
        );
        expect(
            mq_pull_consumer_seek_to_timestamp(null(), t.as_ptr(), t.as_ptr(), 0, 0),
            MQ_ERR_NULL,
        );
        expect(mq_pull_consumer_commit(null()), MQ_ERR_NULL);
        expect(
            mq_pull_consumer_committed(null(), t.as_ptr(), t.as_ptr(), 0, null_mut()),
            MQ_ERR_NULL,
        );
        expect(mq_pull_consumer_wakeup(null()), MQ_ERR_NULL);
        expect(mq_pull_consumer_close(null()), MQ_ERR_NULL);

        expect(mq_queue_list_new(null_mut()), MQ_ERR_NULL);
        expect(
            mq_queue_list_add(null_mut(), t.as_ptr(), t.as_ptr(), 0),
            MQ_ERR_NULL,
        );
        assert_eq!(mq_queue_list_len(null()), 0);
        expect(
            mq_queue_list_get(null(), 0, null_mut(), null_mut(), null_mut()),
            MQ_ERR_NULL,
        );
    }
    free_config(cfg);
}

#[test]
fn free_and_destroy_accept_null() {
    // SAFETY: NULL is a no-op for each.
    unsafe {
        mq_config_free(null_mut());
        mq_message_free(null_mut());
        mq_producer_destroy(null_mut());
        mq_send_result_free(null_mut());
        mq_send_report_free(null_mut());
        mq_txn_free(null_mut());
        mq_txn_check_free(null_mut());
        mq_txn_producer_destroy(null_mut());
        mq_push_consumer_destroy(null_mut());
        mq_batch_free(null_mut());
        mq_pull_consumer_destroy(null_mut());
        mq_queue_list_free(null_mut());
    }
}

#[test]
fn invalid_utf8_is_mq_err_invalid_arg() {
    let cfg = config(&[]);
    let t = c("T");
    let mut m = null_mut();
    let mut l = null_mut();
    // SAFETY: valid pointers; the strings are NUL-terminated.
    unsafe {
        expect(
            mq_config_set(cfg, not_utf8(), t.as_ptr()),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_config_set(cfg, c("group").as_ptr(), not_utf8()),
            MQ_ERR_INVALID_ARG,
        );
        expect(mq_message_new(not_utf8(), &mut m), MQ_ERR_INVALID_ARG);
        assert!(m.is_null(), "out is NULL after a failure");
        expect(mq_message_new(t.as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_tags(m, not_utf8()), MQ_ERR_INVALID_ARG);
        expect(mq_message_set_keys(m, not_utf8()), MQ_ERR_INVALID_ARG);
        expect(
            mq_message_set_property(m, not_utf8(), t.as_ptr()),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_message_set_property(m, t.as_ptr(), not_utf8()),
            MQ_ERR_INVALID_ARG,
        );
        assert!(mq_message_property(m, not_utf8()).is_null());
        expect(mq_queue_list_new(&mut l), MQ_OK);
        expect(
            mq_queue_list_add(l, not_utf8(), t.as_ptr(), 0),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_queue_list_add(l, t.as_ptr(), not_utf8(), 0),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_queue_list_add(l, t.as_ptr(), t.as_ptr(), -1),
            MQ_ERR_INVALID_ARG,
        );
        assert_eq!(mq_queue_list_len(l), 0);

        let mut pull = null_mut();
        expect(mq_pull_consumer_new(cfg, &mut pull), MQ_OK);
        expect(
            mq_pull_consumer_subscribe(pull, not_utf8(), null()),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_pull_consumer_seek(pull, not_utf8(), t.as_ptr(), 0, 0),
            MQ_ERR_INVALID_ARG,
        );
        mq_pull_consumer_destroy(pull);

        let mut push = null_mut();
        expect(mq_push_consumer_new(cfg, &mut push), MQ_OK);
        expect(
            mq_push_consumer_subscribe(push, not_utf8(), null()),
            MQ_ERR_INVALID_ARG,
        );
        expect(
            mq_push_consumer_subscribe(push, t.as_ptr(), not_utf8()),
            MQ_ERR_INVALID_ARG,
        );
        mq_push_consumer_destroy(push);

        let mut p = null_mut();
        expect(mq_producer_new(cfg, &mut p), MQ_OK);
        let body = b"x";
        expect(mq_message_set_body(m, body.as_ptr(), 1), MQ_OK);
        expect(
            mq_producer_send_ordered(p, m, not_utf8(), 100, null_mut()),
            MQ_ERR_INVALID_ARG,
        );
        mq_producer_destroy(p);
        mq_message_free(m);
        mq_queue_list_free(l);
    }
    free_config(cfg);
}

#[test]
fn config_keys_are_checked_when_set() {
    let cfg = config(&[]);
    // SAFETY: valid pointers and strings.
    unsafe {
        expect(
            mq_config_set(cfg, c("no_such_key").as_ptr(), c("1").as_ptr()),
            MQ_ERR_CONFIG,
        );
        assert!(last_error().contains("no_such_key"), "{}", last_error());
        expect(
            mq_config_set(cfg, c("consume_threads").as_ptr(), c("0").as_ptr()),
            MQ_ERR_CONFIG,
        );
        expect(
            mq_config_set(cfg, c("orderly").as_ptr(), c("maybe").as_ptr()),
            MQ_ERR_CONFIG,
        );
        expect(
            mq_config_set(cfg, c("message_model").as_ptr(), c("BROADCASTING").as_ptr()),
            MQ_OK,
        );
        expect(
            mq_config_set(cfg, c("consume_from").as_ptr(), c("timestamp:12").as_ptr()),
            MQ_OK,
        );
        expect(
            mq_config_set(cfg, c("sendMsgTimeout").as_ptr(), c("1500").as_ptr()),
            MQ_OK,
        );
        let v = mq_config_get(cfg, c("send_timeout_ms").as_ptr());
        assert_eq!(std::ffi::CStr::from_ptr(v).to_str().unwrap(), "1500");
        assert!(mq_config_get(cfg, c("offset_dir").as_ptr()).is_null());
        let mut p = null_mut();
        let mut bare = null_mut();
        expect(mq_config_new(&mut bare), MQ_OK);
        expect(mq_producer_new(bare, &mut p), MQ_ERR_CONFIG);
        assert!(last_error().contains("is required"), "{}", last_error());
        mq_config_free(bare);
    }
    free_config(cfg);
}

#[test]
fn access_and_secret_keys_sign_and_go_together() {
    let both = config(&[("accessKey", "RocketMQ"), ("secret_key", "12345678")]);
    let half = config(&[("access_key", "RocketMQ")]);
    // SAFETY: both configs are live and used by this thread only.
    unsafe {
        let credentials = (*both).client().expect("a client config").credentials;
        let credentials = credentials.expect("credentials from the two keys");
        assert_eq!(credentials.access_key, "RocketMQ");
        assert_eq!(credentials.secret_key, "12345678");
        let mut p = null_mut();
        expect(mq_producer_new(half, &mut p), MQ_ERR_CONFIG);
        assert!(last_error().contains("secret_key"), "{}", last_error());
    }
    free_config(both);
    free_config(half);
}

#[test]
fn enum_values_out_of_range_are_mq_err_invalid_arg() {
    let t = c("T");
    let mut m = null_mut();
    // SAFETY: valid pointers.
    unsafe {
        expect(mq_message_new(t.as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_delay_level(m, 19), MQ_ERR_INVALID_ARG);
        expect(mq_message_set_delay_level(m, -1), MQ_ERR_INVALID_ARG);
        expect(mq_message_set_delay_level(m, 3), MQ_OK);
        assert_eq!(
            std::ffi::CStr::from_ptr(mq_message_property(m, c("DELAY").as_ptr()))
                .to_str()
                .unwrap(),
            "3"
        );
        mq_message_free(m);
    }
}

#[test]
fn a_built_message_reads_back_whole_and_a_received_one_is_read_only() {
    let t = c("T");
    let mut m = null_mut();
    let body = b"a\0b\0";
    // SAFETY: valid pointers; `view` is written up to its size.
    unsafe {
        expect(mq_message_new(t.as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_body(m, body.as_ptr(), body.len()), MQ_OK);
        expect(mq_message_set_tags(m, c("TagA").as_ptr()), MQ_OK);
        expect(mq_message_set_keys(m, c("k1 k2").as_ptr()), MQ_OK);
        expect(
            mq_message_set_property(m, c("color").as_ptr(), c("red").as_ptr()),
            MQ_OK,
        );
        let mut len = 0;
        let p = mq_message_body(m, &mut len);
        assert_eq!(
            std::slice::from_raw_parts(p, len),
            body,
            "NUL bytes arrive whole"
        );
        let mut view = std::mem::zeroed::<mq_message_view_t>();
        expect(
            mq_message_view(m, &mut view, std::mem::size_of::<mq_message_view_t>()),
            MQ_OK,
        );
        assert_eq!(
            std::ffi::CStr::from_ptr(view.tags).to_str().unwrap(),
            "TagA"
        );
        assert_eq!(
            std::ffi::CStr::from_ptr(view.keys).to_str().unwrap(),
            "k1 k2"
        );
        assert_eq!(view.body_len, 4);
        assert!(view.msg_id.is_null());
        assert_eq!(view.queue_id, -1);
        assert_eq!(view.property_count, 3);
        expect(
            mq_message_queue(m, null_mut(), null_mut(), null_mut()),
            MQ_ERR_STATE,
        );
        assert_eq!(mq_message_reconsume_times(m), -1);
        // An older, smaller view gets only its fields.
        let mut small = std::mem::zeroed::<mq_message_view_t>();
        small.queue_id = 42;
        expect(
            mq_message_view(
                m,
                &mut small,
                std::mem::offset_of!(mq_message_view_t, queue_id),
            ),
            MQ_OK,
        );
        assert_eq!(small.queue_id, 42, "not written past the size given");
        assert_eq!(small.body_len, 4);
        mq_message_free(m);
    }

    let mut props = std::collections::BTreeMap::new();
    props.insert("TAGS".to_owned(), "TagB".to_owned());
    let batch = Box::into_raw(Box::new(mq_batch_t::new(
        vec![for_test(props, b"x\0y")],
        None,
    )));
    // SAFETY: a batch made here, freed once.
    unsafe {
        assert_eq!(mq_batch_len(batch), 1);
        assert!(mq_batch_get(batch, 1).is_null());
        let got = mq_batch_get(batch, 0);
        let mut view = std::mem::zeroed::<mq_message_view_t>();
        expect(
            mq_message_view(got, &mut view, std::mem::size_of::<mq_message_view_t>()),
            MQ_OK,
        );
        assert_eq!(
            std::slice::from_raw_parts(view.body, view.body_len),
            b"x\0y"
        );
        assert_eq!(view.reconsume_times, 1);
        assert_eq!((view.queue_id, view.queue_offset), (2, 7));
        assert_eq!(
            std::ffi::CStr::from_ptr(view.born_host).to_str().unwrap(),
            "127.0.0.1:10911"
        );
        let (mut born, mut store) = (0, 0);
        expect(mq_message_timestamps(got, &mut born, &mut store), MQ_OK);
        assert_eq!((born, store), (1, 2));
        // Read-only, and not freed by mq_message_free.
        expect(
            mq_message_set_tags(got.cast_mut(), c("X").as_ptr()),
            MQ_ERR_STATE,
        );
        expect(mq_message_set_flag(got.cast_mut(), 1), MQ_ERR_STATE);
        mq_message_free(got.cast_mut());
        assert_eq!(mq_batch_len(batch), 1, "still whole");
        // A pull batch has nothing to ack: freed all the same.
        expect(mq_batch_ack(batch, MQ_CONSUME_SUCCESS), MQ_ERR_STATE);
    }
}

#[test]
fn accessors_and_no_op_frees_keep_the_last_error() {
    let mut props = std::collections::BTreeMap::new();
    props.insert("TAGS".to_owned(), "TagB".to_owned());
    let batch = Box::into_raw(Box::new(mq_batch_t::new(vec![for_test(props, b"x")], None)));
    // SAFETY: NULL or live pointers; the batch is freed once.
    unsafe {
        expect(mq_message_new(null(), &mut null_mut()), MQ_ERR_NULL);
        let before = last_error();
        assert!(before.contains("topic is NULL"), "{before}");
        assert_eq!(mq_batch_len(null()), 0);
        assert!(mq_batch_get(batch, 9).is_null());
        assert_eq!(mq_queue_list_len(null()), 0);
        assert!(mq_message_topic(null()).is_null());
        assert_eq!(mq_message_reconsume_times(null()), -1);
        assert_eq!(mq_send_result_status(null()), -1);
        assert!(mq_send_result_msg_id(null()).is_null());
        assert_eq!(mq_send_report_token(null()), 0);
        assert!(mq_txn_result(null()).is_null());
        // A received message is its batch's: freeing it is a no-op.
        mq_message_free(mq_batch_get(batch, 0).cast_mut());
        assert_eq!(last_error(), before);
        // A call that fails with a status still records its own.
        expect(mq_queue_list_new(null_mut()), MQ_ERR_NULL);
        assert!(last_error().contains("out is NULL"), "{}", last_error());
        mq_batch_free(batch);
    }
}

#[test]
fn a_send_result_reads_whole_in_one_view() {
    let r = mq_send_result_t::from_owned(mq_client::SendResult {
        status: mq_client::SendStatus::FlushDiskTimeout,
        msg_id: "ID1".into(),
        offset_msg_id: "OFF1".into(),
        queue: mq_client::protocol::body::MessageQueue::new("T", "b", 3),
        queue_offset: 77,
        transaction_id: None,
    });
    let view_of = |r: &mq_send_result_t, size: usize| {
        // SAFETY: zeroes are a valid view (NULL pointers, 0 numbers).
        let mut view = unsafe { std::mem::zeroed::<mq_send_result_view_t>() };
        view.queue_id = -5;
        // SAFETY: a live result; `view` has room for `size` bytes or more.
        expect(unsafe { mq_send_result_view(r, &mut view, size) }, MQ_OK);
        view
    };
    let text = |p: *const c_char| {
        // SAFETY: a NUL-terminated string of the result, which lives.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    let view = view_of(&r, std::mem::size_of::<mq_send_result_view_t>());
    assert_eq!(view.status, MQ_SEND_FLUSH_DISK_TIMEOUT);
    assert_eq!((view.queue_id, view.queue_offset), (3, 77));
    assert_eq!(text(view.msg_id), "ID1");
    assert_eq!(text(view.offset_msg_id), "OFF1");
    assert_eq!(text(view.topic), "T");
    assert_eq!(text(view.broker_name), "b");
    assert!(view.transaction_id.is_null());
    // An older, smaller view gets only its fields.
    let small = view_of(&r, std::mem::offset_of!(mq_send_result_view_t, queue_id));
    assert_eq!(small.status, MQ_SEND_FLUSH_DISK_TIMEOUT);
    assert_eq!(small.queue_id, -5, "not written past the size given");
    // SAFETY: a live result and a NULL out-pointer.
    expect(
        unsafe { mq_send_result_view(&r, null_mut(), 0) },
        MQ_ERR_NULL,
    );
}

#[test]
fn tags_keys_and_properties_clear_with_null_and_the_flag_is_set() {
    let t = c("T");
    let mut m = null_mut();
    // SAFETY: valid pointers; `view` is written up to its size.
    unsafe {
        expect(mq_message_new(t.as_ptr(), &mut m), MQ_OK);
        expect(mq_message_set_tags(m, c("TagA").as_ptr()), MQ_OK);
        expect(mq_message_set_keys(m, c("k1").as_ptr()), MQ_OK);
        expect(
            mq_message_set_property(m, c("color").as_ptr(), c("red").as_ptr()),
            MQ_OK,
        );
        expect(mq_message_set_flag(m, 42), MQ_OK);
        assert_eq!(mq_message_property_count(m), 3);
        expect(mq_message_set_tags(m, null()), MQ_OK);
        expect(mq_message_set_keys(m, null()), MQ_OK);
        expect(
            mq_message_set_property(m, c("color").as_ptr(), null()),
            MQ_OK,
        );
        // Clearing what is not there is fine too.
        expect(
            mq_message_set_property(m, c("none").as_ptr(), null()),
            MQ_OK,
        );
        expect(mq_message_set_property(m, null(), null()), MQ_ERR_NULL);
        assert!(mq_message_tags(m).is_null());
        assert!(mq_message_keys(m).is_null());
        assert!(mq_message_property(m, c("color").as_ptr()).is_null());
        assert_eq!(mq_message_property_count(m), 0);
        let mut view = std::mem::zeroed::<mq_message_view_t>();
        expect(
            mq_message_view(m, &mut view, std::mem::size_of::<mq_message_view_t>()),
            MQ_OK,
        );
        assert_eq!(view.flag, 42);
        mq_message_free(m);
    }
}
