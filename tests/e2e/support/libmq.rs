//! libmq loaded as C programs load it: `dlopen` of the `libmq.so` of this
//! build (`target/<profile>/`, beside `mqd`) and `dlsym` of each function,
//! declared here by hand from `include/mq.h`, so that the end-to-end tests
//! drive the shipped library through its ABI, not the Rust crate behind it.
//! The daemon's package does not depend on libmq; cargo does not build it
//! for tests, so `make test` runs `cargo build -p mq-capi` first, and a
//! missing or stale library fails with that command in the message.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::OnceLock;

#[path = "../../../ffi/capi/tests/support/fresh_library.rs"]
pub(crate) mod fresh;

extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}

const RTLD_NOW: c_int = 2;

/// An opaque libmq handle (`mq_producer_t *`, ...).
pub type H = *mut c_void;
/// `mq_status_t`.
pub type Status = i32;

/// `mq_message_view_t`, as `mq.h` lays it out.
#[repr(C)]
#[derive(Debug)]
pub struct MessageView {
    pub topic: *const c_char,
    pub tags: *const c_char,
    pub keys: *const c_char,
    pub body: *const u8,
    pub body_len: usize,
    pub msg_id: *const c_char,
    pub offset_msg_id: *const c_char,
    pub broker_name: *const c_char,
    pub queue_id: i32,
    pub reconsume_times: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub born_host: *const c_char,
    pub store_host: *const c_char,
    pub flag: i32,
    pub sys_flag: i32,
    pub property_count: usize,
}

macro_rules! abi {
    ($($name:ident: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The functions of libmq the tests call.
        #[allow(non_snake_case)]
        pub struct Mq {
            $(pub $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Mq {
            fn load(lib: *mut c_void) -> Mq {
                Mq {
                    $($name: {
                        let name = CString::new(stringify!($name)).expect("a symbol name");
                        // SAFETY: a live handle and a NUL-terminated name.
                        let sym = unsafe { dlsym(lib, name.as_ptr()) };
                        assert!(!sym.is_null(), "libmq.so has no {}", stringify!($name));
                        // SAFETY: the symbol is the function mq.h declares
                        // with this signature.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(sym)
                        }
                    },)*
                }
            }
        }
    };
}

abi! {
    mq_last_error: fn() -> *const c_char;
    mq_config_new: fn(*mut H) -> Status;
    mq_config_set: fn(H, *const c_char, *const c_char) -> Status;
    mq_config_free: fn(H);
    mq_message_new: fn(*const c_char, *mut H) -> Status;
    mq_message_set_body: fn(H, *const u8, usize) -> Status;
    mq_message_set_tags: fn(H, *const c_char) -> Status;
    mq_message_set_keys: fn(H, *const c_char) -> Status;
    mq_message_set_property: fn(H, *const c_char, *const c_char) -> Status;
    mq_message_property: fn(H, *const c_char) -> *const c_char;
    mq_message_view: fn(H, *mut MessageView, usize) -> Status;
    mq_message_free: fn(H);
    mq_producer_new: fn(H, *mut H) -> Status;
    mq_producer_send: fn(H, H, i32, *mut H) -> Status;
    mq_producer_send_async: fn(H, H, u64) -> Status;
    mq_producer_poll: fn(H, i32, *mut H) -> Status;
    mq_producer_flush: fn(H, i32) -> Status;
    mq_producer_close: fn(H) -> Status;
    mq_producer_destroy: fn(H);
    mq_send_result_msg_id: fn(H) -> *const c_char;
    mq_send_result_status: fn(H) -> i32;
    mq_send_result_free: fn(H);
    mq_send_report_token: fn(H) -> u64;
    mq_send_report_status: fn(H, *mut *const c_char, *mut i32) -> Status;
    mq_send_report_result: fn(H) -> H;
    mq_send_report_free: fn(H);
    mq_txn_producer_new: fn(H, *mut H) -> Status;
    mq_txn_producer_send_half: fn(H, H, i32, *mut H) -> Status;
    mq_txn_end: fn(H, i32, i32) -> Status;
    mq_txn_free: fn(H);
    mq_txn_producer_poll_check: fn(H, i32, *mut H) -> Status;
    mq_txn_check_message: fn(H) -> H;
    mq_txn_check_answer: fn(H, i32) -> Status;
    mq_txn_producer_close: fn(H) -> Status;
    mq_txn_producer_destroy: fn(H);
    mq_push_consumer_new: fn(H, *mut H) -> Status;
    mq_push_consumer_subscribe: fn(H, *const c_char, *const c_char) -> Status;
    mq_push_consumer_start: fn(H) -> Status;
    mq_push_consumer_poll: fn(H, i32, *mut H) -> Status;
    mq_push_consumer_close: fn(H) -> Status;
    mq_push_consumer_destroy: fn(H);
    mq_batch_len: fn(H) -> usize;
    mq_batch_get: fn(H, usize) -> H;
    mq_batch_ack: fn(H, i32) -> Status;
    mq_batch_free: fn(H);
    mq_pull_consumer_new: fn(H, *mut H) -> Status;
    mq_pull_consumer_subscribe: fn(H, *const c_char, *const c_char) -> Status;
    mq_pull_consumer_poll: fn(H, i32, *mut H) -> Status;
    mq_pull_consumer_seek: fn(H, *const c_char, *const c_char, i32, i64) -> Status;
    mq_pull_consumer_commit: fn(H) -> Status;
    mq_pull_consumer_committed: fn(H, *const c_char, *const c_char, i32, *mut i64) -> Status;
    mq_pull_consumer_close: fn(H) -> Status;
    mq_pull_consumer_destroy: fn(H);
}

/// libmq, loaded once per test process (never unloaded: a Rust cdylib's
/// thread-local destructors make `dlclose` unsafe).
pub fn libmq() -> &'static Mq {
    static MQ: OnceLock<Mq> = OnceLock::new();
    MQ.get_or_init(|| {
        let mqd = Path::new(env!("CARGO_BIN_EXE_mqd"));
        let profile_dir = mqd.parent().expect("mqd is in target/<profile>/");
        let ffi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ffi");
        let path = fresh::fresh_library(profile_dir, &ffi);
        let c_path = CString::new(path.to_string_lossy().as_bytes()).expect("a path");
        // SAFETY: a NUL-terminated path; libmq runs no code at load that
        // could conflict with this process (no constructors but Rust's).
        let lib = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW) };
        if lib.is_null() {
            // SAFETY: dlerror's message after a failed dlopen.
            let why = unsafe { CStr::from_ptr(dlerror()) }.to_string_lossy();
            panic!("dlopen {}: {why}", path.display());
        }
        Mq::load(lib)
    })
}

