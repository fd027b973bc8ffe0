//! The transaction check (RocketMQ's TransactionalMessageCheckService): every
//! `transactionCheckInterval`, half messages older than the transaction
//! timeout without an op record are put back with their check counter raised
//! and a producer of their group is asked about them (CHECK_TRANSACTION_STATE);
//! after `transactionCheckMax` checks they are given up. The format it reads
//! is in [`transaction`](crate::broker::transaction).

use std::sync::Arc;

use mq_protocol::codes::request;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::message::{decode_record, offset_msg_id, Record, StoredMessage};
use mq_protocol::properties::{self, keys};

use crate::broker::state::topics::perm;
use crate::broker::transaction::{
    encode_props, ensure_topics, props_of, put_props, write_op, TransactionConfig, CHECK_GROUP,
    CHECK_IMMUNITY, CHECK_MAX_TIME_TOPIC, CHECK_TIMES, HALF_TOPIC, OP_HALF_TOPIC, PGROUP,
};
use crate::broker::Broker;
use crate::store::PutMessage;

/// Reads new op records into the resolved set; returns the op queue's new offset.
fn learn_ops(broker: &Broker, from: i64) -> i64 {
    let mut offset = from;
    loop {
        let entries = broker.store.queue_entries(OP_HALF_TOPIC, 0, offset, 256);
        if entries.is_empty() {
            return offset;
        }
        for (logical, entry) in entries {
            if let Some(record) = broker.store.read_entry(&entry) {
                if let Ok(Record::Message(op, _)) = decode_record(&record, false) {
                    if let Some(half) = std::str::from_utf8(op.body)
                        .ok()
                        .and_then(|b| b.trim().parse().ok())
                    {
                        broker.transactions.resolve(half);
                    }
                }
            }
            offset = logical + 1;
        }
    }
}

/// Asks producers about unresolved half messages, every check interval.
pub(crate) async fn check_loop(broker: Arc<Broker>) {
    ensure_topics(&broker);
    let config = broker.transaction_config.clone();
    // Learn the decisions already recorded before the restart.
    let mut op_offset = learn_ops(&broker, broker.store.min_offset(OP_HALF_TOPIC, 0));
    loop {
        let stop = broker.shutdown.sleep(config.check_interval).await;
        if stop {
            return;
        }
        op_offset = learn_ops(&broker, op_offset);
        check_once(&broker, &config).await;
    }
}

async fn check_once(broker: &Arc<Broker>, config: &TransactionConfig) {
    let mut offset = broker
        .offsets
        .query(CHECK_GROUP, HALF_TOPIC, 0)
        .unwrap_or(0)
        .max(broker.store.min_offset(HALF_TOPIC, 0));
    let now = mq_protocol::time::now_ms();
    // Only what is in the queue now: copies put back below are checked next round.
    let end = broker.store.max_offset(HALF_TOPIC, 0);
    'scan: while offset < end {
        let entries = broker.store.queue_entries(HALF_TOPIC, 0, offset, 128);
        if entries.is_empty() {
            break;
        }
        for (logical, entry) in entries {
            if logical >= end {
                break 'scan;
            }
            if broker.transactions.is_resolved(logical) {
                offset = logical + 1;
                continue;
            }
            let Some(record) = broker.store.read_entry(&entry) else {
                offset = logical + 1;
                continue;
            };
            let Ok(Record::Message(half, _)) = decode_record(&record, false) else {
                offset = logical + 1;
                continue;
            };
            let immunity = properties::get(half.properties, CHECK_IMMUNITY)
                .and_then(|s| s.parse::<i64>().ok())
                .map_or(config.timeout.as_millis() as i64, |s| s * 1000);
            if now - half.born_timestamp < immunity {
                // Younger ones follow in store order: stop here.
                break 'scan;
            }
            let times: i32 = properties::get(half.properties, CHECK_TIMES)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let handled = if times >= config.check_max {
                log::warn!(
                    "half message {} checked {times} times without an answer; given up",
                    half.physical_offset
                );
                give_up(broker, &half).await && write_op(broker, logical).await.is_ok()
            } else {
                put_back_and_check(broker, &half, times + 1).await
            };
            if !handled {
                // The store refused (a full disk): this half message and those
                // after it are checked next round, never skipped.
                break 'scan;
            }
            offset = logical + 1;
        }
    }
    broker.offsets.commit(CHECK_GROUP, HALF_TOPIC, 0, offset);
}

