//! Offsets: a consumer's committed offsets (QUERY_CONSUMER_OFFSET,
//! UPDATE_CONSUMER_OFFSET), a queue's bounds (GET_MAX_OFFSET, GET_MIN_OFFSET,
//! SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME), the whole tables a
//! slave copies (GET_ALL_CONSUMER_OFFSET, GET_ALL_DELAY_OFFSET), and what admin
//! tools ask of a group's offsets (GET_CONSUME_STATS,
//! INVOKE_BROKER_TO_RESET_OFFSET).

use std::collections::BTreeMap;

use mq_protocol::body::{ConsumeStats, OffsetWrapper, ResetOffsetBody};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, EarliestMsgStoretimeResponseHeader, GetConsumeStatsRequestHeader,
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, ResetOffsetRequestHeader,
    SearchOffsetRequestHeader, TopicQueueRequestHeader, UpdateConsumerOffsetRequestHeader,
};

use super::{ok, ok_body, ok_header, queue_of, Reply};
use crate::broker::error::BrokerError;
use crate::broker::Broker;
use crate::server::error_response;

/// QUERY_CONSUMER_OFFSET: the group's committed offset on a queue.
pub(crate) fn query_consumer_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = QueryConsumerOffsetRequestHeader::decode(&req.ext_fields)?;
    match broker
        .offsets
        .query(&h.consumer_group, &h.topic, h.queue_id)
    {
        Some(offset) if offset >= 0 => Ok(ok_header(req, &OffsetResponseHeader { offset })),
        _ => {
            // As 4.9: a group that has committed nothing starts at 0 while
            // the queue still begins at 0 and its first message is in
            // memory, so a new group sees a new topic from its start.
            let min = broker.store.min_offset(&h.topic, h.queue_id);
            if min <= 0 && !first_message_on_disk(broker, &h.topic, h.queue_id) {
                Ok(ok_header(req, &OffsetResponseHeader { offset: 0 }))
            } else {
                // Not an error: the client then starts where it is configured to.
                Ok(error_response(
                    req,
                    response::QUERY_NOT_FOUND,
                    "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
                ))
            }
        }
    }
}

/// Whether the message at offset 0 of a queue has left memory (RocketMQ's
/// checkInDiskByConsumeOffset: more than `accessMessageInMemoryMaxRatio`, 40 %,
/// of RAM behind the log's end).
fn first_message_on_disk(broker: &Broker, topic: &str, queue_id: i32) -> bool {
    let Some(first) = broker.store.first_entry_phys_offset(topic, queue_id, 0) else {
        return false;
    };
    let behind = broker.store.commit_log_range().1 - first;
    let ratio = f64::from(broker.store.config().access_message_in_memory_max_ratio) / 100.0;
    behind > (crate::store::physical_memory() as f64 * ratio) as i64
}

/// UPDATE_CONSUMER_OFFSET: commits the group's offset on a queue.
pub(crate) fn update_consumer_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = UpdateConsumerOffsetRequestHeader::decode(&req.ext_fields)?;
    broker
        .offsets
        .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    Ok(ok(req))
}

/// GET_MAX_OFFSET: the queue's end (the offset the next message gets).
pub(crate) fn get_max_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicQueueRequestHeader::decode(&req.ext_fields)?;
    let offset = broker.store.max_offset(&h.topic, h.queue_id);
    Ok(ok_header(req, &OffsetResponseHeader { offset }))
}

/// GET_MIN_OFFSET: the queue's first offset still stored.
pub(crate) fn get_min_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicQueueRequestHeader::decode(&req.ext_fields)?;
    let offset = broker.store.min_offset(&h.topic, h.queue_id);
    Ok(ok_header(req, &OffsetResponseHeader { offset }))
}

/// SEARCH_OFFSET_BY_TIMESTAMP: the queue offset of the first message stored
/// at or after a time.
pub(crate) fn search_offset_by_timestamp(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = SearchOffsetRequestHeader::decode(&req.ext_fields)?;
    let offset = broker
        .store
        .offset_by_time(&h.topic, h.queue_id, h.timestamp);
    Ok(ok_header(req, &OffsetResponseHeader { offset }))
}

/// GET_EARLIEST_MSG_STORETIME: when the queue's first stored message was
/// stored (-1: none).
pub(crate) fn get_earliest_msg_storetime(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicQueueRequestHeader::decode(&req.ext_fields)?;
    let timestamp = broker
        .store
        .earliest_message_time(&h.topic, h.queue_id)
        .unwrap_or(-1);
    Ok(ok_header(
        req,
        &EarliestMsgStoretimeResponseHeader { timestamp },
    ))
}

