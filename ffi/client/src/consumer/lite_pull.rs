//! The lite pull consumer (RocketMQ's DefaultLitePullConsumer): the
//! application calls [`PullConsumer::poll`] for batches while one long-polling
//! task per assigned queue fills a buffer. Queues come from rebalancing
//! ([`PullConsumer::subscribe`]) or from the application
//! ([`PullConsumer::assign`]); positions can be moved with `seek`; what `poll`
//! returned is committed every `auto_commit_interval` or by
//! [`PullConsumer::commit`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_channel::{bounded, Receiver, Sender};

use mq_protocol::body::{ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::pull_sys_flag;

use super::broker_requests::{is_ids_changed_for, reset_offsets_for};
use super::consume_from::{start_offset, ConsumeFrom};
use super::offset_store::OffsetStore;
use super::pull::{
    pull_message, pull_retry_delay, PullArgs, PullStatus, PULL_DELAY_ON_ERROR,
    PULL_DELAY_WHEN_FULL, SUSPEND_REQUEST_TIMEOUT,
};
use super::queue_offsets::{max_offset, min_offset, search_offset};
use super::rebalance::{self, Incomplete, REBALANCE_INTERVAL};
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, Member};
use crate::message::MessageExt;
use crate::route::subscribe_queues;
use crate::timeout::wait_signal;

/// Lite pull consumer settings (DefaultLitePullConsumer's fields).
#[derive(Debug, Clone)]
pub struct PullConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Clustering (queues shared by the group, offsets on the broker) or
    /// broadcasting (every consumer reads everything, offsets in a local file).
    pub message_model: MessageModel,
    /// Where to start a queue the group has no offset for.
    pub consume_from: ConsumeFrom,
    /// Commit what `poll` returned every `auto_commit_interval` (true).
    pub auto_commit: bool,
    /// How often auto-commit commits (5 s).
    pub auto_commit_interval: Duration,
    /// Most messages one `poll` returns, and one pull asks for (32).
    pub pull_batch_size: i32,
    /// Directory of the broadcasting offsets file (default `$HOME/.rocketmq_offsets`).
    pub offset_dir: Option<PathBuf>,
}

impl PullConsumerConfig {
    /// Defaults for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        PullConsumerConfig {
            group: group.into(),
            message_model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            pull_batch_size: 32,
            offset_dir: None,
        }
    }
}

/// Long-poll hold the lite consumer asks for (`brokerSuspendMaxTimeMillis`).
const LITE_SUSPEND: Duration = Duration::from_secs(20);
/// Messages a lite consumer buffers per queue (`pullThresholdForQueue`).
const LITE_THRESHOLD_COUNT: usize = 1000;
/// Bytes a lite consumer buffers per queue (`pullThresholdSizeForQueue`, MiB).
const LITE_THRESHOLD_BYTES: usize = 100 * 1024 * 1024;

/// How queues were chosen; the two are exclusive, as in Java.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Subscribe,
    Assign,
}

/// One assigned queue.
struct QueueState {
    /// Bumped by `seek`: a pull answer for an older generation is dropped.
    generation: u64,
    /// Offset of the next pull; -1 until computed from the store.
    next_offset: i64,
    /// Pulled, not yet returned by `poll`.
    buffer: VecDeque<MessageExt>,
    buffered_bytes: usize,
    /// The offset after the last message `poll` returned (what a commit
    /// stores); -1 before the first poll or seek.
    consumed: i64,
    /// Broker id the broker suggested for the next pull.
    broker_id: i64,
    /// The queue's pull loop; dropping it cancels the loop.
    task: Option<async_executor::Task<()>>,
}

struct State {
    queues: BTreeMap<MessageQueue, QueueState>,
    /// Where `poll` starts looking, so no queue starves.
    next_poll: usize,
}

