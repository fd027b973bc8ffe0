//! Delayed messages (RocketMQ's ScheduleMessageService) and consumer retries
//! (CONSUMER_SEND_MSG_BACK).
//!
//! A message with `DELAY=n` is stored in `SCHEDULE_TOPIC_XXXX`, queue `n - 1`,
//! with its real topic and queue in `REAL_TOPIC`/`REAL_QID`; the ConsumeQueue's
//! tag code of such a message is its delivery time. A task walks each level's
//! queue and, once a message is due, stores it again in its real topic. How far
//! each level got is kept in `config/delayOffset.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use mq::protocol::codes::response;
use mq::protocol::headers::{CommandHeader, ConsumerSendMsgBackRequestHeader};
use mq::protocol::message::{decode_record, offset_msg_id, Record};
use mq::protocol::properties::{self, keys};
use mq::protocol::remoting::RemotingCommand;

use crate::broker::error::BrokerError;
use crate::broker::persist::ConfigFile;
use crate::broker::state::topics::{perm, DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use crate::broker::Broker;
use crate::remoting::error_response;
use crate::store::dispatch::SCHEDULE_TOPIC;
use crate::store::{PutMessage, StoreError};

/// Property naming a retried message's original topic.
const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Property naming a retried message's original id.
const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

/// How far each delay level has delivered, as `delayOffset.json` holds it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DelayOffsets {
    offset_table: BTreeMap<i32, i64>,
}

/// Delay-level delivery offsets, persisted.
pub struct ScheduleOffsets {
    table: Mutex<BTreeMap<i32, i64>>,
    dirty: AtomicBool,
    file: ConfigFile,
}

impl ScheduleOffsets {
    /// Loads `config/delayOffset.json` under `root`.
    pub fn load(root: &Path) -> Result<Self, BrokerError> {
        let file = ConfigFile::new(root, "delayOffset.json");
        let table = file
            .load(|b| {
                let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
                mq::protocol::fastjson::from_str::<DelayOffsets>(text).map_err(|e| e.to_string())
            })
            .map_err(BrokerError::LoadTable)?
            .map(|d| d.offset_table)
            .unwrap_or_default();
        Ok(ScheduleOffsets {
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            file,
        })
    }

    fn get(&self, level: i32) -> i64 {
        self.table
            .lock()
            .expect("delay offsets poisoned")
            .get(&level)
            .copied()
            .unwrap_or(0)
    }

