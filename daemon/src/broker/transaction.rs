//! Transactional messages (RocketMQ 4.9's design, section 9.7 of the protocol
//! reference).
//!
//! A half message (sys flag TRANSACTION_PREPARED) is stored in
//! `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with its real topic and queue in
//! `REAL_TOPIC`/`REAL_QID`, invisible to consumers. END_TRANSACTION commits it
//! (stored again in its real topic, as a COMMIT record) or rolls it back; either
//! way an op record (body: the half message's queue offset) goes to
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC`. A check task asks a producer of the group
//! (CHECK_TRANSACTION_STATE) about half messages older than the transaction
//! timeout that have no op record, at most `transactionCheckMax` times.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq::protocol::codes::{request, response};
use mq::protocol::headers::{CommandHeader, EndTransactionRequestHeader};
use mq::protocol::message::{decode_record, offset_msg_id, sys_flag, Record, StoredMessage};
use mq::protocol::properties::{self, keys};
use mq::protocol::remoting::RemotingCommand;

use super::error::BrokerError;
use super::state::topics::perm;
use super::Broker;
use crate::remoting::error_response;
use crate::store::PutMessage;

/// Where half messages wait.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where commit/rollback decisions are recorded.
pub const OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages checked too often end up.
pub const CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The group whose offsets record how far checking got.
const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Property: the producer group of a half message.
const PGROUP: &str = "PGROUP";
/// Property: marks a transactional message.
const TRAN_MSG: &str = "TRAN_MSG";
/// Property: how often the half message was checked.
const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Property: the half message's queue offset, on commit records.
const PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Property: overrides the first check delay, in seconds.
const CHECK_IMMUNITY: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Tag of op records.
const OP_TAG: &str = "d";

/// Settings of the check task.
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// Half messages younger than this are not checked (`transactionTimeOut`, 6 s).
    pub timeout: Duration,
    /// How often the check runs (`transactionCheckInterval`, 60 s).
    pub check_interval: Duration,
    /// Checks before a half message is given up (`transactionCheckMax`, 15).
    pub check_max: i32,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            timeout: Duration::from_secs(6),
            check_interval: Duration::from_secs(60),
            check_max: 15,
        }
    }
}

/// Half queue offsets that have an op record, learnt from the op queue.
#[derive(Default)]
pub struct TransactionState {
    resolved: Mutex<BTreeSet<i64>>,
}

fn put_props(props: &mut Vec<(String, String)>, name: &str, value: String) {
    props.retain(|(n, _)| n != name);
    props.push((name.to_owned(), value));
}

fn props_of(msg: &StoredMessage<'_>) -> Vec<(String, String)> {
    properties::iter(msg.properties)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn encode_props(props: &[(String, String)]) -> String {
    properties::encode(props.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// Rewrites a half message's destination: into the half topic, queue 0, with
/// its real topic and queue kept in properties and the prepared flag cleared (so
/// that the half queue indexes it). Returns (topic, queue, sys flag, properties).
pub fn to_half(
    topic: &str,
    queue_id: i32,
    sys_flag_value: i32,
    props: &str,
) -> (String, i32, i32, String) {
    let mut p: Vec<(String, String)> = properties::iter(props)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    put_props(&mut p, keys::REAL_TOPIC, topic.to_owned());
    put_props(&mut p, keys::REAL_QID, queue_id.to_string());
    let flag = sys_flag_value & !sys_flag::TRANSACTION_MASK;
    (HALF_TOPIC.to_owned(), 0, flag, encode_props(&p))
}

/// Makes sure the system topics exist.
pub fn ensure_topics(broker: &Arc<Broker>) {
    for topic in [HALF_TOPIC, OP_HALF_TOPIC] {
        if let Err(e) = broker
            .topics
            .get_or_create_system(topic, 1, perm::READ | perm::WRITE)
        {
            log::error!("creating {topic}: {e}");
        }
    }
}

/// END_TRANSACTION.
pub async fn end_transaction(broker: &Arc<Broker>, req: &RemotingCommand) -> RemotingCommand {
    let fail = |code: i32, remark: String| error_response(req, code, remark);
    let h = match EndTransactionRequestHeader::decode(&req.ext_fields) {
        Ok(h) => h,
        Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
    };
    let decision = sys_flag::transaction_type(h.commit_or_rollback);
    if decision == sys_flag::TRANSACTION_NOT_TYPE {
        // Unknown: leave it to the check.
        return RemotingCommand::response_to(req, response::SUCCESS, None);
    }
    let Some(record) = broker.store.look_message(h.commit_log_offset) else {
        return fail(
            response::SYSTEM_ERROR,
            "Find prepared transaction message failed".into(),
        );
    };
    let Ok(Record::Message(half, _)) = decode_record(&record, false) else {
        return fail(
            response::SYSTEM_ERROR,
            "Find prepared transaction message failed".into(),
        );
    };
    if half.topic != HALF_TOPIC {
        return fail(
            response::SYSTEM_ERROR,
            "The message is not a half message".into(),
        );
    }
    if properties::get(half.properties, PGROUP) != Some(h.producer_group.as_str()) {
        return fail(response::SYSTEM_ERROR, "The producer group wrong".into());
    }
    if half.queue_offset != h.tran_state_table_offset {
        return fail(
            response::SYSTEM_ERROR,
            "The transaction state table offset wrong".into(),
        );
    }
    if half.physical_offset != h.commit_log_offset {
        return fail(response::SYSTEM_ERROR, "The commit log offset wrong".into());
    }
    if broker.transactions.is_resolved(half.queue_offset) {
        // Answered twice (a check raced the producer's own END_TRANSACTION).
        return RemotingCommand::response_to(req, response::SUCCESS, None);
    }
    if decision == sys_flag::TRANSACTION_COMMIT {
        let Some(real_topic) =
            properties::get(half.properties, keys::REAL_TOPIC).map(str::to_owned)
        else {
            return fail(
                response::SYSTEM_ERROR,
                "half message without REAL_TOPIC".into(),
            );
        };
        let real_qid = properties::get(half.properties, keys::REAL_QID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        let mut p = props_of(&half);
        p.retain(|(n, _)| n != keys::REAL_TOPIC && n != keys::REAL_QID && n != TRAN_MSG);
        put_props(&mut p, PREPARED_QUEUE_OFFSET, half.queue_offset.to_string());
        let props = encode_props(&p);
        let put = PutMessage {
            topic: &real_topic,
            queue_id: real_qid,
            flag: half.flag,
            sys_flag: (half.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_COMMIT,
            born_timestamp: half.born_timestamp,
            born_host: half.born_host,
            reconsume_times: half.reconsume_times,
            prepared_transaction_offset: half.physical_offset,
            body: half.body,
            properties: &props,
        };
        if let Err(e) = broker.store.put(&[put], false).await {
            return fail(
                response::SYSTEM_ERROR,
                format!("committing the half message: {e}"),
            );
        }
    }
    if let Err(e) = write_op(broker, half.queue_offset).await {
        return fail(response::SYSTEM_ERROR, e.to_string());
    }
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

async fn write_op(broker: &Arc<Broker>, half_offset: i64) -> Result<(), BrokerError> {
    let body = half_offset.to_string();
    let props = properties::encode([(keys::TAGS, OP_TAG), (keys::WAIT, "false")]);
    let put = PutMessage {
        topic: OP_HALF_TOPIC,
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: crate::store::commit_log::now_ms(),
        born_host: broker.store.config().store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: body.as_bytes(),
        properties: &props,
    };
    broker
        .store
        .put(&[put], false)
        .await
        .map_err(BrokerError::OpRecord)?;
    broker
        .transactions
        .resolved
        .lock()
        .expect("tx state poisoned")
        .insert(half_offset);
    Ok(())
}

impl TransactionState {
    fn is_resolved(&self, half_offset: i64) -> bool {
        self.resolved
            .lock()
            .expect("tx state poisoned")
            .contains(&half_offset)
    }
}

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
                        broker
                            .transactions
                            .resolved
                            .lock()
                            .expect("tx state poisoned")
                            .insert(half);
                    }
                }
            }
            offset = logical + 1;
        }
    }
}

/// Asks producers about unresolved half messages, every check interval.
pub async fn check_loop(broker: Arc<Broker>) {
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
    let now = crate::store::commit_log::now_ms();
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
    let put = PutMessage {
        topic: CHECK_MAX_TIME_TOPIC,
        queue_id: 0,
        flag: half.flag,
        sys_flag: half.sys_flag,
        born_timestamp: half.born_timestamp,
        born_host: half.born_host,
        reconsume_times: half.reconsume_times,
        prepared_transaction_offset: 0,
        body: half.body,
        properties: half.properties,
    };
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
    let copy = PutMessage {
        topic: HALF_TOPIC,
        queue_id: 0,
        flag: half.flag,
        sys_flag: half.sys_flag,
        born_timestamp: half.born_timestamp,
        born_host: half.born_host,
        reconsume_times: half.reconsume_times,
        prepared_transaction_offset: 0,
        body: half.body,
        properties: &props,
    };
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
    let check_msg = StoredMessage {
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
