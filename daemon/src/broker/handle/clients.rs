//! Consumer-facing requests other than PULL: offsets (QUERY/UPDATE_CONSUMER_OFFSET,
//! GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME),
//! client management (HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP,
//! CHECK_CLIENT_CONFIG) and the queue locks of orderly consumers
//! (LOCK_BATCH_MQ, UNLOCK_BATCH_MQ).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq::protocol::body::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, HeartbeatData,
    LockBatchRequestBody, LockBatchResponseBody, MessageModel, MessageQueue,
    UnlockBatchRequestBody, EXPRESSION_TYPE_TAG,
};
use mq::protocol::codes::{request, response};
use mq::protocol::headers::{
    CommandHeader, ConsumerGroupRequestHeader, EarliestMsgStoretimeResponseHeader,
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader,
    TopicQueueRequestHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use mq::protocol::remoting::RemotingCommand;

use crate::broker::state::clients::ClientChannel;
use crate::broker::state::topics::{perm, RETRY_GROUP_TOPIC_PREFIX};
use crate::broker::Broker;
use crate::remoting::{error_response, Connection};

/// How long a queue lock lives without renewal (RocketMQ: 60 s).
const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

fn with_header(req: &RemotingCommand, header: &impl CommandHeader) -> RemotingCommand {
    let mut resp = ok(req);
    header.encode(&mut resp.ext_fields);
    resp
}

fn bad_request(req: &RemotingCommand, e: impl std::fmt::Display) -> RemotingCommand {
    error_response(req, response::SYSTEM_ERROR, e.to_string())
}

/// Handles the requests of this module.
pub async fn handle(
    broker: &Arc<Broker>,
    conn: &Arc<Connection>,
    req: &RemotingCommand,
) -> RemotingCommand {
    match handle_inner(broker, conn, req).await {
        Ok(resp) => resp,
        Err(resp) => resp,
    }
}

async fn handle_inner(
    broker: &Arc<Broker>,
    conn: &Arc<Connection>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, RemotingCommand> {
    let store = &broker.store;
    Ok(match req.code {
        request::QUERY_CONSUMER_OFFSET => {
            let h = QueryConsumerOffsetRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            match broker
                .offsets
                .query(&h.consumer_group, &h.topic, h.queue_id)
            {
                Some(offset) if offset >= 0 => with_header(req, &OffsetResponseHeader { offset }),
                _ => {
                    // As 4.9: a group that has committed nothing starts at 0 while
                    // the queue still begins at 0 and its first message is in
                    // memory, so a new group sees a new topic from its start.
                    let min = store.min_offset(&h.topic, h.queue_id);
                    if min <= 0 && !first_message_on_disk(broker, &h.topic, h.queue_id) {
                        with_header(req, &OffsetResponseHeader { offset: 0 })
                    } else {
                        error_response(
                            req,
                            response::QUERY_NOT_FOUND,
                            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
                        )
                    }
                }
            }
        }
        request::UPDATE_CONSUMER_OFFSET => {
            let h = UpdateConsumerOffsetRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            broker
                .offsets
                .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
            ok(req)
        }
        request::GET_MAX_OFFSET => {
            let h = TopicQueueRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            let offset = store.max_offset(&h.topic, h.queue_id);
            with_header(req, &OffsetResponseHeader { offset })
        }
        request::GET_MIN_OFFSET => {
            let h = TopicQueueRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            let offset = store.min_offset(&h.topic, h.queue_id);
            with_header(req, &OffsetResponseHeader { offset })
        }
        request::SEARCH_OFFSET_BY_TIMESTAMP => {
            let h = SearchOffsetRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            let offset = store.offset_by_time(&h.topic, h.queue_id, h.timestamp);
            with_header(req, &OffsetResponseHeader { offset })
        }
        request::GET_EARLIEST_MSG_STORETIME => {
            let h = TopicQueueRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            let timestamp = store
                .earliest_message_time(&h.topic, h.queue_id)
                .unwrap_or(-1);
            with_header(req, &EarliestMsgStoretimeResponseHeader { timestamp })
        }
        request::HEART_BEAT => heartbeat(broker, conn, req)?,
        request::UNREGISTER_CLIENT => {
            let h = UnregisterClientRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            if let Some(group) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
                broker.clients.unregister_producer(group, conn.id);
            }
            if let Some(group) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
                if broker.clients.unregister_consumer(group, conn.id) {
                    log::info!("consumer {} left {group}", h.client_id);
                    broker.notify_consumer_ids_changed(group);
                }
            }
            ok(req)
        }
        request::GET_CONSUMER_LIST_BY_GROUP => {
            let h = ConsumerGroupRequestHeader::decode(&req.ext_fields)
                .map_err(|e| bad_request(req, e))?;
            let ids = broker.clients.consumer_ids(&h.consumer_group);
            if ids.is_empty() {
                error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("no consumer for this group, {}", h.consumer_group),
                )
            } else {
                let mut resp = ok(req);
                resp.body = GetConsumerListByGroupResponseBody {
                    consumer_id_list: ids,
                }
                .encode();
                resp
            }
        }
        request::CHECK_CLIENT_CONFIG => {
            let body = CheckClientRequestBody::decode(&req.body)
                .map_err(|e| bad_request(req, format!("bad CHECK_CLIENT_CONFIG body: {e}")))?;
            match body.subscription_data {
                Some(sub)
                    if sub.expression_type != EXPRESSION_TYPE_TAG
                        && !sub.expression_type.is_empty() =>
                {
                    error_response(
                        req,
                        response::SYSTEM_ERROR,
                        "The broker does not support consumer to filter message by SQL92",
                    )
                }
                _ => ok(req),
            }
        }
        request::LOCK_BATCH_MQ => {
            let body = LockBatchRequestBody::decode(&req.body)
                .map_err(|e| bad_request(req, format!("bad LOCK_BATCH_MQ body: {e}")))?;
            let locked = broker
                .locks
                .lock(&body.consumer_group, &body.client_id, &body.mq_set);
            let mut resp = ok(req);
            resp.body = LockBatchResponseBody {
                lock_ok_mq_set: locked,
            }
            .encode();
            resp
        }
        request::UNLOCK_BATCH_MQ => {
            let body = UnlockBatchRequestBody::decode(&req.body)
                .map_err(|e| bad_request(req, format!("bad UNLOCK_BATCH_MQ body: {e}")))?;
            broker
                .locks
                .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
            ok(req)
        }
        other => error_response(
            req,
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {other} not supported"),
        ),
    })
}

