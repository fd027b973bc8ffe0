//! Typed custom headers (extFields) of the requests and responses (protocol
//! reference §4). Keys are Java's field names; values travel as strings.
//!
//! Decoding is liberal: numbers may carry surrounding spaces, booleans may be
//! `true`/`false` in any case or `1`/`0`. A missing required field is an error
//! that names the field, as Java's `the custom field <name> is null`. Unknown
//! fields (ACL's `AccessKey`, `Signature`, the `bname` most requests carry) are
//! ignored.

use thiserror::Error;

use super::frame::ExtFields;

/// Why a custom header could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A required field is missing.
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    /// A field holds a value of the wrong kind.
    #[error("the custom field <{field}> has an invalid value {value:?}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What it held.
        value: String,
    },
}

/// A value that travels as text in extFields.
pub trait ExtValue: Sized {
    /// Parses the text; `None` if it is not a valid value.
    fn parse_ext(text: &str) -> Option<Self>;
    /// The text Java would write.
    fn format_ext(&self) -> String;

    /// The required field `key`.
    fn required(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        Self::optional(ext, key)?.ok_or(HeaderError::Missing(key))
    }

    /// The optional field `key`.
    fn optional(ext: &ExtFields, key: &'static str) -> Result<Option<Self>, HeaderError> {
        match ext.get(key) {
            None => Ok(None),
            Some(text) => Self::parse_ext(text)
                .map(Some)
                .ok_or_else(|| HeaderError::Invalid {
                    field: key,
                    value: text.to_owned(),
                }),
        }
    }
}

impl ExtValue for String {
    fn parse_ext(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
    fn format_ext(&self) -> String {
        self.clone()
    }
}

macro_rules! ext_int {
    ($($ty:ty),*) => {$(
        impl ExtValue for $ty {
            fn parse_ext(text: &str) -> Option<Self> {
                let text = text.trim();
                // A JSON number from a lenient client may arrive as "4.0".
                text.parse().ok().or_else(|| {
                    text.strip_suffix(".0").and_then(|t| t.parse().ok())
                })
            }
            fn format_ext(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
ext_int!(i32, i64);

impl ExtValue for bool {
    fn parse_ext(text: &str) -> Option<Self> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
            t if t.eq_ignore_ascii_case("false") || t == "0" || t.is_empty() => Some(false),
            _ => None,
        }
    }
    fn format_ext(&self) -> String {
        self.to_string()
    }
}

/// A header that decodes from and encodes to extFields.
pub trait CommandHeader: Sized {
    /// Reads the header from a command's extFields.
    fn decode(ext: &ExtFields) -> Result<Self, HeaderError>;
    /// Writes the header into extFields (missing optional fields are left out).
    fn encode(&self, ext: &mut ExtFields);
}

macro_rules! field_type {
    (required, $ty:ty) => { $ty };
    (optional, $ty:ty) => { Option<$ty> };
}

macro_rules! field_decode {
    (required, $ty:ty, $ext:expr, $key:literal) => {
        <$ty as ExtValue>::required($ext, $key)?
    };
    (optional, $ty:ty, $ext:expr, $key:literal) => {
        <$ty as ExtValue>::optional($ext, $key)?
    };
}

macro_rules! field_encode {
    (required, $value:expr, $ext:expr, $key:literal) => {
        $ext.insert($key, &ExtValue::format_ext($value));
    };
    (optional, $value:expr, $ext:expr, $key:literal) => {
        if let Some(v) = $value {
            $ext.insert($key, &ExtValue::format_ext(v));
        }
    };
}

/// Declares a header struct with its extFields keys; `required` fields are
/// errors when missing, `optional` ones are `Option`s.
macro_rules! command_header {
    ($(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* $kind:ident $field:ident : $ty:ty = $key:literal ),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: field_type!($kind, $ty), )*
        }

        impl CommandHeader for $name {
            fn decode(ext: &ExtFields) -> Result<Self, HeaderError> {
                Ok($name { $( $field: field_decode!($kind, $ty, ext, $key), )* })
            }

            fn encode(&self, ext: &mut ExtFields) {
                $( field_encode!($kind, &self.$field, ext, $key); )*
            }
        }
    };
}

/// SEND_MESSAGE (10, long names), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE
/// (320, single-letter names) carry the same fields; this is both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    /// Producer group.
    pub producer_group: String,
    /// Target topic.
    pub topic: String,
    /// Template topic for auto-creation (normally `TBW102`).
    pub default_topic: String,
    /// Queue count for an auto-created topic.
    pub default_topic_queue_nums: i32,
    /// Target queue; negative lets the broker choose.
    pub queue_id: i32,
    /// [`super::message::sys_flag`] bits.
    pub sys_flag: i32,
    /// When the producer made the message (ms).
    pub born_timestamp: i64,
    /// User flag.
    pub flag: i32,
    /// The properties string.
    pub properties: Option<String>,
    /// Times consumed before (sends to a retry topic).
    pub reconsume_times: Option<i32>,
    /// Unit mode (unused by mq).
    pub unit_mode: Option<bool>,
    /// Whether the body is a batch.
    pub batch: Option<bool>,
    /// Maximum reconsume times (retry-topic sends).
    pub max_reconsume_times: Option<i32>,
    /// Broker name the client aimed at.
    pub broker_name: Option<String>,
}

/// (long name, single-letter name) of each SEND_MESSAGE field.
const SEND_KEYS: [(&str, &str); 14] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("unitMode", "k"),
    ("maxReconsumeTimes", "l"),
    ("batch", "m"),
    ("bname", "n"),
];

