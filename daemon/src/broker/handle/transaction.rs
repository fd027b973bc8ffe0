//! END_TRANSACTION (37): a producer's commit or rollback of a half message. The
//! half message and op record format is in
//! [`transaction`](crate::broker::transaction).

use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, EndTransactionRequestHeader};
use mq_protocol::message::{decode_record, sys_flag, Record};
use mq_protocol::properties::{self, keys};

use super::{ok, Reply};
use crate::broker::error::BrokerError;
use crate::broker::transaction::{
    encode_props, props_of, put_props, write_op, HALF_TOPIC, PGROUP, PREPARED_QUEUE_OFFSET,
    TRAN_MSG,
};
use crate::broker::Broker;
use crate::store::PutMessage;

/// END_TRANSACTION: checks that the header names the stored half message, then
/// stores the message in its real topic (commit) or not (rollback), and
/// records the decision.
pub(crate) async fn end_transaction(broker: &Broker, req: &RemotingCommand) -> Reply {
    let h = EndTransactionRequestHeader::decode(&req.ext_fields)?;
    let decision = sys_flag::transaction_type(h.commit_or_rollback);
    if decision == sys_flag::TRANSACTION_NOT_TYPE {
        // Unknown: leave it to the check.
        return Ok(ok(req));
    }
    let not_found = || BrokerError::HalfNotFound {
        offset: h.commit_log_offset,
    };
    let record = broker
        .store
        .look_message(h.commit_log_offset)
        .ok_or_else(not_found)?;
    let Ok(Record::Message(half, _)) = decode_record(&record, false) else {
        return Err(not_found());
    };
    if half.topic != HALF_TOPIC {
        return Err(BrokerError::HalfMismatch(
            "The message is not a half message",
        ));
    }
    if properties::get(half.properties, PGROUP) != Some(h.producer_group.as_str()) {
        return Err(BrokerError::HalfMismatch("The producer group wrong"));
    }
    if half.queue_offset != h.tran_state_table_offset {
        return Err(BrokerError::HalfMismatch(
            "The transaction state table offset wrong",
        ));
    }
    if half.physical_offset != h.commit_log_offset {
        return Err(BrokerError::HalfMismatch("The commit log offset wrong"));
    }
    if broker.transactions.is_resolved(half.queue_offset) {
        // Answered twice (a check raced the producer's own END_TRANSACTION).
        return Ok(ok(req));
    }
    if decision == sys_flag::TRANSACTION_COMMIT {
        let real_topic = properties::get(half.properties, keys::REAL_TOPIC)
            .map(str::to_owned)
            .ok_or(BrokerError::NoRealTopic)?;
        let real_qid = properties::get(half.properties, keys::REAL_QID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        let mut p = props_of(&half);
        p.retain(|(n, _)| n != keys::REAL_TOPIC && n != keys::REAL_QID && n != TRAN_MSG);
        put_props(&mut p, PREPARED_QUEUE_OFFSET, half.queue_offset.to_string());
        let props = encode_props(&p);
        let put = PutMessage {
            sys_flag: (half.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_COMMIT,
            prepared_transaction_offset: half.physical_offset,
            ..PutMessage::again(&half, &real_topic, real_qid, &props)
        };
        broker
            .store
            .put(&[put], false)
            .await
            .map_err(BrokerError::Commit)?;
    }
    write_op(broker, half.queue_offset).await?;
    Ok(ok(req))
}
