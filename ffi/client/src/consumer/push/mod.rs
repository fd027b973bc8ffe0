//! The push consumer (RocketMQ's DefaultMQPushConsumer): the library pulls
//! (one long-polling task per assigned queue, with per-queue flow control) and
//! hands messages to a [`Listener`].
//!
//! - Concurrent mode: up to `consume_threads` listener calls at once, batches
//!   of up to `consume_batch_max_size`, taken in the order they were pulled.
//!   A [`ConsumeStatus::Later`] (or a panic in the listener) sends the
//!   message back (CONSUMER_SEND_MSG_BACK, the broker re-delivers it through
//!   `%RETRY%<group>` after a delay); if that fails the message is re-sent to
//!   the retry topic directly, and if that fails too it is consumed again
//!   locally after 5 s. A queue's committed offset is its smallest message
//!   still in process, so nothing unprocessed is ever skipped; a queue is not
//!   pulled while its newest message is more than `consume_concurrently_max_span`
//!   offsets past that one, so the offset never falls far behind.
//! - Orderly mode: assigned queues are locked at the broker (renewed every
//!   20 s, released on removal and shutdown) and only locked queues are pulled
//!   and consumed; one queue's messages go to the listener one batch at a time
//!   in offset order. `Later` suspends the queue for 1 s and retries the same
//!   messages; a message that reached `max_reconsume_times` is re-sent to the
//!   retry topic with its reconsume count, which the broker turns into the
//!   dead-letter queue.
//!
//! The listener is a blocking function: it runs on the blocking thread pool,
//! never on the instance's executor.
//!
//! The parts, each depending only on those before it: `config`, `listener`
//! and `process_queue` (one queue's cache); `state` (what the tasks share);
//! `send_back` (messages not consumed); `pull_loop`, `concurrent` and
//! `orderly` (pulling and consuming); `rebalance` (applying the assignment);
//! `background` (the periodic loops); and this file, the [`PushConsumer`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{bounded, unbounded};
use async_lock::Semaphore;

use mq_protocol::body::{MessageModel, MessageQueue, SubscriptionData};
use mq_protocol::topics::retry_topic;

mod background;
mod concurrent;
mod config;
mod listener;
mod orderly;
mod process_queue;
mod pull_loop;
mod rebalance;
mod send_back;
mod state;

pub use config::PushConsumerConfig;
pub use listener::{ConsumeStatus, Listener};

use background::{lock_loop, persist_loop, rebalance_loop};
use concurrent::consume_worker;
use state::Inner;

use crate::consumer::offset_store::OffsetStore;
use crate::consumer::queue_lock::unlock_batch;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, Member};
use crate::timeout::within;

/// How long shutdown waits for listener calls in flight.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// A push consumer. Send + Sync.
pub struct PushConsumer {
    inner: Arc<Inner>,
}

impl PushConsumer {
    /// Starts a consumer of `subscriptions` (topic, tag expression) on
    /// `instance`, calling `listener` with the messages.
    pub fn start(
        instance: Arc<ClientInstance>,
        config: PushConsumerConfig,
        subscriptions: Vec<(String, String)>,
        listener: Listener,
    ) -> Result<Self> {
        if config.group.is_empty() {
            return Err(ClientError::InvalidArgument(
                "consumer group is empty".into(),
            ));
        }
        if subscriptions.is_empty() {
            return Err(ClientError::InvalidArgument("no subscription".into()));
        }
        if config.consume_threads == 0
            || config.consume_batch_max_size == 0
            || config.pull_batch_size < 1
            || config.consume_concurrently_max_span == 0
        {
            return Err(ClientError::InvalidArgument(
                "consume_threads, consume_batch_max_size, pull_batch_size and \
                 consume_concurrently_max_span must be at least 1"
                    .into(),
            ));
        }
        let mut subs = BTreeMap::new();
        for (topic, expression) in &subscriptions {
            if topic.is_empty() {
                return Err(ClientError::InvalidArgument("topic is empty".into()));
            }
            subs.insert(
                topic.clone(),
                SubscriptionData::from_expression(topic, expression),
            );
        }
        if config.message_model == MessageModel::Clustering {
            let retry = retry_topic(&config.group);
            subs.insert(
                retry.clone(),
                SubscriptionData::from_expression(&retry, "*"),
            );
        }
        let store = OffsetStore::for_group(
            &instance,
            &config.group,
            config.message_model,
            config.offset_dir.as_ref(),
        )?;
        let inner = Arc::new(Inner {
            instance: instance.clone(),
            listener,
            store,
            subscriptions: subs,
            queues: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(config.consume_threads)),
            requests: unbounded(),
            rebalance_now: bounded(1),
            pending_resets: Mutex::new(Vec::new()),
            balanced: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let member: Arc<dyn Member> = inner.clone();
        instance.register(Arc::downgrade(&member));
        let weak = Arc::downgrade(&inner);
        let mut tasks = vec![
            instance.spawn(rebalance_loop(weak.clone())),
            instance.spawn(persist_loop(weak.clone())),
        ];
        if inner.needs_locks() {
            tasks.push(instance.spawn(lock_loop(weak.clone())));
        }
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks.into_iter().flatten());
        if !inner.config.orderly {
            for _ in 0..inner.config.consume_threads {
                // Detached: a worker ends when the request channel closes
                // (shutdown, drop); cancelling one inside the listener would
                // free its permit while the call still runs.
                instance.spawn_detached(consume_worker(weak.clone(), inner.requests.1.clone()));
            }
        }
        Ok(PushConsumer { inner })
    }

