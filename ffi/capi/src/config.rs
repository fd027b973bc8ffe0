//! `mq_config_t`: settings as string key/value pairs. Every key is checked
//! when it is set (unknown key or bad value: `MQ_ERR_CONFIG`, naming the
//! key), so a Python dict or a Go map passes straight through and options
//! need no new symbols. Every `_new` copies what it needs; the caller frees
//! the config whatever happens.

use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::time::Duration;

use mq_client::protocol::body::MessageModel;
use mq_client::{
    ClientConfig, ConsumeFrom, Credentials, ProducerConfig, PullConsumerConfig, PushConsumerConfig,
};

use crate::ffi::{arg, arg_mut, ok, take, text, Out};
use crate::status::{mq_status_t, Error, MQ_ERR_CONFIG};

/// What a key's value must be.
#[derive(Clone, Copy)]
enum Kind {
    /// Any text (non-empty).
    Text,
    /// A whole number of at least `min`.
    Count { min: u64 },
    /// Milliseconds, 0 or more.
    Millis,
    /// `true`/`false` (also `1`/`0`).
    Flag,
    /// `clustering` or `broadcasting`.
    Model,
    /// `last`, `first` or `timestamp:<ms>`.
    From,
}

/// Every key: its name, its RocketMQ (Java) alias, and its kind.
const KEYS: &[(&str, &str, Kind)] = &[
    // The client instance.
    ("namesrv_addr", "namesrvAddr", Kind::Text),
    ("instance_name", "instanceName", Kind::Text),
    ("client_ip", "clientIP", Kind::Text),
    ("request_timeout_ms", "", Kind::Millis),
    ("executor_threads", "", Kind::Count { min: 1 }),
    // Signing for brokers with RocketMQ's plain ACL (both or neither).
    ("access_key", "accessKey", Kind::Text),
    ("secret_key", "secretKey", Kind::Text),
    (
        "poll_name_server_interval_ms",
        "pollNameServerInterval",
        Kind::Millis,
    ),
    (
        "heartbeat_broker_interval_ms",
        "heartbeatBrokerInterval",
        Kind::Millis,
    ),
    (
        "persist_consumer_offset_interval_ms",
        "persistConsumerOffsetInterval",
        Kind::Millis,
    ),
    // Producers and consumers.
    ("group", "groupName", Kind::Text),
    ("close_timeout_ms", "", Kind::Millis),
    // Producers.
    ("send_timeout_ms", "sendMsgTimeout", Kind::Millis),
    (
        "retry_times_when_send_failed",
        "retryTimesWhenSendFailed",
        Kind::Count { min: 0 },
    ),
    (
        "retry_times_when_send_async_failed",
        "retryTimesWhenSendAsyncFailed",
        Kind::Count { min: 0 },
    ),
    (
        "compress_msg_body_over",
        "compressMsgBodyOverHowmuch",
        Kind::Count { min: 0 },
    ),
    ("max_message_size", "maxMessageSize", Kind::Count { min: 1 }),
    (
        "default_topic_queue_nums",
        "defaultTopicQueueNums",
        Kind::Count { min: 1 },
    ),
    ("latency_fault_enable", "sendLatencyFaultEnable", Kind::Flag),
    ("max_inflight_async", "", Kind::Count { min: 1 }),
    ("txn_check_timeout_ms", "", Kind::Millis),
    // Consumers.
    ("message_model", "messageModel", Kind::Model),
    ("consume_from", "consumeFromWhere", Kind::From),
    ("orderly", "", Kind::Flag),
    (
        "consume_threads",
        "consumeThreadMax",
        Kind::Count { min: 1 },
    ),
    (
        "consume_batch_max_size",
        "consumeMessageBatchMaxSize",
        Kind::Count { min: 1 },
    ),
    ("pull_batch_size", "pullBatchSize", Kind::Count { min: 1 }),
    (
        "pull_threshold_for_queue",
        "pullThresholdForQueue",
        Kind::Count { min: 1 },
    ),
    (
        "consume_concurrently_max_span",
        "consumeConcurrentlyMaxSpan",
        Kind::Count { min: 1 },
    ),
    (
        "max_reconsume_times",
        "maxReconsumeTimes",
        Kind::Count { min: 0 },
    ),
    ("consume_timeout_ms", "", Kind::Millis),
    ("auto_commit", "autoCommit", Kind::Flag),
    (
        "auto_commit_interval_ms",
        "autoCommitIntervalMillis",
        Kind::Millis,
    ),
    ("offset_dir", "", Kind::Text),
];

