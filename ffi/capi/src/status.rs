//! The status table every export answers with, the thread-local detail of
//! the last failure, and the functions that name and describe statuses.
//!
//! The numbers are part of the ABI: a status keeps its number for good, a
//! retired number is never given to another status, and new statuses are
//! appended. Bindings read names and texts from `mq_status_name` and
//! `mq_status_str` rather than mirroring the table.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use mq_client::{ClientError, ErrorKind};

/// A status code: `MQ_OK` (0) or one of the `MQ_ERR_*` values. A fixed
/// table: numbers are never reused or renumbered, new ones are appended.
pub type mq_status_t = i32;

/// Success.
pub const MQ_OK: mq_status_t = 0;
/// A required pointer argument (handle, string, out-parameter) was NULL.
pub const MQ_ERR_NULL: mq_status_t = 1;
/// An argument is not acceptable: not UTF-8, an enum value out of range, an
/// empty topic or body, a batch of several topics, an offset outside its
/// queue.
pub const MQ_ERR_INVALID_ARG: mq_status_t = 2;
/// A configuration key is unknown or its value is not valid; the detail
/// names the key.
pub const MQ_ERR_CONFIG: mq_status_t = 3;
/// No answer within the time allowed.
pub const MQ_ERR_TIMEOUT: mq_status_t = 4;
/// No connection could be made, or it broke before the answer came.
pub const MQ_ERR_TRANSPORT: mq_status_t = 5;
/// The broker or NameServer refused; `mq_last_error_broker_code()` gives its
/// response code.
pub const MQ_ERR_BROKER: mq_status_t = 6;
/// No route for the topic, or the broker it names has no address.
pub const MQ_ERR_NO_ROUTE: mq_status_t = 7;
/// No NameServer is configured, or none answered.
pub const MQ_ERR_NO_NAMESRV: mq_status_t = 8;
/// An answer (or the local offsets file) could not be decoded.
pub const MQ_ERR_DECODE: mq_status_t = 9;
/// The handle was closed (or its client shut down).
pub const MQ_ERR_CLOSED: mq_status_t = 10;
/// Not allowed in the object's current state (subscribe after start, seek
/// of a queue not assigned, ack of a pull batch, setters on a received
/// message).
pub const MQ_ERR_STATE: mq_status_t = 11;
/// Too many async sends in flight (`max_inflight_async`); poll reports or
/// flush, then send again. Never blocks.
pub const MQ_ERR_QUEUE_FULL: mq_status_t = 12;
/// Called in a process forked from the one whose libmq threads run; create
/// clients after forking, in the process that uses them.
pub const MQ_ERR_FORKED: mq_status_t = 13;
/// A local operation failed: the offsets file, starting a thread.
pub const MQ_ERR_IO: mq_status_t = 14;
/// A failure this version of libmq has no status for; the detail says what.
pub const MQ_ERR_UNKNOWN: mq_status_t = 15;
/// A bug in libmq: a Rust panic was caught at the boundary (it never
/// unwinds into the caller); the detail holds its message. The producer or
/// consumer the call ran on is then unusable: every later call on it but
/// close and destroy returns MQ_ERR_PANIC too.
pub const MQ_ERR_PANIC: mq_status_t = 99;

