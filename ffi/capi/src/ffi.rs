//! The boundary every export goes through, and the helpers that turn C
//! arguments into Rust values.
//!
//! [`ffi!`] wraps an export's body: it refuses calls from a forked child
//! (`MQ_ERR_FORKED`), runs the body under `catch_unwind` (a panic becomes
//! `MQ_ERR_PANIC`, never unwinds into C, and poisons the producer or
//! consumer the body entered with [`handle`]), and turns the body's
//! `Result<R, Error>` into the C return value. A failure is recorded as
//! this thread's last error only by exports that return a status: an
//! accessor that answers NULL, 0 or -1 (for a NULL argument, an index out
//! of range) and a `_free` that does nothing leave the detail of the
//! previous failure alone (a caught panic is recorded by every export: it
//! is a bug, and there is no other way to tell of it). The helpers check
//! what C hands in (NULL pointers, NUL-terminated UTF-8) and carry the
//! unsafety of raw pointers in one place, each with the contract its caller
//! promises.
//!
//! Forks: a forked child has none of the parent's threads (the client's
//! executor, async-io's reactor, the blocking pool), so anything that waits
//! on them would hang. When the first client instance starts
//! ([`claim_process`]) libmq registers a `pthread_atfork` child handler,
//! which marks the child as forked; every export then tests that mark, one
//! atomic load. (A pid check, `getpid()` in every export, cost a system call
//! per accessor: seven per send and result read.) A child made without the
//! atfork handlers (`_Fork`, a raw `clone`) is not marked; it is still
//! refused when it starts a client, which compares the pid with the one
//! recorded at the first start.
use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Once, OnceLock};

use crate::status::{mq_status_t, record, Error, MQ_ERR_FORKED, MQ_ERR_PANIC, MQ_OK};

/// Wraps the body of an export (`pub unsafe extern "C" fn`):
///
/// - `ffi!(body)`: the body evaluates to `Result<R, Error>` where `R` is the
///   function's return type; an error returns `R`'s [`Fallback`] (the status
///   for `mq_status_t`, NULL for pointers, 0 for sizes).
/// - `ffi!(or VALUE; body)`: the same with an explicit fallback, for
///   `int32_t` results that are not statuses (such a failure is not
///   recorded as the last error).
/// - `ffi!(pure: body)`: no fork check, for functions that only read static
///   or thread-local data (version, status names, the last error), which a
///   forked child may call to learn why it was refused.
///
/// `tests/source.rs` fails on any `extern "C" fn` whose body does not start
/// with this macro.
macro_rules! ffi {
    (pure: $($body:tt)*) => {
        $crate::ffi::boundary(false, None, || -> ::core::result::Result<_, $crate::status::Error> {
            $($body)*
        })
    };
    (or $fallback:expr; $($body:tt)*) => {
        $crate::ffi::boundary(true, Some($fallback), || -> ::core::result::Result<_, $crate::status::Error> {
            $($body)*
        })
    };
    ($($body:tt)*) => {
        $crate::ffi::boundary(true, None, || -> ::core::result::Result<_, $crate::status::Error> {
            $($body)*
        })
    };
}

/// What an export returns when it fails.
pub(crate) trait Fallback {
    /// Whether a failure is the caller's to read in `mq_last_error`: only
    /// for exports that return the status.
    const RECORDS: bool = false;
    /// The value for a failure with `status`.
    fn fallback(status: mq_status_t) -> Self;
}

impl Fallback for mq_status_t {
    const RECORDS: bool = true;
    fn fallback(status: mq_status_t) -> Self {
        status
    }
}

impl<T> Fallback for *const T {
    fn fallback(_: mq_status_t) -> Self {
        std::ptr::null()
    }
}

impl<T> Fallback for *mut T {
    fn fallback(_: mq_status_t) -> Self {
        std::ptr::null_mut()
    }
}

impl Fallback for usize {
    fn fallback(_: mq_status_t) -> Self {
        0
    }
}

impl Fallback for u64 {
    fn fallback(_: mq_status_t) -> Self {
        0
    }
}

impl Fallback for u32 {
    fn fallback(_: mq_status_t) -> Self {
        0
    }
}

impl Fallback for () {
    fn fallback(_: mq_status_t) -> Self {}
}

