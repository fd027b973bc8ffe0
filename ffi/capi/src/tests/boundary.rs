//! The boundary itself: panics, statuses, the last error, the fork check.

use std::ffi::CStr;
use std::ptr::null_mut;

use super::*;
use crate::producer::{mq_producer_destroy, mq_producer_new, mq_producer_send, mq_producer_t};
use crate::status::*;
use crate::version::*;

/// A test-only export: panics inside the boundary. Not `#[no_mangle]`, so
/// it is not in libmq's symbols.
unsafe extern "C" fn panics_with(message: *const u8) -> mq_status_t {
    ffi! {
        let _ = message;
        panic!("the boundary must catch this")
    }
}

/// The same for an accessor: NULL on panic.
unsafe extern "C" fn panics_returning_a_pointer() -> *const u8 {
    ffi! {
        if true {
            panic!("boom");
        }
        Ok(std::ptr::null())
    }
}

#[test]
fn a_panic_becomes_mq_err_panic_with_its_message() {
    // SAFETY: takes any pointer.
    let status = unsafe { panics_with(std::ptr::null()) };
    expect(status, MQ_ERR_PANIC);
    assert!(
        last_error().contains("the boundary must catch this"),
        "{}",
        last_error()
    );
    // SAFETY: no arguments.
    assert!(unsafe { panics_returning_a_pointer() }.is_null());
    assert!(last_error().contains("boom"));
}

/// A test-only export on a producer that panics after entering it, as a
/// bug in a send would.
unsafe extern "C" fn panics_on(p: *const mq_producer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the test passes a live producer.
        let _ = unsafe { crate::ffi::handle(p, "producer") }?;
        panic!("a bug in a producer call")
    }
}

#[test]
fn a_panic_poisons_the_handle_it_ran_on_and_no_other() {
    let cfg = config(&[]);
    let (mut p, mut q): (*mut mq_producer_t, *mut mq_producer_t) = (null_mut(), null_mut());
    // SAFETY: a live config and valid out-pointers.
    unsafe {
        expect(mq_producer_new(cfg, &mut p), MQ_OK);
        expect(mq_producer_new(cfg, &mut q), MQ_OK);
    }
    // SAFETY: a live producer.
    expect(unsafe { panics_on(p) }, MQ_ERR_PANIC);
    assert!(
        last_error().contains("a bug in a producer call"),
        "{}",
        last_error()
    );
    // SAFETY: live producers; a NULL message is an argument error on the
    // healthy one, and the poisoned one refuses before looking at it.
    unsafe {
        expect(
            mq_producer_send(p, std::ptr::null(), -1, null_mut()),
            MQ_ERR_PANIC,
        );
        let detail = last_error();
        assert!(
            detail.contains("unusable") && detail.contains("a bug in a producer call"),
            "{detail}"
        );
        expect(
            mq_producer_send(q, std::ptr::null(), -1, null_mut()),
            MQ_ERR_NULL,
        );
        // Close and destroy still work on the poisoned one.
        expect(crate::producer::mq_producer_close(p), MQ_OK);
        mq_producer_destroy(p);
        mq_producer_destroy(q);
    }
    free_config(cfg);
}

