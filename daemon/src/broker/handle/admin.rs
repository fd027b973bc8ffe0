//! What admin tools (mqadmin, DefaultMQAdminExt, `mqctl`) and slaves call:
//! topics, subscription groups, offsets tables, stats, runtime info, message
//! queries by key and by id.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mq::protocol::body::ResetOffsetBody;
use mq::protocol::body::{
    ConsumeStats, GroupList, KvTable, MessageQueue, OffsetWrapper, SubscriptionGroupConfig,
    TopicConfig, TopicFilterType, TopicList, TopicOffset, TopicStatsTable,
};
use mq::protocol::codes::{request, response};
use mq::protocol::headers::{
    CommandHeader, ConsumerGroupRequestHeader, CreateTopicRequestHeader,
    DeleteSubscriptionGroupRequestHeader, GetConsumeStatsRequestHeader, ProducerGroupRequestHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, TopicRequestHeader,
    ViewMessageRequestHeader,
};
use mq::protocol::headers::{QueryConsumeQueueRequestHeader, ResetOffsetRequestHeader};
use mq::protocol::remoting::RemotingCommand;

use crate::broker::state::topics::{validate_topic, AUTO_CREATE_TOPIC_KEY};
use crate::broker::Broker;
use crate::remoting::{error_response, Connection};

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

fn ok_body(req: &RemotingCommand, body: Vec<u8>) -> RemotingCommand {
    let mut resp = ok(req);
    resp.body = body;
    resp
}

/// Handles an admin request; `None` for codes this broker does not serve.
pub async fn handle(
    broker: &Arc<Broker>,
    _conn: &Arc<Connection>,
    req: &RemotingCommand,
) -> Option<RemotingCommand> {
    Some(match admin(broker, req).await? {
        Ok(resp) | Err(resp) => resp,
    })
}

type Answer = Result<RemotingCommand, RemotingCommand>;

