//! The exports called as C calls them: NULL pointers, invalid UTF-8, enum
//! values out of range, double close, use after close, destroy(NULL), close
//! while another thread waits in a poll, a panic at the boundary, and a
//! forked child. No broker is needed: clients point at a port that refuses
//! (`127.0.0.1:1`); the end-to-end tests against `mqd` are in
//! `tests/e2e/capi.rs` at the top of the workspace.

mod boundary;
mod families;
mod lifecycle;

use std::ffi::{c_char, CStr, CString};
use std::ptr::null_mut;

use crate::config::{mq_config_free, mq_config_new, mq_config_set, mq_config_t};
use crate::status::{mq_last_error, mq_status_t, MQ_OK};

/// This thread's last error detail.
pub(super) fn last_error() -> String {
    // SAFETY: never NULL; valid until this thread's next failing call.
    unsafe { CStr::from_ptr(mq_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A C string.
pub(super) fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in a test string")
}

/// Bytes that are not UTF-8, NUL-terminated.
pub(super) const NOT_UTF8: &[u8] = b"\xff\xfe\0";

pub(super) fn not_utf8() -> *const c_char {
    NOT_UTF8.as_ptr().cast()
}

/// A config with `pairs` set, for a broker that is not there.
pub(super) fn config(pairs: &[(&str, &str)]) -> *mut mq_config_t {
    let mut cfg = null_mut();
    // SAFETY: a valid out-pointer; each string is NUL-terminated.
    unsafe {
        assert_eq!(mq_config_new(&mut cfg), MQ_OK);
        for (k, v) in [("namesrv_addr", "127.0.0.1:1"), ("group", "capi_tests")]
            .iter()
            .chain(pairs)
        {
            let (k, v) = (c(k), c(v));
            assert_eq!(
                mq_config_set(cfg, k.as_ptr(), v.as_ptr()),
                MQ_OK,
                "{}",
                last_error()
            );
        }
    }
    cfg
}

pub(super) fn free_config(cfg: *mut mq_config_t) {
    // SAFETY: made by `config`, freed once.
    unsafe { mq_config_free(cfg) }
}

/// Asserts a status, with the last error in the message.
#[track_caller]
pub(super) fn expect(got: mq_status_t, want: mq_status_t) {
    assert_eq!(got, want, "last error: {}", last_error());
}
