//! PULL_MESSAGE (11) with long polling and broker-side tag filtering. A pull
//! that finds nothing may be parked ([`state::hold`](crate::broker::state::hold));
//! the hold loop ([`task::hold`](crate::broker::task::hold)) runs it again
//! when a message arrives or its time runs out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_protocol::body::{SubscriptionData, TopicConfig};
use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    pull_sys_flag, CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};

use super::{respond, Reply};
use crate::broker::config::BrokerRole;
use crate::broker::error::{Access, BrokerError};
use crate::broker::state::hold::HeldPull;
use crate::broker::state::topics::perm;
use crate::broker::Broker;
use crate::server::Connection;
use crate::store::GetStatus;

/// The broker id of a master.
const MASTER_ID: i64 = 0;

/// Most messages one pull returns (RocketMQ: maxTransferCountOnMessageInMemory).
const MAX_TRANSFER_COUNT: usize = 32;
/// About the most bytes one pull returns (maxTransferBytesOnMessageInMemory).
const MAX_TRANSFER_BYTES: usize = 256 * 1024;

/// PULL_MESSAGE: `None` when the pull was parked for long polling (it is
/// answered later). `allow_suspend` is false when a parked pull runs again.
pub(crate) async fn pull_message(
    broker: &Broker,
    conn: &Arc<Connection>,
    req: &RemotingCommand,
    allow_suspend: bool,
) -> Option<Reply> {
    pull(broker, conn, req, allow_suspend).await.transpose()
}

/// Answers a parked pull: runs it again, this time without parking it.
pub(crate) async fn answer_held(broker: &Broker, held: &HeldPull) {
    if let Some(reply) = pull_message(broker, &held.conn, &held.request, false).await {
        held.conn.send(&respond(&held.request, reply)).await;
    }
}

