//! `mq_send_result_t` (how the broker stored a message) and
//! `mq_send_report_t` (the outcome of an async send, from
//! `mq_producer_poll`). Both own copies of everything they hold, so they
//! outlive their producer.

use std::ffi::{c_char, CString};

use mq_client::{ClientError, SendResult, SendStatus};

use crate::ffi::{arg, ok, put, take};
use crate::status::{mq_status_t, Error, MQ_OK};

/// Stored as the broker promises.
pub const MQ_SEND_OK: i32 = 0;
/// Stored; the broker's SYNC_FLUSH flush timed out.
pub const MQ_SEND_FLUSH_DISK_TIMEOUT: i32 = 1;
/// Stored on the master; replication to the slave timed out.
pub const MQ_SEND_FLUSH_SLAVE_TIMEOUT: i32 = 2;
/// Stored on the master; no slave was available.
pub const MQ_SEND_SLAVE_NOT_AVAILABLE: i32 = 3;

/// How a message (or batch) was stored. Read-only; safe to read from several
/// threads at once. Free with `mq_send_result_free` (except the borrowed
/// ones from `mq_send_report_result` and `mq_txn_result`).
pub struct mq_send_result_t {
    status: i32,
    msg_id: CString,
    offset_msg_id: CString,
    topic: CString,
    broker_name: CString,
    queue_id: i32,
    queue_offset: i64,
    transaction_id: Option<CString>,
}

/// Every field of a send result at once: one call instead of five
/// (bindings cross the FFI once per result). Filled by
/// `mq_send_result_view`.
///
/// Pointers borrow from the result: valid until it is freed (for a
/// borrowed result, until its report or transaction is). Strings are
/// NUL-terminated; NULL means "none". Fields are only ever appended in
/// later versions; pass `sizeof(mq_send_result_view_t)` so that an older
/// program gets the fields it knows and no more.
#[repr(C)]
pub struct mq_send_result_view_t {
    /// How the broker stored it: `MQ_SEND_OK` or another `MQ_SEND_*`.
    pub status: i32,
    /// The queue's id.
    pub queue_id: i32,
    /// The message's offset in its queue (the first message's, for a
    /// batch).
    pub queue_offset: i64,
    /// The message id (UNIQ_KEY) consumers see; comma-joined for a batch.
    pub msg_id: *const c_char,
    /// The broker's offset message id (comma-joined for a batch).
    pub offset_msg_id: *const c_char,
    /// The topic.
    pub topic: *const c_char,
    /// The broker that stored it.
    pub broker_name: *const c_char,
    /// The transaction id of a half message; NULL otherwise.
    pub transaction_id: *const c_char,
}

/// `s` as a C string, its buffer reused, cut of any NUL inside it.
fn owned_c_string(s: String) -> CString {
    let mut bytes = s.into_bytes();
    if bytes.contains(&0) {
        bytes.retain(|&b| b != 0);
    }
    CString::new(bytes).unwrap_or_default()
}

impl mq_send_result_t {
    /// The C form of `r`: its strings are moved into the C strings, not
    /// copied (a copy per field and send adds up on the async path).
    pub(crate) fn from_owned(r: SendResult) -> mq_send_result_t {
        mq_send_result_t {
            status: status_of(r.status),
            msg_id: owned_c_string(r.msg_id),
            offset_msg_id: owned_c_string(r.offset_msg_id),
            topic: owned_c_string(r.queue.topic),
            broker_name: owned_c_string(r.queue.broker_name),
            queue_id: r.queue.queue_id,
            queue_offset: r.queue_offset,
            transaction_id: r.transaction_id.map(owned_c_string),
        }
    }
}

fn status_of(status: SendStatus) -> i32 {
    match status {
        SendStatus::SendOk => MQ_SEND_OK,
        SendStatus::FlushDiskTimeout => MQ_SEND_FLUSH_DISK_TIMEOUT,
        SendStatus::FlushSlaveTimeout => MQ_SEND_FLUSH_SLAVE_TIMEOUT,
        SendStatus::SlaveNotAvailable => MQ_SEND_SLAVE_NOT_AVAILABLE,
    }
}

/// How the broker stored the message: `MQ_SEND_OK` or another `MQ_SEND_*`;
/// -1 when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a live send result.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_status(r: *const mq_send_result_t) -> i32 {
    ffi! {
        or -1;
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(r, "result") }?.status)
    }
}

/// The message id (UNIQ_KEY) consumers see; for a batch, the ids joined by
/// commas. NULL when `r` is NULL.
///
/// Ownership: borrowed from `r`, valid until it is freed.
///
/// # Safety
///
/// `r` is NULL or a live send result.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_msg_id(r: *const mq_send_result_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(r, "result") }?.msg_id.as_ptr())
    }
}

/// The broker's offset message id (comma-joined for a batch). NULL when
/// `r` is NULL.
///
/// Ownership: as `mq_send_result_msg_id`.
///
/// # Safety
///
/// `r` is NULL or a live send result.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_offset_msg_id(r: *const mq_send_result_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(r, "result") }?.offset_msg_id.as_ptr())
    }
}

/// The transaction id of a half message, or NULL (not transactional, or `r`
/// NULL).
///
/// Ownership: as `mq_send_result_msg_id`.
///
/// # Safety
///
/// `r` is NULL or a live send result.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_transaction_id(
    r: *const mq_send_result_t,
) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let r = unsafe { arg(r, "result") }?;
        Ok(r.transaction_id.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()))
    }
}

