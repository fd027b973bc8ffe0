//! Queue locks of orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ): a
//! queue is consumed in order by one client only while that client holds its
//! lock at the broker. Brokers expire a lock after 60 s without renewal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::body::{
    LockBatchRequestBody, LockBatchResponseBody, MessageQueue, UnlockBatchRequestBody,
};
use mq_protocol::codes::{request, response};

use crate::connection::client_request;
use crate::instance::ClientInstance;

/// How often orderly consumers renew their queue locks
/// (`rocketmq.client.rebalance.lockInterval`).
pub(crate) const LOCK_INTERVAL: Duration = Duration::from_secs(20);

/// After this long without renewal a client treats its lock as lost
/// (`rocketmq.client.rebalance.lockMaxLiveTime`).
pub(crate) const LOCK_MAX_LIVE: Duration = Duration::from_secs(30);

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
        let addr = match instance.queue_master_addr(first).await {
            Ok(addr) => addr,
            Err(e) => {
                log::debug!("locking queues on {broker}: {e}");
                continue;
            }
        };
        let mut cmd = client_request(request::LOCK_BATCH_MQ);
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
        let Ok(addr) = instance.queue_master_addr(first).await else {
            continue;
        };
        let mut cmd = client_request(request::UNLOCK_BATCH_MQ);
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
