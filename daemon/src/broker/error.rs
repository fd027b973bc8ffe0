//! The broker's error type: why it could not start or stop cleanly, and why a
//! request was refused.
//!
//! A refused request is answered with [`BrokerError::code`] and the error's
//! text as the remark; the connection stays open. Many remarks are RocketMQ's
//! own, word for word: Java clients and admin tools print them, and some tests
//! check them, so a variant's text changes only together with its callers.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use mq_protocol::body::BodyError;
use mq_protocol::codes::response;
use mq_protocol::headers::HeaderError;
use mq_protocol::message::DecodeError;

use super::state::topics::InvalidTopic;
use crate::store::StoreError;

/// Everything the broker reports as a failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BrokerError {
    // Starting and stopping.
    /// The message store did not open (recovery failed, another process holds
    /// it, ...).
    #[error("opening the store at {}: {source}", path.display())]
    OpenStore {
        /// The store root.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// A table under `<store root>/config/` and its `.bak` are both unreadable
    /// or damaged; the text names the file. Refusing to start is safer than
    /// forgetting offsets.
    #[error("{0}")]
    LoadTable(String),
    /// `aclEnable=true` but the accounts file is unusable or unnamed.
    #[error("{0}")]
    Acl(String),
    /// The main port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The VIP port (listenPort - 2) could not be bound.
    #[error("binding the VIP port {addr}: {source}")]
    BindVip {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The metrics port (`metricsPort`) could not be bound.
    #[error("binding the metrics port {addr}: {source}")]
    BindMetrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The HA port (`haListenPort`, listenPort + 1) could not be bound.
    #[error("binding the HA port {addr}: {source}")]
    BindHa {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Shutdown could not save everything; each failure names what it was
    /// saving (`consumer offsets`, `topics`, `delay offsets`, `store`).
    #[error("{}", ShutdownFailures(.0))]
    Shutdown(Vec<(&'static str, StoreError)>),

    // Malformed requests.
    /// A required header field is missing or has a bad value; the text names
    /// the field.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A JSON body does not decode.
    #[error("bad {what} body: {source}")]
    Body {
        /// The request or body kind (`HEART_BEAT`, `subscription group`, ...).
        what: &'static str,
        /// Why.
        source: BodyError,
    },
    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP with an empty `groupName`.
    #[error("subscription group body without groupName")]
    GroupNameMissing,
    /// A code the broker does not serve (RocketMQ's remark, leading space
    /// included).
    #[error(" request type {0} not supported")]
    NotSupported(i32),

    // Topics, groups, queues.
    /// A topic name RocketMQ's TopicValidator refuses.
    #[error(transparent)]
    InvalidTopic(#[from] InvalidTopic),
    /// A topic named like a template or the cluster.
    #[error("the topic[{topic}] is conflict with system reserved words.")]
    ReservedTopic {
        /// The topic.
        topic: String,
    },
    /// A send or pull names a topic that does not exist (and sending may not
    /// create it).
    #[error("topic[{topic}] not exist, apply first please!")]
    TopicNotExist {
        /// The topic.
        topic: String,
    },
    /// GET_TOPIC_STATS_INFO names a topic that does not exist.
    #[error("topic[{topic}] not exist")]
    NoTopicStats {
        /// The topic.
        topic: String,
    },
    /// INVOKE_BROKER_TO_RESET_OFFSET names a topic that does not exist.
    #[error("[reset-offset] topic does not exist, {topic}")]
    NoTopicToReset {
        /// The topic.
        topic: String,
    },
    /// A send names a queue past the topic's queues.
    #[error(
        "request queueId[{queue_id}] is illegal, topic {topic} has {queues} queues, \
         producer {producer}"
    )]
    SendQueueIllegal {
        /// The queue asked for.
        queue_id: i32,
        /// The topic.
        topic: String,
        /// How many queues it has (read or write, whichever is more).
        queues: i32,
        /// Who sent.
        producer: SocketAddr,
    },
    /// A pull names a queue the topic does not have.
    #[error(
        "queueId[{queue_id}] is illegal, topic:[{topic}] \
         topicConfig.readQueueNums:[{read_queue_nums}] consumer:[{consumer}]"
    )]
    PullQueueIllegal {
        /// The queue asked for.
        queue_id: i32,
        /// The topic.
        topic: String,
        /// How many queues may be read.
        read_queue_nums: i32,
        /// Who pulled.
        consumer: SocketAddr,
    },
    /// A pull for a group that does not exist, with auto-creation off.
    #[error("subscription group [{group}] does not exist")]
    GroupNotExist {
        /// The group.
        group: String,
    },
    /// A send-back for a group that does not exist, with auto-creation off.
    #[error("subscription group not exist, {group}")]
    SendBackGroupNotExist {
        /// The group.
        group: String,
    },
    /// A pull for a group whose `consumeEnable` is off.
    #[error("subscription group no permission, {group}")]
    GroupConsumeDisabled {
        /// The group.
        group: String,
    },

    /// VIEW_BROKER_STATS_DATA named a statistic never counted (or no such name).
    #[error("The stats <{name}> <{key}> not exist")]
    NoStats {
        /// The statistic's name.
        name: String,
        /// Its key.
        key: String,
    },

    // Refusals by role and permission.
    /// Shutdown has begun: sends are refused.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// A slave takes no sends.
    #[error("the broker[{broker}] role is SLAVE, cannot write messages")]
    SlaveCannotWrite {
        /// This broker's name.
        broker: String,
    },
    /// `brokerPermission` forbids this access.
    #[error("the broker[{broker}] {access} message is forbidden")]
    BrokerForbidden {
        /// This broker's name.
        broker: String,
        /// Sending or pulling.
        access: Access,
    },
    /// The topic's permission forbids this access.
    #[error("the topic[{topic}] {access} message is forbidden")]
    TopicForbidden {
        /// The topic.
        topic: String,
        /// Sending or pulling.
        access: Access,
    },

    // Sends.
    /// A batch body that does not decode.
    #[error("bad batch body: {0}")]
    Batch(DecodeError),
    /// A batch without a message.
    #[error("empty batch")]
    EmptyBatch,
    /// The store refused a send (`BrokerError::put` picks this or
    /// [`DiskFull`](Self::DiskFull)).
    #[error(transparent)]
    Put(StoreError),
    /// The store refused a send because the disk is full.
    #[error(
        "service not available now: {0}; sends are refused until space is freed, \
         reads go on"
    )]
    DiskFull(StoreError),
    /// A table could not be saved, or the store failed anything but a send
    /// (send-backs included: RocketMQ answers those SYSTEM_ERROR too).
    #[error(transparent)]
    Store(#[from] StoreError),

    // Clients and queries.
    /// GET_CONSUMER_LIST_BY_GROUP for a group without members.
    #[error("no consumer for this group, {group}")]
    NoConsumer {
        /// The group.
        group: String,
    },
    /// GET_CONSUMER_CONNECTION_LIST for a group without members.
    #[error("the consumer group[{group}] not online")]
    ConsumerNotOnline {
        /// The group.
        group: String,
    },
    /// GET_PRODUCER_CONNECTION_LIST for a group without members.
    #[error("the producer group[{group}] not exist")]
    NoProducer {
        /// The group.
        group: String,
    },
    /// CHECK_CLIENT_CONFIG with an SQL92 subscription: mq filters by tag only.
    #[error("The broker does not support consumer to filter message by SQL92")]
    Sql92,
    /// VIEW_MESSAGE_BY_ID: no message at that commit log offset.
    #[error("can not find message by the offset, {offset}")]
    NoMessageAt {
        /// The commit log offset.
        offset: i64,
    },
    /// CONSUMER_SEND_MSG_BACK: no message at that commit log offset.
    #[error("look message by offset failed, {offset}")]
    NoMessageToSendBack {
        /// The commit log offset.
        offset: i64,
    },

    // Transactions.
    /// END_TRANSACTION: no message at the commit log offset given.
    #[error("Find prepared transaction message failed")]
    HalfNotFound {
        /// The commit log offset.
        offset: i64,
    },
    /// END_TRANSACTION's header does not match the half message it names; the
    /// text is RocketMQ's and says which field.
    #[error("{0}")]
    HalfMismatch(&'static str),
    /// A half message lost its real topic.
    #[error("half message without REAL_TOPIC")]
    NoRealTopic,
    /// The committed message could not be stored.
    #[error("committing the half message: {0}")]
    Commit(StoreError),
    /// The op record deciding a half message could not be stored.
    #[error("writing the op record: {0}")]
    OpRecord(StoreError),
}

/// What a client tried to do, in RocketMQ's "... message is forbidden" remarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// SEND_MESSAGE and friends.
    Send,
    /// PULL_MESSAGE.
    Pull,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Send => "sending",
            Access::Pull => "pulling",
        })
    }
}