struct Inner {
    instance: Arc<ClientInstance>,
    config: PullConsumerConfig,
    store: OffsetStore,
    mode: Mutex<Mode>,
    /// Topic → subscription (`*` for assigned topics).
    subscriptions: Mutex<BTreeMap<String, SubscriptionData>>,
    state: Mutex<State>,
    /// Signalled when a pull buffered messages (wakes `poll`), and by
    /// `wakeup`; closed at shutdown, which wakes every poller at once.
    arrived: (Sender<()>, Receiver<()>),
    /// Wakeups not yet taken by a poll that would otherwise have waited.
    wakeups: AtomicUsize,
    /// Signalled to rebalance now (NOTIFY_CONSUMER_IDS_CHANGED, subscribe).
    rebalance_now: (Sender<()>, Receiver<()>),
    /// Offsets a broker told us to reset to, applied by the next rebalance.
    pending_resets: Mutex<Vec<(MessageQueue, i64)>>,
    /// Whether the last rebalance settled every topic (else retry in 1 s).
    balanced: AtomicBool,
    next_auto_commit: Mutex<Instant>,
    closed: AtomicBool,
    /// Rebalance and persist loops; dropped (cancelled) at shutdown.
    tasks: Mutex<Vec<async_executor::Task<()>>>,
}

impl Member for Inner {
    fn consumer_data(&self) -> Option<ConsumerData> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        Some(ConsumerData {
            consume_from_where: self.config.consume_from.as_consume_from_where(),
            consume_type: ConsumeType::ConsumeActively,
            group_name: self.config.group.clone(),
            message_model: self.config.message_model,
            subscription_data_set: self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned()
                .collect(),
            unit_mode: false,
        })
    }

    fn on_server_request(
        &self,
        _broker: &str,
        request: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        if is_ids_changed_for(request, &self.config.group)
            && *self.mode.lock().unwrap_or_else(PoisonError::into_inner) == Mode::Subscribe
        {
            // Full means a rebalance is already due.
            let _ = self.rebalance_now.0.try_send(());
        } else if let Some(table) = reset_offsets_for(request, &self.config.group) {
            self.pending_resets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(table);
            let _ = self.rebalance_now.0.try_send(());
        }
        None
    }

    fn topics(&self) -> Vec<String> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

/// A lite pull consumer. Send + Sync; share it behind an `Arc`.
pub struct PullConsumer {
    inner: Arc<Inner>,
}

impl PullConsumer {
    /// Starts a consumer on `instance`; it reads nothing until
    /// [`subscribe`](Self::subscribe) or [`assign`](Self::assign).
    pub fn start(instance: Arc<ClientInstance>, config: PullConsumerConfig) -> Result<Self> {
        if config.group.is_empty() {
            return Err(ClientError::InvalidArgument(
                "consumer group is empty".into(),
            ));
        }
        if config.pull_batch_size < 1 {
            return Err(ClientError::InvalidArgument(
                "pull_batch_size must be at least 1".into(),
            ));
        }
        let store = OffsetStore::for_group(
            &instance,
            &config.group,
            config.message_model,
            config.offset_dir.as_ref(),
        )?;
        let inner = Arc::new(Inner {
            instance: instance.clone(),
            store,
            mode: Mutex::new(Mode::None),
            subscriptions: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State {
                queues: BTreeMap::new(),
                next_poll: 0,
            }),
            arrived: bounded(1),
            wakeups: AtomicUsize::new(0),
            rebalance_now: bounded(1),
            pending_resets: Mutex::new(Vec::new()),
            balanced: AtomicBool::new(true),
            next_auto_commit: Mutex::new(Instant::now() + config.auto_commit_interval),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let member: Arc<dyn Member> = inner.clone();
        instance.register(Arc::downgrade(&member));
        let weak = Arc::downgrade(&inner);
        let persist = instance.spawn(persist_loop(weak.clone()));
        let rebalance = instance.spawn(rebalance_loop(weak));
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(persist.into_iter().chain(rebalance));
        Ok(PullConsumer { inner })
    }

    /// The consumer's settings.
    pub fn config(&self) -> &PullConsumerConfig {
        &self.inner.config
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    fn set_mode(&self, mode: Mode) -> Result<()> {
        let mut current = self
            .inner
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current != Mode::None && *current != mode {
            return Err(ClientError::State(
                "subscribe and assign cannot be mixed on one consumer".into(),
            ));
        }
        *current = mode;
        Ok(())
    }

    /// Subscribes to `topic` with a tag `expression` (`*`, `TagA || TagB`);
    /// the group's rebalance decides which queues this consumer reads.
    pub async fn subscribe(&self, topic: &str, expression: &str) -> Result<()> {
        self.check_open()?;
        if topic.is_empty() {
            return Err(ClientError::InvalidArgument("topic is empty".into()));
        }
        self.set_mode(Mode::Subscribe)?;
        let sub = SubscriptionData::from_expression(topic, expression);
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), sub);
        let i = &self.inner.instance;
        if let Err(e) = i.update_route(topic).await {
            // The rebalance loop retries until the topic has a route.
            log::warn!("subscribing to {topic}: {e}");
        }
        i.send_heartbeat_to_all_brokers().await;
        self.inner.rebalance().await;
        if !self.inner.balanced.load(Ordering::Acquire) {
            // Have the loop retry in a second rather than in 20.
            let _ = self.inner.rebalance_now.0.try_send(());
        }
        Ok(())
    }