    /// The consumer's settings.
    pub fn config(&self) -> &PushConsumerConfig {
        &self.inner.config
    }

    /// The queues this consumer reads now.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.inner.assigned()
    }

    /// Stops pulling, waits (up to 30 s) for listener calls in flight,
    /// commits the offsets, releases queue locks and tells the brokers the
    /// consumer left. No message reaches the listener after it returns. A
    /// listener may shut its own consumer down (with
    /// [`shutdown_blocking`](Self::shutdown_blocking)): the other calls in
    /// flight are waited for, not that one.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let queues = inner.assigned_queues();
        // Pull loops may go; consume loops may be inside the listener and must
        // not be cancelled (the blocking call would outlive its permit).
        for (_, pq) in &queues {
            pq.stop_pulling();
        }
        // Workers still drain what is queued, each batch skipped under its
        // permit, then end.
        inner.requests.0.close();
        // Every listener call holds a permit and checks `closed` after
        // taking it: once all permits are here, none runs or will run.
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        // Called from this consumer's own listener: that call holds a
        // permit until shutdown returns to it.
        let wanted = inner.config.consume_threads - usize::from(listener::is_running_for(inner));
        let mut held = Vec::with_capacity(wanted);
        while held.len() < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            match within(left, inner.permits.acquire_arc()).await {
                Some(p) => held.push(p),
                None => {
                    log::warn!(
                        "{}: listener calls still running after {SHUTDOWN_WAIT:?}",
                        inner.config.group
                    );
                    break;
                }
            }
        }
        for (_, pq) in &queues {
            // No listener call is running now.
            pq.stop_consuming();
        }
        let mqs: Vec<MessageQueue> = queues.iter().map(|(q, _)| q.clone()).collect();
        if let Err(e) = inner.store.persist_all(Some(&mqs), true).await {
            log::warn!(
                "committing offsets of {} at shutdown: {e}",
                inner.config.group
            );
        }
        if inner.needs_locks() {
            let set: BTreeSet<MessageQueue> = mqs.into_iter().collect();
            unlock_batch(&inner.instance, &inner.config.group, &set).await;
        }
        inner
            .instance
            .unregister_group(None, Some(&inner.config.group))
            .await;
        drop(held);
    }

    /// [`shutdown`](Self::shutdown) for callers without an executor.
    pub fn shutdown_blocking(&self) {
        crate::block_on(self.shutdown())
    }
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        // Without shutdown, at least stop pulling; nothing new is consumed.
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            self.inner.requests.0.close();
            for pq in self
                .inner
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
            {
                pq.mark_dropped();
                pq.stop_pulling();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::send_back::restore_retry_topic;
    use super::*;
    use crate::instance::ClientConfig;
    use crate::message::MessageExt;
    use mq_protocol::body::ConsumeType;
    use mq_protocol::properties::keys;

    #[test]
    fn retried_messages_get_their_topic_back() {
        let instance =
            ClientInstance::start(ClientConfig::new("127.0.0.1:1")).expect("an instance");
        let consumer = PushConsumer::start(
            instance.clone(),
            PushConsumerConfig::new("G"),
            vec![("T".into(), "*".into())],
            Arc::new(|_: &[MessageExt]| ConsumeStatus::Success),
        )
        .expect("a consumer");
        let mut m = MessageExt::for_test(1);
        m.topic = "%RETRY%G".into();
        m.properties.insert(keys::RETRY_TOPIC.into(), "T".into());
        let mut msgs = [m];
        restore_retry_topic("G", &mut msgs);
        assert_eq!(msgs[0].topic, "T");
        let data = consumer.inner.consumer_data().expect("consumer data");
        let topics: Vec<&str> = data
            .subscription_data_set
            .iter()
            .map(|s| s.topic.as_str())
            .collect();
        assert_eq!(topics, ["%RETRY%G", "T"]);
        assert_eq!(data.consume_type, ConsumeType::ConsumePassively);
        drop(consumer);
        instance.shutdown();
    }
}
