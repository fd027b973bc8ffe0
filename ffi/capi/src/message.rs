//! `mq_message_t`: one opaque type for messages the application builds (to
//! send; mutable, freed with `mq_message_free`) and messages it receives
//! (in a batch or a check-back; read-only, borrowed from their parent), and
//! `mq_message_view_t`, every field in one call.
//!
//! Strings handed out are NUL-terminated copies made on first read and kept
//! with the message (a text from the wire that contains a NUL is cut there);
//! bodies are (pointer, length), whole.

use std::ffi::{c_char, CString};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use mq_client::protocol::properties::keys;
use mq_client::{Message, MessageExt};

use crate::ffi::{arg, arg_mut, bytes, ok, put, take, text, text_opt, Out};
use crate::status::{mq_status_t, Error};

/// What only a received message has.
struct Received {
    msg_id: String,
    offset_msg_id: String,
    broker_name: String,
    queue_id: i32,
    queue_offset: i64,
    commit_log_offset: i64,
    sys_flag: i32,
    born_timestamp: i64,
    born_host: SocketAddr,
    store_timestamp: i64,
    store_host: SocketAddr,
    reconsume_times: i32,
}

/// The C strings of a message, made on first read.
struct Strings {
    topic: CString,
    tags: Option<CString>,
    keys: Option<CString>,
    msg_id: Option<CString>,
    offset_msg_id: Option<CString>,
    broker_name: Option<CString>,
    born_host: Option<CString>,
    store_host: Option<CString>,
    properties: Vec<(CString, CString)>,
}

/// A message: built by the application (`mq_message_new`; mutable, freed
/// with `mq_message_free`) or received (from `mq_batch_get` or
/// `mq_txn_check_message`; read-only, owned by its batch or check).
///
/// Thread: not synchronized. A built message may be read by several threads
/// at once (several sends of it), but not changed while another thread
/// reads or sends it. Received messages are never changed.
pub struct mq_message_t {
    /// Shared with the async sends of it still in flight: a setter copies
    /// it first if one is (`Arc::make_mut`), so a send never sees a change.
    msg: Arc<Message>,
    /// Set for received messages, which are read-only and not freeable.
    received: Option<Box<Received>>,
    strings: OnceLock<Strings>,
}

/// Every field of a message at once: one call instead of one per field
/// (bindings cross the FFI once per message). Filled by `mq_message_view`.
///
/// Pointers borrow from the message: valid until it is changed or freed
/// (for a received message, until its batch or check is acked or freed).
/// Strings are NUL-terminated; NULL means "none". Fields are only ever
/// appended in later versions; pass `sizeof(mq_message_view_t)` so that an
/// older program gets the fields it knows and no more.
#[repr(C)]
pub struct mq_message_view_t {
    /// Topic (the original topic for a redelivered message).
    pub topic: *const c_char,
    /// Tag, or NULL.
    pub tags: *const c_char,
    /// Keys, space-separated, or NULL.
    pub keys: *const c_char,
    /// Body bytes (may contain NUL), NULL when `body_len` is 0.
    pub body: *const u8,
    /// Body length in bytes.
    pub body_len: usize,
    /// The message id (UNIQ_KEY, else the offset id); NULL for a built
    /// message.
    pub msg_id: *const c_char,
    /// The broker's offset message id; NULL for a built message.
    pub offset_msg_id: *const c_char,
    /// The broker that stored it; NULL for a built message.
    pub broker_name: *const c_char,
    /// Queue id; -1 for a built message.
    pub queue_id: i32,
    /// Deliveries before this one (0 on the first delivery).
    pub reconsume_times: i32,
    /// Offset in its queue; -1 for a built message.
    pub queue_offset: i64,
    /// Offset in the broker's CommitLog; -1 for a built message.
    pub commit_log_offset: i64,
    /// When the producer made it (ms since the epoch); 0 for a built message.
    pub born_timestamp: i64,
    /// When the broker stored it (ms since the epoch); 0 for a built message.
    pub store_timestamp: i64,
    /// The producer's address (`ip:port`); NULL for a built message.
    pub born_host: *const c_char,
    /// The broker's address (`ip:port`); NULL for a built message.
    pub store_host: *const c_char,
    /// The user flag.
    pub flag: i32,
    /// The system flag (compression, transaction bits); 0 for a built message.
    pub sys_flag: i32,
    /// Number of properties (for `mq_message_property_at`).
    pub property_count: usize,
}