/// Shutdown's failures as one line: `what: error; what: error`.
struct ShutdownFailures<'a>(&'a [(&'static str, StoreError)]);

impl fmt::Display for ShutdownFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (what, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{what}: {e}")?;
        }
        Ok(())
    }
}

impl BrokerError {
    /// The error for a send the store refused: a full disk gets its own
    /// remark, telling the operator that reads go on.
    pub(crate) fn put(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull { .. } => BrokerError::DiskFull(e),
            e => BrokerError::Put(e),
        }
    }

    /// The response code, as RocketMQ answers the same failure.
    pub fn code(&self) -> i32 {
        use BrokerError::*;
        match self {
            NotSupported(_) => response::REQUEST_CODE_NOT_SUPPORTED,
            TopicNotExist { .. } | NoTopicStats { .. } | NoTopicToReset { .. } => {
                response::TOPIC_NOT_EXIST
            }
            GroupNotExist { .. } | SendBackGroupNotExist { .. } => {
                response::SUBSCRIPTION_GROUP_NOT_EXIST
            }
            GroupConsumeDisabled { .. } | BrokerForbidden { .. } | TopicForbidden { .. } => {
                response::NO_PERMISSION
            }
            // Every RocketMQ producer takes SERVICE_NOT_AVAILABLE as "try
            // another broker".
            ShuttingDown | SlaveCannotWrite { .. } | DiskFull(_) => response::SERVICE_NOT_AVAILABLE,
            Batch(_) | EmptyBatch => response::MESSAGE_ILLEGAL,
            Put(e) => match e {
                StoreError::MessageTooLarge { .. }
                | StoreError::Encode(_)
                | StoreError::EmptyBatch => response::MESSAGE_ILLEGAL,
                StoreError::Closed => response::SERVICE_NOT_AVAILABLE,
                e if e.is_out_of_space() => response::SERVICE_NOT_AVAILABLE,
                _ => response::SYSTEM_ERROR,
            },
            ConsumerNotOnline { .. } => response::CONSUMER_NOT_ONLINE,
            OpenStore { .. }
            | LoadTable(_)
            | Acl(_)
            | Bind { .. }
            | BindVip { .. }
            | BindHa { .. }
            | BindMetrics { .. }
            | Shutdown(_)
            | Header(_)
            | Body { .. }
            | GroupNameMissing
            | InvalidTopic(_)
            | ReservedTopic { .. }
            | SendQueueIllegal { .. }
            | PullQueueIllegal { .. }
            | Store(_)
            | NoConsumer { .. }
            | NoStats { .. }
            | NoProducer { .. }
            | Sql92
            | NoMessageAt { .. }
            | NoMessageToSendBack { .. }
            | HalfNotFound { .. }
            | HalfMismatch(_)
            | NoRealTopic
            | Commit(_)
            | OpRecord(_) => response::SYSTEM_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remarks_and_codes_are_rocketmqs() {
        let e = BrokerError::NotSupported(999);
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                response::REQUEST_CODE_NOT_SUPPORTED,
                " request type 999 not supported"
            )
        );
        let e = BrokerError::SendQueueIllegal {
            queue_id: 9,
            topic: "T".into(),
            queues: 4,
            producer: "127.0.0.1:5000".parse().expect("address"),
        };
        assert_eq!(
            e.to_string(),
            "request queueId[9] is illegal, topic T has 4 queues, producer 127.0.0.1:5000"
        );
        let e = BrokerError::PullQueueIllegal {
            queue_id: -1,
            topic: "T".into(),
            read_queue_nums: 4,
            consumer: "127.0.0.1:5000".parse().expect("address"),
        };
        assert_eq!(
            e.to_string(),
            "queueId[-1] is illegal, topic:[T] topicConfig.readQueueNums:[4] \
             consumer:[127.0.0.1:5000]"
        );
        let e = BrokerError::TopicForbidden {
            topic: "T".into(),
            access: Access::Pull,
        };
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                response::NO_PERMISSION,
                "the topic[T] pulling message is forbidden"
            )
        );
    }

    #[test]
    fn a_full_disk_is_service_not_available_and_says_reads_go_on() {
        let full = StoreError::DiskFull {
            path: "/store".into(),
            used_percent: 96,
            free: "1 GiB".into(),
            why: "over diskMaxUsedSpaceRatio".into(),
        };
        let e = BrokerError::put(full);
        assert_eq!(e.code(), response::SERVICE_NOT_AVAILABLE);
        assert!(e.to_string().starts_with("service not available now: "));
        assert!(e.to_string().ends_with("until space is freed, reads go on"));
        let e = BrokerError::put(StoreError::EmptyBatch);
        assert_eq!(e.code(), response::MESSAGE_ILLEGAL);
        // A send-back's store failure is a plain SYSTEM_ERROR.
        let e = BrokerError::from(StoreError::Closed);
        assert_eq!(e.code(), response::SYSTEM_ERROR);
    }

    #[test]
    fn shutdown_lists_every_failure() {
        let e = BrokerError::Shutdown(vec![
            ("topics", StoreError::Closed),
            ("store", StoreError::Closed),
        ]);
        assert_eq!(
            e.to_string(),
            "topics: store is closed; store: store is closed"
        );
    }
}