impl SendMessageRequestHeader {
    /// Reads the long-name form (SEND_MESSAGE, code 10).
    pub fn decode_v1(ext: &ExtFields) -> Result<Self, HeaderError> {
        Self::decode_with(ext, |i| SEND_KEYS[i].0)
    }

    /// Reads the single-letter form (codes 310, 320, 325). A `bname` key is
    /// accepted where `n` is missing.
    pub fn decode_v2(ext: &ExtFields) -> Result<Self, HeaderError> {
        let mut header = Self::decode_with(ext, |i| SEND_KEYS[i].1)?;
        if header.broker_name.is_none() {
            header.broker_name = String::optional(ext, "bname")?;
        }
        Ok(header)
    }

    fn decode_with(
        ext: &ExtFields,
        key: impl Fn(usize) -> &'static str,
    ) -> Result<Self, HeaderError> {
        Ok(SendMessageRequestHeader {
            producer_group: String::required(ext, key(0))?,
            topic: String::required(ext, key(1))?,
            default_topic: String::required(ext, key(2))?,
            default_topic_queue_nums: i32::required(ext, key(3))?,
            queue_id: i32::required(ext, key(4))?,
            sys_flag: i32::required(ext, key(5))?,
            born_timestamp: i64::required(ext, key(6))?,
            flag: i32::required(ext, key(7))?,
            properties: String::optional(ext, key(8))?,
            reconsume_times: i32::optional(ext, key(9))?,
            unit_mode: bool::optional(ext, key(10))?,
            max_reconsume_times: i32::optional(ext, key(11))?,
            batch: bool::optional(ext, key(12))?,
            broker_name: String::optional(ext, key(13))?,
        })
    }

    /// Writes the single-letter form, as Java producers send it.
    pub fn encode_v2(&self, ext: &mut ExtFields) {
        self.encode_with(ext, |i| SEND_KEYS[i].1);
    }

    /// Writes the long-name form.
    pub fn encode_v1(&self, ext: &mut ExtFields) {
        self.encode_with(ext, |i| SEND_KEYS[i].0);
    }

    fn encode_with(&self, ext: &mut ExtFields, key: impl Fn(usize) -> &'static str) {
        self.fields().encode_with(ext, key);
    }

    /// The header's fields, borrowed.
    pub fn fields(&self) -> SendMessageFields<'_> {
        SendMessageFields {
            producer_group: &self.producer_group,
            topic: &self.topic,
            default_topic: &self.default_topic,
            default_topic_queue_nums: self.default_topic_queue_nums,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            flag: self.flag,
            properties: self.properties.as_deref(),
            reconsume_times: self.reconsume_times,
            unit_mode: self.unit_mode,
            batch: self.batch,
            max_reconsume_times: self.max_reconsume_times,
            broker_name: self.broker_name.as_deref(),
        }
    }
}

