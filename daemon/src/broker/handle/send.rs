//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): check
//! the request, find (or auto-create) the topic, store, and answer with the
//! offset message id, queue and queue offset.

use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader};
use mq_protocol::message::{decode_batch, offset_msg_id, sys_flag};
use mq_protocol::properties::{self, keys};

use super::{group_topic, Reply};
use crate::broker::config::BrokerRole;
use crate::broker::delay::divert_delayed;
use crate::broker::error::{Access, BrokerError};
use crate::broker::state::topics::{
    perm, validate_topic, AUTO_CREATE_TOPIC_KEY, RETRY_GROUP_TOPIC_PREFIX,
};
use crate::broker::{transaction, Broker, Replication};
use crate::ha::ReplicaStatus;
use crate::server::Connection;
use crate::store::{AppendResult, Durability, PutMessage};

/// The property a 4.9 broker adds to every message: its cluster's name.
const PROPERTY_CLUSTER: &str = "CLUSTER";
/// Retries before a message goes to the dead-letter queue, by default.
const DEFAULT_MAX_RECONSUME_TIMES: i32 = 16;

/// SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: one handler, as the
/// three differ only in how the header is spelt (V2 has short keys) and in
/// the body (a batch holds several messages).
pub(crate) async fn send_message(
    broker: &Broker,
    conn: &Connection,
    req: &RemotingCommand,
) -> Reply {
    let header = if req.code == request::SEND_MESSAGE {
        SendMessageRequestHeader::decode_v1(&req.ext_fields)
    } else {
        SendMessageRequestHeader::decode_v2(&req.ext_fields)
    }?;
    let config = broker.config();
    if broker.is_stopping() {
        return Err(BrokerError::ShuttingDown);
    }
    if config.broker_role == BrokerRole::Slave {
        return Err(BrokerError::SlaveCannotWrite {
            broker: config.broker_name.clone(),
        });
    }
    if !perm::writable(config.broker_permission) {
        return Err(BrokerError::BrokerForbidden {
            broker: config.broker_name.clone(),
            access: Access::Send,
        });
    }
    validate_topic(&header.topic)?;
    if header.topic == AUTO_CREATE_TOPIC_KEY {
        return Err(BrokerError::ReservedTopic {
            topic: header.topic,
        });
    }

    let mut topic = header.topic.clone();
    let mut queue_id = header.queue_id;
    let topic_config = if let Some(group) = topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
        let queues = broker
            .groups
            .find_or_create(group)?
            .map_or(1, |g| g.retry_queue_nums.max(1));
        group_topic(broker, &topic, queues)?
    } else {
        match broker.topics.get_or_create_for_send(
            &topic,
            &header.default_topic,
            header.default_topic_queue_nums,
        )? {
            Some((config, created)) => {
                if created {
                    broker.register_soon();
                }
                config
            }
            None => return Err(BrokerError::TopicNotExist { topic }),
        }
    };
    if !perm::writable(topic_config.perm) {
        return Err(BrokerError::TopicForbidden {
            topic,
            access: Access::Send,
        });
    }
    let queue_limit = topic_config
        .write_queue_nums
        .max(topic_config.read_queue_nums);
    if queue_id >= queue_limit {
        return Err(BrokerError::SendQueueIllegal {
            queue_id,
            topic,
            queues: queue_limit,
            producer: conn.peer,
        });
    }
    if queue_id < 0 {
        queue_id = (random() % topic_config.write_queue_nums.max(1) as u64) as i32;
    }

    let mut props = header.properties.clone().unwrap_or_default();
    let reconsume_times = header.reconsume_times.unwrap_or(0);
    // A client sending to a retry topic itself (its fallback when
    // CONSUMER_SEND_MSG_BACK failed): past the limit it goes to the DLQ.
    if let Some(group) = header.topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
        let max = header
            .max_reconsume_times
            .unwrap_or(DEFAULT_MAX_RECONSUME_TIMES);
        if reconsume_times >= max {
            topic = mq_protocol::topics::dlq_topic(group);
            queue_id = 0;
            group_topic(broker, &topic, 1)?;
        }
    }
    if properties::get(&props, PROPERTY_CLUSTER).is_none() {
        append_property(&mut props, PROPERTY_CLUSTER, &config.cluster_name);
    }
    let wait = properties::get(&props, keys::WAIT) != Some("false");

    let batch = req.code == request::SEND_BATCH_MESSAGE || header.batch == Some(true);
    let (mut store_topic, mut store_queue, mut store_sys_flag) =
        (topic.clone(), queue_id, header.sys_flag);
    let mut transaction_id = None;
    let owned_props: Vec<String>;
    let bodies: Vec<(i32, &[u8], &str)> = if batch {
        let items = decode_batch(&req.body).map_err(BrokerError::Batch)?;
        if items.is_empty() {
            return Err(BrokerError::EmptyBatch);
        }
        // Each message keeps its own properties, followed by the batch's.
        owned_props = items
            .iter()
            .map(|item| {
                let mut p = item.properties.to_owned();
                if !props.is_empty() {
                    if !p.is_empty() && !p.ends_with(properties::PROPERTY_SEPARATOR) {
                        p.push(properties::PROPERTY_SEPARATOR);
                    }
                    p.push_str(&props);
                }
                p
            })
            .collect();
        items
            .iter()
            .zip(&owned_props)
            .map(|(item, p)| (item.flag, item.body, p.as_str()))
            .collect()
    } else {
        let tx = sys_flag::transaction_type(header.sys_flag);
        if tx == sys_flag::TRANSACTION_PREPARED {
            // A half message waits, invisible, until END_TRANSACTION.
            transaction::ensure_topics(broker);
            let (t, q, f, p) = transaction::to_half(&topic, queue_id, header.sys_flag, &props);
            (store_topic, store_queue, store_sys_flag, props) = (t, q, f, p);
            transaction_id = properties::get(&props, keys::UNIQ_KEY).map(str::to_owned);
        } else if let Some((t, q, p)) = divert_delayed(broker, &topic, queue_id, &props) {
            // A delayed message waits in the schedule topic (not for batches, as in RocketMQ).
            (store_topic, store_queue, props) = (t, q, p);
        }
        vec![(header.flag, req.body.as_slice(), props.as_str())]
    };
    let messages: Vec<PutMessage<'_>> = bodies
        .iter()
        .map(|(flag, body, props)| PutMessage {
            topic: &store_topic,
            queue_id: store_queue,
            flag: *flag,
            sys_flag: store_sys_flag,
            born_timestamp: header.born_timestamp,
            born_host: conn.peer,
            reconsume_times,
            prepared_transaction_offset: 0,
            body,
            properties: props,
        })
        .collect();

    let started = std::time::Instant::now();
    let append = broker.store.append(&messages).map_err(|e| {
        broker.stats.on_put_failed();
        BrokerError::put(e)
    })?;
    broker.stats.on_put(
        &topic,
        messages.len() as u64,
        append.wrote_bytes as u64,
        started.elapsed(),
    );
    let code = durable_and_replicated(broker, &append, wait).await;
    let store_host = broker.store.config().store_host;
    let msg_id = append
        .messages
        .iter()
        .map(|(phys, _)| offset_msg_id(&store_host, *phys))
        .collect::<Vec<_>>()
        .join(",");
    let resp_header = SendMessageResponseHeader {
        msg_id,
        queue_id,
        queue_offset: append.messages.first().map_or(0, |m| m.1),
        transaction_id,
        msg_region: Some(config.region_id.clone()),
        trace_on: Some(config.trace_on.to_string()),
    };
    let mut resp = RemotingCommand::response_to(req, code, None);
    resp_header.encode(&mut resp.ext_fields);
    Ok(resp)
}