/// The process that started libmq's threads; 0 until one was started.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Set in a forked child of the process that started libmq's threads.
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" {
    // POSIX; glibc and musl run the child handler in the child of every
    // fork() (also Python's os.fork and multiprocessing's fork start method).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> c_int;
}

/// The atfork child handler: one atomic store, async-signal-safe.
unsafe extern "C" fn mark_forked() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Records this process as the one whose threads libmq runs (at the start
/// of every client instance; the first call wins), and refuses a child of
/// it that the atfork handler did not mark (see the module doc).
pub(crate) fn claim_process() -> Result<(), Error> {
    static ATFORK: Once = Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to a static; it
        // stays valid for the life of the process (libmq is never unloaded
        // while its threads run). A failure (ENOMEM) leaves the pid check.
        if unsafe { pthread_atfork(None, None, Some(mark_forked)) } != 0 {
            log::warn!("pthread_atfork failed: a forked child is detected only by its pid");
        }
    });
    let pid = std::process::id();
    match OWNER.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(owner) if owner == pid => Ok(()),
        Err(_) => {
            FORKED.store(true, Ordering::Relaxed);
            Err(forked_error())
        }
    }
}

/// Whether this is a forked child of the process libmq's threads run in.
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

fn forked_error() -> Error {
    Error::new(
        MQ_ERR_FORKED,
        "this process was forked from the one that started libmq's threads; \
         create clients in the child only if the parent never did",
    )
}

/// A handle's mark that a call on it panicked. The panic may have left the
/// handle's state half-changed, so later calls on it fail with
/// `MQ_ERR_PANIC`, naming the first panic, instead of running on that
/// state; close and destroy still work, so the application can let it go
/// and make a new one.
#[derive(Default)]
pub(crate) struct Poison(OnceLock<String>);

/// A handle a panic poisons: producers and consumers.
pub(crate) trait Poisonable {
    /// The handle's mark.
    fn poison(&self) -> &Poison;
}

thread_local! {
    /// The mark of the handle the running export entered ([`handle`]),
    /// which [`boundary`] sets if the export panics.
    static ENTERED: Cell<*const Poison> = const { Cell::new(std::ptr::null()) };
}

/// The handle `*p` for a call on it (not for its close or destroy):
/// `MQ_ERR_NULL` naming `what` for NULL, `MQ_ERR_PANIC` once poisoned.
/// A panic in the rest of the export poisons it.
///
/// # Safety
///
/// As [`arg`]; and the handle outlives the export's call (the header's
/// rule: destroy is the last call on a handle and overlaps none).
pub(crate) unsafe fn handle<'a, T: Poisonable>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller's promise.
    let h = unsafe { arg(p, what) }?;
    if let Some(why) = h.poison().0.get() {
        return Err(Error::new(
            MQ_ERR_PANIC,
            format!(
                "this {what} is unusable since a call on it panicked ({why}); \
                 close and destroy it, and make a new one"
            ),
        ));
    }
    ENTERED.set(h.poison());
    Ok(h)
}

/// The body of every export (through [`ffi!`]): see the module doc.
pub(crate) fn boundary<R: Fallback>(
    check_fork: bool,
    fallback: Option<R>,
    body: impl FnOnce() -> Result<R, Error>,
) -> R {
    // An explicit fallback is a value (-1, 0), not a status.
    let records = R::RECORDS && fallback.is_none();
    let failed = |e: Error, fallback: Option<R>, records: bool| {
        let status = e.status;
        if records {
            record(e);
        }
        fallback.unwrap_or_else(|| R::fallback(status))
    };
    if check_fork && forked() {
        return failed(forked_error(), fallback, records);
    }
    // An export that calls another keeps its own entered handle.
    let outer = ENTERED.replace(std::ptr::null());
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let entered = ENTERED.replace(outer);
    match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => failed(e, fallback, records),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            // SAFETY: set by `handle` in this export's body, whose handle
            // outlives the call (its caller's promise).
            if let Some(poison) = unsafe { entered.as_ref() } {
                let _ = poison.0.set(what.clone());
            }
            failed(
                Error::new(MQ_ERR_PANIC, format!("libmq panicked: {what}")),
                fallback,
                true,
            )
        }
    }
}

/// `MQ_OK`, for bodies that end in success.
pub(crate) fn ok() -> Result<mq_status_t, Error> {
    Ok(MQ_OK)
}