/// Every status: number, name, text.
const TABLE: [(mq_status_t, &CStr, &CStr); 17] = [
    (MQ_OK, c"MQ_OK", c"success"),
    (
        MQ_ERR_NULL,
        c"MQ_ERR_NULL",
        c"a required pointer argument was NULL",
    ),
    (
        MQ_ERR_INVALID_ARG,
        c"MQ_ERR_INVALID_ARG",
        c"an argument is not acceptable",
    ),
    (
        MQ_ERR_CONFIG,
        c"MQ_ERR_CONFIG",
        c"unknown configuration key or bad value",
    ),
    (
        MQ_ERR_TIMEOUT,
        c"MQ_ERR_TIMEOUT",
        c"no answer within the time allowed",
    ),
    (
        MQ_ERR_TRANSPORT,
        c"MQ_ERR_TRANSPORT",
        c"connection failed or broke",
    ),
    (MQ_ERR_BROKER, c"MQ_ERR_BROKER", c"the broker refused"),
    (
        MQ_ERR_NO_ROUTE,
        c"MQ_ERR_NO_ROUTE",
        c"no route for the topic",
    ),
    (
        MQ_ERR_NO_NAMESRV,
        c"MQ_ERR_NO_NAMESRV",
        c"no NameServer configured or reachable",
    ),
    (
        MQ_ERR_DECODE,
        c"MQ_ERR_DECODE",
        c"an answer could not be decoded",
    ),
    (MQ_ERR_CLOSED, c"MQ_ERR_CLOSED", c"the handle is closed"),
    (
        MQ_ERR_STATE,
        c"MQ_ERR_STATE",
        c"not allowed in the current state",
    ),
    (
        MQ_ERR_QUEUE_FULL,
        c"MQ_ERR_QUEUE_FULL",
        c"too many async sends in flight",
    ),
    (
        MQ_ERR_FORKED,
        c"MQ_ERR_FORKED",
        c"called in a forked child process",
    ),
    (MQ_ERR_IO, c"MQ_ERR_IO", c"a local operation failed"),
    (
        MQ_ERR_UNKNOWN,
        c"MQ_ERR_UNKNOWN",
        c"a failure without a status of its own",
    ),
    (
        MQ_ERR_PANIC,
        c"MQ_ERR_PANIC",
        c"libmq panicked (a bug); see mq_last_error()",
    ),
];

/// A failure on its way to the caller: the status, the detail for
/// `mq_last_error`, and the broker's response code when it refused.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) status: mq_status_t,
    detail: String,
    broker_code: i32,
}

impl Error {
    pub(crate) fn new(status: mq_status_t, detail: impl Into<String>) -> Error {
        Error {
            status,
            detail: detail.into(),
            broker_code: 0,
        }
    }

