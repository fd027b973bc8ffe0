//! The long-polling loop of one assigned queue: pulls while the queue is
//! under its flow-control limits (and, orderly, while its lock is fresh),
//! caches what arrives in the process queue and, in concurrent mode, queues
//! it for the consume workers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mq_protocol::body::{MessageModel, MessageQueue, SubscriptionData};
use mq_protocol::headers::pull_sys_flag;

use super::process_queue::ProcessQueue;
use super::send_back::restore_retry_topic;
use super::state::{ConsumeRequest, Inner};
use crate::consumer::pull::{
    pull_message, pull_retry_delay, PullArgs, PullStatus, PULL_DELAY_WHEN_FULL,
    SUSPEND_REQUEST_TIMEOUT,
};

/// Long-poll hold of push pulls (`BROKER_SUSPEND_MAX_TIME_MILLIS`).
const PUSH_SUSPEND: Duration = Duration::from_secs(15);

/// The long-polling loop of one assigned queue.
pub(super) async fn pull_loop(weak: Weak<Inner>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() || pq.is_dropped() {
            return;
        }
        let (count, bytes) = pq.cached();
        let span_too_wide =
            !inner.config.orderly && pq.span() > inner.config.consume_concurrently_max_span;
        if count > inner.config.pull_threshold_for_queue
            || bytes > inner.config.pull_threshold_size_for_queue
            || span_too_wide
        {
            drop(inner);
            async_io::Timer::after(PULL_DELAY_WHEN_FULL).await;
            continue;
        }
        if inner.needs_locks() && !pq.lock_is_fresh() {
            drop(inner);
            pq.wait_wake(Duration::from_millis(500)).await;
            continue;
        }
        let (offset, broker_id) = pq.pull_position();
        let clustering = inner.config.message_model == MessageModel::Clustering;
        let committed = inner.store.read_memory(&mq).unwrap_or(0);
        let mut sys_flag = pull_sys_flag::SUSPEND;
        if clustering && committed > 0 {
            sys_flag |= pull_sys_flag::COMMIT_OFFSET;
        }
        let sub = inner
            .subscriptions
            .get(&mq.topic)
            .cloned()
            .unwrap_or_else(|| SubscriptionData::from_expression(&mq.topic, "*"));
        let outcome = pull_message(
            &inner.instance,
            PullArgs {
                group: &inner.config.group,
                mq: &mq,
                offset,
                max_nums: inner.config.pull_batch_size,
                sys_flag,
                commit_offset: if clustering { committed } else { 0 },
                suspend: PUSH_SUSPEND,
                timeout: SUSPEND_REQUEST_TIMEOUT,
                subscription: &sub,
                broker_id,
            },
        )
        .await;
        if pq.is_dropped() || inner.is_closed() {
            return;
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                log::debug!("pull of {mq:?} at {offset}: {e}");
                let delay = pull_retry_delay(&e);
                drop(inner);
                async_io::Timer::after(delay).await;
                continue;
            }
        };
        pq.set_pull_position(outcome.next_begin_offset, outcome.suggest_which_broker_id);
        match outcome.status {
            PullStatus::Found(mut msgs) if !msgs.is_empty() => {
                restore_retry_topic(&inner.config.group, &mut msgs);
                pq.put(&msgs);
                if !inner.config.orderly {
                    for chunk in msgs.chunks(inner.config.consume_batch_max_size) {
                        // Fails only once closed, when nothing is consumed anymore.
                        let _ = inner.requests.0.try_send(ConsumeRequest {
                            mq: mq.clone(),
                            pq: pq.clone(),
                            msgs: chunk.to_vec(),
                        });
                    }
                }
            }
            PullStatus::Found(_) | PullStatus::NoNewMsg | PullStatus::NoMatched => {
                // Java's correctTagsOffset: nothing cached, so everything up
                // to the next offset is done with.
                if pq.cached().0 == 0 {
                    inner.store.update(&mq, outcome.next_begin_offset, true);
                }
            }
            PullStatus::OffsetIllegal => {
                log::warn!(
                    "offset {offset} of {mq:?} is illegal, moving to {}",
                    outcome.next_begin_offset
                );
                inner.store.update(&mq, outcome.next_begin_offset, false);
                if let Err(e) = inner.store.persist(&mq).await {
                    log::debug!("persisting moved offset of {mq:?}: {e}");
                }
            }
        }
    }
}