    fn set(&self, level: i32, offset: i64) {
        self.table
            .lock()
            .expect("delay offsets poisoned")
            .insert(level, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// GET_ALL_DELAY_OFFSET's body.
    pub fn encode(&self) -> Vec<u8> {
        let offsets = DelayOffsets {
            offset_table: self.table.lock().expect("delay offsets poisoned").clone(),
        };
        mq::protocol::fastjson::to_vec(&offsets).expect("integers always serialise")
    }

    /// Writes the file if anything changed.
    pub fn persist(&self) -> Result<(), StoreError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.file
            .save_with(|| self.encode())
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }
}

/// If `props` asks for a delay, the schedule topic, queue and properties to
/// store the message under instead (RocketMQ does this inside CommitLog.putMessage).
pub fn divert_delayed(
    broker: &Broker,
    topic: &str,
    queue_id: i32,
    props: &str,
) -> Option<(String, i32, String)> {
    let level: i32 = properties::get(props, keys::DELAY)?.trim().parse().ok()?;
    if level <= 0 {
        return None;
    }
    let max_level = broker.store.config().delay_levels().map_or(18, |l| l.len()) as i32;
    let level = level.min(max_level);
    let mut props: String = properties::iter(props)
        .filter(|(name, _)| {
            *name != keys::DELAY && *name != keys::REAL_TOPIC && *name != keys::REAL_QID
        })
        .map(|(n, v)| format!("{n}\u{1}{v}"))
        .collect::<Vec<_>>()
        .join("\u{2}");
    for (name, value) in [
        (keys::DELAY, level.to_string()),
        (keys::REAL_TOPIC, topic.to_owned()),
        (keys::REAL_QID, queue_id.to_string()),
    ] {
        if !props.is_empty() {
            props.push('\u{2}');
        }
        props.push_str(name);
        props.push('\u{1}');
        props.push_str(&value);
    }
    Some((SCHEDULE_TOPIC.to_owned(), level - 1, props))
}

/// Delivers due delayed messages every 100 ms until shutdown, and persists the
/// level offsets every 10 s.
pub async fn schedule_loop(broker: Arc<Broker>) {
    let levels = broker.store.config().delay_levels().map_or(0, |l| l.len()) as i32;
    let mut ticks = 0u32;
    loop {
        let stop = broker.shutdown.sleep(Duration::from_millis(100)).await;
        if stop {
            return;
        }
        for level in 1..=levels {
            deliver_level(&broker, level).await;
        }
        ticks += 1;
        if ticks.is_multiple_of(100) {
            if let Err(e) = broker.schedule.persist() {
                log::error!("persisting delay offsets: {e}");
            }
        }
    }
}

async fn deliver_level(broker: &Arc<Broker>, level: i32) {
    let queue_id = level - 1;
    let mut offset = broker
        .schedule
        .get(level)
        .max(broker.store.min_offset(SCHEDULE_TOPIC, queue_id));
    let now = crate::store::commit_log::now_ms();
    loop {
        let entries = broker
            .store
            .queue_entries(SCHEDULE_TOPIC, queue_id, offset, 32);
        if entries.is_empty() {
            break;
        }
        for (logical, entry) in entries {
            // Same level, same delay: entries are due in order.
            if entry.tag_code > now {
                broker.schedule.set(level, logical);
                return;
            }
            if let Some(record) = broker.store.read_entry(&entry) {
                if let Ok(Record::Message(msg, _)) = decode_record(&record, false) {
                    let real_topic =
                        properties::get(msg.properties, keys::REAL_TOPIC).map(str::to_owned);
                    let real_qid = properties::get(msg.properties, keys::REAL_QID)
                        .and_then(|q| q.parse().ok());
                    match (real_topic, real_qid) {
                        (Some(topic), Some(queue_id)) => {
                            let props: String = properties::iter(msg.properties)
                                .filter(|(name, _)| *name != keys::DELAY)
                                .map(|(n, v)| format!("{n}\u{1}{v}"))
                                .collect::<Vec<_>>()
                                .join("\u{2}");
                            let put = PutMessage {
                                topic: &topic,
                                queue_id,
                                flag: msg.flag,
                                sys_flag: msg.sys_flag,
                                born_timestamp: msg.born_timestamp,
                                born_host: msg.born_host,
                                reconsume_times: msg.reconsume_times,
                                prepared_transaction_offset: msg.prepared_transaction_offset,
                                body: msg.body,
                                properties: &props,
                            };
                            if let Err(e) = broker.store.put(&[put], false).await {
                                // Try again next round rather than lose it. A
                                // full disk was logged once by the store.
                                if matches!(e, StoreError::DiskFull { .. }) {
                                    log::debug!("delivering a delayed message to {topic}: {e}");
                                } else {
                                    log::warn!("delivering a delayed message to {topic}: {e}");
                                }
                                broker.schedule.set(level, logical);
                                return;
                            }
                        }
                        _ => log::warn!(
                            "delayed message at {} has no REAL_TOPIC/REAL_QID; dropped",
                            entry.phys_offset
                        ),
                    }
                }
            }
            offset = logical + 1;
        }
        broker.schedule.set(level, offset);
    }
}

/// CONSUMER_SEND_MSG_BACK: a consumer failed a message; store it again in the
/// group's retry topic with a delay, or in its dead-letter topic.
pub async fn send_back(broker: &Arc<Broker>, req: &RemotingCommand) -> RemotingCommand {
    let fail = |code: i32, remark: String| error_response(req, code, remark);
    let h = match ConsumerSendMsgBackRequestHeader::decode(&req.ext_fields) {
        Ok(h) => h,
        Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
    };
    let group = match broker.groups.find_or_create(&h.group) {
        Ok(Some(g)) => g,
        Ok(None) => {
            return fail(
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group not exist, {}", h.group),
            )
        }
        Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
    };
    let Some(record) = broker.store.look_message(h.offset) else {
        return fail(
            response::SYSTEM_ERROR,
            format!("look message by offset failed, {}", h.offset),
        );
    };
    let Ok(Record::Message(msg, _)) = decode_record(&record, false) else {
        return fail(
            response::SYSTEM_ERROR,
            format!("look message by offset failed, {}", h.offset),
        );
    };
    let max = h.max_reconsume_times.unwrap_or(group.retry_max_times);
    let to_dlq = msg.reconsume_times >= max || h.delay_level < 0;
    let (topic, queues) = if to_dlq {
        (format!("{DLQ_GROUP_TOPIC_PREFIX}{}", h.group), 1)
    } else {
        (
            format!("{RETRY_GROUP_TOPIC_PREFIX}{}", h.group),
            group.retry_queue_nums.max(1),
        )
    };
    match broker
        .topics
        .get_or_create_system(&topic, queues, perm::READ | perm::WRITE)
    {
        Ok((_, true)) => broker.register_soon(),
        Ok(_) => {}
        Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
    }
    let mut props: Vec<(String, String)> = properties::iter(msg.properties)
        .filter(|(n, _)| *n != keys::DELAY)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if !props.iter().any(|(n, _)| n == RETRY_TOPIC) {
        props.push((RETRY_TOPIC.into(), msg.topic.to_owned()));
    }
    let origin = h
        .origin_msg_id
        .clone()
        .or_else(|| properties::get(msg.properties, keys::UNIQ_KEY).map(str::to_owned))
        .unwrap_or_else(|| offset_msg_id(&msg.store_host, msg.physical_offset));
    if !props.iter().any(|(n, _)| n == ORIGIN_MESSAGE_ID) {
        props.push((ORIGIN_MESSAGE_ID.into(), origin));
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
        topic: &store_topic,
        queue_id: store_queue,
        flag: msg.flag,
        sys_flag: msg.sys_flag,
        born_timestamp: msg.born_timestamp,
        born_host: msg.born_host,
        reconsume_times: msg.reconsume_times + 1,
        prepared_transaction_offset: 0,
        body: msg.body,
        properties: &store_props,
    };
    match broker.store.put(&[put], true).await {
        Ok(_) => RemotingCommand::response_to(req, response::SUCCESS, None),
        Err(e) => fail(response::SYSTEM_ERROR, e.to_string()),
    }
}