/// A configuration: key/value pairs, each checked when set.
///
/// Thread: not synchronized; set keys from one thread at a time (reading
/// it in several `_new` calls at once is fine).
pub struct mq_config_t {
    /// Canonical key → value (a C string, for `mq_config_get`).
    entries: BTreeMap<&'static str, CString>,
}

/// Settings the capi layer adds to the client's.
pub(crate) struct Extra {
    /// Async sends and unpolled reports a producer allows (10000).
    pub(crate) max_inflight_async: usize,
    /// How long close waits for in-flight sends, un-acked batches (30 s).
    pub(crate) close_timeout: Duration,
    /// How long a push batch may stay un-acked before it counts as LATER
    /// (15 min, Java's consumeTimeout).
    pub(crate) consume_timeout: Duration,
    /// How long a check-back waits for its answer before UNKNOWN (5 s).
    pub(crate) txn_check_timeout: Duration,
}

fn find(key: &str) -> Option<(&'static str, Kind)> {
    KEYS.iter()
        .find(|(name, alias, _)| *name == key || (!alias.is_empty() && *alias == key))
        .map(|(name, _, kind)| (*name, *kind))
}

fn config_error(key: &str, why: impl std::fmt::Display) -> Error {
    Error::new(MQ_ERR_CONFIG, format!("config key {key:?}: {why}"))
}

