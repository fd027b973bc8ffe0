//! The JSON bodies of remoting commands (protocol doc §5), as serde types.
//!
//! Conventions, all taken from what Java RocketMQ 4.9 (fastjson 1.2.69) does:
//! - Field names are Java's bean names; fields are declared alphabetically by
//!   JSON name because fastjson writes bean fields sorted, so `encode` output
//!   matches Java's byte for byte where maps are ordered the same.
//! - Missing fields take Java's field initializers (`#[serde(default)]`),
//!   unknown fields are ignored, `None` is omitted as fastjson omits `null`.
//! - `decode` reads fastjson text ([`fastjson::from_str`]); `encode` writes it
//!   ([`fastjson::to_vec`]): integer map keys bare, `MessageQueue` keys inline.
//! - Bodies sent *by clients* (heartbeats, lock requests, client checks) are
//!   read leniently (§10): numbers may be strings, booleans may be `0`/`1` or
//!   strings, enums may be Java ordinals, `null` means the default.
//!
//! Java's `HashMap`/`HashSet` become `BTreeMap`/`BTreeSet` (or `Vec` for sets
//! of structs with no order): the order differs from Java's hash order, which
//! no reader depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::fastjson::{self, object_keys, FastJsonError};
use crate::properties::java_string_hash;

/// Why a body could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is not UTF-8 (Java always encodes bodies as UTF-8).
    #[error("body is not UTF-8 (bad byte at {})", .0.valid_up_to())]
    Utf8(#[source] std::str::Utf8Error),
    /// The body is not (fast)JSON or does not fit the expected type.
    #[error(transparent)]
    Json(#[from] FastJsonError),
    /// The body is in a form mq does not read.
    #[error("unsupported body: {0}")]
    Unsupported(&'static str),
}

fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let text = std::str::from_utf8(bytes).map_err(BodyError::Utf8)?;
    Ok(fastjson::from_str(text)?)
}

fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    fastjson::to_vec(value).expect(
        "body types have only string, integer or object_keys map keys, which always serialize",
    )
}

/// Adds `decode` and `encode` to body types.
macro_rules! json_body {
    ($($ty:ident),* $(,)?) => {
        $(
            impl $ty {
                /// Decodes the body from fastjson or standard JSON.
                pub fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
                    decode_json(bytes)
                }

                /// Encodes the body as Java's fastjson would.
                pub fn encode(&self) -> Vec<u8> {
                    encode_json(self)
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Lenient field readers for client-sent bodies (§10)

/// What a lenient scalar reader saw.
enum Scalar {
    Int(i64),
    Bool(bool),
    Null,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a boolean, or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        let t = v.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Scalar::Int(n));
        }
        // fastjson's castToBoolean words.
        match t.to_ascii_lowercase().as_str() {
            "true" | "y" | "t" => Ok(Scalar::Bool(true)),
            "false" | "n" | "f" => Ok(Scalar::Bool(false)),
            "" | "null" => Ok(Scalar::Null),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

/// Reads an `i64` given as a number or a numeric string; `null` is 0.
pub fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match deserializer.deserialize_any(ScalarVisitor)? {
        Scalar::Int(n) => Ok(n),
        Scalar::Null => Ok(0),
        Scalar::Bool(b) => Err(de::Error::invalid_type(
            de::Unexpected::Bool(b),
            &"an integer",
        )),
    }
}

/// Reads an `i32` given as a number or a numeric string; `null` is 0.
pub fn lenient_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let n = lenient_i64(deserializer)?;
    i32::try_from(n)
        .map_err(|_| de::Error::invalid_value(de::Unexpected::Signed(n), &"a 32-bit integer"))
}

/// Reads a boolean given as `true`/`false`, a number (1 is true, as fastjson's
/// `castToBoolean`), or a string of either; `null` is false.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match deserializer.deserialize_any(ScalarVisitor)? {
        Scalar::Bool(b) => b,
        Scalar::Int(n) => n == 1,
        Scalar::Null => false,
    })
}

/// Reads `T`, taking `null` as `T::default()`.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An `i32` read by [`lenient_i32`], for use inside collections.
#[derive(Deserialize)]
struct LenientI32(#[serde(deserialize_with = "lenient_i32")] i32);

/// Reads a set of `i32` whose elements may be strings; `null` is empty.
fn lenient_i32_set<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeSet<i32>, D::Error> {
    let items = Option::<Vec<LenientI32>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(items.into_iter().map(|LenientI32(n)| n).collect())
}

// ---------------------------------------------------------------------------
// Java enums: written by name, read by name or ordinal

/// Declares a Java enum: serialized as the constant's name, deserialized from
/// the name or from the Java ordinal (declaration order) as number or string.
macro_rules! java_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident default $default:ident {
            $($(#[$vmeta:meta])* $variant:ident = $java:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value in Java declaration order: the index is the Java ordinal.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The Java constant's name, as fastjson writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $java,)+
                }
            }

            /// The value with this Java constant name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($java => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The value with this Java ordinal.
            pub fn from_ordinal(ordinal: i64) -> Option<Self> {
                usize::try_from(ordinal).ok().and_then(|i| Self::ALL.get(i)).copied()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct EnumVisitor;

                impl<'de> Visitor<'de> for EnumVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "a {} name or ordinal", stringify!($name))
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        let t = v.trim();
                        $name::from_name(t)
                            .or_else(|| t.parse().ok().and_then($name::from_ordinal))
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
                    }

                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_ordinal(v)
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
                    }

                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        i64::try_from(v)
                            .ok()
                            .and_then($name::from_ordinal)
                            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
                    }

                    // A client sending `null` gets the Java client's default.
                    fn visit_unit<E: de::Error>(self) -> Result<$name, E> {
                        Ok($name::default())
                    }
                }

                deserializer.deserialize_any(EnumVisitor)
            }
        }
    };
}