/// The queue the message went to and its offset there (of the first
/// message, for a batch); each out-pointer may be NULL.
///
/// Ownership: `*topic` and `*broker` as `mq_send_result_msg_id`.
///
/// Errors: `MQ_ERR_NULL` when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a live send result; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_queue(
    r: *const mq_send_result_t,
    topic: *mut *const c_char,
    broker: *mut *const c_char,
    queue_id: *mut i32,
    queue_offset: *mut i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let r = unsafe { arg(r, "result") }?;
        // SAFETY: the caller's promises.
        unsafe {
            put(topic, r.topic.as_ptr());
            put(broker, r.broker_name.as_ptr());
            put(queue_id, r.queue_id);
            put(queue_offset, r.queue_offset);
        }
        ok()
    }
}

/// Fills `*out` with every field of `r` (see `mq_send_result_view_t`), at
/// most `out_size` bytes of it: pass `sizeof(mq_send_result_view_t)`.
///
/// Ownership: the strings in `*out` borrow from `r`, as
/// `mq_send_result_msg_id`'s result does.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `r` is NULL or a live send result; `out` is NULL or points to
/// `out_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_view(
    r: *const mq_send_result_t,
    out: *mut mq_send_result_view_t,
    out_size: usize,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let r = unsafe { arg(r, "result") }?;
        if out.is_null() {
            return Err(Error::null("out"));
        }
        let view = mq_send_result_view_t {
            status: r.status,
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            msg_id: r.msg_id.as_ptr(),
            offset_msg_id: r.offset_msg_id.as_ptr(),
            topic: r.topic.as_ptr(),
            broker_name: r.broker_name.as_ptr(),
            transaction_id: r.transaction_id.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
        };
        let n = out_size.min(std::mem::size_of::<mq_send_result_view_t>());
        // SAFETY: `out` has `out_size` writable bytes (the caller's
        // promise) and n <= out_size; `view` is a plain struct of n bytes or
        // more, and the regions are distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::from_ref(&view).cast::<u8>(),
                out.cast::<u8>(),
                n,
            );
        }
        ok()
    }
}

/// Frees a send result. NULL is a no-op.
///
/// # Safety
///
/// `r` is NULL or a result from a send call (not a borrowed one), not freed
/// before and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_send_result_free(r: *mut mq_send_result_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(r) });
        Ok(())
    }
}

/// The outcome of one `mq_producer_send_async`, from `mq_producer_poll`.
/// Read-only; free with `mq_send_report_free`.
pub struct mq_send_report_t {
    token: u64,
    outcome: Result<mq_send_result_t, (mq_status_t, CString, i32)>,
}

impl mq_send_report_t {
    pub(crate) fn new(token: u64, outcome: Result<SendResult, ClientError>) -> mq_send_report_t {
        mq_send_report_t {
            token,
            outcome: match outcome {
                Ok(r) => Ok(mq_send_result_t::from_owned(r)),
                Err(e) => {
                    let code = e.response_code().unwrap_or(0);
                    let e = Error::from(e);
                    let text = CString::new(e.detail().replace('\0', "")).unwrap_or_default();
                    Err((e.status, text, code))
                }
            },
        }
    }
}

/// The token passed to `mq_producer_send_async`; 0 when `rep` is NULL.
///
/// # Safety
///
/// `rep` is NULL or a live report.
#[no_mangle]
pub unsafe extern "C" fn mq_send_report_token(rep: *const mq_send_report_t) -> u64 {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(unsafe { arg(rep, "report") }?.token)
    }
}

/// The status of the async send: `MQ_OK`, or the failure's status (then
/// `*error`, if `error` is not NULL, is its detail, and `*broker_code` the
/// broker's response code or 0). `MQ_ERR_NULL` when `rep` is NULL.
///
/// Ownership: `*error` borrows from `rep`, valid until it is freed.
///
/// # Safety
///
/// `rep` is NULL or a live report; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_send_report_status(
    rep: *const mq_send_report_t,
    error: *mut *const c_char,
    broker_code: *mut i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        unsafe {
            put(error, std::ptr::null());
            put(broker_code, 0);
        }
        // SAFETY: the caller's promise.
        let rep = unsafe { arg(rep, "report") }?;
        Ok(match &rep.outcome {
            Ok(_) => MQ_OK,
            Err((status, text, code)) => {
                // SAFETY: the caller's promises.
                unsafe {
                    put(error, text.as_ptr());
                    put(broker_code, *code);
                }
                *status
            }
        })
    }
}

/// The send result of a successful async send; NULL when it failed (or
/// `rep` is NULL).
///
/// Ownership: borrowed from `rep`, valid until it is freed; do not free it.
///
/// # Safety
///
/// `rep` is NULL or a live report.
#[no_mangle]
pub unsafe extern "C" fn mq_send_report_result(
    rep: *const mq_send_report_t,
) -> *const mq_send_result_t {
    ffi! {
        // SAFETY: the caller's promise.
        let rep = unsafe { arg(rep, "report") }?;
        Ok(rep.outcome.as_ref().map_or(std::ptr::null(), std::ptr::from_ref))
    }
}

/// Frees a report. NULL is a no-op.
///
/// # Safety
///
/// `rep` is NULL or a report from `mq_producer_poll`, not freed before and
/// not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_send_report_free(rep: *mut mq_send_report_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(rep) });
        Ok(())
    }
}
