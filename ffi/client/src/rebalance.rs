//! Rebalance (RocketMQ's RebalanceImpl): which queues of a topic this consumer
//! reads. In clustering mode the readable queues (`mqAll`, sorted) are divided
//! among the group's consumers (`cidAll`, sorted, asked of one broker of the
//! topic) with AllocateMessageQueueAveragely; in broadcasting mode every
//! consumer takes every queue. Also here: where a new queue starts reading
//! (ConsumeFromWhere), the broker offset queries that needs, and the queue
//! locks of orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::body::{
    GetConsumerListByGroupResponseBody, LockBatchRequestBody, LockBatchResponseBody, MessageModel,
    MessageQueue, UnlockBatchRequestBody,
};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::{LanguageCode, RemotingCommand};
use mq_protocol::headers::{
    CommandHeader, ConsumerGroupRequestHeader, OffsetResponseHeader, SearchOffsetRequestHeader,
    TopicQueueRequestHeader,
};

use super::error::{ClientError, Result};
use super::instance::ClientInstance;
use super::offset_store::OffsetStore;
use super::producer::subscribe_queues;
use super::pull_consumer::ConsumeFrom;

/// Prefix of a group's retry topic.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";

/// How often a consumer rebalances without being told to
/// (`rocketmq.client.rebalance.waitInterval`).
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(20);

/// How often orderly consumers renew their queue locks
/// (`rocketmq.client.rebalance.lockInterval`).
pub const LOCK_INTERVAL: Duration = Duration::from_secs(20);

/// After this long without renewal a client treats its lock as lost
/// (`rocketmq.client.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(30);

/// The retry topic of `group`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// AllocateMessageQueueAveragely: the contiguous share of `mq_all` that
/// consumer `current` gets among `cid_all` (both already sorted). Empty when
/// `current` is not in the list.
pub fn allocate_averagely(
    mq_all: &[MessageQueue],
    cid_all: &[String],
    current: &str,
) -> Vec<MessageQueue> {
    let Some(index) = cid_all.iter().position(|c| c == current) else {
        return Vec::new();
    };
    let (n, c) = (mq_all.len(), cid_all.len());
    if n == 0 {
        return Vec::new();
    }
    let rem = n % c;
    let size = if n <= c {
        1
    } else if index < rem {
        n / c + 1
    } else {
        n / c
    };
    let start = if index < rem {
        index * size
    } else {
        index * size + rem
    };
    let take = size.min(n.saturating_sub(start));
    (0..take).map(|i| mq_all[(start + i) % n].clone()).collect()
}

/// The master address of the broker holding `mq`, refreshing the topic's route
/// once when no cached route names it.
pub(crate) async fn master_addr_of(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
) -> Result<String> {
    broker_addr_of(instance, mq, 0).await
}

/// The address of broker `id` of `mq`'s broker (falling back to the master).
pub(crate) async fn broker_addr_of(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    id: i64,
) -> Result<String> {
    if let Some(addr) = instance
        .broker_addr(&mq.broker_name, id)
        .or_else(|| instance.master_addr(&mq.broker_name))
    {
        return Ok(addr);
    }
    instance.update_route(&mq.topic).await?;
    instance
        .master_addr(&mq.broker_name)
        .ok_or_else(|| ClientError::NoBrokerAddress(mq.broker_name.clone()))
}

fn new_request(code: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code);
    cmd.language = LanguageCode::Rust;
    cmd
}

async fn offset_request(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    mut cmd: RemotingCommand,
) -> Result<i64> {
    let addr = master_addr_of(instance, mq).await?;
    cmd.put("bname", &mq.broker_name);
    let resp = instance
        .invoke(&addr, cmd, instance.config().request_timeout)
        .await?;
    if resp.code != response::SUCCESS {
        return Err(ClientError::refused(resp));
    }
    OffsetResponseHeader::decode(&resp.ext_fields)
        .map(|h| h.offset)
        .map_err(|e| ClientError::decode("offset", e))
}

/// GET_MAX_OFFSET: the queue's next offset to be written.
pub async fn max_offset(instance: &Arc<ClientInstance>, mq: &MessageQueue) -> Result<i64> {
    let mut cmd = new_request(request::GET_MAX_OFFSET);
    TopicQueueRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
    }
    .encode(&mut cmd.ext_fields);
    offset_request(instance, mq, cmd).await
}

