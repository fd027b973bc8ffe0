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
//!
//! This file holds what the parts share: the topics, the properties, how a
//! half message is rewritten and how a decision is recorded. The parts are
//! the send handler (half messages), END_TRANSACTION (`handle::transaction`),
//! the decided set (`state::transactions`) and the check loop
//! (`task::transaction_check`).

use std::time::Duration;

use mq_protocol::message::{sys_flag, StoredMessage};
use mq_protocol::properties::{self, keys};

use super::error::BrokerError;
use super::state::topics::perm;
use super::Broker;
use crate::store::PutMessage;

/// Where half messages wait.
pub(crate) const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where commit/rollback decisions are recorded.
pub(crate) const OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages checked too often end up.
pub(crate) const CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The group whose offsets record how far checking got.
pub(crate) const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
pub(crate) use mq_protocol::properties::keys::{PGROUP, TRAN_MSG};
/// Property: how often the half message was checked.
pub(crate) const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Property: the half message's queue offset, on commit records.
pub(crate) const PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Property: overrides the first check delay, in seconds.
pub(crate) const CHECK_IMMUNITY: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Tag of op records.
pub(crate) const OP_TAG: &str = "d";

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

/// Sets a property, replacing an earlier value.
pub(crate) fn put_props(props: &mut Vec<(String, String)>, name: &str, value: String) {
    props.retain(|(n, _)| n != name);
    props.push((name.to_owned(), value));
}

/// A stored message's properties, as pairs.
pub(crate) fn props_of(msg: &StoredMessage<'_>) -> Vec<(String, String)> {
    properties::iter(msg.properties)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Pairs as a properties string.
pub(crate) fn encode_props(props: &[(String, String)]) -> String {
    properties::encode(props.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// Rewrites a half message's destination: into the half topic, queue 0, with
/// its real topic and queue kept in properties and the prepared flag cleared (so
/// that the half queue indexes it). Returns (topic, queue, sys flag, properties).
pub(crate) fn to_half(
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
pub(crate) fn ensure_topics(broker: &Broker) {
    for topic in [HALF_TOPIC, OP_HALF_TOPIC] {
        if let Err(e) = broker
            .topics
            .get_or_create_system(topic, 1, perm::READ | perm::WRITE)
        {
            log::error!("creating {topic}: {e}");
        }
    }
}

/// Records the decision on the half message at `half_offset` of the half queue:
/// an op record in the op queue, and the decided set.
pub(crate) async fn write_op(broker: &Broker, half_offset: i64) -> Result<(), BrokerError> {
    let body = half_offset.to_string();
    let props = properties::encode([(keys::TAGS, OP_TAG), (keys::WAIT, "false")]);
    let put = PutMessage {
        topic: OP_HALF_TOPIC,
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: mq_protocol::time::now_ms(),
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
    broker.transactions.resolve(half_offset);
    Ok(())
}
