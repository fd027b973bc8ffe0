//! Rebalance (RocketMQ's RebalanceImpl): which queues of a topic this consumer
//! reads. In clustering mode the readable queues (`mqAll`, sorted) are divided
//! among the group's consumers (`cidAll`, sorted, asked of one broker of the
//! topic) with AllocateMessageQueueAveragely; in broadcasting mode every
//! consumer takes every queue. Each consumer applies the result its own way
//! (`lite_pull`, `push::rebalance`).

use std::sync::Arc;
use std::time::Duration;

use mq_protocol::body::{GetConsumerListByGroupResponseBody, MessageModel, MessageQueue};
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{CommandHeader, ConsumerGroupRequestHeader};

use crate::connection::client_request;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::route::subscribe_queues;

/// How often a consumer rebalances without being told to
/// (`rocketmq.client.rebalance.waitInterval`).
pub(crate) const REBALANCE_INTERVAL: Duration = Duration::from_secs(20);

/// AllocateMessageQueueAveragely: the contiguous share of `mq_all` that
/// consumer `current` gets among `cid_all` (both already sorted). Empty when
/// `current` is not in the list.
pub(crate) fn allocate_averagely(
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

/// GET_CONSUMER_LIST_BY_GROUP from one broker of `topic`, sorted.
async fn consumer_ids(
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
    let mut cmd = client_request(request::GET_CONSUMER_LIST_BY_GROUP);
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
}