/// A C string of `s`, cut at a NUL inside it.
fn c_string(s: &str) -> CString {
    let cut = s.find('\0').map_or(s, |n| &s[..n]);
    CString::new(cut).unwrap_or_default()
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

impl mq_message_t {
    /// A received message, owned by its batch or check.
    pub(crate) fn received(m: MessageExt) -> mq_message_t {
        let received = Received {
            msg_id: m.msg_id,
            offset_msg_id: m.offset_msg_id,
            broker_name: m.broker_name,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commit_log_offset: m.commit_log_offset,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            store_timestamp: m.store_timestamp,
            store_host: m.store_host,
            reconsume_times: m.reconsume_times,
        };
        mq_message_t {
            msg: Arc::new(Message {
                topic: m.topic,
                flag: m.flag,
                properties: m.properties,
                body: m.body,
            }),
            received: Some(Box::new(received)),
            strings: OnceLock::new(),
        }
    }

    /// The message to send.
    pub(crate) fn message(&self) -> &Message {
        &self.msg
    }

    /// The message to send in the background: shared, not copied.
    pub(crate) fn shared(&self) -> Arc<Message> {
        Arc::clone(&self.msg)
    }

    fn strings(&self) -> &Strings {
        self.strings.get_or_init(|| {
            let p = &self.msg.properties;
            let r = self.received.as_deref();
            Strings {
                topic: c_string(&self.msg.topic),
                tags: p.get(keys::TAGS).map(|s| c_string(s)),
                keys: p.get(keys::KEYS).map(|s| c_string(s)),
                msg_id: r.map(|r| c_string(&r.msg_id)),
                offset_msg_id: r.map(|r| c_string(&r.offset_msg_id)),
                broker_name: r.map(|r| c_string(&r.broker_name)),
                born_host: r.map(|r| c_string(&r.born_host.to_string())),
                store_host: r.map(|r| c_string(&r.store_host.to_string())),
                properties: p.iter().map(|(k, v)| (c_string(k), c_string(v))).collect(),
            }
        })
    }

    /// For setters: the message, unless it is a received one.
    fn built(&mut self) -> Result<&mut Message, Error> {
        if self.received.is_some() {
            return Err(Error::state("a received message cannot be changed"));
        }
        // The strings handed out so far describe the old contents.
        self.strings = OnceLock::new();
        Ok(Arc::make_mut(&mut self.msg))
    }

    fn received_part(&self) -> Result<&Received, Error> {
        self.received
            .as_deref()
            .ok_or_else(|| Error::state("a built message has no broker fields"))
    }

    fn view(&self) -> mq_message_view_t {
        let s = self.strings();
        let r = self.received.as_deref();
        mq_message_view_t {
            topic: s.topic.as_ptr(),
            tags: ptr(&s.tags),
            keys: ptr(&s.keys),
            body: if self.msg.body.is_empty() {
                std::ptr::null()
            } else {
                self.msg.body.as_ptr()
            },
            body_len: self.msg.body.len(),
            msg_id: ptr(&s.msg_id),
            offset_msg_id: ptr(&s.offset_msg_id),
            broker_name: ptr(&s.broker_name),
            queue_id: r.map_or(-1, |r| r.queue_id),
            reconsume_times: r.map_or(0, |r| r.reconsume_times),
            queue_offset: r.map_or(-1, |r| r.queue_offset),
            commit_log_offset: r.map_or(-1, |r| r.commit_log_offset),
            born_timestamp: r.map_or(0, |r| r.born_timestamp),
            store_timestamp: r.map_or(0, |r| r.store_timestamp),
            born_host: ptr(&s.born_host),
            store_host: ptr(&s.store_host),
            flag: self.msg.flag,
            sys_flag: r.map_or(0, |r| r.sys_flag),
            property_count: s.properties.len(),
        }
    }
}

/// Creates a message for `topic` with an empty body (a body is required
/// before sending).
///
/// Ownership: `*out` is the caller's; free it with `mq_message_free`. Sends
/// copy what they need, so it may be freed or reused as soon as a send
/// returns (also `mq_producer_send_async`).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (not UTF-8, or empty).
///
/// # Safety
///
/// `topic` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_new(
    topic: *const c_char,
    out: *mut *mut mq_message_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, topic) = unsafe { (Out::new(out, "out")?, text(topic, "topic")?) };
        if topic.is_empty() {
            return Err(Error::invalid("topic is empty"));
        }
        out.set(mq_message_t {
            msg: Arc::new(Message::new(topic, Vec::new())),
            received: None,
            strings: OnceLock::new(),
        });
        ok()
    }
}

