//! PULL_MESSAGE with long polling and broker-side tag filtering.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::protocol::body::SubscriptionData;
use mq::protocol::codes::response;
use mq::protocol::headers::{
    pull_sys_flag, CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};
use mq::protocol::remoting::RemotingCommand;

use crate::broker::config::BrokerRole;
use crate::broker::state::hold::HeldPull;
use crate::broker::state::topics::perm;
use crate::broker::Broker;
use crate::remoting::{error_response, Connection};
use crate::store::GetStatus;

/// Most messages one pull returns (RocketMQ: maxTransferCountOnMessageInMemory).
const MAX_TRANSFER_COUNT: usize = 32;
/// About the most bytes one pull returns (maxTransferBytesOnMessageInMemory).
const MAX_TRANSFER_BYTES: usize = 256 * 1024;

impl Broker {
    /// Runs a pull. `None` when it was parked for long polling (answered later).
    pub async fn execute_pull(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        req: &RemotingCommand,
        allow_suspend: bool,
    ) -> Option<RemotingCommand> {
        let fail = |code: i32, remark: String| Some(error_response(req, code, remark));
        let h = match PullMessageRequestHeader::decode(&req.ext_fields) {
            Ok(h) => h,
            Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
        };
        let config = self.config();
        if !perm::readable(config.broker_permission) {
            return fail(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] pulling message is forbidden",
                    config.broker_name
                ),
            );
        }
        match self.groups.find_or_create(&h.consumer_group) {
            Ok(Some(group)) if !group.consume_enable => {
                return fail(
                    response::NO_PERMISSION,
                    format!("subscription group no permission, {}", h.consumer_group),
                )
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return fail(
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    format!("subscription group [{}] does not exist", h.consumer_group),
                )
            }
            Err(e) => return fail(response::SYSTEM_ERROR, e.to_string()),
        }
        let Some(topic) = self.topics.get(&h.topic) else {
            return fail(
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            );
        };
        if !perm::readable(topic.perm) {
            return fail(
                response::NO_PERMISSION,
                format!("the topic[{}] pulling message is forbidden", h.topic),
            );
        }
        if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
            return fail(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    h.queue_id, h.topic, topic.read_queue_nums, conn.peer
                ),
            );
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
        .or_else(|| self.clients.subscription(&h.consumer_group, &h.topic))
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
        let result = self.store.get_messages(
            &h.topic,
            h.queue_id,
            h.queue_offset,
            max,
            MAX_TRANSFER_BYTES,
            &filter,
        );

        let code = match result.status {
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
            GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => {
                response::PULL_OFFSET_MOVED
            }
        };
        // Store the consumer's committed offset (masters only, as RocketMQ), and
        // only on the pull's first run: a parked pull woken later carries an
        // offset older than what the consumer committed since.
        if allow_suspend
            && h.sys_flag & pull_sys_flag::COMMIT_OFFSET != 0
            && config.broker_role != BrokerRole::Slave
        {
            self.offsets
                .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        }
        if code == response::PULL_NOT_FOUND
            && allow_suspend
            && h.sys_flag & pull_sys_flag::SUSPEND != 0
            && !self.is_stopping()
        {
            let hold_for = if config.long_polling_enable {
                Duration::from_millis(u64::try_from(h.suspend_timeout_millis).unwrap_or(0))
            } else {
                config.short_polling_time
            };
            self.holds.hold(
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
            let max_now = self.store.max_offset(&h.topic, h.queue_id);
            if max_now > h.queue_offset {
                self.holds.notify_arrival(&h.topic, h.queue_id, max_now);
            }
            return None;
        }
        let mut resp =
            RemotingCommand::response_to(req, code, Some(result.status.java_name().to_owned()));
        PullMessageResponseHeader {
            suggest_which_broker_id: 0,
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
            self.get_count
                .fetch_add(result.messages.len() as i64, Ordering::Relaxed);
        }
        Some(resp)
    }
}

/// Answers parked pulls when their queue gets a message or their time runs out.
pub async fn hold_loop(broker: Arc<Broker>) {
    loop {
        let stop = broker
            .shutdown
            .wait_or(broker.holds.wait(Duration::from_millis(500)))
            .await;
        if stop {
            return;
        }
        let ready = broker.holds.take_ready(Instant::now(), |topic, queue| {
            broker.store.max_offset(topic, queue)
        });
        for (held, _) in ready {
            let b = broker.clone();
            // Each answer on its own task, so one slow client does not delay others.
            broker
                .ex
                .spawn(async move {
                    if let Some(mut answer) = b.execute_pull(&held.conn, &held.request, false).await
                    {
                        answer.opaque = held.request.opaque;
                        held.conn.send(&answer).await;
                    }
                })
                .detach();
        }
    }
}
