//! The broker's statistics as admin tools read them: VIEW_BROKER_STATS_DATA
//! (mqadmin statsAll, the RocketMQ Dashboard and rocketmq-exporter read
//! topic and group rates with it) and GET_BROKER_CONSUME_STATS (mqadmin
//! brokerConsumeStats: every group's progress on this broker).

use std::collections::BTreeMap;

use mq_protocol::body::{BrokerStatsData, BrokerStatsItem, ConsumeStatsList};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, GetConsumeStatsInBrokerHeader, ViewBrokerStatsDataRequestHeader,
};

use super::offsets::topic_consume_stats;
use super::{ok_body, Reply};
use crate::broker::error::BrokerError;
use crate::broker::stats::item::Snapshot;
use crate::broker::Broker;

/// VIEW_BROKER_STATS_DATA: one statistic over the last minute, hour and day.
pub(crate) fn view_broker_stats_data(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = ViewBrokerStatsDataRequestHeader::decode(&req.ext_fields)?;
    let windows = broker
        .stats
        .view(&h.stats_name, &h.stats_key, mq_protocol::time::now_ms())
        .ok_or(BrokerError::NoStats {
            name: h.stats_name,
            key: h.stats_key,
        })?;
    let item = |s: Snapshot| BrokerStatsItem {
        avgpt: s.avgpt,
        sum: i64::try_from(s.sum).unwrap_or(i64::MAX),
        tps: s.tps,
    };
    let data = BrokerStatsData {
        stats_day: item(windows.day),
        stats_hour: item(windows.hour),
        stats_minute: item(windows.minute),
    };
    Ok(ok_body(req, data.encode()))
}

/// GET_BROKER_CONSUME_STATS: for every subscription group, its progress on
/// each topic it has offsets on (only ordered topics when `isOrder`), and the
/// messages not yet consumed in all.
pub(crate) fn get_broker_consume_stats(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = GetConsumeStatsInBrokerHeader::decode(&req.ext_fields)?;
    let only_ordered = h.is_order.unwrap_or(false);
    let now = mq_protocol::time::now_ms();
    let mut list = ConsumeStatsList {
        broker_addr: broker.config().broker_addr().to_string(),
        ..ConsumeStatsList::default()
    };
    for group in broker
        .groups
        .snapshot()
        .subscription_group_table
        .into_keys()
    {
        let online = !broker.clients.consumer_ids(&group).is_empty();
        let mut per_topic = Vec::new();
        for topic in broker.offsets.topics_of_group(&group) {
            if only_ordered && !broker.topics.get(&topic).is_some_and(|t| t.order) {
                continue;
            }
            // A group whose online consumers no longer subscribe to the topic
            // is left out, as RocketMQ does.
            if online && broker.clients.subscription(&group, &topic).is_none() {
                continue;
            }
            if let Some(stats) = topic_consume_stats(broker, &group, &topic, now) {
                list.total_diff += stats
                    .offset_table
                    .values()
                    .map(|o| o.broker_offset - o.consumer_offset)
                    .sum::<i64>();
                per_topic.push(stats);
            }
        }
        list.consume_stats_list
            .push(BTreeMap::from([(group, per_topic)]));
    }
    Ok(ok_body(req, list.encode()))
}