/// Sets the body: `len` bytes at `body`, copied (NUL bytes included).
/// `body` may be NULL only when `len` is 0.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (a received message).
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses meanwhile; `body` is
/// NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_body(
    m: *mut mq_message_t,
    body: *const u8,
    len: usize,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (m, body) = unsafe { (arg_mut(m, "message")?, bytes(body, len, "body")?) };
        m.built()?.body = body.to_vec();
        ok()
    }
}

/// Sets a property of a built message, or removes it when `value` is NULL;
/// `what` names it in errors.
///
/// # Safety
///
/// As for the setters that call it.
unsafe fn set_property(
    m: *mut mq_message_t,
    name: &str,
    value: *const c_char,
    what: &str,
) -> Result<mq_status_t, Error> {
    // SAFETY: the caller's promises, passed on.
    let (m, value) = unsafe { (arg_mut(m, "message")?, text_opt(value, what)?) };
    let properties = &mut m.built()?.properties;
    match value {
        Some(value) => properties.insert(name.to_owned(), value.to_owned()),
        None => properties.remove(name),
    };
    ok()
}

/// Sets the tag (one word, used by consumers' tag expressions), or removes
/// it when `tags` is NULL. Copied.
///
/// Errors: `MQ_ERR_NULL` (`m`), `MQ_ERR_INVALID_ARG` (not UTF-8),
/// `MQ_ERR_STATE` (a received message).
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses meanwhile; `tags` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_tags(
    m: *mut mq_message_t,
    tags: *const c_char,
) -> mq_status_t {
    // SAFETY: the caller's promises, passed on.
    ffi!(unsafe { set_property(m, keys::TAGS, tags, "tags") })
}

/// Sets the keys the broker indexes, separated by spaces (`"order-1
/// user-7"`), or removes them when `keys` is NULL. Copied.
///
/// Errors: as `mq_message_set_tags`.
///
/// # Safety
///
/// As for `mq_message_set_tags`.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_keys(
    m: *mut mq_message_t,
    keys: *const c_char,
) -> mq_status_t {
    // SAFETY: the caller's promises, passed on.
    ffi!(unsafe { set_property(m, keys::KEYS, keys, "keys") })
}

/// Sets a user property, replacing an earlier value, or removes it when
/// `value` is NULL. Both copied.
///
/// Errors: as `mq_message_set_tags`; `MQ_ERR_NULL` for a NULL name,
/// `MQ_ERR_INVALID_ARG` for an empty one.
///
/// # Safety
///
/// As for `mq_message_set_tags`; `name` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_property(
    m: *mut mq_message_t,
    name: *const c_char,
    value: *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let name = unsafe { text(name, "name") }?;
        if name.is_empty() {
            return Err(Error::invalid("property name is empty"));
        }
        // SAFETY: the caller's promises, passed on.
        unsafe { set_property(m, name, value, "value") }
    }
}

/// Sets the user flag (an `int32_t` the broker stores and consumers read
/// back, as RocketMQ's `Message.setFlag`; 0 by default).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (a received message).
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses meanwhile.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_flag(m: *mut mq_message_t, flag: i32) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg_mut(m, "message") }?.built()?.flag = flag;
        ok()
    }
}

