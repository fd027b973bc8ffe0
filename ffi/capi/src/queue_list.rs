//! `mq_queue_list_t`: a list of queues (topic, broker name, queue id), to
//! assign to a pull consumer or to read its assignment.

use std::ffi::{c_char, CString};

use mq_client::protocol::body::MessageQueue;

use crate::ffi::{arg, arg_mut, ok, put, take, text, Out};
use crate::status::{mq_status_t, Error};

/// A list of queues. Not synchronized: change it from one thread at a time.
pub struct mq_queue_list_t {
    queues: Vec<(MessageQueue, CString, CString)>,
}

impl mq_queue_list_t {
    pub(crate) fn new(queues: impl IntoIterator<Item = MessageQueue>) -> mq_queue_list_t {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        mq_queue_list_t {
            queues: queues
                .into_iter()
                .map(|q| {
                    let (topic, broker) = (c(&q.topic), c(&q.broker_name));
                    (q, topic, broker)
                })
                .collect(),
        }
    }

    pub(crate) fn queues(&self) -> Vec<MessageQueue> {
        self.queues.iter().map(|(q, _, _)| q.clone()).collect()
    }
}

/// A queue named by C strings.
///
/// # Safety
///
/// `topic` and `broker` are NULL or NUL-terminated strings.
pub(crate) unsafe fn queue(
    topic: *const c_char,
    broker: *const c_char,
    queue_id: i32,
) -> Result<MessageQueue, Error> {
    // SAFETY: the caller's promises.
    let (topic, broker) = unsafe { (text(topic, "topic")?, text(broker, "broker")?) };
    if topic.is_empty() || broker.is_empty() || queue_id < 0 {
        return Err(Error::invalid(format!(
            "queue {topic:?}/{broker:?}/{queue_id} needs a topic, a broker and an id >= 0"
        )));
    }
    Ok(MessageQueue::new(topic, broker, queue_id))
}

/// Creates an empty queue list.
///
/// Ownership: `*out` is the caller's: free it with `mq_queue_list_free`.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_queue_list_new(out: *mut *mut mq_queue_list_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(mq_queue_list_t::new([]));
        ok()
    }
}

/// Appends a queue. The strings are copied.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (not UTF-8, empty, negative
/// id).
///
/// # Safety
///
/// `l` is NULL or a live list no other thread uses meanwhile; `topic` and
/// `broker` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mq_queue_list_add(
    l: *mut mq_queue_list_t,
    topic: *const c_char,
    broker: *const c_char,
    queue_id: i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (l, q) = unsafe { (arg_mut(l, "list")?, queue(topic, broker, queue_id)?) };
        l.queues.extend(mq_queue_list_t::new([q]).queues);
        ok()
    }
}

/// The number of queues; 0 when `l` is NULL.
///
/// # Safety
///
/// `l` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn mq_queue_list_len(l: *const mq_queue_list_t) -> usize {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(l, "list") }?.queues.len())
    }
}

/// Queue `i`: its topic, broker name and id (each out-pointer may be NULL).
///
/// Ownership: the strings borrow from `l`, valid until it is changed or
/// freed.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (`i` out of range).
///
/// # Safety
///
/// `l` is NULL or a live list; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_queue_list_get(
    l: *const mq_queue_list_t,
    i: usize,
    topic: *mut *const c_char,
    broker: *mut *const c_char,
    queue_id: *mut i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let l = unsafe { arg(l, "list") }?;
        let (q, t, b) = l
            .queues
            .get(i)
            .ok_or_else(|| Error::invalid(format!("queue {i} of {}", l.queues.len())))?;
        // SAFETY: the caller's promises.
        unsafe {
            put(topic, t.as_ptr());
            put(broker, b.as_ptr());
            put(queue_id, q.queue_id);
        }
        ok()
    }
}

/// Frees a queue list. NULL is a no-op.
///
/// # Safety
///
/// `l` is NULL or a live list, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_queue_list_free(l: *mut mq_queue_list_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(l) });
        Ok(())
    }
}