/// GET_ALL_CONSUMER_OFFSET: every committed offset.
pub(crate) fn get_all_consumer_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    Ok(ok_body(req, broker.offsets.snapshot().encode()))
}

/// GET_ALL_DELAY_OFFSET: how far each delay level delivered.
pub(crate) fn get_all_delay_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    Ok(ok_body(req, broker.schedule.encode()))
}

/// GET_CONSUME_STATS: a group's offsets against each queue's end, on one topic
/// or on every topic it has offsets on.
pub(crate) fn get_consume_stats(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = GetConsumeStatsRequestHeader::decode(&req.ext_fields)?;
    let topics = match &h.topic {
        Some(t) if !t.is_empty() => vec![t.clone()],
        _ => broker.offsets.topics_of_group(&h.consumer_group),
    };
    let now = mq_protocol::time::now_ms();
    let mut stats = ConsumeStats::default();
    for topic in topics {
        if let Some(one) = topic_consume_stats(broker, &h.consumer_group, &topic, now) {
            stats.consume_tps += one.consume_tps;
            stats.offset_table.extend(one.offset_table);
        }
    }
    Ok(ok_body(req, stats.encode()))
}

/// A group's progress on one topic, each writable queue's end against the
/// group's committed offset, and the group's pull rate over the last minute;
/// `None` for a topic the broker does not have.
pub(crate) fn topic_consume_stats(
    broker: &Broker,
    group: &str,
    topic: &str,
    now_ms: i64,
) -> Option<ConsumeStats> {
    let config = broker.topics.get(topic)?;
    let mut offset_table = BTreeMap::new();
    for queue_id in 0..config.write_queue_nums {
        let broker_offset = broker.store.max_offset(topic, queue_id);
        let consumer_offset = broker.offsets.query(group, topic, queue_id).unwrap_or(0);
        let last_timestamp = if consumer_offset > 0 {
            broker
                .store
                .message_store_time(topic, queue_id, consumer_offset - 1)
                .unwrap_or(0)
        } else {
            0
        };
        offset_table.insert(
            queue_of(broker, topic, queue_id),
            OffsetWrapper {
                broker_offset,
                consumer_offset,
                last_timestamp,
            },
        );
    }
    Some(ConsumeStats {
        consume_tps: broker.stats.group_get_tps(group, topic, now_ms),
        offset_table,
    })
}

/// INVOKE_BROKER_TO_RESET_OFFSET: moves a group's offsets on a topic to a
/// time, and tells its online members (RESET_CONSUMER_CLIENT_OFFSET).
pub(crate) async fn invoke_broker_to_reset_offset(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ResetOffsetRequestHeader::decode(&req.ext_fields)?;
    let Some(topic) = broker.topics.get(&h.topic) else {
        return Err(BrokerError::NoTopicToReset { topic: h.topic });
    };
    // As 4.9's Broker2Client.resetOffset: the offset of the timestamp (-1:
    // the end), applied when forced or when it moves the group back.
    let mut offset_table = BTreeMap::new();
    for queue_id in 0..topic.write_queue_nums {
        let target = if h.timestamp == -1 {
            broker.store.max_offset(&h.topic, queue_id)
        } else {
            broker.store.offset_by_time(&h.topic, queue_id, h.timestamp)
        };
        let current = broker
            .offsets
            .query(&h.group, &h.topic, queue_id)
            .unwrap_or(-1);
        if h.is_force || current < 0 || target < current {
            offset_table.insert(queue_of(broker, &h.topic, queue_id), target);
        }
    }
    // Unlike 4.9 (which needs the group online), commit here too, so
    // that an offline group starts from the reset offsets.
    for (mq, offset) in &offset_table {
        broker
            .offsets
            .commit(&h.group, &mq.topic, mq.queue_id, *offset);
    }
    let body = ResetOffsetBody { offset_table }.encode();
    for conn in broker.clients.consumer_connections(&h.group) {
        let mut cmd = RemotingCommand::request(request::RESET_CONSUMER_CLIENT_OFFSET);
        h.encode(&mut cmd.ext_fields);
        cmd.body = body.clone();
        conn.send_oneway(cmd).await;
    }
    Ok(ok_body(req, body))
}