java_enum! {
    /// How a consumer gets messages (Java `ConsumeType`). Default: push, the
    /// Java push consumer's, used when a client omits it.
    pub enum ConsumeType default ConsumePassively {
        /// Pull consumer: the application pulls.
        ConsumeActively = "CONSUME_ACTIVELY",
        /// Push consumer: the client library pulls and calls a listener.
        ConsumePassively = "CONSUME_PASSIVELY",
    }
}

java_enum! {
    /// How a group's consumers share queues (Java `MessageModel`). Default: clustering.
    pub enum MessageModel default Clustering {
        /// Every consumer gets every message; offsets kept by the client.
        Broadcasting = "BROADCASTING",
        /// Queues are divided among the group; offsets kept by the broker.
        Clustering = "CLUSTERING",
    }
}

java_enum! {
    /// Where a new consumer group starts (Java `ConsumeFromWhere`, declaration
    /// order kept for the ordinals). Default: last offset, the Java default.
    pub enum ConsumeFromWhere default ConsumeFromLastOffset {
        /// From the end of the queue (the Java default).
        ConsumeFromLastOffset = "CONSUME_FROM_LAST_OFFSET",
        /// Deprecated alias of last offset.
        ConsumeFromLastOffsetAndFromMinWhenBootFirst = "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        /// Deprecated: from the minimum offset.
        ConsumeFromMinOffset = "CONSUME_FROM_MIN_OFFSET",
        /// Deprecated: from the maximum offset.
        ConsumeFromMaxOffset = "CONSUME_FROM_MAX_OFFSET",
        /// From the start of the queue.
        ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        /// From the consumer's `consumeTimestamp`.
        ConsumeFromTimestamp = "CONSUME_FROM_TIMESTAMP",
    }
}

java_enum! {
    /// How a topic's tags are filtered (Java `TopicFilterType`). Default: single tag.
    pub enum TopicFilterType default SingleTag {
        /// One tag per message (the only kind clients use).
        SingleTag = "SINGLE_TAG",
        /// Several tags per message (never implemented by RocketMQ).
        MultiTag = "MULTI_TAG",
    }
}

// ---------------------------------------------------------------------------
// Topic configuration and broker registration (§4.12, §5.3)

/// A version stamp of broker metadata (topics, subscription groups): two are
/// the same version when both fields are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Bumped on every change (a Java `AtomicLong`, written as a number).
    #[serde(deserialize_with = "lenient_i64")]
    pub counter: i64,
    /// Time of the last change, ms since the epoch.
    #[serde(deserialize_with = "lenient_i64")]
    pub timestamp: i64,
}

impl Default for DataVersion {
    /// Counter 0 stamped now, as Java's initializer.
    fn default() -> Self {
        DataVersion {
            counter: 0,
            timestamp: super::time::now_ms(),
        }
    }
}

/// One topic's configuration on a broker (Java `TopicConfig`); also an entry
/// of `config/topics.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// Ordered topic (informational in 4.9).
    pub order: bool,
    /// `PermName` bits: 4 read, 2 write, 1 inherit.
    pub perm: i32,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Tag filter kind.
    pub topic_filter_type: TopicFilterType,
    /// The topic.
    pub topic_name: String,
    /// `TopicSysFlag` bits (unit flags).
    pub topic_sys_flag: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    /// Java's defaults: 16 read and write queues, read-write, single tag.
    fn default() -> Self {
        TopicConfig {
            order: false,
            perm: 6,
            read_queue_nums: 16,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
        }
    }
}

/// A broker's topics with their version (GET_ALL_TOPIC_CONFIG, `topics.json`,
/// and inside [`RegisterBrokerBody`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    /// Version of the topic table.
    pub data_version: DataVersion,
    /// Topic name → configuration.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// REGISTER_BROKER's body: the broker's topics and its filter servers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    /// Filter server addresses (always empty in practice).
    pub filter_server_list: Vec<String>,
    /// The broker's topics.
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

impl RegisterBrokerBody {
    /// Decodes the uncompressed (JSON) form.
    ///
    /// The compressed form (header `compressed=true`: a zlib stream, §4.12) is
    /// not read: mq has no zlib, and Java brokers only send it when
    /// `compressedRegister` is turned on. It is recognised by not starting with
    /// `{` and refused with [`BodyError::Unsupported`].
    pub fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(BodyError::Unsupported("compressed register body"));
        }
        decode_json(bytes)
    }

    /// Encodes the uncompressed form, as Java's fastjson would.
    pub fn encode(&self) -> Vec<u8> {
        encode_json(self)
    }
}

json_body!(DataVersion, TopicConfig, TopicConfigSerializeWrapper);

// ---------------------------------------------------------------------------
// Routes and clusters (§5.1, §5.4)

/// One broker name's queues for a topic (Java `QueueData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    /// The broker name (master and slaves share it).
    pub broker_name: String,
    /// `PermName` bits.
    pub perm: i32,
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// `TopicSysFlag` bits; brokers up to about 4.2 spelled it `topicSynFlag`.
    #[serde(alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
}

/// The addresses of one broker name (Java `BrokerData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// Broker id (0 = master) → `ip:port`. Java writes these keys bare.
    pub broker_addrs: BTreeMap<i64, String>,
    /// The broker name.
    pub broker_name: String,
    /// The cluster it belongs to.
    pub cluster: String,
}

/// GET_ROUTEINFO_BY_TOPIC's response body (Java `TopicRouteData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    /// One entry per broker name serving the topic.
    pub broker_datas: Vec<BrokerData>,
    /// Broker address → filter servers (always empty in 4.9).
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// `brokerName:queueNum;…` for ordered topics, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// One entry per broker name that has the topic.
    pub queue_datas: Vec<QueueData>,
}