#[test]
fn the_status_table_is_fixed() {
    let expected = [
        (0, "MQ_OK"),
        (1, "MQ_ERR_NULL"),
        (2, "MQ_ERR_INVALID_ARG"),
        (3, "MQ_ERR_CONFIG"),
        (4, "MQ_ERR_TIMEOUT"),
        (5, "MQ_ERR_TRANSPORT"),
        (6, "MQ_ERR_BROKER"),
        (7, "MQ_ERR_NO_ROUTE"),
        (8, "MQ_ERR_NO_NAMESRV"),
        (9, "MQ_ERR_DECODE"),
        (10, "MQ_ERR_CLOSED"),
        (11, "MQ_ERR_STATE"),
        (12, "MQ_ERR_QUEUE_FULL"),
        (13, "MQ_ERR_FORKED"),
        (14, "MQ_ERR_IO"),
        (15, "MQ_ERR_UNKNOWN"),
        (99, "MQ_ERR_PANIC"),
    ];
    assert_eq!(crate::status::table().len(), expected.len());
    for (code, name) in expected {
        // SAFETY: any value is accepted; the results are static strings.
        let (n, s) = unsafe {
            (
                CStr::from_ptr(mq_status_name(code)),
                CStr::from_ptr(mq_status_str(code)),
            )
        };
        assert_eq!(n.to_str().unwrap(), name);
        assert!(!s.to_bytes().is_empty());
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(mq_status_name(12345)) };
    assert_eq!(unknown.to_str().unwrap(), "MQ_ERR_UNKNOWN_STATUS");
}

#[test]
fn the_last_error_is_per_thread_and_copyable() {
    // SAFETY: NULL is an error, not a crash.
    expect(
        unsafe { crate::config::mq_config_new(null_mut()) },
        MQ_ERR_NULL,
    );
    let detail = last_error();
    assert!(detail.starts_with("MQ_ERR_NULL: out is NULL"), "{detail}");
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "", "another thread has no failure yet");
    let mut buf = [0 as std::ffi::c_char; 8];
    // SAFETY: `buf` has 8 writable bytes.
    let n = unsafe { mq_last_error_copy(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(n, detail.len());
    // SAFETY: NUL-terminated by the copy.
    let copied = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(copied.to_str().unwrap(), &detail[..7]);
    // SAFETY: NULL buffer: only the length.
    assert_eq!(
        unsafe { mq_last_error_copy(std::ptr::null_mut(), 0) },
        detail.len()
    );
    // SAFETY: no arguments.
    assert_eq!(unsafe { mq_last_error_broker_code() }, 0);
}

#[test]
fn the_version_functions_match_the_macros() {
    // SAFETY: no arguments; a static string.
    let (v, s) = unsafe { (mq_version(), CStr::from_ptr(mq_version_str())) };
    assert_eq!(v >> 16, MQ_VERSION_MAJOR);
    assert_eq!((v >> 8) & 0xff, MQ_VERSION_MINOR);
    assert_eq!(v & 0xff, MQ_VERSION_PATCH);
    assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
}

#[test]
fn a_forked_child_gets_mq_err_forked_and_destroy_only_leaks() {
    let cfg = config(&[]);
    let mut p: *mut mq_producer_t = null_mut();
    // SAFETY: a live config and a valid out-pointer.
    expect(unsafe { mq_producer_new(cfg, &mut p) }, MQ_OK);
    // SAFETY: fork in a test process: the child calls only libmq's
    // boundary (which refuses at once) and `_exit`, never returning into
    // the test harness.
    let pid = unsafe { fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: in the child, on the parent's live handles.
        let code = unsafe {
            let mut m = null_mut();
            let sent = mq_producer_send(p, std::ptr::null(), -1, null_mut());
            let made = crate::message::mq_message_new(c"T".as_ptr(), &mut m);
            let named =
                CStr::from_ptr(mq_status_name(MQ_ERR_FORKED)).to_bytes() == b"MQ_ERR_FORKED";
            mq_producer_destroy(p);
            match (sent, made, named) {
                (MQ_ERR_FORKED, MQ_ERR_FORKED, true) => 0,
                _ => 1,
            }
        };
        // SAFETY: leaves the child without running the harness's exit.
        unsafe { _exit(code) };
    }
    let mut status = 0;
    // SAFETY: our child's pid and a valid out-pointer.
    let waited = unsafe { waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    // Exited normally with code 0 (the child did not hang in destroy).
    assert_eq!(status, 0, "the child's wait status");
    // SAFETY: the parent's own handle, destroyed once.
    unsafe { mq_producer_destroy(p) };
    free_config(cfg);
}