    /// The readable queues of `topic`, from its route as a NameServer has it
    /// now (Java's `fetchMessageQueues`): what to choose from for
    /// [`assign`](Self::assign). Fails with [`ClientError::NoRoute`] when the
    /// topic has none.
    pub async fn fetch_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.check_open()?;
        if topic.is_empty() {
            return Err(ClientError::InvalidArgument("topic is empty".into()));
        }
        let route = self.inner.instance.update_route(topic).await?;
        let queues = subscribe_queues(topic, &route);
        if queues.is_empty() {
            return Err(ClientError::NoRoute(topic.to_owned()));
        }
        Ok(queues)
    }

    /// Reads exactly `queues` (no rebalance), replacing any earlier assignment.
    pub async fn assign(&self, queues: Vec<MessageQueue>) -> Result<()> {
        self.check_open()?;
        self.set_mode(Mode::Assign)?;
        let topics: BTreeSet<String> = queues.iter().map(|q| q.topic.clone()).collect();
        {
            let mut subs = self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for t in &topics {
                subs.entry(t.clone())
                    .or_insert_with(|| SubscriptionData::from_expression(t, "*"));
            }
        }
        for t in &topics {
            if let Err(e) = self.inner.instance.route(t).await {
                log::warn!("assigning queues of {t}: {e}");
            }
        }
        self.inner.apply(None, queues.into_iter().collect()).await;
        Ok(())
    }

    /// Up to `pull_batch_size` messages of one queue, or none after `timeout`
    /// or after a [`wakeup`](Self::wakeup). Fails with [`ClientError::Closed`]
    /// once the consumer is shut down, also while it waits.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageExt>> {
        self.check_open()?;
        if self.inner.config.auto_commit {
            self.inner.maybe_auto_commit();
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            self.check_open()?;
            if let Some(batch) = self.inner.take_batch() {
                return Ok(batch);
            }
            if self.inner.take_wakeup() {
                return Ok(Vec::new());
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => timeout,
            };
            if left.is_zero() {
                return Ok(Vec::new());
            }
            wait_signal(&self.inner.arrived.1, left).await;
        }
    }

    /// Makes one [`poll`](Self::poll) return at once with what it has
    /// (possibly nothing): one that is waiting now, or else the next one that
    /// would wait. Several wakeups release as many polls. For interrupting a
    /// poll from another thread (a signal handler's flag, a binding's
    /// cancellation) without closing the consumer.
    pub fn wakeup(&self) {
        self.inner.wakeups.fetch_add(1, Ordering::AcqRel);
        // Full means a signal is pending already; a poller will see it.
        let _ = self.inner.arrived.0.try_send(());
    }

    /// [`poll`](Self::poll) for callers without an executor.
    pub fn poll_blocking(&self, timeout: Duration) -> Result<Vec<MessageExt>> {
        crate::block_on(self.poll(timeout))
    }

    /// Moves `mq`'s position to `offset` (between the queue's min and max
    /// offsets), dropping what was buffered.
    pub async fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        self.check_open()?;
        if !self.inner.is_assigned(mq) {
            return Err(ClientError::State(format!(
                "{mq:?} is not assigned to this consumer"
            )));
        }
        let i = &self.inner.instance;
        let (min, max) = (min_offset(i, mq).await?, max_offset(i, mq).await?);
        if offset < min || offset > max {
            return Err(ClientError::InvalidArgument(format!(
                "offset {offset} is outside [{min}, {max}] of {mq:?}"
            )));
        }
        if self.inner.reposition(mq, offset) {
            Ok(())
        } else {
            Err(ClientError::State(format!(
                "{mq:?} is not assigned to this consumer"
            )))
        }
    }

    /// Moves `mq`'s position to the first message stored at or after
    /// `timestamp` (ms since the epoch).
    pub async fn seek_to_timestamp(&self, mq: &MessageQueue, timestamp: i64) -> Result<()> {
        self.check_open()?;
        let offset = search_offset(&self.inner.instance, mq, timestamp).await?;
        self.seek(mq, offset).await
    }

    /// Commits, for every assigned queue, the position after what `poll` returned.
    pub async fn commit(&self) -> Result<()> {
        self.check_open()?;
        self.inner.commit_consumed(true).await
    }

    /// The queues this consumer reads now.
    pub async fn assignment(&self) -> Vec<MessageQueue> {
        self.inner.assigned()
    }

    /// The group's committed offset of `mq` (asked of the broker, or read from
    /// the offsets file); `None` when there is none.
    pub async fn committed(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        self.inner.store.read_store(mq).await
    }

    /// Stops pulling, commits (what `poll` returned, with auto-commit; what was
    /// committed otherwise) and tells the brokers the consumer left. `poll`
    /// fails with [`ClientError::Closed`] afterwards.
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
        let tasks: Vec<async_executor::Task<()>> = inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queues
            .values_mut()
            .filter_map(|q| q.task.take())
            .collect();
        drop(tasks);
        // Wake every poller so they see the close.
        inner.arrived.0.close();
        if let Err(e) = inner.commit_consumed(inner.config.auto_commit).await {
            log::warn!(
                "committing offsets of {} at shutdown: {e}",
                inner.config.group
            );
        }
        inner
            .instance
            .unregister_group(None, Some(&inner.config.group))
            .await;
    }
}