/// [`SendMessageRequestHeader`]'s fields, borrowed: what a producer writes
/// for every send, without copying its strings into a header first.
#[derive(Debug, Clone, Copy)]
pub struct SendMessageFields<'a> {
    /// Producer group.
    pub producer_group: &'a str,
    /// Target topic.
    pub topic: &'a str,
    /// Template topic for auto-creation (normally `TBW102`).
    pub default_topic: &'a str,
    /// Queue count for an auto-created topic.
    pub default_topic_queue_nums: i32,
    /// Target queue; negative lets the broker choose.
    pub queue_id: i32,
    /// [`super::message::sys_flag`] bits.
    pub sys_flag: i32,
    /// When the producer made the message (ms).
    pub born_timestamp: i64,
    /// User flag.
    pub flag: i32,
    /// The properties string.
    pub properties: Option<&'a str>,
    /// Times consumed before (sends to a retry topic).
    pub reconsume_times: Option<i32>,
    /// Unit mode (unused by mq).
    pub unit_mode: Option<bool>,
    /// Whether the body is a batch.
    pub batch: Option<bool>,
    /// Maximum reconsume times (retry-topic sends).
    pub max_reconsume_times: Option<i32>,
    /// Broker name the client aimed at.
    pub broker_name: Option<&'a str>,
}

impl SendMessageFields<'_> {
    /// Writes the single-letter form, as Java producers send it.
    pub fn encode_v2(&self, ext: &mut ExtFields) {
        self.encode_with(ext, |i| SEND_KEYS[i].1);
    }

    fn encode_with(&self, ext: &mut ExtFields, key: impl Fn(usize) -> &'static str) {
        let text = self.producer_group.len()
            + self.topic.len()
            + self.default_topic.len()
            + self.properties.map_or(0, str::len)
            + self.broker_name.map_or(0, str::len)
            // Keys, numbers and flags, and a signature's fields (AccessKey,
            // Signature, SecurityToken) added after.
            + 192;
        ext.reserve(SEND_KEYS.len() + 3, text);
        let flag = |b: bool| if b { "true" } else { "false" };
        ext.insert(key(0), self.producer_group);
        ext.insert(key(1), self.topic);
        ext.insert(key(2), self.default_topic);
        ext.insert_display(key(3), self.default_topic_queue_nums);
        ext.insert_display(key(4), self.queue_id);
        ext.insert_display(key(5), self.sys_flag);
        ext.insert_display(key(6), self.born_timestamp);
        ext.insert_display(key(7), self.flag);
        if let Some(v) = self.properties {
            ext.insert(key(8), v);
        }
        if let Some(v) = self.reconsume_times {
            ext.insert_display(key(9), v);
        }
        ext.insert(key(10), flag(self.unit_mode.unwrap_or(false)));
        if let Some(v) = self.max_reconsume_times {
            ext.insert_display(key(11), v);
        }
        ext.insert(key(12), flag(self.batch.unwrap_or(false)));
        if let Some(v) = self.broker_name {
            ext.insert(key(13), v);
        }
    }
}

command_header! {
    /// Send response (codes 10, 310, 320).
    pub struct SendMessageResponseHeader {
        /// Offset message id(s), comma separated for a batch.
        required msg_id: String = "msgId",
        /// Queue used.
        required queue_id: i32 = "queueId",
        /// Queue offset of the (first) message.
        required queue_offset: i64 = "queueOffset",
        /// Transaction id of a half message.
        optional transaction_id: String = "transactionId",
        /// Broker region.
        optional msg_region: String = "MSG_REGION",
        /// Whether tracing is on.
        optional trace_on: String = "TRACE_ON",
    }
}

