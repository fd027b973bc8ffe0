//! What a topic's route means to a client: the queues a producer may write
//! and the queues a consumer group divides among its members.

use mq_protocol::body::{MessageQueue, TopicRouteData};

/// Perm bit: writable.
const PERM_WRITE: i32 = 2;
/// Perm bit: readable.
const PERM_READ: i32 = 4;

/// The queues a topic can be written to, in route order (brokers by name):
/// writable queue data of brokers that have a master, at most `cap` queues
/// of each broker when given (a topic auto-created from a template).
pub(crate) fn publish_queues(
    topic: &str,
    route: &TopicRouteData,
    cap: Option<i32>,
) -> Vec<MessageQueue> {
    let mut datas = route.queue_datas.clone();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut out = Vec::new();
    for qd in datas {
        if qd.perm & PERM_WRITE == 0 {
            continue;
        }
        let has_master = route
            .broker_datas
            .iter()
            .any(|b| b.broker_name == qd.broker_name && b.broker_addrs.contains_key(&0));
        if !has_master {
            continue;
        }
        let n = cap.map_or(qd.write_queue_nums, |c| qd.write_queue_nums.min(c));
        out.extend((0..n).map(|q| MessageQueue::new(topic, qd.broker_name.clone(), q)));
    }
    out
}

/// The readable queues of a route (what consumers divide), sorted as Java
/// sorts them.
pub(crate) fn subscribe_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut out: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|qd| qd.perm & PERM_READ != 0)
        .flat_map(|qd| {
            (0..qd.read_queue_nums).map(|q| MessageQueue::new(topic, qd.broker_name.clone(), q))
        })
        .collect();
    out.sort();
    out
}