/// Delays delivery by RocketMQ delay level `level`: 1 = 1 s, 2 = 5 s, 3 =
/// 10 s, ... 18 = 2 h (the broker's `messageDelayLevel`); 0 removes the
/// delay.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (outside 0..=18),
/// `MQ_ERR_STATE` (a received message).
///
/// # Safety
///
/// `m` is NULL or a live message no other thread uses meanwhile.
#[no_mangle]
pub unsafe extern "C" fn mq_message_set_delay_level(
    m: *mut mq_message_t,
    level: i32,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg_mut(m, "message") }?;
        if !(0..=18).contains(&level) {
            return Err(Error::invalid(format!("delay level {level} is not in 0..=18")));
        }
        let msg = m.built()?;
        if level == 0 {
            msg.properties.remove(keys::DELAY);
        } else {
            msg.properties.insert(keys::DELAY.into(), level.to_string());
        }
        ok()
    }
}

/// The topic; NULL when `m` is NULL.
///
/// Ownership: borrowed from `m` (valid until it is changed or freed; for a
/// received message, until its batch or check is acked or freed).
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_topic(m: *const mq_message_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(m.strings().topic.as_ptr())
    }
}

/// The tag, or NULL when there is none (or `m` is NULL).
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_tags(m: *const mq_message_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(ptr(&m.strings().tags))
    }
}

/// The keys (space-separated), or NULL when there are none.
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_keys(m: *const mq_message_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(ptr(&m.strings().keys))
    }
}

/// The body: its bytes (NULL when empty) and, through `len` (may be NULL),
/// its length. The body may contain NUL bytes; use the length.
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_body(m: *const mq_message_t, len: *mut usize) -> *const u8 {
    ffi! {
        // SAFETY: the caller's promises.
        unsafe { put(len, 0) };
        let m = unsafe { arg(m, "message") }?;
        let body = &m.msg.body;
        // SAFETY: as above.
        unsafe { put(len, body.len()) };
        Ok(if body.is_empty() { std::ptr::null() } else { body.as_ptr() })
    }
}

/// The value of property `name`, or NULL when it is not set.
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mq_message_property(
    m: *const mq_message_t,
    name: *const c_char,
) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promises.
        let (m, name) = unsafe { (arg(m, "message")?, text(name, "name")?) };
        let s = m.strings();
        Ok(s.properties
            .iter()
            .find(|(k, _)| k.to_bytes() == name.as_bytes())
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr()))
    }
}

/// The number of properties (user and system ones: TAGS, KEYS, UNIQ_KEY,
/// ...); 0 when `m` is NULL.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_property_count(m: *const mq_message_t) -> usize {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(m.msg.properties.len())
    }
}

/// Property number `i` (in name order, `0 <= i < count`): its name and
/// value through `name` and `value` (either may be NULL).
///
/// Ownership: as `mq_message_topic`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG` (`i` out of range).
///
/// # Safety
///
/// `m` is NULL or a live message; `name` and `value` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_property_at(
    m: *const mq_message_t,
    i: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        let props = &m.strings().properties;
        let (k, v) = props.get(i).ok_or_else(|| {
            Error::invalid(format!("property {i} of {}", props.len()))
        })?;
        // SAFETY: the caller's promises.
        unsafe {
            put(name, k.as_ptr());
            put(value, v.as_ptr());
        }
        ok()
    }
}

/// The message id (UNIQ_KEY, else the offset id) of a received message;
/// NULL for a built one.
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_id(m: *const mq_message_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(ptr(&m.strings().msg_id))
    }
}

/// The broker's offset message id of a received message; NULL for a built
/// one.
///
/// Ownership: as `mq_message_topic`.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_offset_id(m: *const mq_message_t) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(ptr(&m.strings().offset_msg_id))
    }
}