command_header! {
    /// PULL_MESSAGE (11).
    pub struct PullMessageRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// Logical offset to read from.
        required queue_offset: i64 = "queueOffset",
        /// Most messages wanted.
        required max_msg_nums: i32 = "maxMsgNums",
        /// PullSysFlag bits.
        required sys_flag: i32 = "sysFlag",
        /// The consumer's committed offset (with FLAG_COMMIT_OFFSET).
        required commit_offset: i64 = "commitOffset",
        /// Long-poll hold time.
        required suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        /// Subscription expression.
        optional subscription: String = "subscription",
        /// Subscription version.
        required sub_version: i64 = "subVersion",
        /// `TAG` or `SQL92`.
        optional expression_type: String = "expressionType",
    }
}

/// PullSysFlag bits.
pub mod pull_sys_flag {
    /// Store `commitOffset`.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// The broker may hold the request (long polling).
    pub const SUSPEND: i32 = 0x2;
    /// Use the subscription in the header.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Class filter (legacy).
    pub const CLASS_FILTER: i32 = 0x8;
    /// Lite pull consumer.
    pub const LITE_PULL: i32 = 0x10;
}

command_header! {
    /// PULL_MESSAGE response.
    pub struct PullMessageResponseHeader {
        /// Broker id to pull from next (0 = master).
        required suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        /// Offset of the next pull.
        required next_begin_offset: i64 = "nextBeginOffset",
        /// Queue minimum offset.
        required min_offset: i64 = "minOffset",
        /// Queue maximum offset.
        required max_offset: i64 = "maxOffset",
    }
}

command_header! {
    /// QUERY_CONSUMER_OFFSET (14).
    pub struct QueryConsumerOffsetRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15).
    pub struct UpdateConsumerOffsetRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// Offset to store.
        required commit_offset: i64 = "commitOffset",
    }
}

command_header! {
    /// A response carrying one offset (QUERY_CONSUMER_OFFSET, GET_MAX_OFFSET,
    /// GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP).
    pub struct OffsetResponseHeader {
        /// The offset.
        required offset: i64 = "offset",
    }
}

command_header! {
    /// GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32).
    pub struct TopicQueueRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29).
    pub struct SearchOffsetRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// Store time to look for (ms).
        required timestamp: i64 = "timestamp",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME response.
    pub struct EarliestMsgStoretimeResponseHeader {
        /// Store time (ms).
        required timestamp: i64 = "timestamp",
    }
}

command_header! {
    /// VIEW_MESSAGE_BY_ID (33).
    pub struct ViewMessageRequestHeader {
        /// CommitLog offset.
        required offset: i64 = "offset",
    }
}

command_header! {
    /// QUERY_MESSAGE (12).
    pub struct QueryMessageRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Key to look for.
        required key: String = "key",
        /// Most results.
        required max_num: i32 = "maxNum",
        /// Window start (ms).
        required begin_timestamp: i64 = "beginTimestamp",
        /// Window end (ms).
        required end_timestamp: i64 = "endTimestamp",
    }
}

