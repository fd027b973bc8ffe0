//! Queue locks of orderly consumers: LOCK_BATCH_MQ and UNLOCK_BATCH_MQ. The
//! lock table is [`state::locks`](crate::broker::state::locks).

use mq_protocol::body::{LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody};
use mq_protocol::frame::RemotingCommand;

use super::{ok, ok_body, Reply};
use crate::broker::error::BrokerError;
use crate::broker::Broker;

/// LOCK_BATCH_MQ: locks (or renews) what it can of the queues asked for, and
/// answers with the queues the client now holds.
pub(crate) fn lock_batch_mq(broker: &Broker, req: &RemotingCommand) -> Reply {
    let body = LockBatchRequestBody::decode(&req.body).map_err(|source| BrokerError::Body {
        what: "LOCK_BATCH_MQ",
        source,
    })?;
    let locked = broker
        .locks
        .lock(&body.consumer_group, &body.client_id, &body.mq_set);
    let body = LockBatchResponseBody {
        lock_ok_mq_set: locked,
    };
    Ok(ok_body(req, body.encode()))
}

/// UNLOCK_BATCH_MQ: releases the client's locks on the queues named.
pub(crate) fn unlock_batch_mq(broker: &Broker, req: &RemotingCommand) -> Reply {
    let body = UnlockBatchRequestBody::decode(&req.body).map_err(|source| BrokerError::Body {
        what: "UNLOCK_BATCH_MQ",
        source,
    })?;
    broker
        .locks
        .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
    Ok(ok(req))
}