impl Drop for PullConsumer {
    fn drop(&mut self) {
        // Without shutdown, at least stop the background loops.
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            for q in self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .queues
                .values_mut()
            {
                q.task = None;
            }
            self.inner.arrived.0.close();
        }
    }
}

impl Inner {
    fn assigned(&self) -> Vec<MessageQueue> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queues
            .keys()
            .cloned()
            .collect()
    }

    fn is_assigned(&self, mq: &MessageQueue) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queues
            .contains_key(mq)
    }

    /// Takes one pending wakeup, if there is one; leaves a signal for the
    /// next poller while more are pending.
    fn take_wakeup(&self) -> bool {
        self.wakeups
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok_and(|n| {
                if n > 1 {
                    let _ = self.arrived.0.try_send(());
                }
                true
            })
    }

    /// Takes up to a batch from the next queue with buffered messages.
    fn take_batch(&self) -> Option<Vec<MessageExt>> {
        let max = usize::try_from(self.config.pull_batch_size)
            .unwrap_or(1)
            .max(1);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = state.queues.len();
        if n == 0 {
            return None;
        }
        let start = state.next_poll % n;
        let key = state
            .queues
            .iter()
            .cycle()
            .skip(start)
            .take(n)
            .find(|(_, q)| !q.buffer.is_empty())
            .map(|(k, _)| k.clone())?;
        let index = state.queues.keys().position(|k| *k == key).unwrap_or(0);
        state.next_poll = index + 1;
        let q = state.queues.get_mut(&key).expect("the key was just found");
        let take = max.min(q.buffer.len());
        let batch: Vec<MessageExt> = q.buffer.drain(..take).collect();
        let bytes: usize = batch.iter().map(|m| m.body.len()).sum();
        q.buffered_bytes = q.buffered_bytes.saturating_sub(bytes);
        if let Some(last) = batch.last() {
            q.consumed = last.queue_offset + 1;
        }
        drop(state);
        if !batch.is_empty() {
            // Another queue may have data too: let the next poller look.
            let _ = self.arrived.0.try_send(());
        }
        Some(batch)
    }

    /// Copies the consumed positions into the store (when `update`) and
    /// commits every assigned queue's stored offset.
    async fn commit_consumed(&self, update: bool) -> Result<()> {
        let queues: Vec<(MessageQueue, i64)> = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queues
            .iter()
            .map(|(k, q)| (k.clone(), q.consumed))
            .collect();
        if update {
            for (mq, consumed) in &queues {
                if *consumed >= 0 {
                    self.store.update(mq, *consumed, false);
                }
            }
        }
        let mqs: Vec<MessageQueue> = queues.into_iter().map(|(q, _)| q).collect();
        self.store.persist_all(Some(&mqs), true).await
    }

    /// Auto-commit (as Java's maybeAutoCommit): the consumed positions go to
    /// the store's memory; the persist loop sends them to the broker.
    fn maybe_auto_commit(&self) {
        let due = {
            let mut next = self
                .next_auto_commit
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if now >= *next {
                *next = now + self.config.auto_commit_interval;
                true
            } else {
                false
            }
        };
        if due {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            for (mq, q) in &state.queues {
                if q.consumed >= 0 {
                    self.store.update(mq, q.consumed, false);
                }
            }
        }
    }

    /// Makes the assignment `new` (for `topic`, or for every topic when
    /// `None`): starts pulling added queues, commits and stops removed ones.
    async fn apply(self: &Arc<Self>, topic: Option<&str>, new: BTreeSet<MessageQueue>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let removed: Vec<(MessageQueue, QueueState)> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<MessageQueue> = state
                .queues
                .keys()
                .filter(|q| topic.is_none_or(|t| q.topic == t) && !new.contains(*q))
                .cloned()
                .collect();
            let removed = gone
                .into_iter()
                .filter_map(|q| state.queues.remove(&q).map(|s| (q, s)))
                .collect();
            for mq in new {
                if state.queues.contains_key(&mq) {
                    continue;
                }
                log::info!("{}: now reading {mq:?}", self.config.group);
                let task = self
                    .instance
                    .spawn(lite_pull_loop(Arc::downgrade(self), mq.clone()));
                state.queues.insert(
                    mq,
                    QueueState {
                        generation: 0,
                        next_offset: -1,
                        buffer: VecDeque::new(),
                        buffered_bytes: 0,
                        consumed: -1,
                        broker_id: 0,
                        task,
                    },
                );
            }
            removed
        };
        for (mq, q) in removed {
            log::info!("{}: no longer reading {mq:?}", self.config.group);
            drop(q.task);
            if self.config.auto_commit && q.consumed >= 0 {
                self.store.update(&mq, q.consumed, false);
            }
            if let Err(e) = self.store.persist(&mq).await {
                log::debug!("committing {mq:?} on removal: {e}");
            }
            self.store.remove(&mq);
        }
    }

    /// Moves an assigned queue to `offset`: its buffer is dropped and its pull
    /// task restarted there. False if the queue is not assigned.
    fn reposition(self: &Arc<Self>, mq: &MessageQueue, offset: i64) -> bool {
        let weak = Arc::downgrade(self);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(q) = state.queues.get_mut(mq) else {
            return false;
        };
        q.generation += 1;
        q.next_offset = offset;
        q.consumed = offset;
        q.buffer.clear();
        q.buffered_bytes = 0;
        // Replacing the task cancels a long poll parked at the old offset.
        q.task = self.instance.spawn(lite_pull_loop(weak, mq.clone()));
        true
    }

    /// Applies offsets a broker told us to reset to (RESET_CONSUMER_CLIENT_OFFSET).
    fn apply_resets(self: &Arc<Self>) {
        let resets = std::mem::take(
            &mut *self
                .pending_resets
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (mq, offset) in resets {
            if self.reposition(&mq, offset) {
                self.store.update(&mq, offset, false);
                log::info!("{}: {mq:?} reset to offset {offset}", self.config.group);
            }
        }
    }

    /// One rebalance of every subscribed topic (after applying resets).
    async fn rebalance(self: &Arc<Self>) {
        self.apply_resets();
        if *self.mode.lock().unwrap_or_else(PoisonError::into_inner) != Mode::Subscribe {
            return;
        }
        let topics: Vec<String> = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let mut balanced = true;
        for topic in topics {
            match rebalance::assignment(
                &self.instance,
                &self.config.group,
                self.config.message_model,
                &topic,
            )
            .await
            {
                Ok(set) => self.apply(Some(&topic), set.into_iter().collect()).await,
                Err(Incomplete::Failed(e)) => {
                    log::debug!("rebalance of {topic}: {e}");
                    balanced = false;
                }
                Err(why) => {
                    log::debug!("rebalance of {topic}: {why:?}");
                    balanced = false;
                }
            }
        }
        self.balanced.store(balanced, Ordering::Release);
    }
}