/// A copy of the half message, for queue 0 of `topic`, with `properties`.
fn copy_of<'a>(half: &StoredMessage<'a>, topic: &'a str, properties: &'a str) -> PutMessage<'a> {
    PutMessage {
        prepared_transaction_offset: 0,
        ..PutMessage::again(half, topic, 0, properties)
    }
}

/// Moves a half message nobody answered for to the topic operators inspect.
/// Returns whether it was stored there.
async fn give_up(broker: &Arc<Broker>, half: &StoredMessage<'_>) -> bool {
    if let Err(e) = broker
        .topics
        .get_or_create_system(CHECK_MAX_TIME_TOPIC, 1, perm::READ)
    {
        log::error!("creating {CHECK_MAX_TIME_TOPIC}: {e}");
        return false;
    }
    let put = copy_of(half, CHECK_MAX_TIME_TOPIC, half.properties);
    match broker.store.put(&[put], false).await {
        Ok(_) => true,
        Err(e) => {
            log::error!("moving a half message to {CHECK_MAX_TIME_TOPIC}: {e}");
            false
        }
    }
}

/// Appends a copy of the half message with its check counter raised (the
/// counter lives in the message, as in RocketMQ) and asks a producer of its
/// group about the copy. The copy is made even when no producer is online, so
/// the message is checked again next round and given up after `check_max`
/// rounds, as RocketMQ does. Returns whether the copy was stored.
async fn put_back_and_check(broker: &Arc<Broker>, half: &StoredMessage<'_>, times: i32) -> bool {
    let mut p = props_of(half);
    put_props(&mut p, CHECK_TIMES, times.to_string());
    let props = encode_props(&p);
    let copy = copy_of(half, HALF_TOPIC, &props);
    let stored = match broker.store.put(&[copy], false).await {
        Ok(stored) => stored,
        Err(e) => {
            log::error!("putting back a half message for a check: {e}");
            return false;
        }
    };
    let Some(&(phys, queue_offset)) = stored.append.messages.first() else {
        return true;
    };
    let Some(group) = properties::get(half.properties, PGROUP) else {
        return true;
    };
    let conns = broker.clients.producer_connections(group);
    let Some(conn) = conns.first().cloned() else {
        log::debug!(
            "no producer of {group} online to check half message {}",
            half.physical_offset
        );
        return true;
    };
    let uniq = properties::get(half.properties, keys::UNIQ_KEY)
        .unwrap_or_default()
        .to_owned();
    let store_host = broker.store.config().store_host;
    let mut cmd = RemotingCommand::request(request::CHECK_TRANSACTION_STATE);
    cmd.put("tranStateTableOffset", queue_offset);
    cmd.put("commitLogOffset", phys);
    cmd.put("msgId", &uniq);
    cmd.put("transactionId", &uniq);
    cmd.put("offsetMsgId", offset_msg_id(&store_host, phys));
    // The producer sees the message as it sent it, as RocketMQ's check does:
    // under its own topic and queue, not the half topic's.
    let real_topic = properties::get(half.properties, keys::REAL_TOPIC).unwrap_or(half.topic);
    let real_queue = properties::get(half.properties, keys::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(half.queue_id);
    let check_msg = StoredMessage {
        topic: real_topic,
        queue_id: real_queue,
        properties: &props,
        queue_offset,
        physical_offset: phys,
        store_timestamp: stored.append.store_timestamp,
        store_host,
        ..half.clone()
    };
    match check_msg.encode() {
        Ok(body) => cmd.body = body,
        Err(e) => {
            log::error!("encoding a half message for a check: {e}");
            return true;
        }
    }
    conn.send_oneway(cmd).await;
    true
}
