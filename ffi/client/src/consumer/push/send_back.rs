//! What happens to a message the listener did not consume: in concurrent
//! mode it is sent back (CONSUMER_SEND_MSG_BACK, the broker re-delivers it
//! through `%RETRY%<group>` after a delay) or, failing that, re-sent to the
//! retry topic as Java's inner producer does; in orderly mode one past
//! `max_reconsume_times` is re-sent with its count, which the broker turns
//! into the dead-letter queue. And the other way: a retried message shows
//! the listener its original topic again.

use mq_protocol::body::MessageQueue;
use mq_protocol::codes::{request, response};
use mq_protocol::headers::{
    CommandHeader, ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader,
};
use mq_protocol::properties;
use mq_protocol::properties::keys::{self, ORIGIN_MESSAGE_ID, RETRY_TOPIC};
use mq_protocol::time::now_ms;
use mq_protocol::topics::{retry_topic, AUTO_CREATE_TOPIC_KEY};

use super::state::Inner;
use crate::connection::client_request;
use crate::consumer::pull::{MAX_OFFSET, MIN_OFFSET};
use crate::error::{ClientError, Result};
use crate::message::{unique_id, MessageExt};

/// Producer group of the client's own re-sends (Java's inner producer).
const CLIENT_INNER_PRODUCER: &str = "CLIENT_INNER_PRODUCER";
/// Properties the broker sets on a delivered retry, dropped before a re-send.
const RECONSUME_TIME: &str = "RECONSUME_TIME";
const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";

/// The messages as the listener sees them: retried ones under their
/// original topic.
pub(super) fn restore_retry_topic(group: &str, msgs: &mut [MessageExt]) {
    let retry = retry_topic(group);
    for m in msgs {
        if m.topic == retry {
            if let Some(original) = m.properties.get(RETRY_TOPIC) {
                m.topic = original.clone();
            }
        }
    }
}

/// CONSUMER_SEND_MSG_BACK with delay level 0 (the broker picks 3 +
/// reconsume times), falling back to re-sending to the retry topic.
pub(super) async fn send_back(inner: &Inner, msg: &MessageExt) -> Result<()> {
    match send_msg_back(inner, msg).await {
        Ok(()) => Ok(()),
        Err(e) => {
            log::debug!("send back of {} failed ({e}); re-sending it", msg.msg_id);
            resend_to_retry(inner, msg, msg.reconsume_times + 1).await
        }
    }
}

/// CONSUMER_SEND_MSG_BACK: the broker stores the message again in the retry
/// topic (or the dead-letter queue past `max_reconsume_times`).
async fn send_msg_back(inner: &Inner, msg: &MessageExt) -> Result<()> {
    let mq = MessageQueue::new(msg.topic.clone(), msg.broker_name.clone(), msg.queue_id);
    let addr = inner.instance.queue_master_addr(&mq).await?;
    let mut cmd = client_request(request::CONSUMER_SEND_MSG_BACK);
    ConsumerSendMsgBackRequestHeader {
        offset: msg.commit_log_offset,
        group: inner.config.group.clone(),
        delay_level: 0,
        origin_msg_id: Some(msg.msg_id.clone()),
        origin_topic: Some(msg.topic.clone()),
        unit_mode: Some(false),
        max_reconsume_times: Some(inner.config.max_reconsume_times),
    }
    .encode(&mut cmd.ext_fields);
    cmd.put("bname", &msg.broker_name);
    let resp = inner
        .instance
        .invoke(&addr, cmd, inner.instance.config().request_timeout)
        .await?;
    if resp.code == response::SUCCESS {
        Ok(())
    } else {
        Err(ClientError::refused(resp))
    }
}

/// Re-sends `msg` to `%RETRY%<group>` as the Java client's inner producer
/// does: RETRY_TOPIC, ORIGIN_MESSAGE_ID, DELAY = 3 + reconsume times, and
/// `reconsume_times` / max in the header (the broker sends it to the
/// dead-letter queue once the count reaches the max).
pub(super) async fn resend_to_retry(
    inner: &Inner,
    msg: &MessageExt,
    reconsume_times: i32,
) -> Result<()> {
    let retry = retry_topic(&inner.config.group);
    let mq = MessageQueue::new(retry.clone(), msg.broker_name.clone(), 0);
    let addr = inner.instance.queue_master_addr(&mq).await?;
    let mut props = msg.properties.clone();
    props.remove(MIN_OFFSET);
    props.remove(MAX_OFFSET);
    props.remove(RECONSUME_TIME);
    props.remove(MAX_RECONSUME_TIMES);
    props
        .entry(ORIGIN_MESSAGE_ID.to_owned())
        .or_insert_with(|| msg.msg_id.clone());
    props.insert(RETRY_TOPIC.into(), msg.topic.clone());
    props.insert(keys::DELAY.into(), (3 + msg.reconsume_times).to_string());
    props
        .entry(keys::UNIQ_KEY.to_owned())
        .or_insert_with(|| unique_id(&inner.instance.config().client_ip));
    props.insert(keys::WAIT.into(), "true".into());
    let header = SendMessageRequestHeader {
        producer_group: CLIENT_INNER_PRODUCER.into(),
        topic: retry,
        default_topic: AUTO_CREATE_TOPIC_KEY.into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: msg.flag,
        properties: Some(properties::encode(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )),
        reconsume_times: Some(reconsume_times),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: Some(inner.config.max_reconsume_times),
        broker_name: Some(msg.broker_name.clone()),
    };
    let mut cmd = client_request(request::SEND_MESSAGE_V2);
    header.encode_v2(&mut cmd.ext_fields);
    cmd.body = msg.body.clone();
    let resp = inner
        .instance
        .invoke(&addr, cmd, inner.instance.config().request_timeout)
        .await?;
    match resp.code {
        response::SUCCESS
        | response::FLUSH_DISK_TIMEOUT
        | response::FLUSH_SLAVE_TIMEOUT
        | response::SLAVE_NOT_AVAILABLE => Ok(()),
        _ => Err(ClientError::refused(resp)),
    }
}