async fn admin(broker: &Arc<Broker>, req: &RemotingCommand) -> Option<Answer> {
    let bad =
        |e: &dyn std::fmt::Display| error_response(req, response::SYSTEM_ERROR, e.to_string());
    macro_rules! header {
        ($ty:ty) => {
            match <$ty>::decode(&req.ext_fields) {
                Ok(h) => h,
                Err(e) => return Some(Err(bad(&e))),
            }
        };
    }
    let answer = match req.code {
        request::UPDATE_AND_CREATE_TOPIC => {
            let h = header!(CreateTopicRequestHeader);
            if let Err(why) = validate_topic(&h.topic) {
                return Some(Err(bad(&why)));
            }
            if h.topic == AUTO_CREATE_TOPIC_KEY || h.topic == broker.config().cluster_name {
                return Some(Err(bad(&format!(
                    "the topic[{}] is conflict with system reserved words.",
                    h.topic
                ))));
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
            if let Err(e) = broker.topics.put(config) {
                return Some(Err(bad(&e)));
            }
            log::info!(
                "topic {} created or updated by {}",
                h.topic,
                req.language.name()
            );
            broker.register_soon();
            Ok(ok(req))
        }
        request::DELETE_TOPIC_IN_BROKER => {
            let h = header!(TopicRequestHeader);
            if let Err(e) = broker.topics.delete(&h.topic) {
                return Some(Err(bad(&e)));
            }
            if let Err(e) = broker.store.delete_topic(&h.topic) {
                return Some(Err(bad(&e)));
            }
            broker.offsets.remove_topic(&h.topic);
            broker.register_soon();
            Ok(ok(req))
        }
        request::GET_ALL_TOPIC_CONFIG => Ok(ok_body(req, broker.topics.all().encode())),
        request::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => {
            let c = broker.config();
            let topic_list = [
                crate::broker::state::topics::SELF_TEST_TOPIC,
                crate::broker::state::topics::OFFSET_MOVED_EVENT,
                AUTO_CREATE_TOPIC_KEY,
                crate::store::dispatch::SCHEDULE_TOPIC,
                c.cluster_name.as_str(),
                c.broker_name.as_str(),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
            Ok(ok_body(
                req,
                TopicList {
                    topic_list,
                    broker_addr: None,
                }
                .encode(),
            ))
        }
        request::GET_BROKER_RUNTIME_INFO => Ok(ok_body(req, runtime_info(broker).encode())),
        request::GET_BROKER_CONFIG => {
            let mut resp = ok_body(req, broker.config().to_properties().into_bytes());
            let version = broker.topics.data_version();
            resp.put("version", String::from_utf8_lossy(&version.encode()));
            Ok(resp)
        }
        request::GET_TOPIC_STATS_INFO => {
            let h = header!(TopicRequestHeader);
            let Some(topic) = broker.topics.get(&h.topic) else {
                return Some(Err(error_response(
                    req,
                    response::TOPIC_NOT_EXIST,
                    format!("topic[{}] not exist", h.topic),
                )));
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
                    mq_of(broker, &h.topic, queue_id),
                    TopicOffset {
                        min_offset: broker.store.min_offset(&h.topic, queue_id),
                        max_offset: max,
                        last_update_timestamp: last,
                    },
                );
            }
            Ok(ok_body(req, TopicStatsTable { offset_table }.encode()))
        }
        request::GET_CONSUME_STATS => {
            let h = header!(GetConsumeStatsRequestHeader);
            let topics = match &h.topic {
                Some(t) if !t.is_empty() => vec![t.clone()],
                _ => broker.offsets.topics_of_group(&h.consumer_group),
            };
            let mut offset_table = BTreeMap::new();
            for topic in topics {
                let Some(config) = broker.topics.get(&topic) else {
                    continue;
                };
                for queue_id in 0..config.write_queue_nums {
                    let broker_offset = broker.store.max_offset(&topic, queue_id);
                    let consumer_offset = broker
                        .offsets
                        .query(&h.consumer_group, &topic, queue_id)
                        .unwrap_or(0);
                    let last_timestamp = if consumer_offset > 0 {
                        broker
                            .store
                            .message_store_time(&topic, queue_id, consumer_offset - 1)
                            .unwrap_or(0)
                    } else {
                        0
                    };
                    offset_table.insert(
                        mq_of(broker, &topic, queue_id),
                        OffsetWrapper {
                            broker_offset,
                            consumer_offset,
                            last_timestamp,
                        },
                    );
                }
            }
            Ok(ok_body(
                req,
                ConsumeStats {
                    consume_tps: 0.0,
                    offset_table,
                }
                .encode(),
            ))
        }
        request::GET_CONSUMER_CONNECTION_LIST => {
            let h = header!(ConsumerGroupRequestHeader);
            match broker.clients.consumer_connection(&h.consumer_group) {
                Some(conns) => Ok(ok_body(req, conns.encode())),
                None => Err(error_response(
                    req,
                    response::CONSUMER_NOT_ONLINE,
                    format!("the consumer group[{}] not online", h.consumer_group),
                )),
            }
        }
        request::GET_PRODUCER_CONNECTION_LIST => {
            let h = header!(ProducerGroupRequestHeader);
            let conns = broker.clients.producer_connection(&h.producer_group);
            if conns.connection_set.is_empty() {
                Err(error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("the producer group[{}] not exist", h.producer_group),
                ))
            } else {
                Ok(ok_body(req, conns.encode()))
            }
        }
        request::GET_ALL_CONSUMER_OFFSET => Ok(ok_body(req, broker.offsets.snapshot().encode())),
        request::GET_ALL_DELAY_OFFSET => Ok(ok_body(req, broker.schedule.encode())),
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            Ok(ok_body(req, broker.groups.snapshot().encode()))
        }
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            let config = match SubscriptionGroupConfig::decode(&req.body) {
                Ok(c) if !c.group_name.is_empty() => c,
                Ok(_) => return Some(Err(bad(&"subscription group body without groupName"))),
                Err(e) => return Some(Err(bad(&format!("bad subscription group body: {e}")))),
            };
            match broker.groups.put(config) {
                Ok(()) => Ok(ok(req)),
                Err(e) => Err(bad(&e)),
            }
        }
        request::DELETE_SUBSCRIPTIONGROUP => {
            let h = header!(DeleteSubscriptionGroupRequestHeader);
            match broker.groups.delete(&h.group_name) {
                Ok(_) => {
                    broker.offsets.remove_group(&h.group_name);
                    Ok(ok(req))
                }
                Err(e) => Err(bad(&e)),
            }
        }
        request::QUERY_TOPIC_CONSUME_BY_WHO => {
            let h = header!(TopicRequestHeader);
            let mut group_list: std::collections::BTreeSet<String> = broker
                .offsets
                .groups_of_topic(&h.topic)
                .into_iter()
                .collect();
            group_list.extend(broker.clients.groups_of_topic(&h.topic));
            Ok(ok_body(req, GroupList { group_list }.encode()))
        }
        request::VIEW_MESSAGE_BY_ID => {
            let h = header!(ViewMessageRequestHeader);
            match broker.store.look_message(h.offset) {
                Some(record) => Ok(ok_body(req, record.to_vec())),
                None => Err(error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("can not find message by the offset, {}", h.offset),
                )),
            }
        }
        request::QUERY_MESSAGE => {
            let h = header!(QueryMessageRequestHeader);
            let unique = req.get("_UNIQUE_KEY_QUERY") == Some("true");
            let max = if unique {
                32
            } else {
                usize::try_from(h.max_num).unwrap_or(0).clamp(1, 64)
            };
            let records = broker.store.query_by_key(
                &h.topic,
                &h.key,
                max,
                h.begin_timestamp,
                h.end_timestamp,
            );
            let (min, max_phys) = broker.store.commit_log_range();
            let mut resp = if records.is_empty() {
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
                index_last_update_timestamp: crate::store::commit_log::now_ms(),
                index_last_update_phyoffset: max_phys.max(min),
            }
            .encode(&mut resp.ext_fields);
            Ok(resp)
        }
        request::INVOKE_BROKER_TO_RESET_OFFSET => {
            let h = header!(ResetOffsetRequestHeader);
            let Some(topic) = broker.topics.get(&h.topic) else {
                return Some(Err(error_response(
                    req,
                    response::TOPIC_NOT_EXIST,
                    format!("[reset-offset] topic does not exist, {}", h.topic),
                )));
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
                    offset_table.insert(mq_of(broker, &h.topic, queue_id), target);
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
        request::QUERY_CONSUME_QUEUE => {
            let h = header!(QueryConsumeQueueRequestHeader);
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
        request::DELETE_EXPIRED_COMMITLOG => {
            let store = broker.store.clone();
            match smol::unblock(move || store.delete_expired_now()).await {
                Ok(n) => {
                    log::info!("deleted {n} expired commit log segments on request");
                    Ok(ok(req))
                }
                Err(e) => Err(bad(&e)),
            }
        }
        _ => return None,
    };
    Some(answer)
}

fn mq_of(broker: &Broker, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue::new(topic, broker.config().broker_name.clone(), queue_id)
}

/// GET_BROKER_RUNTIME_INFO's table, with the keys mqadmin's brokerStatus prints.
fn runtime_info(broker: &Broker) -> KvTable {
    let (min, max) = broker.store.commit_log_range();
    let mut table = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        table.insert(k.to_owned(), v);
    };
    put("brokerVersionDesc", "V4_9_7".into());
    put(
        "brokerVersion",
        mq::protocol::remoting::CURRENT_VERSION.to_string(),
    );
    put("bootTimestamp", broker.boot_timestamp.to_string());
    put("runtime", format!("{:?}", broker.started.elapsed()));
    put(
        "msgPutTotalTodayNow",
        broker.put_count.load(Ordering::Relaxed).to_string(),
    );
    put(
        "msgGetTotalTodayNow",
        broker.get_count.load(Ordering::Relaxed).to_string(),
    );
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    put(
        "dispatchBehindBytes",
        (max - broker.store.dispatched_offset()).to_string(),
    );
    put("putMessageDistributeTime", String::new());
    put("pageCacheLockTimeMills", "0".into());
    put("earliestMessageTimeStamp", "0".into());
    put("remainHowManyDataToFlush", "0 B".into());
    put("diskFull", broker.store.is_disk_full().to_string());
    // One file system holds the log, the queues and the index.
    let disk_ratio = format!(
        "{:.2}",
        f64::from(broker.store.disk_reading().used_percent) / 100.0
    );
    put("commitLogDiskRatio", disk_ratio.clone());
    put("consumeQueueDiskRatio", disk_ratio);
    put("brokerRole", broker.config().role_name().to_owned());
    put("pullHoldingRequests", broker.holds.len().to_string());
    KvTable { table }
}