/// Whether the message at offset 0 of a queue has left memory (RocketMQ's
/// checkInDiskByConsumeOffset: more than 40 % of RAM behind the log's end).
fn first_message_on_disk(broker: &Broker, topic: &str, queue_id: i32) -> bool {
    let Some(first) = broker.store.first_entry_phys_offset(topic, queue_id, 0) else {
        return false;
    };
    let behind = broker.store.commit_log_range().1 - first;
    behind > (physical_memory() as f64 * 0.4) as i64
}

fn physical_memory() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    let pages = sysconf(SysconfVar::_PHYS_PAGES).ok().flatten().unwrap_or(0);
    let size = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    (pages.max(0) as u64).saturating_mul(size.max(0) as u64)
}

fn heartbeat(
    broker: &Arc<Broker>,
    conn: &Arc<Connection>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, RemotingCommand> {
    let data = HeartbeatData::decode(&req.body)
        .map_err(|e| bad_request(req, format!("bad HEART_BEAT body: {e}")))?;
    let (language, version) = (req.language.name().to_owned(), req.version);
    let channel = || ClientChannel {
        conn: conn.clone(),
        client_id: data.client_id.clone(),
        language: language.clone(),
        version,
        last_update: Instant::now(),
    };
    for consumer in &data.consumer_data_set {
        if consumer.group_name.is_empty() {
            continue;
        }
        let group = broker
            .groups
            .find_or_create(&consumer.group_name)
            .map_err(|e| error_response(req, response::SYSTEM_ERROR, e.to_string()))?;
        // As 4.9: an unknown group (with auto-creation off) may still heartbeat;
        // it only gets no retry topic, and its pulls are refused.
        if let Some(group) = group.filter(|_| consumer.message_model == MessageModel::Clustering) {
            // Clustering consumers need their retry topic routed before they rebalance.
            let retry = format!("{RETRY_GROUP_TOPIC_PREFIX}{}", consumer.group_name);
            let created = broker
                .topics
                .get_or_create_system(
                    &retry,
                    group.retry_queue_nums.max(1),
                    perm::READ | perm::WRITE,
                )
                .map_err(|e| error_response(req, response::SYSTEM_ERROR, e.to_string()))?
                .1;
            if created {
                broker.register_soon();
            }
        }
        if broker.clients.register_consumer(channel(), consumer) {
            log::info!(
                "consumer group {} changed ({} from {})",
                consumer.group_name,
                data.client_id,
                conn.peer
            );
            broker.notify_consumer_ids_changed(&consumer.group_name);
        }
    }
    for producer in &data.producer_data_set {
        if !producer.group_name.is_empty() {
            broker
                .clients
                .register_producer(&producer.group_name, channel());
        }
    }
    Ok(ok(req))
}

/// The owner of each locked queue of one group, and when it last renewed.
type GroupLocks = HashMap<MessageQueue, (String, Instant)>;

/// Which client holds which queue (orderly consumption), with expiry.
#[derive(Default)]
pub struct LockManager {
    table: Mutex<HashMap<String, GroupLocks>>,
}

impl LockManager {
    /// Locks what it can of `queues` for `client`; returns the queues the client now holds.
    pub fn lock(
        &self,
        group: &str,
        client: &str,
        queues: &BTreeSet<MessageQueue>,
    ) -> BTreeSet<MessageQueue> {
        let now = Instant::now();
        let mut table = self.table.lock().expect("locks poisoned");
        let locks = table.entry(group.to_owned()).or_default();
        let mut granted = BTreeSet::new();
        for mq in queues {
            match locks.get_mut(mq) {
                Some((owner, at)) if owner == client => {
                    *at = now;
                    granted.insert(mq.clone());
                }
                Some((_, at)) if now.duration_since(*at) < LOCK_MAX_LIVE => {}
                _ => {
                    locks.insert(mq.clone(), (client.to_owned(), now));
                    granted.insert(mq.clone());
                }
            }
        }
        granted
    }

    /// Releases the queues `client` holds among `queues`.
    pub fn unlock(&self, group: &str, client: &str, queues: &BTreeSet<MessageQueue>) {
        let mut table = self.table.lock().expect("locks poisoned");
        if let Some(locks) = table.get_mut(group) {
            for mq in queues {
                if locks.get(mq).is_some_and(|(owner, _)| owner == client) {
                    locks.remove(mq);
                }
            }
        }
    }

    /// Drops expired locks.
    pub fn remove_expired(&self) {
        let now = Instant::now();
        let mut table = self.table.lock().expect("locks poisoned");
        for locks in table.values_mut() {
            locks.retain(|_, (_, at)| now.duration_since(*at) < LOCK_MAX_LIVE);
        }
        table.retain(|_, l| !l.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_exclusive_and_renewable() {
        let locks = LockManager::default();
        let q: BTreeSet<MessageQueue> = [
            MessageQueue::new("T", "b", 0),
            MessageQueue::new("T", "b", 1),
        ]
        .into();
        assert_eq!(locks.lock("G", "c1", &q).len(), 2);
        assert!(locks.lock("G", "c2", &q).is_empty());
        assert_eq!(locks.lock("G", "c1", &q).len(), 2);
        locks.unlock("G", "c1", &q);
        assert_eq!(locks.lock("G", "c2", &q).len(), 2);
        // Another group's locks are separate.
        assert_eq!(locks.lock("H", "c1", &q).len(), 2);
    }
}
