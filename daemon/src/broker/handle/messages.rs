//! Message queries, as admin tools and consoles make them: QUERY_MESSAGE (by
//! key, through the IndexFile), VIEW_MESSAGE_BY_ID (by commit log offset, the
//! offset message id) and QUERY_CONSUME_QUEUE (a queue's raw entries).

use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, QueryConsumeQueueRequestHeader, QueryMessageRequestHeader,
    QueryMessageResponseHeader, ViewMessageRequestHeader,
};

use super::{ok_body, Reply};
use crate::broker::error::BrokerError;
use crate::broker::Broker;
use crate::server::error_response;

/// QUERY_MESSAGE: the stored messages with a key (or a unique key) in a time
/// range, concatenated as a PULL body.
pub(crate) fn query_message(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = QueryMessageRequestHeader::decode(&req.ext_fields)?;
    let unique = req.get("_UNIQUE_KEY_QUERY") == Some("true");
    let max = if unique {
        32
    } else {
        usize::try_from(h.max_num).unwrap_or(0).clamp(1, 64)
    };
    let records =
        broker
            .store
            .query_by_key(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp);
    let (min, max_phys) = broker.store.commit_log_range();
    let mut resp = if records.is_empty() {
        // An answer, not an error: it carries the index header too.
        error_response(
            req,
            response::QUERY_NOT_FOUND,
            "can not find message, maybe time range not correct",
        )
    } else {
        let mut body = Vec::new();
        for r in &records {
            body.extend_from_slice(r);
        }
        ok_body(req, body)
    };
    QueryMessageResponseHeader {
        index_last_update_timestamp: mq_protocol::time::now_ms(),
        index_last_update_phyoffset: max_phys.max(min),
    }
    .encode(&mut resp.ext_fields);
    Ok(resp)
}

/// VIEW_MESSAGE_BY_ID: the stored message at a commit log offset.
pub(crate) fn view_message_by_id(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ViewMessageRequestHeader::decode(&req.ext_fields)?;
    match broker.store.look_message(h.offset) {
        Some(record) => Ok(ok_body(req, record.to_vec())),
        None => Err(BrokerError::NoMessageAt { offset: h.offset }),
    }
}

/// QUERY_CONSUME_QUEUE: up to 1024 entries of a queue from an index, as
/// RocketMQ's QueryConsumeQueueResponseBody.
pub(crate) fn query_consume_queue(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = QueryConsumeQueueRequestHeader::decode(&req.ext_fields)?;
    let count = usize::try_from(h.count).unwrap_or(0).min(1024);
    let entries = broker
        .store
        .queue_entries(&h.topic, h.queue_id, h.index, count);
    let queue_data: Vec<serde_json::Value> = entries
        .iter()
        .map(|(_, e)| {
            serde_json::json!({
                "bitMap": null,
                "eval": false,
                "extendDataJson": null,
                "msg": null,
                "physicOffset": e.phys_offset,
                "physicSize": e.size,
                "tagsCode": e.tag_code,
            })
        })
        .collect();
    let mut body = serde_json::json!({
        "maxQueueIndex": broker.store.max_offset(&h.topic, h.queue_id),
        "minQueueIndex": broker.store.min_offset(&h.topic, h.queue_id),
        "queueData": queue_data,
    });
    if let Some(group) = h.consumer_group.as_deref() {
        if let Some(sub) = broker.clients.subscription(group, &h.topic) {
            body["subscriptionData"] = serde_json::to_value(&sub).unwrap_or_default();
        }
    }
    Ok(ok_body(
        req,
        serde_json::to_vec(&body).expect("a JSON value always serialises"),
    ))
}