    /// What went wrong, in words.
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn null(what: &str) -> Error {
        Error::new(MQ_ERR_NULL, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Error {
        Error::new(MQ_ERR_INVALID_ARG, detail)
    }

    pub(crate) fn state(detail: impl Into<String>) -> Error {
        Error::new(MQ_ERR_STATE, detail)
    }

    pub(crate) fn closed(what: &str) -> Error {
        Error::new(MQ_ERR_CLOSED, format!("the {what} is closed"))
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Error {
        let status = match e.kind() {
            ErrorKind::InvalidArgument => MQ_ERR_INVALID_ARG,
            ErrorKind::State => MQ_ERR_STATE,
            ErrorKind::Timeout => MQ_ERR_TIMEOUT,
            ErrorKind::Connect | ErrorKind::ConnectionLost => MQ_ERR_TRANSPORT,
            ErrorKind::BrokerRefused => MQ_ERR_BROKER,
            ErrorKind::NoRoute => MQ_ERR_NO_ROUTE,
            ErrorKind::NoNameServer => MQ_ERR_NO_NAMESRV,
            ErrorKind::Decode => MQ_ERR_DECODE,
            ErrorKind::Io => MQ_ERR_IO,
            ErrorKind::Closed => MQ_ERR_CLOSED,
            // A kind added to the client after this table: still an error,
            // with the client's text.
            _ => MQ_ERR_UNKNOWN,
        };
        Error {
            status,
            broker_code: e.response_code().unwrap_or(0),
            detail: e.to_string(),
        }
    }
}

/// This thread's last failure: its detail and the broker's code.
struct Last {
    detail: CString,
    broker_code: i32,
}

thread_local! {
    static LAST: RefCell<Last> = RefCell::new(Last {
        detail: CString::default(),
        broker_code: 0,
    });
}

/// This thread's last failure detail without its status name, for passing
/// an inner export's failure on.
pub(crate) fn last_detail() -> String {
    LAST.with(|last| {
        let text = last.borrow().detail.to_string_lossy().into_owned();
        text.split_once(": ")
            .map_or(text.clone(), |(_, d)| d.to_owned())
    })
}

/// Makes `e` this thread's last failure.
pub(crate) fn record(e: Error) {
    let name =
        status_entry(e.status).map_or("MQ_ERR_?", |(_, n, _)| n.to_str().unwrap_or("MQ_ERR_?"));
    let text = format!("{name}: {}", e.detail).replace('\0', " ");
    let detail = CString::new(text).unwrap_or_default();
    LAST.with(|last| {
        *last.borrow_mut() = Last {
            detail,
            broker_code: e.broker_code,
        }
    });
}

fn status_entry(status: mq_status_t) -> Option<(mq_status_t, &'static CStr, &'static CStr)> {
    TABLE.iter().copied().find(|(s, _, _)| *s == status)
}

/// The name of a status (`"MQ_ERR_TIMEOUT"`), or `"MQ_ERR_UNKNOWN_STATUS"`
/// for a number not in the table. Never NULL.
///
/// Thread: any. Ownership: static storage, never freed.
///
/// # Safety
///
/// None: safe to call with any value.
#[no_mangle]
pub unsafe extern "C" fn mq_status_name(status: mq_status_t) -> *const c_char {
    ffi!(pure: Ok(status_entry(status).map_or(c"MQ_ERR_UNKNOWN_STATUS", |(_, n, _)| n).as_ptr()))
}

/// A short English description of a status. Never NULL.
///
/// Thread: any. Ownership: static storage, never freed.
///
/// # Safety
///
/// None: safe to call with any value.
#[no_mangle]
pub unsafe extern "C" fn mq_status_str(status: mq_status_t) -> *const c_char {
    ffi!(pure: Ok(status_entry(status).map_or(c"not a libmq status", |(_, _, t)| t).as_ptr()))
}

/// The detail of this thread's last failure (`"MQ_ERR_NO_ROUTE: no route
/// info of topic T"`), or `""` before any. Successful calls leave it as it
/// is. Never NULL.
///
/// Thread: the detail is per thread; read it on the thread that got the
/// failure (a Go binding reads it in the same cgo call, or uses
/// `mq_last_error_copy`). Ownership: libmq's; valid until this thread's
/// next failing libmq call; copy it to keep it.
///
/// # Safety
///
/// None.
#[no_mangle]
pub unsafe extern "C" fn mq_last_error() -> *const c_char {
    ffi!(pure: Ok(LAST.with(|last| last.borrow().detail.as_ptr())))
}

/// Copies this thread's last failure detail into `buf` (at most `cap - 1`
/// bytes and a NUL; nothing when `buf` is NULL or `cap` is 0) and returns
/// its full length without the NUL, so a caller can size a second try.
///
/// Thread: as `mq_last_error`. Ownership: `buf` is the caller's.
///
/// # Safety
///
/// `buf` is NULL or points to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mq_last_error_copy(buf: *mut c_char, cap: usize) -> usize {
    ffi!(pure: Ok(LAST.with(|last| {
        let last = last.borrow();
        let bytes = last.detail.as_bytes();
        if !buf.is_null() && cap > 0 {
            let n = bytes.len().min(cap - 1);
            // SAFETY: `buf` has `cap` writable bytes (the caller's promise)
            // and n + 1 <= cap; the source is our own string.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, n);
                buf.add(n).write(0);
            }
        }
        bytes.len()
    })))
}

/// The broker's response code of this thread's last failure when it was
/// `MQ_ERR_BROKER` (RocketMQ's codes: 17 topic not exist, 14 service not
/// available, ...), else 0.
///
/// Thread: as `mq_last_error`.
///
/// # Safety
///
/// None.
#[no_mangle]
pub unsafe extern "C" fn mq_last_error_broker_code() -> i32 {
    ffi!(pure: Ok(LAST.with(|last| last.borrow().broker_code)))
}

#[cfg(test)]
pub(crate) fn table() -> &'static [(mq_status_t, &'static CStr, &'static CStr)] {
    &TABLE
}
