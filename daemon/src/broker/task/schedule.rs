//! The schedule loop (RocketMQ's ScheduleMessageService timer): walks each
//! delay level's queue of the schedule topic and, once a message is due,
//! stores it again in its real topic ([`delay`](crate::broker::delay) has the
//! format). How far each level got is kept in
//! [`state::delay_offsets`](crate::broker::state::delay_offsets).

use std::sync::Arc;
use std::time::Duration;

use mq_protocol::message::{decode_record, Record};
use mq_protocol::properties::{self, keys};

use crate::broker::Broker;
use crate::store::dispatch::SCHEDULE_TOPIC;
use crate::store::{PutMessage, StoreError};

/// Delivers due delayed messages every 100 ms until shutdown, and persists the
/// level offsets every 10 s.
pub(crate) async fn schedule_loop(broker: Arc<Broker>) {
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
    let now = mq_protocol::time::now_ms();
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
                            let put = PutMessage::again(&msg, &topic, queue_id, &props);
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