fn parse_flag(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_model(v: &str) -> Option<MessageModel> {
    match v.to_ascii_lowercase().as_str() {
        "clustering" => Some(MessageModel::Clustering),
        "broadcasting" => Some(MessageModel::Broadcasting),
        _ => None,
    }
}

fn parse_from(v: &str) -> Option<ConsumeFrom> {
    let lower = v.to_ascii_lowercase();
    match lower.as_str() {
        "last" | "consume_from_last_offset" => Some(ConsumeFrom::LastOffset),
        "first" | "consume_from_first_offset" => Some(ConsumeFrom::FirstOffset),
        _ => lower
            .strip_prefix("timestamp:")
            .and_then(|ms| ms.parse::<i64>().ok())
            .map(ConsumeFrom::Timestamp),
    }
}

/// Checks `value` against `kind`; the reason when it does not fit.
fn check(kind: Kind, value: &str) -> Result<(), String> {
    let fits = match kind {
        Kind::Text => !value.is_empty(),
        Kind::Count { min } => value
            .parse::<u64>()
            .is_ok_and(|n| n >= min && n <= u32::MAX as u64),
        Kind::Millis => value.parse::<u64>().is_ok(),
        Kind::Flag => parse_flag(value).is_some(),
        Kind::Model => parse_model(value).is_some(),
        Kind::From => parse_from(value).is_some(),
    };
    if fits {
        return Ok(());
    }
    Err(match kind {
        Kind::Text => "must not be empty".into(),
        Kind::Count { min } => format!("{value:?} is not a whole number from {min} to 4294967295"),
        Kind::Millis => format!("{value:?} is not a number of milliseconds"),
        Kind::Flag => format!("{value:?} is not true or false"),
        Kind::Model => format!("{value:?} is not clustering or broadcasting"),
        Kind::From => format!("{value:?} is not last, first or timestamp:<ms>"),
    })
}

impl mq_config_t {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).and_then(|v| v.to_str().ok())
    }

    /// A count key's value, or `default`. Values were checked when set.
    fn count(&self, key: &str, default: u64) -> u64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn usize(&self, key: &str, default: usize) -> usize {
        usize::try_from(self.count(key, default as u64)).unwrap_or(default)
    }

    fn u32(&self, key: &str, default: u32) -> u32 {
        u32::try_from(self.count(key, u64::from(default))).unwrap_or(default)
    }

    fn millis(&self, key: &str, default: Duration) -> Duration {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .map_or(default, Duration::from_millis)
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(parse_flag).unwrap_or(default)
    }

    /// The client instance's settings; `namesrv_addr` is required.
    pub(crate) fn client(&self) -> Result<ClientConfig, Error> {
        let namesrv = self
            .get("namesrv_addr")
            .ok_or_else(|| config_error("namesrv_addr", "is required"))?;
        let mut c = ClientConfig::new(namesrv);
        if let Some(name) = self.get("instance_name") {
            c.instance_name = name.to_owned();
        }
        if let Some(ip) = self.get("client_ip") {
            c.client_ip = ip.to_owned();
        }
        c.request_timeout = self.millis("request_timeout_ms", c.request_timeout);
        c.executor_threads = self.usize("executor_threads", c.executor_threads);
        c.poll_name_server_interval =
            self.millis("poll_name_server_interval_ms", c.poll_name_server_interval);
        c.heartbeat_broker_interval =
            self.millis("heartbeat_broker_interval_ms", c.heartbeat_broker_interval);
        c.persist_consumer_offset_interval = self.millis(
            "persist_consumer_offset_interval_ms",
            c.persist_consumer_offset_interval,
        );
        c.credentials = match (self.get("access_key"), self.get("secret_key")) {
            (None, None) => None,
            (Some(ak), Some(sk)) => Some(Credentials::new(ak, sk)),
            (Some(_), None) => {
                return Err(config_error("secret_key", "is required with access_key"))
            }
            (None, Some(_)) => {
                return Err(config_error("access_key", "is required with secret_key"))
            }
        };
        Ok(c)
    }

    fn group(&self) -> Result<&str, Error> {
        self.get("group")
            .ok_or_else(|| config_error("group", "is required"))
    }

    /// A producer's settings; `group` is required.
    pub(crate) fn producer(&self) -> Result<ProducerConfig, Error> {
        let mut p = ProducerConfig::new(self.group()?);
        p.send_timeout = self.millis("send_timeout_ms", p.send_timeout);
        p.retry_times_when_send_failed = self.u32(
            "retry_times_when_send_failed",
            p.retry_times_when_send_failed,
        );
        p.retry_times_when_send_async_failed = self.u32(
            "retry_times_when_send_async_failed",
            p.retry_times_when_send_async_failed,
        );
        p.compress_msg_body_over = self.usize("compress_msg_body_over", p.compress_msg_body_over);
        p.max_message_size = self.usize("max_message_size", p.max_message_size);
        p.default_topic_queue_nums = i32::try_from(self.count(
            "default_topic_queue_nums",
            p.default_topic_queue_nums as u64,
        ))
        .map_err(|e| config_error("default_topic_queue_nums", e))?;
        p.latency_fault_enable = self.flag("latency_fault_enable", p.latency_fault_enable);
        Ok(p)
    }

    fn model(&self, default: MessageModel) -> MessageModel {
        self.get("message_model")
            .and_then(parse_model)
            .unwrap_or(default)
    }

    fn from(&self, default: ConsumeFrom) -> ConsumeFrom {
        self.get("consume_from")
            .and_then(parse_from)
            .unwrap_or(default)
    }

    fn pull_batch_size(&self, default: i32) -> Result<i32, Error> {
        i32::try_from(self.count("pull_batch_size", default as u64))
            .map_err(|e| config_error("pull_batch_size", e))
    }

    /// A push consumer's settings; `group` is required.
    pub(crate) fn push_consumer(&self) -> Result<PushConsumerConfig, Error> {
        let mut c = PushConsumerConfig::new(self.group()?);
        c.message_model = self.model(c.message_model);
        c.consume_from = self.from(c.consume_from);
        c.orderly = self.flag("orderly", c.orderly);
        c.consume_threads = self.usize("consume_threads", c.consume_threads);
        c.consume_batch_max_size = self.usize("consume_batch_max_size", c.consume_batch_max_size);
        c.pull_batch_size = self.pull_batch_size(c.pull_batch_size)?;
        c.pull_threshold_for_queue =
            self.usize("pull_threshold_for_queue", c.pull_threshold_for_queue);
        c.consume_concurrently_max_span = self.usize(
            "consume_concurrently_max_span",
            c.consume_concurrently_max_span,
        );
        c.max_reconsume_times =
            i32::try_from(self.count("max_reconsume_times", c.max_reconsume_times as u64))
                .map_err(|e| config_error("max_reconsume_times", e))?;
        c.offset_dir = self.get("offset_dir").map(PathBuf::from);
        Ok(c)
    }

    /// A lite pull consumer's settings; `group` is required.
    pub(crate) fn pull_consumer(&self) -> Result<PullConsumerConfig, Error> {
        let mut c = PullConsumerConfig::new(self.group()?);
        c.message_model = self.model(c.message_model);
        c.consume_from = self.from(c.consume_from);
        c.auto_commit = self.flag("auto_commit", c.auto_commit);
        c.auto_commit_interval = self.millis("auto_commit_interval_ms", c.auto_commit_interval);
        c.pull_batch_size = self.pull_batch_size(c.pull_batch_size)?;
        c.offset_dir = self.get("offset_dir").map(PathBuf::from);
        Ok(c)
    }

    /// What the capi layer itself reads.
    pub(crate) fn extra(&self) -> Extra {
        Extra {
            max_inflight_async: self.usize("max_inflight_async", 10_000),
            close_timeout: self.millis("close_timeout_ms", Duration::from_secs(30)),
            consume_timeout: self.millis("consume_timeout_ms", Duration::from_secs(15 * 60)),
            txn_check_timeout: self.millis("txn_check_timeout_ms", Duration::from_secs(5)),
        }
    }
}