/// Where a received message is: its broker name, queue id and queue
/// offset (each out-pointer may be NULL).
///
/// Ownership: `*broker` as `mq_message_topic`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (a built message).
///
/// # Safety
///
/// `m` is NULL or a live message; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_queue(
    m: *const mq_message_t,
    broker: *mut *const c_char,
    queue_id: *mut i32,
    queue_offset: *mut i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        let r = m.received_part()?;
        // SAFETY: the caller's promises.
        unsafe {
            put(broker, ptr(&m.strings().broker_name));
            put(queue_id, r.queue_id);
            put(queue_offset, r.queue_offset);
        }
        ok()
    }
}

/// When a received message was made by its producer and stored by the
/// broker, in ms since the epoch (each out-pointer may be NULL).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (a built message).
///
/// # Safety
///
/// `m` is NULL or a live message; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_timestamps(
    m: *const mq_message_t,
    born_ms: *mut i64,
    store_ms: *mut i64,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let r = unsafe { arg(m, "message") }?.received_part()?;
        // SAFETY: the caller's promises.
        unsafe {
            put(born_ms, r.born_timestamp);
            put(store_ms, r.store_timestamp);
        }
        ok()
    }
}

/// The producer's and the broker's addresses (`"ip:port"`) of a received
/// message (each out-pointer may be NULL).
///
/// Ownership: as `mq_message_topic`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_STATE` (a built message).
///
/// # Safety
///
/// `m` is NULL or a live message; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_message_hosts(
    m: *const mq_message_t,
    born_host: *mut *const c_char,
    store_host: *mut *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        m.received_part()?;
        let s = m.strings();
        // SAFETY: the caller's promises.
        unsafe {
            put(born_host, ptr(&s.born_host));
            put(store_host, ptr(&s.store_host));
        }
        ok()
    }
}

/// How many times a received message was delivered before (0 the first
/// time, 1 after one LATER, ...); -1 for a built message or NULL.
///
/// # Safety
///
/// `m` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn mq_message_reconsume_times(m: *const mq_message_t) -> i32 {
    ffi! {
        or -1;
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        Ok(m.received.as_deref().map_or(-1, |r| r.reconsume_times))
    }
}

/// Fills `*out` with every field of `m` (see `mq_message_view_t`), at most
/// `out_size` bytes of it: pass `sizeof(mq_message_view_t)`.
///
/// Ownership: the pointers in `*out` borrow from `m`, as
/// `mq_message_topic`'s result does.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `m` is NULL or a live message; `out` is NULL or points to `out_size`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mq_message_view(
    m: *const mq_message_t,
    out: *mut mq_message_view_t,
    out_size: usize,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let m = unsafe { arg(m, "message") }?;
        if out.is_null() {
            return Err(Error::null("out"));
        }
        let view = m.view();
        let n = out_size.min(std::mem::size_of::<mq_message_view_t>());
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

/// Frees a message made with `mq_message_new`. NULL is a no-op, and so is a
/// received message (it belongs to its batch or check, which frees it).
///
/// # Safety
///
/// `m` is NULL, a received message, or a built message not freed before
/// and not used afterwards (by this or any thread).
#[no_mangle]
pub unsafe extern "C" fn mq_message_free(m: *mut mq_message_t) {
    ffi! {
        // SAFETY: the caller's promise: NULL or live.
        let received = unsafe { m.as_ref() }.is_some_and(|m| m.received.is_some());
        if received {
            // Its batch or check frees it.
            return Ok(());
        }
        // SAFETY: a built message from `mq_message_new`, by the caller's promise.
        drop(unsafe { take(m) });
        Ok(())
    }
}

/// Received messages by value, for the tests.
#[cfg(test)]
pub(crate) fn for_test(
    properties: std::collections::BTreeMap<String, String>,
    body: &[u8],
) -> MessageExt {
    let addr: SocketAddr = "127.0.0.1:10911".parse().expect("an address");
    MessageExt {
        msg_id: "ID".into(),
        offset_msg_id: "OFFSETID".into(),
        topic: "T".into(),
        broker_name: "b".into(),
        queue_id: 2,
        queue_offset: 7,
        commit_log_offset: 100,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: addr,
        store_timestamp: 2,
        store_host: addr,
        reconsume_times: 1,
        properties,
        body: body.to_vec(),
    }
}