/// Waits for what the broker promises a send that asked to wait (the WAIT
/// property): the flush under SYNC_FLUSH, and on a SYNC_MASTER a slave's
/// acknowledgement, both at once (RocketMQ 4.9 combines the two futures).
/// The response code: SUCCESS, else FLUSH_DISK_TIMEOUT, overridden by
/// FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE. In every case the message is
/// stored on this broker.
async fn durable_and_replicated(broker: &Broker, append: &AppendResult, wait: bool) -> i32 {
    let flushed = broker.store.wait_durable(append, wait);
    let ha = match &broker.replication {
        Replication::Master(ha)
            if wait && broker.config().broker_role == BrokerRole::SyncMaster =>
        {
            ha
        }
        _ => return flush_code(flushed.await),
    };
    let started = std::time::Instant::now();
    let (durability, replica) =
        futures_lite::future::zip(flushed, ha.wait_replicated(append.end_offset())).await;
    broker.stats.replication_wait.record(started.elapsed());
    match replica {
        ReplicaStatus::Done => flush_code(durability),
        ReplicaStatus::Timeout => response::FLUSH_SLAVE_TIMEOUT,
        ReplicaStatus::NotAvailable => response::SLAVE_NOT_AVAILABLE,
    }
}

fn flush_code(durability: Durability) -> i32 {
    match durability {
        Durability::Done => response::SUCCESS,
        Durability::FlushTimeout | Durability::FlushFailed(_) => response::FLUSH_DISK_TIMEOUT,
    }
}

fn append_property(props: &mut String, name: &str, value: &str) {
    if !props.is_empty() && !props.ends_with(properties::PROPERTY_SEPARATOR) {
        props.push(properties::PROPERTY_SEPARATOR);
    }
    props.push_str(name);
    props.push(properties::NAME_VALUE_SEPARATOR);
    props.push_str(value);
}

/// A cheap random number for picking a queue (no crate needed for that).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