/// Rebalances every 20 s, at once when told, and every second while a topic
/// could not be settled (no route yet, heartbeat not seen).
async fn rebalance_loop(weak: Weak<Inner>) {
    let Some(rx) = weak.upgrade().map(|i| i.rebalance_now.1.clone()) else {
        return;
    };
    loop {
        let balanced = match weak.upgrade() {
            Some(i) => i.balanced.load(Ordering::Acquire),
            None => return,
        };
        let wait = if balanced {
            REBALANCE_INTERVAL
        } else {
            Duration::from_secs(1)
        };
        wait_signal(&rx, wait).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        inner.rebalance().await;
    }
}

/// Commits the stored offsets (one-way) every persist interval.
async fn persist_loop(weak: Weak<Inner>) {
    let Some(every) = weak
        .upgrade()
        .map(|i| i.instance.config().persist_consumer_offset_interval)
    else {
        return;
    };
    loop {
        async_io::Timer::after(every).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let mqs = inner.assigned();
        if let Err(e) = inner.store.persist_all(Some(&mqs), false).await {
            log::debug!("persisting offsets of {}: {e}", inner.config.group);
        }
    }
}

/// The long-polling loop of one assigned queue.
async fn lite_pull_loop(weak: Weak<Inner>, mq: MessageQueue) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let snapshot = {
            let state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(q) = state.queues.get(&mq) else {
                return;
            };
            let full =
                q.buffer.len() >= LITE_THRESHOLD_COUNT || q.buffered_bytes >= LITE_THRESHOLD_BYTES;
            (q.generation, q.next_offset, q.broker_id, full)
        };
        let (generation, mut offset, broker_id, full) = snapshot;
        if full {
            drop(inner);
            async_io::Timer::after(PULL_DELAY_WHEN_FULL).await;
            continue;
        }
        if offset < 0 {
            match start_offset(
                &inner.instance,
                &inner.store,
                &mq,
                inner.config.consume_from,
            )
            .await
            {
                Ok(o) => {
                    offset = o;
                    let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
                    match state.queues.get_mut(&mq) {
                        Some(q) if q.generation == generation => q.next_offset = o,
                        Some(_) => continue,
                        None => return,
                    }
                }
                Err(e) => {
                    log::debug!("start offset of {mq:?}: {e}");
                    drop(inner);
                    async_io::Timer::after(PULL_DELAY_ON_ERROR).await;
                    continue;
                }
            }
        }
        let sub = inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
                sys_flag: pull_sys_flag::SUSPEND
                    | pull_sys_flag::SUBSCRIPTION
                    | pull_sys_flag::LITE_PULL,
                commit_offset: 0,
                suspend: LITE_SUSPEND,
                timeout: SUSPEND_REQUEST_TIMEOUT,
                subscription: &sub,
                broker_id,
            },
        )
        .await;
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
        let mut moved = false;
        {
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(q) = state.queues.get_mut(&mq) else {
                return;
            };
            if q.generation != generation {
                continue;
            }
            q.next_offset = outcome.next_begin_offset;
            q.broker_id = outcome.suggest_which_broker_id;
            match outcome.status {
                PullStatus::Found(msgs) => {
                    if !msgs.is_empty() {
                        q.buffered_bytes += msgs.iter().map(|m| m.body.len()).sum::<usize>();
                        q.buffer.extend(msgs);
                        let _ = inner.arrived.0.try_send(());
                    }
                }
                PullStatus::NoNewMsg | PullStatus::NoMatched => {}
                PullStatus::OffsetIllegal => {
                    log::warn!(
                        "offset {offset} of {mq:?} is illegal, moving to {}",
                        outcome.next_begin_offset
                    );
                    moved = true;
                }
            }
        }
        if moved {
            inner.store.update(&mq, outcome.next_begin_offset, false);
            if let Err(e) = inner.store.persist(&mq).await {
                log::debug!("persisting moved offset of {mq:?}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_consumer() -> (Arc<ClientInstance>, Arc<PullConsumer>) {
        let instance =
            ClientInstance::start(crate::ClientConfig::new("127.0.0.1:1")).expect("an instance");
        let consumer = PullConsumer::start(instance.clone(), PullConsumerConfig::new("G"))
            .expect("a consumer");
        (instance, Arc::new(consumer))
    }

    /// Polls on another thread for up to a minute; its outcome and how long
    /// it took.
    fn poll_in_thread(
        consumer: &Arc<PullConsumer>,
    ) -> std::thread::JoinHandle<(Result<Vec<MessageExt>>, Duration)> {
        let c = consumer.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let got = c.poll_blocking(Duration::from_secs(60));
            (got, started.elapsed())
        })
    }

    #[test]
    fn wakeup_releases_a_waiting_poll_and_then_the_next_one() {
        let (instance, consumer) = idle_consumer();
        let waiting = poll_in_thread(&consumer);
        std::thread::sleep(Duration::from_millis(100));
        consumer.wakeup();
        let (got, took) = waiting.join().expect("the poller");
        assert!(got.expect("no error").is_empty());
        assert!(took < Duration::from_secs(10), "took {took:?}");
        // No poll waits now: the wakeup is kept for the next one.
        consumer.wakeup();
        let started = Instant::now();
        assert!(consumer
            .poll_blocking(Duration::from_secs(60))
            .unwrap()
            .is_empty());
        assert!(started.elapsed() < Duration::from_secs(10));
        async_io::block_on(consumer.shutdown());
        instance.shutdown();
    }

    #[test]
    fn shutdown_ends_a_waiting_poll_with_closed() {
        let (instance, consumer) = idle_consumer();
        let waiting = [poll_in_thread(&consumer), poll_in_thread(&consumer)];
        std::thread::sleep(Duration::from_millis(100));
        async_io::block_on(consumer.shutdown());
        for w in waiting {
            let (got, took) = w.join().expect("the poller");
            assert!(matches!(got, Err(ClientError::Closed)), "{got:?}");
            assert!(took < Duration::from_secs(30), "took {took:?}");
        }
        instance.shutdown();
    }

    #[test]
    fn consumers_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PullConsumer>();
        assert_send_sync::<crate::PushConsumer>();
    }
}