/// A C string for a call.
pub fn cs(s: &str) -> CString {
    CString::new(s).expect("no NUL in a test string")
}

/// A C string libmq returned, copied (`None` for NULL).
pub fn text(p: *const c_char) -> Option<String> {
    // SAFETY: NULL or a NUL-terminated string valid for this call.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

impl Mq {
    /// Panics with the last error unless `status` is MQ_OK.
    #[track_caller]
    pub fn ok(&self, status: Status) {
        if status != 0 {
            // SAFETY: never NULL.
            let why = text(unsafe { (self.mq_last_error)() }).unwrap_or_default();
            panic!("libmq status {status}: {why}");
        }
    }

    /// A config of `pairs`; free it with `mq_config_free`.
    pub fn config(&self, pairs: &[(&str, &str)]) -> H {
        let mut cfg = std::ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated strings.
        unsafe {
            self.ok((self.mq_config_new)(&mut cfg));
            for (k, v) in pairs {
                self.ok((self.mq_config_set)(cfg, cs(k).as_ptr(), cs(v).as_ptr()));
            }
        }
        cfg
    }

    /// Every field of a received or built message.
    pub fn view(&self, m: H) -> MessageView {
        // SAFETY: a live message; the view is plain data written in full.
        unsafe {
            let mut v = std::mem::zeroed::<MessageView>();
            self.ok((self.mq_message_view)(
                m,
                &mut v,
                std::mem::size_of::<MessageView>(),
            ));
            v
        }
    }
}

/// What a test keeps of a received message after its batch is freed.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: Option<String>,
    pub tags: Option<String>,
    pub keys: Option<String>,
    pub offset_msg_id: Option<String>,
    pub broker_name: Option<String>,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub store_host: Option<String>,
}

impl MessageView {
    /// The fields a test checks, copied out of the message.
    pub fn copy(&self) -> Received {
        Received {
            topic: text(self.topic),
            tags: text(self.tags),
            keys: text(self.keys),
            offset_msg_id: text(self.offset_msg_id),
            broker_name: text(self.broker_name),
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            born_timestamp: self.born_timestamp,
            store_timestamp: self.store_timestamp,
            store_host: text(self.store_host),
        }
    }

    /// The body, copied.
    pub fn body(&self) -> Vec<u8> {
        if self.body.is_null() {
            return Vec::new();
        }
        // SAFETY: `body_len` bytes at `body`, valid while the message is.
        unsafe { std::slice::from_raw_parts(self.body, self.body_len) }.to_vec()
    }
}
