//! Topics, as admin tools manage them: UPDATE_AND_CREATE_TOPIC,
//! DELETE_TOPIC_IN_BROKER, GET_ALL_TOPIC_CONFIG (also what a slave copies),
//! GET_SYSTEM_TOPIC_LIST_FROM_BROKER, GET_TOPIC_STATS_INFO and
//! QUERY_TOPIC_CONSUME_BY_WHO.

use std::collections::{BTreeMap, BTreeSet};

use mq_protocol::body::{
    GroupList, TopicConfig, TopicFilterType, TopicList, TopicOffset, TopicStatsTable,
};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, CreateTopicRequestHeader, TopicRequestHeader};

use super::{ok, ok_body, queue_of, Reply};
use crate::broker::error::BrokerError;
use crate::broker::state::topics::{
    validate_topic, AUTO_CREATE_TOPIC_KEY, OFFSET_MOVED_EVENT, SELF_TEST_TOPIC,
};
use crate::broker::Broker;
use crate::store::dispatch::SCHEDULE_TOPIC;

/// UPDATE_AND_CREATE_TOPIC: creates or replaces a topic's configuration and
/// registers it with the NameServers.
pub(crate) fn update_and_create_topic(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = CreateTopicRequestHeader::decode(&req.ext_fields)?;
    validate_topic(&h.topic)?;
    if h.topic == AUTO_CREATE_TOPIC_KEY || h.topic == broker.config().cluster_name {
        return Err(BrokerError::ReservedTopic { topic: h.topic });
    }
    let filter = TopicFilterType::from_name(&h.topic_filter_type).unwrap_or_default();
    let config = TopicConfig {
        topic_name: h.topic.clone(),
        read_queue_nums: h.read_queue_nums.clamp(1, 1024),
        write_queue_nums: h.write_queue_nums.clamp(1, 1024),
        perm: h.perm,
        topic_filter_type: filter,
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        order: h.order.unwrap_or(false),
    };
    broker.topics.put(config)?;
    log::info!(
        "topic {} created or updated by {}",
        h.topic,
        req.language.name()
    );
    broker.register_soon();
    Ok(ok(req))
}

/// DELETE_TOPIC_IN_BROKER: forgets a topic, its queues and its offsets.
pub(crate) fn delete_topic_in_broker(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicRequestHeader::decode(&req.ext_fields)?;
    broker.topics.delete(&h.topic)?;
    broker.store.delete_topic(&h.topic)?;
    broker.offsets.remove_topic(&h.topic);
    broker.stats.remove_topic(&h.topic);
    broker.register_soon();
    Ok(ok(req))
}

/// GET_ALL_TOPIC_CONFIG: every topic, with the data version.
pub(crate) fn get_all_topic_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    Ok(ok_body(req, broker.topics.all().encode()))
}

/// GET_SYSTEM_TOPIC_LIST_FROM_BROKER: the topics every broker has.
pub(crate) fn get_system_topic_list_from_broker(broker: &Broker, req: &RemotingCommand) -> Reply {
    let c = broker.config();
    let topic_list = [
        SELF_TEST_TOPIC,
        OFFSET_MOVED_EVENT,
        AUTO_CREATE_TOPIC_KEY,
        SCHEDULE_TOPIC,
        c.cluster_name.as_str(),
        c.broker_name.as_str(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let list = TopicList {
        topic_list,
        broker_addr: None,
    };
    Ok(ok_body(req, list.encode()))
}

/// GET_TOPIC_STATS_INFO: each queue's bounds and when it was last written.
pub(crate) fn get_topic_stats_info(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicRequestHeader::decode(&req.ext_fields)?;
    let Some(topic) = broker.topics.get(&h.topic) else {
        return Err(BrokerError::NoTopicStats { topic: h.topic });
    };
    let mut offset_table = BTreeMap::new();
    for queue_id in 0..topic.write_queue_nums {
        let max = broker.store.max_offset(&h.topic, queue_id);
        let last = if max > 0 {
            broker
                .store
                .message_store_time(&h.topic, queue_id, max - 1)
                .unwrap_or(0)
        } else {
            0
        };
        offset_table.insert(
            queue_of(broker, &h.topic, queue_id),
            TopicOffset {
                min_offset: broker.store.min_offset(&h.topic, queue_id),
                max_offset: max,
                last_update_timestamp: last,
            },
        );
    }
    Ok(ok_body(req, TopicStatsTable { offset_table }.encode()))
}

/// QUERY_TOPIC_CONSUME_BY_WHO: the groups with offsets on the topic or
/// subscribed to it.
pub(crate) fn query_topic_consume_by_who(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = TopicRequestHeader::decode(&req.ext_fields)?;
    let mut group_list: BTreeSet<String> = broker
        .offsets
        .groups_of_topic(&h.topic)
        .into_iter()
        .collect();
    group_list.extend(broker.clients.groups_of_topic(&h.topic));
    Ok(ok_body(req, GroupList { group_list }.encode()))
}
