//! Where a consumer group starts reading a queue it has no offset for
//! (RocketMQ's ConsumeFromWhere and computePullFromWhere).

use std::sync::Arc;

use mq_protocol::body::{ConsumeFromWhere, MessageQueue};
use mq_protocol::topics::RETRY_GROUP_TOPIC_PREFIX;

use super::offset_store::OffsetStore;
use super::queue_offsets::{max_offset, search_offset};
use crate::error::Result;
use crate::instance::ClientInstance;

/// Where a consumer group without a committed offset starts reading a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFrom {
    /// At the end: only messages stored from now on (the Java default). A
    /// brand-new queue whose first message is still in memory is read from 0,
    /// as the broker answers QUERY_CONSUMER_OFFSET with 0 then.
    LastOffset,
    /// At the start of the queue.
    FirstOffset,
    /// At the first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl ConsumeFrom {
    /// The heartbeat's `consumeFromWhere`.
    pub fn as_consume_from_where(self) -> ConsumeFromWhere {
        match self {
            ConsumeFrom::LastOffset => ConsumeFromWhere::ConsumeFromLastOffset,
            ConsumeFrom::FirstOffset => ConsumeFromWhere::ConsumeFromFirstOffset,
            ConsumeFrom::Timestamp(_) => ConsumeFromWhere::ConsumeFromTimestamp,
        }
    }
}

/// Where a queue without a usable offset in memory starts (RocketMQ's
/// computePullFromWhere): the stored offset if any, else by `from`, with
/// Java's exceptions for a retry topic (read from 0 instead of the end, from
/// the end instead of a time).
pub(crate) async fn start_offset(
    instance: &Arc<ClientInstance>,
    store: &OffsetStore,
    mq: &MessageQueue,
    from: ConsumeFrom,
) -> Result<i64> {
    if let Some(offset) = store.read_store(mq).await? {
        return Ok(offset);
    }
    let retry = mq.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX);
    match from {
        ConsumeFrom::LastOffset if retry => Ok(0),
        ConsumeFrom::LastOffset => max_offset(instance, mq).await,
        ConsumeFrom::FirstOffset => Ok(0),
        ConsumeFrom::Timestamp(_) if retry => max_offset(instance, mq).await,
        ConsumeFrom::Timestamp(ts) => search_offset(instance, mq, ts).await,
    }
}