impl TopicRouteData {
    /// Decodes either form.
    pub fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        decode_json(bytes)
    }

    /// Standard JSON (`"brokerAddrs":{"0":…}`), for clients of version ≥ 4.9.4
    /// (401) or that set `acceptStandardJsonOnly` (§2.7 (b)). Java also escapes
    /// non-ASCII as `\uXXXX` there; any JSON reader takes it either way.
    pub fn encode_standard(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("route data has only string or integer map keys")
    }

    /// fastjson's default form (`"brokerAddrs":{0:…}`), for older clients:
    /// they were built against it (some hand-patch the bare keys).
    pub fn encode_fastjson(&self) -> Vec<u8> {
        encode_json(self)
    }
}

/// GET_BROKER_CLUSTER_INFO's response body. Encoded with bare broker-id keys,
/// as Java always does for this body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// Broker name → its addresses.
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Cluster name → broker names.
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

json_body!(QueueData, BrokerData, ClusterInfo);

// ---------------------------------------------------------------------------
// Small bodies (§5.5)

/// A list of topics (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER, …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    /// The broker the list came from, for broker-sourced lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    /// The topics.
    pub topic_list: BTreeSet<String>,
}

/// A string table (Java `KVTable`): runtime info, KV config namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvTable {
    /// Key → value.
    pub table: BTreeMap<String, String>,
}

/// GET_CONSUMER_LIST_BY_GROUP's response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GetConsumerListByGroupResponseBody {
    /// Client ids (`ip@instance`) of the group's live consumers.
    pub consumer_id_list: Vec<String>,
}

/// A list of group names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    /// The groups.
    pub group_list: BTreeSet<String>,
}

json_body!(
    TopicList,
    KvTable,
    GetConsumerListByGroupResponseBody,
    GroupList
);

// ---------------------------------------------------------------------------
// Heartbeats and subscriptions (§5.2): sent by clients, read leniently

/// HEART_BEAT's body: who the client is and which groups it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatData {
    /// `clientIP@instanceName[@unitName]`; Java spells the field `clientID`.
    #[serde(rename = "clientID", deserialize_with = "null_default")]
    pub client_id: String,
    /// The consumer groups the client runs.
    #[serde(rename = "consumerDataSet", deserialize_with = "null_default")]
    pub consumer_data_set: Vec<ConsumerData>,
    /// The producer groups the client runs.
    #[serde(rename = "producerDataSet", deserialize_with = "null_default")]
    pub producer_data_set: Vec<ProducerData>,
}

/// A producer group in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    /// The producer group.
    #[serde(deserialize_with = "null_default")]
    pub group_name: String,
}

/// A consumer group in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    /// Where a new group starts.
    pub consume_from_where: ConsumeFromWhere,
    /// Push or pull.
    pub consume_type: ConsumeType,
    /// The consumer group.
    #[serde(deserialize_with = "null_default")]
    pub group_name: String,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// The topics subscribed and their filters.
    #[serde(deserialize_with = "null_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit (cross-cell) mode; absent from some clients.
    #[serde(deserialize_with = "lenient_bool")]
    pub unit_mode: bool,
}

/// The expression type of tag subscriptions.
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// The expression type of SQL92 property filters.
pub const EXPRESSION_TYPE_SQL92: &str = "SQL92";
/// The tag expression meaning "every message".
pub const SUB_ALL: &str = "*";

fn expression_type_tag() -> String {
    EXPRESSION_TYPE_TAG.to_string()
}

/// Reads `expressionType`, taking `null` as `"TAG"`.
fn expression_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(expression_type_tag))
}

/// One topic subscription of a consumer (Java `SubscriptionData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    /// Class filter mode (removed feature; false).
    #[serde(deserialize_with = "lenient_bool")]
    pub class_filter_mode: bool,
    /// Java `String.hashCode` of each tag, as the client computed them. Do not
    /// trust it (some clients send zeros): use [`SubscriptionData::tag_codes`].
    #[serde(deserialize_with = "lenient_i32_set")]
    pub code_set: BTreeSet<i32>,
    /// `"TAG"` or `"SQL92"`.
    #[serde(deserialize_with = "expression_type")]
    pub expression_type: String,
    /// The expression as written: `"TagA || TagB"`, `"*"`, or SQL.
    #[serde(deserialize_with = "null_default")]
    pub sub_string: String,
    /// Creation time (ms); a newer version replaces the broker's copy.
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
    /// The tags of a TAG expression; empty for `*` and SQL92.
    #[serde(deserialize_with = "null_default")]
    pub tags_set: BTreeSet<String>,
    /// The topic.
    #[serde(deserialize_with = "null_default")]
    pub topic: String,
}

impl Default for SubscriptionData {
    /// Java's initializers: TAG type, version stamped now, everything else empty.
    fn default() -> Self {
        SubscriptionData {
            class_filter_mode: false,
            code_set: BTreeSet::new(),
            expression_type: expression_type_tag(),
            sub_string: String::new(),
            sub_version: super::time::now_ms(),
            tags_set: BTreeSet::new(),
            topic: String::new(),
        }
    }
}

impl SubscriptionData {
    /// Builds a TAG subscription as Java's `FilterAPI.buildSubscriptionData`:
    /// an empty expression or `*` subscribes to everything; otherwise the
    /// expression is split on `||`, each part trimmed (Java `trim`: characters
    /// up to U+0020), and empty parts skipped.
    pub fn from_expression(topic: &str, expression: &str) -> Self {
        let mut data = SubscriptionData {
            topic: topic.to_string(),
            ..SubscriptionData::default()
        };
        if expression.is_empty() || expression == SUB_ALL {
            data.sub_string = SUB_ALL.to_string();
            return data;
        }
        data.sub_string = expression.to_string();
        for part in expression.split("||") {
            let tag = part.trim_matches(|c: char| c <= ' ');
            if !tag.is_empty() {
                data.tags_set.insert(tag.to_string());
            }
        }
        data.code_set = data.tag_codes();
        data
    }

