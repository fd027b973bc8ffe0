//! Delayed messages (RocketMQ's ScheduleMessageService): a message with
//! `DELAY=n` is stored in `SCHEDULE_TOPIC_XXXX`, queue `n - 1`, with its real
//! topic and queue in `REAL_TOPIC`/`REAL_QID`; the ConsumeQueue's tag code of
//! such a message is its delivery time. Sends and send-backs divert messages
//! here; the schedule loop ([`task::schedule`](super::task::schedule)) stores
//! them again in their real topic once due.

use mq_protocol::properties::{self, keys};

use super::Broker;
use crate::store::dispatch::SCHEDULE_TOPIC;

/// If `props` asks for a delay, the schedule topic, queue and properties to
/// store the message under instead (RocketMQ does this inside CommitLog.putMessage).
pub(crate) fn divert_delayed(
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
