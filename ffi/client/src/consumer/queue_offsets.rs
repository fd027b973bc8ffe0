//! A queue's offsets as its broker has them: the next offset to be written
//! (GET_MAX_OFFSET), the smallest still stored (GET_MIN_OFFSET), and the first
//! stored at or after a time (SEARCH_OFFSET_BY_TIMESTAMP).

use std::sync::Arc;

use mq_protocol::body::MessageQueue;
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, OffsetResponseHeader, SearchOffsetRequestHeader, TopicQueueRequestHeader,
};

use crate::connection::client_request;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;

/// GET_MAX_OFFSET: the queue's next offset to be written.
pub async fn max_offset(instance: &Arc<ClientInstance>, mq: &MessageQueue) -> Result<i64> {
    offset_request(instance, mq, queue_request(request::GET_MAX_OFFSET, mq)).await
}

/// GET_MIN_OFFSET: the queue's smallest offset still stored.
pub async fn min_offset(instance: &Arc<ClientInstance>, mq: &MessageQueue) -> Result<i64> {
    offset_request(instance, mq, queue_request(request::GET_MIN_OFFSET, mq)).await
}

/// SEARCH_OFFSET_BY_TIMESTAMP: the first offset stored at or after `timestamp` (ms).
pub async fn search_offset(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    timestamp: i64,
) -> Result<i64> {
    let mut cmd = client_request(request::SEARCH_OFFSET_BY_TIMESTAMP);
    SearchOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        timestamp,
    }
    .encode(&mut cmd.ext_fields);
    offset_request(instance, mq, cmd).await
}

/// A request about one queue with the topic/queue header.
fn queue_request(code: i32, mq: &MessageQueue) -> RemotingCommand {
    let mut cmd = client_request(code);
    TopicQueueRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
    }
    .encode(&mut cmd.ext_fields);
    cmd
}

/// Sends `cmd` to the master of `mq`'s broker; the offset it answers.
async fn offset_request(
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    mut cmd: RemotingCommand,
) -> Result<i64> {
    let addr = instance.queue_master_addr(mq).await?;
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