command_header! {
    /// QUERY_MESSAGE response.
    pub struct QueryMessageResponseHeader {
        /// Last index update time.
        required index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        /// Last indexed CommitLog offset.
        required index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// UNREGISTER_CLIENT (35).
    pub struct UnregisterClientRequestHeader {
        /// Client id.
        required client_id: String = "clientID",
        /// Producer group leaving.
        optional producer_group: String = "producerGroup",
        /// Consumer group leaving.
        optional consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38), NOTIFY_CONSUMER_IDS_CHANGED (40),
    /// GET_CONSUMER_CONNECTION_LIST (203).
    pub struct ConsumerGroupRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36).
    pub struct ConsumerSendMsgBackRequestHeader {
        /// CommitLog offset of the original message.
        required offset: i64 = "offset",
        /// Consumer group.
        required group: String = "group",
        /// Delay level (0: broker decides, -1: DLQ).
        required delay_level: i32 = "delayLevel",
        /// Original message id.
        optional origin_msg_id: String = "originMsgId",
        /// Original topic.
        optional origin_topic: String = "originTopic",
        /// Unit mode.
        optional unit_mode: bool = "unitMode",
        /// Consumer's maximum reconsume times.
        optional max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

command_header! {
    /// END_TRANSACTION (37).
    pub struct EndTransactionRequestHeader {
        /// Producer group.
        required producer_group: String = "producerGroup",
        /// Half message's queue offset.
        required tran_state_table_offset: i64 = "tranStateTableOffset",
        /// Half message's CommitLog offset.
        required commit_log_offset: i64 = "commitLogOffset",
        /// 0 unknown, 8 commit, 12 rollback.
        required commit_or_rollback: i32 = "commitOrRollback",
        /// Answering a check-back.
        optional from_transaction_check: bool = "fromTransactionCheck",
        /// Client unique id of the half message.
        required msg_id: String = "msgId",
        /// Transaction id.
        optional transaction_id: String = "transactionId",
    }
}

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17).
    pub struct CreateTopicRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Template topic.
        required default_topic: String = "defaultTopic",
        /// Readable queues.
        required read_queue_nums: i32 = "readQueueNums",
        /// Writable queues.
        required write_queue_nums: i32 = "writeQueueNums",
        /// Permission bits.
        required perm: i32 = "perm",
        /// `SINGLE_TAG` or `MULTI_TAG`.
        required topic_filter_type: String = "topicFilterType",
        /// Topic system flag.
        optional topic_sys_flag: i32 = "topicSysFlag",
        /// Ordered topic.
        optional order: bool = "order",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER (215), DELETE_TOPIC_IN_NAMESRV (216),
    /// GET_TOPIC_STATS_INFO (202).
    pub struct TopicRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Only this cluster's brokers (216).
        optional cluster_name: String = "clusterName",
    }
}

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105).
    pub struct GetRouteInfoRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Ask for standard JSON (quoted numeric keys).
        optional accept_standard_json_only: bool = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// REGISTER_BROKER (103).
    pub struct RegisterBrokerRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
        /// `ip:port` of the broker.
        required broker_addr: String = "brokerAddr",
        /// Cluster name.
        required cluster_name: String = "clusterName",
        /// `ip:port` of its HA service.
        required ha_server_addr: String = "haServerAddr",
        /// 0 = master.
        required broker_id: i64 = "brokerId",
        /// Body compressed.
        optional compressed: bool = "compressed",
        /// CRC32 of the body (0: not checked).
        optional body_crc32: i32 = "bodyCrc32",
    }
}

command_header! {
    /// REGISTER_BROKER response.
    pub struct RegisterBrokerResponseHeader {
        /// The master's HA address (for slaves).
        optional ha_server_addr: String = "haServerAddr",
        /// The master's address (for slaves).
        optional master_addr: String = "masterAddr",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104) and QUERY_DATA_VERSION (322).
    pub struct BrokerIdentityRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
        /// `ip:port` of the broker.
        required broker_addr: String = "brokerAddr",
        /// Cluster name.
        required cluster_name: String = "clusterName",
        /// 0 = master.
        required broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION response.
    pub struct QueryDataVersionResponseHeader {
        /// Whether the broker's data version differs from the NameServer's.
        required changed: bool = "changed",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100), GET_KV_CONFIG (101), DELETE_KV_CONFIG (102),
    /// GET_KVLIST_BY_NAMESPACE (219).
    pub struct KvConfigRequestHeader {
        /// Namespace.
        required namespace: String = "namespace",
        /// Key (all but 219).
        optional key: String = "key",
        /// Value (100).
        optional value: String = "value",
    }
}

command_header! {
    /// GET_KV_CONFIG response.
    pub struct GetKvConfigResponseHeader {
        /// The value.
        optional value: String = "value",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205), ADD_WRITE_PERM_OF_BROKER (327).
    pub struct BrokerNameRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER response.
    pub struct WipeWritePermResponseHeader {
        /// Topics changed.
        required wipe_topic_count: i32 = "wipeTopicCount",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER response.
    pub struct AddWritePermResponseHeader {
        /// Topics changed.
        required add_topic_count: i32 = "addTopicCount",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224).
    pub struct GetTopicsByClusterRequestHeader {
        /// Cluster name.
        required cluster: String = "cluster",
    }
}

command_header! {
    /// GET_CONSUME_STATS (208).
    pub struct GetConsumeStatsRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Only this topic.
        optional topic: String = "topic",
    }
}