    /// The tag hash codes recomputed from `tags_set`, which is what the broker
    /// should filter on instead of the client-supplied `code_set`.
    pub fn tag_codes(&self) -> BTreeSet<i32> {
        self.tags_set.iter().map(|t| java_string_hash(t)).collect()
    }

    /// Whether the subscription takes every message of the topic: a TAG
    /// expression that is `*`, empty, or has no tags.
    pub fn is_sub_all(&self) -> bool {
        self.expression_type == EXPRESSION_TYPE_TAG
            && (self.sub_string == SUB_ALL
                || self.sub_string.is_empty()
                || self.tags_set.is_empty())
    }
}

/// CHECK_CLIENT_CONFIG's body: a subscription to validate before use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckClientRequestBody {
    /// The asking client.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Its consumer group.
    #[serde(deserialize_with = "null_default")]
    pub group: String,
    /// The subscription to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
}

json_body!(HeartbeatData, SubscriptionData, CheckClientRequestBody);

// ---------------------------------------------------------------------------
// Message queues and locks (§4.9)

/// One queue of a topic on one broker name (Java `MessageQueue`). Written as
/// `{"brokerName":…,"queueId":…,"topic":…}`; ordered like Java's `compareTo`:
/// topic, broker name, queue id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    /// The broker name.
    #[serde(deserialize_with = "null_default")]
    pub broker_name: String,
    /// The queue's index on that broker.
    #[serde(deserialize_with = "lenient_i32")]
    pub queue_id: i32,
    /// The topic.
    #[serde(deserialize_with = "null_default")]
    pub topic: String,
}

impl MessageQueue {
    /// A queue of `topic` on `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        MessageQueue {
            broker_name: broker_name.into(),
            queue_id,
            topic: topic.into(),
        }
    }
}

impl Ord for MessageQueue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Java compares strings by UTF-16 unit; UTF-8 byte order only differs
        // for characters beyond U+FFFF against U+E000..U+FFFF, which topic and
        // broker names (ASCII by validation) never contain.
        self.topic
            .cmp(&other.topic)
            .then_with(|| self.broker_name.cmp(&other.broker_name))
            .then_with(|| self.queue_id.cmp(&other.queue_id))
    }
}

impl PartialOrd for MessageQueue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// LOCK_BATCH_MQ's body: lock these queues for this client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    /// The locking client.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Its consumer group.
    #[serde(deserialize_with = "null_default")]
    pub consumer_group: String,
    /// The queues to lock.
    #[serde(deserialize_with = "null_default")]
    pub mq_set: BTreeSet<MessageQueue>,
}

/// UNLOCK_BATCH_MQ's body: release these queues (same fields as the lock in 4.9).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UnlockBatchRequestBody {
    /// The unlocking client.
    #[serde(deserialize_with = "null_default")]
    pub client_id: String,
    /// Its consumer group.
    #[serde(deserialize_with = "null_default")]
    pub consumer_group: String,
    /// The queues to unlock.
    #[serde(deserialize_with = "null_default")]
    pub mq_set: BTreeSet<MessageQueue>,
}

/// LOCK_BATCH_MQ's response body: the queues this client now holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    /// The locked subset of the request.
    #[serde(rename = "lockOKMQSet", deserialize_with = "null_default")]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

json_body!(
    MessageQueue,
    LockBatchRequestBody,
    UnlockBatchRequestBody,
    LockBatchResponseBody
);

// ---------------------------------------------------------------------------
// Offsets and subscription groups

/// Committed consumer offsets (GET_ALL_CONSUMER_OFFSET, `consumerOffset.json`).
/// Encoded as Java does, with bare queue-id keys (`{0:118}`); quoted keys are
/// read too.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerOffsetSerializeWrapper {
    /// `topic@group` → queue id → committed offset.
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// A consumer group's settings on a broker (Java `SubscriptionGroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// The broker id consumers normally read from (0 = master).
    pub broker_id: i64,
    /// Broadcasting consumption allowed.
    pub consume_broadcast_enable: bool,
    /// Consumption allowed at all.
    pub consume_enable: bool,
    /// A new group may start from the minimum offset.
    pub consume_from_min_enable: bool,
    /// The group.
    pub group_name: String,
    /// Tell consumers when the group's membership changes.
    pub notify_consumer_ids_changed_enable: bool,
    /// Redeliveries before a message goes to the DLQ.
    pub retry_max_times: i32,
    /// Queues of the group's `%RETRY%` topic.
    pub retry_queue_nums: i32,
    /// The broker id to redirect to when the master falls behind.
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    /// Java's defaults: everything enabled, 16 retries over 1 retry queue,
    /// read from the master, slave 1 when slow.
    fn default() -> Self {
        SubscriptionGroupConfig {
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            group_name: String::new(),
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            which_broker_when_consume_slowly: 1,
        }
    }
}

/// A broker's subscription groups with their version (`subscriptionGroup.json`,
/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    /// Version of the table.
    pub data_version: DataVersion,
    /// Group name → settings.
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

json_body!(
    ConsumerOffsetSerializeWrapper,
    SubscriptionGroupConfig,
    SubscriptionGroupWrapper
);

// ---------------------------------------------------------------------------
// MessageQueue-keyed bodies (§5.6): written with inline object keys

/// One queue's consumption progress in [`ConsumeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's max offset.
    pub broker_offset: i64,
    /// The group's committed offset.
    pub consumer_offset: i64,
    /// Store time of the message at `consumer_offset - 1`, 0 if none.
    pub last_timestamp: i64,
}

/// GET_CONSUME_STATS's response body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStats {
    /// Messages per second consumed by the group.
    pub consume_tps: f64,
    /// Per-queue progress.
    #[serde(with = "object_keys")]
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
}

/// One queue's bounds in [`TopicStatsTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    /// Store time of the queue's last message, 0 if none.
    pub last_update_timestamp: i64,
    /// One past the last offset.
    pub max_offset: i64,
    /// The first offset still stored.
    pub min_offset: i64,
}