/// GET_MIN_OFFSET: the queue's smallest offset still stored.
pub async fn min_offset(instance: &Arc<ClientInstance>, mq: &MessageQueue) -> Result<i64> {
    let mut cmd = new_request(request::GET_MIN_OFFSET);
    TopicQueueRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
    }
    .encode(&mut cmd.ext_fields);
    offset_request(instance, mq, cmd).await
}

/// SEARCH_OFFSET_BY_TIMESTAMP: the first offset stored at or after `timestamp` (ms).
pub async fn search_offset(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    timestamp: i64,
) -> Result<i64> {
    let mut cmd = new_request(request::SEARCH_OFFSET_BY_TIMESTAMP);
    SearchOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        timestamp,
    }
    .encode(&mut cmd.ext_fields);
    offset_request(instance, mq, cmd).await
}

/// GET_CONSUMER_LIST_BY_GROUP from one broker of `topic`, sorted.
pub(crate) async fn consumer_ids(
    instance: &Arc<ClientInstance>,
    topic: &str,
    group: &str,
) -> Result<Vec<String>> {
    let route = instance.route(topic).await?;
    let mut brokers: Vec<&str> = route
        .broker_datas
        .iter()
        .map(|b| b.broker_name.as_str())
        .collect();
    brokers.sort_unstable();
    // Java picks a random broker; any one knows the whole group.
    let addr = brokers
        .iter()
        .find_map(|b| instance.master_addr(b))
        .or_else(|| {
            route
                .broker_datas
                .iter()
                .find_map(|b| b.broker_addrs.values().next().cloned())
        })
        .ok_or_else(|| ClientError::NoRoute(topic.to_owned()))?;
    let mut cmd = new_request(request::GET_CONSUMER_LIST_BY_GROUP);
    ConsumerGroupRequestHeader {
        consumer_group: group.to_owned(),
    }
    .encode(&mut cmd.ext_fields);
    let resp = instance
        .invoke(&addr, cmd, instance.config().request_timeout)
        .await?;
    if resp.code != response::SUCCESS {
        return Err(ClientError::refused(resp));
    }
    let mut ids = GetConsumerListByGroupResponseBody::decode(&resp.body)
        .map_err(|e| ClientError::decode("consumer list", e))?
        .consumer_id_list;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Why a topic's assignment could not be computed this round.
#[derive(Debug)]
pub(crate) enum Incomplete {
    /// The topic has no route yet (e.g. a retry topic just created).
    NoRoute,
    /// The broker does not list this client yet (its heartbeat is in flight).
    NotListed,
    /// A request failed.
    Failed(ClientError),
}

/// The queues of `topic` this client should read now.
pub(crate) async fn assignment(
    instance: &Arc<ClientInstance>,
    group: &str,
    model: MessageModel,
    topic: &str,
) -> Result<Vec<MessageQueue>, Incomplete> {
    let route = match instance.route(topic).await {
        Ok(route) => route,
        Err(ClientError::NoRoute(_)) => return Err(Incomplete::NoRoute),
        Err(e) => return Err(Incomplete::Failed(e)),
    };
    let mq_all = subscribe_queues(topic, &route);
    if mq_all.is_empty() {
        return Err(Incomplete::NoRoute);
    }
    match model {
        MessageModel::Broadcasting => Ok(mq_all),
        MessageModel::Clustering => {
            let cid_all = consumer_ids(instance, topic, group)
                .await
                .map_err(Incomplete::Failed)?;
            if !cid_all.iter().any(|c| c == instance.client_id()) {
                return Err(Incomplete::NotListed);
            }
            Ok(allocate_averagely(&mq_all, &cid_all, instance.client_id()))
        }
    }
}

/// Where a queue without a usable offset in memory starts (RocketMQ's
/// computePullFromWhere): the stored offset if any, else by `from`.
pub(crate) async fn compute_pull_from_where(
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

fn by_broker(mqs: &BTreeSet<MessageQueue>) -> BTreeMap<String, BTreeSet<MessageQueue>> {
    let mut out: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
    for mq in mqs {
        out.entry(mq.broker_name.clone())
            .or_default()
            .insert(mq.clone());
    }
    out
}

/// LOCK_BATCH_MQ on each broker: the subset of `mqs` this client now holds.
pub(crate) async fn lock_batch(
    instance: &Arc<ClientInstance>,
    group: &str,
    mqs: &BTreeSet<MessageQueue>,
) -> BTreeSet<MessageQueue> {
    let mut locked = BTreeSet::new();
    for (broker, set) in by_broker(mqs) {
        let Some(first) = set.iter().next() else {
            continue;
        };
        let addr = match master_addr_of(instance, first).await {
            Ok(addr) => addr,
            Err(e) => {
                log::debug!("locking queues on {broker}: {e}");
                continue;
            }
        };
        let mut cmd = new_request(request::LOCK_BATCH_MQ);
        cmd.body = LockBatchRequestBody {
            client_id: instance.client_id().to_owned(),
            consumer_group: group.to_owned(),
            mq_set: set.clone(),
        }
        .encode();
        match instance
            .invoke(&addr, cmd, instance.config().request_timeout)
            .await
        {
            Ok(resp) if resp.code == response::SUCCESS => {
                match LockBatchResponseBody::decode(&resp.body) {
                    Ok(body) => {
                        locked.extend(body.lock_ok_mq_set.into_iter().filter(|q| set.contains(q)))
                    }
                    Err(e) => log::debug!("bad LOCK_BATCH_MQ response from {broker}: {e}"),
                }
            }
            Ok(resp) => log::debug!(
                "LOCK_BATCH_MQ refused by {broker}: {} {}",
                resp.code,
                resp.remark.unwrap_or_default()
            ),
            Err(e) => log::debug!("LOCK_BATCH_MQ to {broker}: {e}"),
        }
    }
    locked
}

/// UNLOCK_BATCH_MQ on each broker holding one of `mqs` (errors are logged:
/// the broker's lock expires by itself after 60 s).
pub(crate) async fn unlock_batch(
    instance: &Arc<ClientInstance>,
    group: &str,
    mqs: &BTreeSet<MessageQueue>,
) {
    for (broker, set) in by_broker(mqs) {
        let Some(first) = set.iter().next() else {
            continue;
        };
        let Ok(addr) = master_addr_of(instance, first).await else {
            continue;
        };
        let mut cmd = new_request(request::UNLOCK_BATCH_MQ);
        cmd.body = UnlockBatchRequestBody {
            client_id: instance.client_id().to_owned(),
            consumer_group: group.to_owned(),
            mq_set: set,
        }
        .encode();
        if let Err(e) = instance
            .invoke(&addr, cmd, instance.config().request_timeout)
            .await
        {
            log::debug!("UNLOCK_BATCH_MQ to {broker}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|q| MessageQueue::new("T", "b", q)).collect()
    }

    fn cids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn ids(v: &[MessageQueue]) -> Vec<i32> {
        v.iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn averagely_splits_eight_queues_among_three_as_the_doc_says() {
        let (mqs, c) = (queues(8), cids(3));
        assert_eq!(ids(&allocate_averagely(&mqs, &c, "c0")), [0, 1, 2]);
        assert_eq!(ids(&allocate_averagely(&mqs, &c, "c1")), [3, 4, 5]);
        assert_eq!(ids(&allocate_averagely(&mqs, &c, "c2")), [6, 7]);
    }

    #[test]
    fn averagely_covers_every_queue_exactly_once() {
        for n in 0..13 {
            for c in 1..9 {
                let (mqs, cs) = (queues(n), cids(c));
                let mut all: Vec<i32> = cs
                    .iter()
                    .flat_map(|cid| ids(&allocate_averagely(&mqs, &cs, cid)))
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "{n} queues, {c} consumers");
            }
        }
    }

    #[test]
    fn averagely_edge_cases() {
        // More consumers than queues: one each, the rest get nothing.
        let (mqs, c) = (queues(2), cids(4));
        assert_eq!(ids(&allocate_averagely(&mqs, &c, "c0")), [0]);
        assert_eq!(ids(&allocate_averagely(&mqs, &c, "c1")), [1]);
        assert!(allocate_averagely(&mqs, &c, "c2").is_empty());
        assert!(allocate_averagely(&mqs, &c, "c3").is_empty());
        // Even split, a single consumer, an unknown consumer, no queues.
        assert_eq!(ids(&allocate_averagely(&queues(4), &cids(2), "c1")), [2, 3]);
        assert_eq!(
            ids(&allocate_averagely(&queues(3), &cids(1), "c0")),
            [0, 1, 2]
        );
        assert!(allocate_averagely(&queues(4), &cids(2), "stranger").is_empty());
        assert!(allocate_averagely(&[], &cids(2), "c0").is_empty());
    }

    #[test]
    fn retry_topics_are_prefixed() {
        assert_eq!(retry_topic("G"), "%RETRY%G");
    }
}