/// Creates an empty configuration.
///
/// Ownership: `*out` is the caller's; free it with `mq_config_free` (also
/// after passing it to a `_new`, which copies what it needs).
///
/// Errors: `MQ_ERR_NULL` when `out` is NULL.
///
/// # Safety
///
/// `out` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn mq_config_new(out: *mut *mut mq_config_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise on `out`.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(mq_config_t {
            entries: BTreeMap::new(),
        });
        ok()
    }
}

/// Sets `key` to `value`, replacing an earlier value. Keys are the Rust
/// client's field names (`namesrv_addr`, `group`, `send_timeout_ms`,
/// `consume_from`, ...; `README` lists them) or their Java names
/// (`namesrvAddr`, `sendMsgTimeout`, ...). Both strings are copied.
///
/// Values: text, whole numbers, milliseconds, `true`/`false`,
/// `clustering`/`broadcasting` (`message_model`), `last`/`first`/
/// `timestamp:<ms>` (`consume_from`); `namesrv_addr` takes several
/// addresses separated by `;`.
///
/// Errors: `MQ_ERR_NULL`; `MQ_ERR_INVALID_ARG` for a string that is not
/// UTF-8; `MQ_ERR_CONFIG` for an unknown key or a value that does not fit
/// (the last error names the key); the config is then unchanged.
///
/// # Safety
///
/// `cfg` is NULL or a live config not used by another thread meanwhile;
/// `key` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mq_config_set(
    cfg: *mut mq_config_t,
    key: *const c_char,
    value: *const c_char,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises on each pointer.
        let (cfg, key, value) = unsafe {
            (arg_mut(cfg, "cfg")?, text(key, "key")?, text(value, "value")?)
        };
        let (name, kind) = find(key).ok_or_else(|| config_error(key, "unknown key"))?;
        check(kind, value).map_err(|why| config_error(key, why))?;
        // A C string read from C: it has no NUL inside.
        let value = CString::new(value).map_err(|e| config_error(key, e))?;
        cfg.entries.insert(name, value);
        ok()
    }
}

/// The value set for `key` (or its Java alias), or NULL when it is not set
/// or `cfg`/`key` is NULL.
///
/// Ownership: borrowed from `cfg`; valid until `cfg` is changed or freed.
///
/// # Safety
///
/// `cfg` is NULL or a live config; `key` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mq_config_get(
    cfg: *const mq_config_t,
    key: *const c_char,
) -> *const c_char {
    ffi! {
        // SAFETY: the caller's promises.
        let (cfg, key) = unsafe { (arg(cfg, "cfg")?, text(key, "key")?) };
        let (name, _) = find(key).ok_or_else(|| config_error(key, "unknown key"))?;
        Ok(cfg.entries.get(name).map_or(std::ptr::null(), |v| v.as_ptr()))
    }
}

/// Frees a configuration. NULL is a no-op.
///
/// # Safety
///
/// `cfg` is NULL or a config from `mq_config_new`, not freed before and not
/// used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_config_free(cfg: *mut mq_config_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(cfg) });
        Ok(())
    }
}
