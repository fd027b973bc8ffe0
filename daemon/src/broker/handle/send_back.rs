//! CONSUMER_SEND_MSG_BACK (36): a consumer failed a message; the broker stores
//! it again in the group's retry topic, delayed, or in its dead-letter topic
//! once it was retried too often.

use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, ConsumerSendMsgBackRequestHeader};
use mq_protocol::message::{decode_record, offset_msg_id, Record};
use mq_protocol::properties::{self, keys};

use super::{ok, Reply};
use crate::broker::delay::divert_delayed;
use crate::broker::error::BrokerError;
use crate::broker::state::topics::perm;
use crate::broker::Broker;
use crate::store::PutMessage;
use mq_protocol::topics::{dlq_topic, retry_topic};

/// CONSUMER_SEND_MSG_BACK: the retry topic with a delay level (the consumer's,
/// or 3 + the times it was retried), or the dead-letter topic.
pub(crate) async fn consumer_send_msg_back(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ConsumerSendMsgBackRequestHeader::decode(&req.ext_fields)?;
    let group = broker.groups.find_or_create(&h.group)?.ok_or_else(|| {
        BrokerError::SendBackGroupNotExist {
            group: h.group.clone(),
        }
    })?;
    let not_found = || BrokerError::NoMessageToSendBack { offset: h.offset };
    let record = broker.store.look_message(h.offset).ok_or_else(not_found)?;
    let Ok(Record::Message(msg, _)) = decode_record(&record, false) else {
        return Err(not_found());
    };
    let max = h.max_reconsume_times.unwrap_or(group.retry_max_times);
    let to_dlq = msg.reconsume_times >= max || h.delay_level < 0;
    let (topic, queues) = if to_dlq {
        (dlq_topic(&h.group), 1)
    } else {
        (retry_topic(&h.group), group.retry_queue_nums.max(1))
    };
    let (_, created) =
        broker
            .topics
            .get_or_create_system(&topic, queues, perm::READ | perm::WRITE)?;
    if created {
        broker.register_soon();
    }
    let mut props: Vec<(String, String)> = properties::iter(msg.properties)
        .filter(|(n, _)| *n != keys::DELAY)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if !props.iter().any(|(n, _)| n == keys::RETRY_TOPIC) {
        props.push((keys::RETRY_TOPIC.into(), msg.topic.to_owned()));
    }
    let origin = h
        .origin_msg_id
        .clone()
        .or_else(|| properties::get(msg.properties, keys::UNIQ_KEY).map(str::to_owned))
        .unwrap_or_else(|| offset_msg_id(&msg.store_host, msg.physical_offset));
    if !props.iter().any(|(n, _)| n == keys::ORIGIN_MESSAGE_ID) {
        props.push((keys::ORIGIN_MESSAGE_ID.into(), origin));
    }
    if !to_dlq {
        let level = if h.delay_level == 0 {
            3 + msg.reconsume_times
        } else {
            h.delay_level
        };
        props.push((keys::DELAY.into(), level.to_string()));
    }
    let props = properties::encode(props.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let queue_id = if to_dlq {
        0
    } else {
        (msg.reconsume_times.unsigned_abs() % queues as u32) as i32
    };
    let (store_topic, store_queue, store_props) = divert_delayed(broker, &topic, queue_id, &props)
        .unwrap_or((topic.clone(), queue_id, props));
    let put = PutMessage {
        reconsume_times: msg.reconsume_times + 1,
        prepared_transaction_offset: 0,
        ..PutMessage::again(&msg, &store_topic, store_queue, &store_props)
    };
    // Any store failure is SYSTEM_ERROR here, a full disk included (unlike a
    // send): the client then sends the message to the retry topic itself.
    broker.store.put(&[put], true).await?;
    broker.stats.on_send_back(&h.group, msg.topic);
    Ok(ok(req))
}