async fn pull(
    broker: &Broker,
    conn: &Arc<Connection>,
    req: &RemotingCommand,
    allow_suspend: bool,
) -> Result<Option<RemotingCommand>, BrokerError> {
    let h = PullMessageRequestHeader::decode(&req.ext_fields)?;
    let config = broker.config();
    if !perm::readable(config.broker_permission) {
        return Err(BrokerError::BrokerForbidden {
            broker: config.broker_name.clone(),
            access: Access::Pull,
        });
    }
    let group = match broker.groups.find_or_create(&h.consumer_group)? {
        Some(group) if !group.consume_enable => {
            return Err(BrokerError::GroupConsumeDisabled {
                group: h.consumer_group,
            })
        }
        Some(group) => group,
        None => {
            return Err(BrokerError::GroupNotExist {
                group: h.consumer_group,
            })
        }
    };
    let slave = config.broker_role == BrokerRole::Slave;
    let Some(topic) = broker
        .topics
        .get(&h.topic)
        .or_else(|| slave.then(|| replicated_topic(broker, &h.topic)).flatten())
    else {
        return Err(BrokerError::TopicNotExist { topic: h.topic });
    };
    if !perm::readable(topic.perm) {
        return Err(BrokerError::TopicForbidden {
            topic: h.topic,
            access: Access::Pull,
        });
    }
    if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
        return Err(BrokerError::PullQueueIllegal {
            queue_id: h.queue_id,
            topic: h.topic,
            read_queue_nums: topic.read_queue_nums,
            consumer: conn.peer,
        });
    }
    // The subscription in the request when the client sends it, else the one
    // from the group's heartbeat, else everything (a heartbeat may not have
    // arrived yet; the client filters by tag again, so nothing wrong gets in).
    let subscription = if h.sys_flag & pull_sys_flag::SUBSCRIPTION != 0 {
        h.subscription
            .as_deref()
            .map(|expr| SubscriptionData::from_expression(&h.topic, expr))
    } else {
        None
    }
    .or_else(|| broker.clients.subscription(&h.consumer_group, &h.topic))
    .unwrap_or_else(|| SubscriptionData::from_expression(&h.topic, "*"));
    let codes: BTreeSet<i64> = subscription
        .tag_codes()
        .into_iter()
        .map(i64::from)
        .collect();
    let all = subscription.is_sub_all();
    let filter = move |code: i64| all || codes.contains(&code);

    let max = usize::try_from(h.max_msg_nums)
        .unwrap_or(0)
        .clamp(1, MAX_TRANSFER_COUNT);
    let started = std::time::Instant::now();
    let result = broker.store.get_messages(
        &h.topic,
        h.queue_id,
        h.queue_offset,
        max,
        MAX_TRANSFER_BYTES,
        &filter,
    );
    broker.stats.on_pull(
        &h.consumer_group,
        &h.topic,
        result.messages.len() as u64,
        result.bytes() as u64,
        started.elapsed(),
    );

    let mut code = match result.status {
        GetStatus::Found => response::SUCCESS,
        GetStatus::MessageWasRemoving | GetStatus::NoMatchedMessage => {
            response::PULL_RETRY_IMMEDIATELY
        }
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if h.queue_offset != 0 {
                response::PULL_OFFSET_MOVED
            } else {
                response::PULL_NOT_FOUND
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => response::PULL_NOT_FOUND,
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => response::PULL_OFFSET_MOVED,
    };
    // A slave may be behind its master: it never moves a consumer's offset
    // (RocketMQ without offsetCheckInSlave), the consumer asks again.
    if slave && code == response::PULL_OFFSET_MOVED {
        code = response::PULL_RETRY_IMMEDIATELY;
    }
    // Where to pull next (RocketMQ's suggestWhichBrokerId): with
    // slaveReadEnable, the slave when this consumer is far behind, else the
    // group's broker (the master by default); without it, the master.
    let suggest_which_broker_id = if config.slave_read_enable {
        if result.suggest_pulling_from_slave {
            group.which_broker_when_consume_slowly
        } else {
            group.broker_id
        }
    } else {
        MASTER_ID
    };
    // Store the consumer's committed offset (masters only, as RocketMQ), and
    // only on the pull's first run: a parked pull woken later carries an
    // offset older than what the consumer committed since.
    if allow_suspend
        && h.sys_flag & pull_sys_flag::COMMIT_OFFSET != 0
        && config.broker_role != BrokerRole::Slave
    {
        broker
            .offsets
            .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    }
    if code == response::PULL_NOT_FOUND
        && allow_suspend
        && h.sys_flag & pull_sys_flag::SUSPEND != 0
        && !broker.is_stopping()
    {
        let hold_for = if config.long_polling_enable {
            Duration::from_millis(u64::try_from(h.suspend_timeout_millis).unwrap_or(0))
        } else {
            config.short_polling_time
        };
        broker.holds.hold(
            &h.topic,
            h.queue_id,
            HeldPull {
                conn: conn.clone(),
                request: req.clone(),
                offset: h.queue_offset,
                deadline: Instant::now() + hold_for,
            },
        );
        // A message dispatched between the read above and the parking would
        // have found nobody to wake: look once more.
        let max_now = broker.store.max_offset(&h.topic, h.queue_id);
        if max_now > h.queue_offset {
            broker.holds.notify_arrival(&h.topic, h.queue_id, max_now);
        }
        return Ok(None);
    }
    let mut resp =
        RemotingCommand::response_to(req, code, Some(result.status.java_name().to_owned()));
    PullMessageResponseHeader {
        suggest_which_broker_id,
        next_begin_offset: result.next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
    }
    .encode(&mut resp.ext_fields);
    if code == response::SUCCESS {
        let mut body = Vec::with_capacity(result.bytes());
        for record in &result.messages {
            body.extend_from_slice(record);
        }
        resp.body = body;
    }
    Ok(Some(resp))
}

/// A slave serves a topic whose queues it holds before it has copied the
/// topic's config from its master (it copies every 10 s): readable, with as
/// many queues as it holds. RocketMQ's slave answers TOPIC_NOT_EXIST then.
fn replicated_topic(broker: &Broker, topic: &str) -> Option<TopicConfig> {
    let queues = broker.store.queue_ids(topic).into_iter().max()? + 1;
    Some(TopicConfig {
        topic_name: topic.to_owned(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: perm::READ,
        ..TopicConfig::default()
    })
}