/// A status from another export as a result: `MQ_OK` or the error it
/// recorded (its detail is this thread's last error already, and is kept).
pub(crate) fn status_result(status: mq_status_t) -> Result<mq_status_t, Error> {
    if status == MQ_OK {
        return ok();
    }
    Err(Error::new(status, crate::status::last_detail()))
}

/// A shared reference to `*p`, or `MQ_ERR_NULL` naming `what`.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` that nothing mutates while the
/// reference is used (the header's rule: a handle is not destroyed while
/// another call on it runs).
pub(crate) unsafe fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: non-NULL, and live and unaliased by the caller's promise.
    unsafe { p.as_ref() }.ok_or_else(|| Error::null(what))
}

/// An exclusive reference to `*p`, or `MQ_ERR_NULL` naming `what`.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` that no other call uses meanwhile
/// (the header says which objects are not shared between threads).
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: non-NULL, and live and unshared by the caller's promise.
    unsafe { p.as_mut() }.ok_or_else(|| Error::null(what))
}

/// A NUL-terminated UTF-8 string: `MQ_ERR_NULL` for NULL,
/// `MQ_ERR_INVALID_ARG` for bytes that are not UTF-8.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that stays unchanged
/// while the result is used.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Error::invalid(format!("{what} is not UTF-8 ({e})")))
}

/// Like [`text`], with NULL read as "not given".
///
/// # Safety
///
/// As for [`text`].
pub(crate) unsafe fn text_opt<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's promise, passed on.
        unsafe { text(p, what) }.map(Some)
    }
}

/// `len` bytes at `p`; NULL is allowed only with a length of 0.
///
/// # Safety
///
/// `p` is NULL or points to `len` readable bytes that stay unchanged while
/// the result is used.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL with `len` readable bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An out-parameter for an object the library hands out: checked for NULL
/// and set to NULL first, so that the caller sees NULL whenever the call
/// fails.
pub(crate) struct Out<T>(*mut *mut T);

impl<T> Out<T> {
    /// Checks `p` and writes NULL through it.
    ///
    /// # Safety
    ///
    /// `p` is NULL or points to writable storage for one pointer, which
    /// stays valid until the call returns.
    pub(crate) unsafe fn new(p: *mut *mut T, what: &str) -> Result<Out<T>, Error> {
        if p.is_null() {
            return Err(Error::null(what));
        }
        // SAFETY: non-NULL and writable by the caller's promise.
        unsafe { p.write(std::ptr::null_mut()) };
        Ok(Out(p))
    }

    /// Like [`Out::new`], with NULL meaning "the caller does not want it".
    ///
    /// # Safety
    ///
    /// As for [`Out::new`].
    pub(crate) unsafe fn optional(p: *mut *mut T) -> Option<Out<T>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Out::new(p, "") }.ok()
    }

    /// Hands `value` to the caller, who frees it with its `_free` or
    /// `_destroy`.
    pub(crate) fn set(self, value: T) {
        // SAFETY: checked non-NULL and writable in `new`, and the call
        // that made `self` has not returned.
        unsafe { self.0.write(Box::into_raw(Box::new(value))) };
    }
}

/// Writes a plain value through an out-pointer that may be NULL (then the
/// caller did not ask for it).
///
/// # Safety
///
/// `p` is NULL or points to writable storage for a `T`.
pub(crate) unsafe fn put<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: non-NULL and writable by the caller's promise.
        unsafe { p.write(value) };
    }
}

/// Takes back an object the library handed out, for `_free` and `_destroy`.
///
/// # Safety
///
/// `p` is NULL or was handed out by libmq as a `T` and not freed since; no
/// other call uses it now or later.
pub(crate) unsafe fn take<T>(p: *mut T) -> Option<Box<T>> {
    // SAFETY: made by `Box::into_raw` in `Out::set`, by the caller's promise.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}

/// Reads a C enum argument: `MQ_ERR_INVALID_ARG` unless `value` is one of
/// `allowed`, named in the error by `what`.
pub(crate) fn choice<T: Copy>(value: i32, allowed: &[(i32, T)], what: &str) -> Result<T, Error> {
    allowed
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|(v, _)| v.to_string()).collect();
            Error::invalid(format!("{what} {value} is not one of {}", names.join(", ")))
        })
}