/// GET_TOPIC_STATS_INFO's response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStatsTable {
    /// Per-queue bounds.
    #[serde(with = "object_keys")]
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
}

/// RESET_CONSUMER_CLIENT_OFFSET's request body and INVOKE_BROKER_TO_RESET_OFFSET's
/// response body: the offsets to move to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetOffsetBody {
    /// Queue → new offset.
    #[serde(with = "object_keys")]
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

/// One window of a broker statistic in [`BrokerStatsData`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsItem {
    /// Units per counted call (messages per send, ...).
    pub avgpt: f64,
    /// Units counted in the window (messages, bytes, ...).
    pub sum: i64,
    /// Units per second over the window.
    pub tps: f64,
}

/// VIEW_BROKER_STATS_DATA's response body: one statistic over the last
/// minute, hour and day.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsData {
    /// The last day.
    pub stats_day: BrokerStatsItem,
    /// The last hour.
    pub stats_hour: BrokerStatsItem,
    /// The last minute.
    pub stats_minute: BrokerStatsItem,
}

/// GET_BROKER_CONSUME_STATS's response body: every group's progress on this broker.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStatsList {
    /// The answering broker's address.
    pub broker_addr: String,
    /// One single-entry map per group: group → its stats, one per topic.
    pub consume_stats_list: Vec<BTreeMap<String, Vec<ConsumeStats>>>,
    /// Messages not yet consumed, summed over every group and topic.
    pub total_diff: i64,
}

json_body!(
    ConsumeStats,
    TopicStatsTable,
    ResetOffsetBody,
    BrokerStatsData,
    ConsumeStatsList
);

// ---------------------------------------------------------------------------
// Connections (§4.13)

/// One client connection as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    /// The client's remote `ip:port`.
    pub client_addr: String,
    /// The client id from its heartbeat.
    pub client_id: String,
    /// `LanguageCode` name (`JAVA`, `CPP`, …).
    pub language: String,
    /// The client's `MQVersion` ordinal.
    #[serde(deserialize_with = "lenient_i32")]
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST's response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    /// The group's connected clients.
    pub connection_set: Vec<Connection>,
    /// The group's start position.
    pub consume_from_where: ConsumeFromWhere,
    /// Push or pull.
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// Topic → subscription.
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// GET_PRODUCER_CONNECTION_LIST's response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    /// The group's connected clients.
    pub connection_set: Vec<Connection>,
}

