//! The broker's request handlers: one function per request code, named after
//! the code, grouped by family. The table from code to handler is
//! `Broker::dispatch` in [`broker`](crate::broker).
//!
//! - [`send`]: SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE.
//! - [`pull`]: PULL_MESSAGE, with long polling.
//! - [`send_back`]: CONSUMER_SEND_MSG_BACK, a consumer's failed message.
//! - [`transaction`]: END_TRANSACTION, a producer's commit or rollback.
//! - [`offsets`]: consumer and queue offsets, consume stats, offset reset.
//! - [`clients`]: heartbeats and who is connected.
//! - [`locks`]: queue locks of orderly consumers.
//! - [`topics`]: topic configuration and stats.
//! - [`groups`]: subscription group configuration.
//! - [`messages`]: message queries by key, by offset, and of a consume queue.
//! - [`admin`]: the broker's own config, runtime info and housekeeping.
//! - [`stats`]: topic and group statistics, every group's progress.
//! - [`acl`]: the ACL admin codes (accounts and the global whitelist).
//!
//! A handler returns a [`Reply`]: its response, or the [`BrokerError`] that
//! [`respond`] turns into one. An outcome a client expects, such as a query
//! that found nothing, is a response, not an error.

pub(crate) mod acl;
pub(crate) mod admin;
pub(crate) mod clients;
pub(crate) mod groups;
pub(crate) mod locks;
pub(crate) mod messages;
pub(crate) mod offsets;
pub(crate) mod pull;
pub(crate) mod send;
pub(crate) mod send_back;
pub(crate) mod stats;
pub(crate) mod topics;
pub(crate) mod transaction;

use mq_protocol::body::{MessageQueue, TopicConfig};
use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::CommandHeader;

use super::error::BrokerError;
use super::state::topics::perm;
use super::Broker;
use crate::server::error_response;
use crate::store::StoreError;

/// What a handler answers.
pub(crate) type Reply = Result<RemotingCommand, BrokerError>;

/// The response to a request: the handler's, or its error as code and remark.
pub(crate) fn respond(req: &RemotingCommand, reply: Reply) -> RemotingCommand {
    reply.unwrap_or_else(|e| {
        log::debug!("request {} refused: {e}", req.code);
        error_response(req, e.code(), e.to_string())
    })
}

/// SUCCESS without a body.
pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

/// SUCCESS with a body.
pub(crate) fn ok_body(req: &RemotingCommand, body: Vec<u8>) -> RemotingCommand {
    let mut resp = ok(req);
    resp.body = body;
    resp
}

/// SUCCESS with a response header.
pub(crate) fn ok_header(req: &RemotingCommand, header: &impl CommandHeader) -> RemotingCommand {
    let mut resp = ok(req);
    header.encode(&mut resp.ext_fields);
    resp
}

/// A group's retry or dead-letter topic, created readable and writable with
/// `queues` queues when missing, and then announced to the NameServers.
pub(crate) fn group_topic(
    broker: &Broker,
    topic: &str,
    queues: i32,
) -> Result<TopicConfig, StoreError> {
    let (config, created) =
        broker
            .topics
            .get_or_create_system(topic, queues, perm::READ | perm::WRITE)?;
    if created {
        broker.register_soon();
    }
    Ok(config)
}

/// One of this broker's queues, as admin bodies name it.
pub(crate) fn queue_of(broker: &Broker, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue::new(topic, broker.config().broker_name.clone(), queue_id)
}