command_header! {
    /// VIEW_BROKER_STATS_DATA (315): one statistic of the broker, by its
    /// BrokerStatsManager name and key.
    pub struct ViewBrokerStatsDataRequestHeader {
        /// Which statistic (`TOPIC_PUT_NUMS`, `GROUP_GET_NUMS`, `BROKER_PUT_NUMS`, ...).
        required stats_name: String = "statsName",
        /// Whose: a topic, `topic@group`, or the cluster name for the broker totals.
        required stats_key: String = "statsKey",
    }
}

command_header! {
    /// GET_BROKER_CONSUME_STATS (317).
    pub struct GetConsumeStatsInBrokerHeader {
        /// Only topics marked as ordered.
        optional is_order: bool = "isOrder",
    }
}

command_header! {
    /// GET_PRODUCER_CONNECTION_LIST (204).
    pub struct ProducerGroupRequestHeader {
        /// Producer group.
        required producer_group: String = "producerGroup",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222), RESET_CONSUMER_CLIENT_OFFSET (220).
    pub struct ResetOffsetRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Consumer group.
        required group: String = "group",
        /// Reset to this store time (ms).
        required timestamp: i64 = "timestamp",
        /// Also move offsets forward.
        required is_force: bool = "isForce",
    }
}

command_header! {
    /// QUERY_CONSUME_QUEUE (321).
    pub struct QueryConsumeQueueRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// First logical offset.
        required index: i64 = "index",
        /// Entries wanted.
        required count: i32 = "count",
        /// Group whose subscription to include.
        optional consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207).
    pub struct DeleteSubscriptionGroupRequestHeader {
        /// Group name.
        required group_name: String = "groupName",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn send_header_reads_both_forms() {
        let v2 = ext(&[
            ("a", "PG"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "2"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", "TAGS\u{1}TagA"),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", "broker-a"),
        ]);
        let h = SendMessageRequestHeader::decode_v2(&v2).unwrap();
        assert_eq!(h.topic, "TopicTest");
        assert_eq!(h.queue_id, 2);
        assert_eq!(h.born_timestamp, 1_700_000_000_000);
        assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
        let mut back = ExtFields::new();
        h.encode_v2(&mut back);
        assert_eq!(SendMessageRequestHeader::decode_v2(&back).unwrap(), h);
        let mut v1 = ExtFields::new();
        h.encode_v1(&mut v1);
        assert_eq!(v1.get("producerGroup"), Some("PG"));
        assert_eq!(SendMessageRequestHeader::decode_v1(&v1).unwrap(), h);
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let err = PullMessageRequestHeader::decode(&ext(&[("topic", "T")])).unwrap_err();
        assert_eq!(err, HeaderError::Missing("consumerGroup"));
        assert_eq!(err.to_string(), "the custom field <consumerGroup> is null");
        let err = QueryConsumerOffsetRequestHeader::decode(&ext(&[
            ("consumerGroup", "G"),
            ("topic", "T"),
            ("queueId", "x"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            HeaderError::Invalid {
                field: "queueId",
                ..
            }
        ));
    }

    #[test]
    fn lenient_values() {
        assert_eq!(i32::parse_ext(" 4 "), Some(4));
        assert_eq!(i64::parse_ext("4.0"), Some(4));
        assert_eq!(bool::parse_ext("TRUE"), Some(true));
        assert_eq!(bool::parse_ext("1"), Some(true));
        assert_eq!(bool::parse_ext("0"), Some(false));
        assert_eq!(bool::parse_ext("maybe"), None);
    }

    #[test]
    fn optional_fields_are_left_out() {
        let h = GetRouteInfoRequestHeader {
            topic: "T".into(),
            accept_standard_json_only: None,
        };
        let mut e = ExtFields::new();
        h.encode(&mut e);
        assert_eq!(e, ext(&[("topic", "T")]));
    }
}