json_body!(Connection, ConsumerConnection, ProducerConnection);

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("encode writes UTF-8")
    }

    // The example bodies of the protocol doc, §4.9, §4.12, §5.1–§5.6.

    const ROUTE_FASTJSON: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    const HEARTBEAT: &str = r#"{"clientID":"192.168.0.5@12345#123456789","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"G1","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"},{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000001,"tagsSet":[],"topic":"%RETRY%G1"}],"unitMode":false}],"producerDataSet":[{"groupName":"P1"},{"groupName":"CLIENT_INNER_PRODUCER"}]}"#;

    const TOPICS: &str = r#"{"dataVersion":{"counter":3,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}}}"#;

    const CLUSTER: &str = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;

    const CONSUME_STATS: &str = r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":120,"consumerOffset":118,"lastTimestamp":1700000000000},{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"brokerOffset":99,"consumerOffset":99,"lastTimestamp":1700000000000}}}"#;

    const TOPIC_STATS: &str = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"lastUpdateTimestamp":1700000000000,"maxOffset":120,"minOffset":0}}}"#;

    const RESET_OFFSET: &str = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:100,{"brokerName":"broker-a","queueId":1,"topic":"T"}:57}}"#;

    const CONSUMER_OFFSETS: &str = r#"{"offsetTable":{"TopicTest@G1":{0:118,1:99,2:0,3:7}}}"#;

    const SUBSCRIPTION_GROUP: &str = r#"{"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,"consumeFromMinEnable":true,"groupName":"G1","notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}"#;

    const LOCK_REQUEST: &str = r#"{"clientId":"10.0.0.5@123","consumerGroup":"G1","mqSet":[{"brokerName":"broker-a","queueId":0,"topic":"T"}]}"#;

    const REGISTER: &str = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}}}}"#;

    fn mq(queue_id: i32) -> MessageQueue {
        MessageQueue::new("T", "broker-a", queue_id)
    }

    /// Decodes `json` as `T`, checks `encode` gives it back byte for byte.
    fn java_identical<T>(
        json: &str,
        decode: fn(&[u8]) -> Result<T, BodyError>,
        encode: fn(&T) -> Vec<u8>,
    ) -> T {
        let value = match decode(json.as_bytes()) {
            Ok(v) => v,
            Err(e) => panic!("{json}: {e}"),
        };
        assert_eq!(text(encode(&value)), json);
        value
    }

    #[test]
    fn broker_stats_bodies_as_java_writes_them() {
        java_identical(
            r#"{"statsDay":{"avgpt":1.0,"sum":7,"tps":0.5},"statsHour":{"avgpt":0.0,"sum":0,"tps":0.0},"statsMinute":{"avgpt":2.5,"sum":5,"tps":0.08333333333333333}}"#,
            BrokerStatsData::decode,
            BrokerStatsData::encode,
        );
        java_identical(
            r#"{"brokerAddr":"10.0.0.1:10911","consumeStatsList":[{"g1":[{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":9,"consumerOffset":4,"lastTimestamp":0}}}]}],"totalDiff":5}"#,
            ConsumeStatsList::decode,
            ConsumeStatsList::encode,
        );
    }

    #[test]
    fn route_data_in_both_key_forms() {
        let route = java_identical(
            ROUTE_FASTJSON,
            TopicRouteData::decode,
            TopicRouteData::encode_fastjson,
        );
        assert_eq!(route.broker_datas[0].broker_addrs[&1], "192.168.1.11:10911");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.order_topic_conf, None);

        let standard = text(route.encode_standard());
        assert!(
            standard.contains(r#"{"0":"192.168.1.10:10911","1":"#),
            "{standard}"
        );
        serde_json::from_str::<serde_json::Value>(&standard).expect("standard JSON");
        assert_eq!(
            TopicRouteData::decode(standard.as_bytes()).expect("decodes"),
            route
        );
    }

    #[test]
    fn route_data_accepts_old_spelling_and_order_conf() {
        let old = r#"{"brokerDatas":[],"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":1,"topicSynFlag":3,"writeQueueNums":1}]}"#;
        let route = TopicRouteData::decode(old.as_bytes()).expect("decodes");
        assert_eq!(route.queue_datas[0].topic_sys_flag, 3);
        assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));
        assert!(text(route.encode_fastjson()).contains(r#""orderTopicConf":"broker-a:4""#));
    }

    #[test]
    fn heartbeat_example_decodes_and_encodes_identically() {
        let hb = java_identical(HEARTBEAT, HeartbeatData::decode, HeartbeatData::encode);
        assert_eq!(hb.client_id, "192.168.0.5@12345#123456789");
        let consumer = &hb.consumer_data_set[0];
        assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(consumer.message_model, MessageModel::Clustering);
        let sub = &consumer.subscription_data_set[0];
        assert_eq!(sub.tag_codes(), sub.code_set);
        assert_eq!(sub.tag_codes(), BTreeSet::from([2598919, 2598920]));
        assert!(consumer.subscription_data_set[1].is_sub_all());
        assert_eq!(hb.producer_data_set[1].group_name, "CLIENT_INNER_PRODUCER");
    }

    #[test]
    fn heartbeat_from_sloppy_clients() {
        // Ordinals, numbers as strings, all-zero codeSet, no unitMode, nulls.
        let body = r#"{"clientID":"10.0.0.9@77","consumerDataSet":[{"consumeFromWhere":4,"consumeType":"1","groupName":"G","messageModel":1,"subscriptionDataSet":[{"classFilterMode":"false","codeSet":[0,"0"],"expressionType":null,"subString":"A||B","subVersion":"1700000000000","tagsSet":["A","B"],"topic":"T"}]}],"producerDataSet":null}"#;
        let hb = HeartbeatData::decode(body.as_bytes()).expect("decodes");
        let consumer = &hb.consumer_data_set[0];
        assert_eq!(
            consumer.consume_from_where,
            ConsumeFromWhere::ConsumeFromFirstOffset
        );
        assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(consumer.message_model, MessageModel::Clustering);
        assert!(!consumer.unit_mode);
        let sub = &consumer.subscription_data_set[0];
        assert_eq!(sub.sub_version, 1_700_000_000_000);
        assert_eq!(sub.code_set, BTreeSet::from([0]));
        assert_eq!(sub.expression_type, "TAG");
        assert_eq!(sub.tag_codes(), BTreeSet::from([65, 66]));
        assert!(hb.producer_data_set.is_empty());

        // Java ordinals 0 everywhere, and booleans as numbers and strings.
        let body = r#"{"clientID":"c","consumerDataSet":[{"consumeFromWhere":"0","consumeType":0,"messageModel":0,"unitMode":"1","subscriptionDataSet":[]}]}"#;
        let consumer = HeartbeatData::decode(body.as_bytes())
            .expect("decodes")
            .consumer_data_set[0]
            .clone();
        assert_eq!(
            consumer.consume_from_where,
            ConsumeFromWhere::ConsumeFromLastOffset
        );
        assert_eq!(consumer.consume_type, ConsumeType::ConsumeActively);
        assert_eq!(consumer.message_model, MessageModel::Broadcasting);
        assert!(consumer.unit_mode);

        for bad in [
            r#"{"consumerDataSet":[{"consumeType":7}]}"#,
            r#"{"consumerDataSet":[{"messageModel":"X"}]}"#,
        ] {
            assert!(HeartbeatData::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn enum_ordinals_follow_java_declaration_order() {
        let names: Vec<_> = ConsumeFromWhere::ALL.iter().map(|w| w.as_str()).collect();
        assert_eq!(
            names,
            [
                "CONSUME_FROM_LAST_OFFSET",
                "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
                "CONSUME_FROM_MIN_OFFSET",
                "CONSUME_FROM_MAX_OFFSET",
                "CONSUME_FROM_FIRST_OFFSET",
                "CONSUME_FROM_TIMESTAMP",
            ]
        );
        assert_eq!(
            ConsumeType::from_ordinal(1),
            Some(ConsumeType::ConsumePassively)
        );
        assert_eq!(
            MessageModel::from_ordinal(1),
            Some(MessageModel::Clustering)
        );
        assert_eq!(MessageModel::from_ordinal(2), None);
        assert_eq!(MessageModel::from_ordinal(-1), None);
    }

    #[test]
    fn subscription_from_expression_like_filter_api() {
        let sub = SubscriptionData::from_expression("T", " TagA ||TagB|| ||TagA");
        assert_eq!(sub.sub_string, " TagA ||TagB|| ||TagA");
        assert_eq!(
            sub.tags_set,
            BTreeSet::from(["TagA".to_string(), "TagB".to_string()])
        );
        assert_eq!(sub.code_set, BTreeSet::from([2598919, 2598920]));
        assert_eq!(sub.expression_type, "TAG");
        assert!(sub.sub_version > 0);
        for all in ["", "*"] {
            let sub = SubscriptionData::from_expression("T", all);
            assert_eq!(sub.sub_string, "*");
            assert!(sub.tags_set.is_empty() && sub.code_set.is_empty() && sub.is_sub_all());
        }
    }

    #[test]
    fn topic_config_examples() {
        let wrapper = java_identical(
            TOPICS,
            TopicConfigSerializeWrapper::decode,
            TopicConfigSerializeWrapper::encode,
        );
        assert_eq!(
            wrapper.data_version,
            DataVersion {
                counter: 3,
                timestamp: 1_700_000_000_000
            }
        );
        let register = java_identical(
            REGISTER,
            RegisterBrokerBody::decode,
            RegisterBrokerBody::encode,
        );
        assert_eq!(register.topic_config_serialize_wrapper, wrapper);

        let defaults = TopicConfig::decode(br#"{"topicName":"X"}"#).expect("decodes");
        assert_eq!(
            defaults,
            TopicConfig {
                topic_name: "X".into(),
                ..TopicConfig::default()
            }
        );
        assert_eq!(
            (
                defaults.read_queue_nums,
                defaults.write_queue_nums,
                defaults.perm
            ),
            (16, 16, 6)
        );
        assert_eq!(
            TopicConfig::decode(br#"{"topicFilterType":"MULTI_TAG"}"#)
                .expect("decodes")
                .topic_filter_type,
            TopicFilterType::MultiTag
        );
        // AtomicLong counters may come as strings from odd writers.
        let v = DataVersion::decode(br#"{"counter":"5","timestamp":1}"#).expect("decodes");
        assert_eq!(v.counter, 5);
    }

    #[test]
    fn compressed_register_body_is_refused_clearly() {
        let zlib = [0x78u8, 0xda, 0x01, 0x02];
        assert!(matches!(
            RegisterBrokerBody::decode(&zlib),
            Err(BodyError::Unsupported("compressed register body"))
        ));
        assert!(matches!(
            RegisterBrokerBody::decode(b"\xff{"),
            Err(BodyError::Unsupported(_))
        ));
        assert!(matches!(
            RegisterBrokerBody::decode(b"{\xff}"),
            Err(BodyError::Utf8(_))
        ));
    }

    #[test]
    fn cluster_info_keeps_bare_broker_ids() {
        let info = java_identical(CLUSTER, ClusterInfo::decode, ClusterInfo::encode);
        assert_eq!(
            info.broker_addr_table["broker-a"].broker_addrs[&0],
            "10.0.0.1:10911"
        );
        assert!(info.cluster_addr_table["DefaultCluster"].contains("broker-a"));
    }

    #[test]
    fn consume_stats_with_object_keys() {
        let stats = java_identical(CONSUME_STATS, ConsumeStats::decode, ConsumeStats::encode);
        assert_eq!(stats.offset_table[&mq(0)].consumer_offset, 118);
        assert_eq!(stats.offset_table[&mq(1)].broker_offset, 99);
        let encoded = text(stats.encode());
        assert!(encoded.contains(r#"{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"#));
        // The standard form (string keys holding JSON) is read too.
        let standard = serde_json::to_string(&stats).expect("serializes");
        assert_eq!(
            ConsumeStats::decode(standard.as_bytes()).expect("decodes"),
            stats
        );
    }

    #[test]
    fn other_message_queue_keyed_bodies() {
        let stats = java_identical(
            TOPIC_STATS,
            TopicStatsTable::decode,
            TopicStatsTable::encode,
        );
        assert_eq!(stats.offset_table[&mq(0)].max_offset, 120);
        let reset = java_identical(
            RESET_OFFSET,
            ResetOffsetBody::decode,
            ResetOffsetBody::encode,
        );
        assert_eq!(reset.offset_table[&mq(1)], 57);
    }

    #[test]
    fn consumer_offsets_bare_and_quoted() {
        let offsets = java_identical(
            CONSUMER_OFFSETS,
            ConsumerOffsetSerializeWrapper::decode,
            ConsumerOffsetSerializeWrapper::encode,
        );
        assert_eq!(offsets.offset_table["TopicTest@G1"][&3], 7);
        let quoted = r#"{"offsetTable":{"TopicTest@G1":{"0":118,"1":99,"2":0,"3":7}}}"#;
        assert_eq!(
            ConsumerOffsetSerializeWrapper::decode(quoted.as_bytes()).expect("decodes"),
            offsets
        );
        // Java persists it pretty-printed.
        let pretty =
            "{\n\t\"offsetTable\":{\n\t\t\"TopicTest@G1\":{0:118,1:99,2:0,3:7\n\t\t}\n\t}\n}";
        assert_eq!(
            ConsumerOffsetSerializeWrapper::decode(pretty.as_bytes()).expect("decodes"),
            offsets
        );
    }

    #[test]
    fn subscription_groups() {
        let cfg = java_identical(
            SUBSCRIPTION_GROUP,
            SubscriptionGroupConfig::decode,
            SubscriptionGroupConfig::encode,
        );
        assert_eq!(
            cfg,
            SubscriptionGroupConfig {
                group_name: "G1".into(),
                ..SubscriptionGroupConfig::default()
            }
        );
        let wrapper = SubscriptionGroupWrapper {
            data_version: DataVersion {
                counter: 1,
                timestamp: 2,
            },
            subscription_group_table: BTreeMap::from([("G1".to_string(), cfg)]),
        };
        let encoded = wrapper.encode();
        assert!(text(encoded.clone()).starts_with(r#"{"dataVersion":{"counter":1,"timestamp":2},"subscriptionGroupTable":{"G1":{"brokerId":0"#));
        assert_eq!(
            SubscriptionGroupWrapper::decode(&encoded).expect("decodes"),
            wrapper
        );
    }

    #[test]
    fn locks() {
        let req = java_identical(
            LOCK_REQUEST,
            LockBatchRequestBody::decode,
            LockBatchRequestBody::encode,
        );
        assert!(req.mq_set.contains(&mq(0)));
        let unlock = UnlockBatchRequestBody::decode(LOCK_REQUEST.as_bytes()).expect("decodes");
        assert_eq!(unlock.mq_set, req.mq_set);
        // queueId as a string, an unknown field.
        let sloppy = r#"{"clientId":"c","consumerGroup":"G1","onlyThisBroker":true,"mqSet":[{"brokerName":"broker-a","queueId":"3","topic":"T"}]}"#;
        let req = LockBatchRequestBody::decode(sloppy.as_bytes()).expect("decodes");
        assert!(req.mq_set.contains(&mq(3)));
        let resp = LockBatchResponseBody {
            lock_ok_mq_set: BTreeSet::from([mq(0)]),
        };
        assert_eq!(
            text(resp.encode()),
            r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"T"}]}"#
        );
    }

    #[test]
    fn message_queue_orders_like_java() {
        let mut queues = [
            MessageQueue::new("B", "a", 0),
            MessageQueue::new("A", "b", 0),
            MessageQueue::new("A", "a", 10),
            MessageQueue::new("A", "a", 2),
        ];
        queues.sort();
        let order: Vec<_> = queues
            .iter()
            .map(|q| (q.topic.as_str(), q.broker_name.as_str(), q.queue_id))
            .collect();
        assert_eq!(
            order,
            [("A", "a", 2), ("A", "a", 10), ("A", "b", 0), ("B", "a", 0)]
        );
    }

    #[test]
    fn small_bodies() {
        let list = java_identical(
            r#"{"brokerAddr":"10.0.0.1:10911","topicList":["T1","T2"]}"#,
            TopicList::decode,
            TopicList::encode,
        );
        assert_eq!(list.topic_list.len(), 2);
        let list = java_identical(
            r#"{"topicList":["T1"]}"#,
            TopicList::decode,
            TopicList::encode,
        );
        assert_eq!(list.broker_addr, None);
        java_identical(r#"{"table":{"k":"v"}}"#, KvTable::decode, KvTable::encode);
        java_identical(
            r#"{"consumerIdList":["10.0.0.5@123","10.0.0.6@456"]}"#,
            GetConsumerListByGroupResponseBody::decode,
            GetConsumerListByGroupResponseBody::encode,
        );
        java_identical(
            r#"{"groupList":["G1"]}"#,
            GroupList::decode,
            GroupList::encode,
        );
        let check = r#"{"clientId":"c","group":"G1","subscriptionData":{"classFilterMode":false,"codeSet":[],"expressionType":"SQL92","subString":"a > 1","subVersion":5,"tagsSet":[],"topic":"T"}}"#;
        let body = java_identical(
            check,
            CheckClientRequestBody::decode,
            CheckClientRequestBody::encode,
        );
        assert_eq!(
            body.subscription_data.map(|s| s.expression_type),
            Some("SQL92".to_string())
        );
    }

    #[test]
    fn connections() {
        let consumer = r#"{"connectionSet":[{"clientAddr":"10.0.0.5:54321","clientId":"10.0.0.5@123","language":"JAVA","version":407}],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{"T":{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1,"tagsSet":[],"topic":"T"}}}"#;
        let conn = java_identical(
            consumer,
            ConsumerConnection::decode,
            ConsumerConnection::encode,
        );
        assert_eq!(conn.connection_set[0].version, 407);
        let producer = r#"{"connectionSet":[{"clientAddr":"10.0.0.5:54321","clientId":"10.0.0.5@123","language":"CPP","version":0}]}"#;
        java_identical(
            producer,
            ProducerConnection::decode,
            ProducerConnection::encode,
        );
    }

    /// Text printed by Java 4.9.7's own classes with fastjson 1.2.69
    /// (`JSON.toJSONString`, and the NameServer's standard-JSON feature set for
    /// the route); mq must write the same bytes.
    #[test]
    fn matches_java_fastjson_output() {
        const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        const ROUTE_STANDARD: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"192.168.1.10:10911","1":"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        const CONSUMER_CONNECTION: &str = r#"{"connectionSet":[{"clientAddr":"10.0.0.5:54321","clientId":"10.0.0.5@123","language":"JAVA","version":407}],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{}}"#;
        const OFFSETS_PRETTY: &str =
            "{\n\t\"offsetTable\":{\n\t\t\"TopicTest@G1\":{0:118,1:99\n\t\t}\n\t}\n}";

        let route = java_identical(
            ROUTE,
            TopicRouteData::decode,
            TopicRouteData::encode_fastjson,
        );
        assert_eq!(text(route.encode_standard()), ROUTE_STANDARD);
        java_identical(
            ROUTE_STANDARD,
            TopicRouteData::decode,
            TopicRouteData::encode_standard,
        );
        java_identical(
            CONSUMER_CONNECTION,
            ConsumerConnection::decode,
            ConsumerConnection::encode,
        );
        let offsets =
            ConsumerOffsetSerializeWrapper::decode(OFFSETS_PRETTY.as_bytes()).expect("decodes");
        assert_eq!(
            text(offsets.encode()),
            r#"{"offsetTable":{"TopicTest@G1":{0:118,1:99}}}"#
        );
        let sub = SubscriptionData {
            sub_version: 1_700_000_000_000,
            ..SubscriptionData::from_expression("TopicTest", "TagA || TagB")
        };
        assert_eq!(
            text(sub.encode()),
            r#"{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"}"#
        );
    }

    #[test]
    fn decode_errors_are_reported_not_panicked() {
        assert!(matches!(
            HeartbeatData::decode(b"\xc3\x28"),
            Err(BodyError::Utf8(_))
        ));
        assert!(matches!(
            HeartbeatData::decode(b"{"),
            Err(BodyError::Json(FastJsonError::Syntax { .. }))
        ));
        assert!(matches!(
            HeartbeatData::decode(b"\"x\""),
            Err(BodyError::Json(FastJsonError::Shape(_)))
        ));
        assert!(matches!(
            ConsumeStats::decode(br#"{"offsetTable":{"x":{}}}"#),
            Err(BodyError::Json(_))
        ));
        // Unknown fields are ignored.
        assert!(KvTable::decode(br#"{"table":{},"extra":[1,{2:3}]}"#).is_ok());
    }
}
