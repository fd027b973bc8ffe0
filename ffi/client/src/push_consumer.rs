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
//! The listener is a blocking function: it runs on smol's blocking thread
//! pool, never on the executor.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use smol::channel::{bounded, unbounded, Receiver, Sender};
use smol::lock::Semaphore;

use mq_protocol::body::{ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::{LanguageCode, RemotingCommand};
use mq_protocol::headers::{
    pull_sys_flag, CommandHeader, ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader,
};
use mq_protocol::properties::{self, keys};

use super::error::{ClientError, Result};
use super::instance::{ClientInstance, Member};
use super::message::{unique_id, MessageExt};
use super::offset_store::OffsetStore;
use super::pull_consumer::{
    is_ids_changed_for, offset_store_for, pull_message, pull_retry_delay, reset_offsets_for,
    wait_signal, ConsumeFrom, PullArgs, PullStatus, PULL_DELAY_WHEN_FULL,
};
use super::rebalance::{
    self, compute_pull_from_where, lock_batch, master_addr_of, retry_topic, unlock_batch,
    Incomplete, LOCK_INTERVAL, LOCK_MAX_LIVE,
};

/// What the listener did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeStatus {
    /// Consumed; the offset may move past the batch.
    Success,
    /// Not consumed: deliver again later (concurrent: through the retry
    /// topic; orderly: the same messages after 1 s).
    Later,
}

/// The function messages are handed to. It is called on a blocking thread;
/// a panic counts as [`ConsumeStatus::Later`].
pub type Listener = Arc<dyn Fn(&[MessageExt]) -> ConsumeStatus + Send + Sync>;

/// Push consumer settings (DefaultMQPushConsumer's fields).
#[derive(Debug, Clone)]
pub struct PushConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Clustering (queues shared, offsets on the broker) or broadcasting
    /// (every consumer gets everything, offsets in a local file).
    pub message_model: MessageModel,
    /// Where to start a queue the group has no offset for.
    pub consume_from: ConsumeFrom,
    /// Orderly consumption: queue locks, one batch per queue at a time (false).
    pub orderly: bool,
    /// Listener calls at once (20).
    pub consume_threads: usize,
    /// Most messages per listener call (1).
    pub consume_batch_max_size: usize,
    /// Most messages per pull (32).
    pub pull_batch_size: i32,
    /// Stop pulling a queue while this many of its messages are cached (1000).
    pub pull_threshold_for_queue: usize,
    /// Stop pulling a queue while this many body bytes are cached (100 MiB).
    pub pull_threshold_size_for_queue: usize,
    /// Concurrent mode: stop pulling a queue while the newest message pulled
    /// is more than this many offsets past its oldest message still in
    /// process (2000). The committed offset is that oldest message, so this
    /// bounds how far a slow message holds it behind what was consumed, and
    /// with it what a rebalance delivers again.
    pub consume_concurrently_max_span: usize,
    /// Deliveries after which a message goes to the dead-letter queue (16).
    pub max_reconsume_times: i32,
    /// Directory of the broadcasting offsets file (default `$HOME/.rocketmq_offsets`).
    pub offset_dir: Option<PathBuf>,
}

impl PushConsumerConfig {
    /// Defaults of the Java client for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        PushConsumerConfig {
            group: group.into(),
            message_model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            orderly: false,
            consume_threads: 20,
            consume_batch_max_size: 1,
            pull_batch_size: 32,
            pull_threshold_for_queue: 1000,
            pull_threshold_size_for_queue: 100 * 1024 * 1024,
            consume_concurrently_max_span: 2000,
            max_reconsume_times: 16,
            offset_dir: None,
        }
    }
}

/// Long-poll hold of push pulls (`BROKER_SUSPEND_MAX_TIME_MILLIS`).
const PUSH_SUSPEND: Duration = Duration::from_secs(15);
/// Request timeout of a push pull (`CONSUMER_TIMEOUT_MILLIS_WHEN_SUSPEND`).
const PUSH_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a failed send-back waits before being consumed again locally.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long an orderly queue is suspended after `Later`
/// (`suspendCurrentQueueTimeMillis`).
const ORDERLY_SUSPEND: Duration = Duration::from_secs(1);
/// How long shutdown waits for listener calls in flight.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// Producer group of the client's own re-sends (Java's inner producer).
const CLIENT_INNER_PRODUCER: &str = "CLIENT_INNER_PRODUCER";

const RETRY_TOPIC: &str = "RETRY_TOPIC";
const RECONSUME_TIME: &str = "RECONSUME_TIME";
const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

// ---------------------------------------------------------------------------
// Process queue: one assigned queue's cached messages (Java's ProcessQueue).

struct PqState {
    /// Pulled and not yet done with (in concurrent mode this includes those
    /// in the listener), by queue offset.
    msgs: BTreeMap<i64, MessageExt>,
    /// Orderly: taken for the listener, not yet committed.
    consuming: BTreeMap<i64, MessageExt>,
    /// Body bytes of `msgs` and `consuming`.
    bytes: usize,
    /// Largest offset ever cached; -1 before the first.
    max_offset: i64,
    /// Offset of the next pull.
    next_offset: i64,
    /// Broker id the broker suggested for the next pull.
    broker_id: i64,
    /// Orderly: whether the broker lock is held, and when it was last renewed.
    locked: bool,
    last_lock: Instant,
}

struct ProcessQueue {
    state: Mutex<PqState>,
    /// Set when the queue leaves this consumer: nothing more is pulled,
    /// consumed or committed for it.
    dropped: AtomicBool,
    /// Orderly: held while the listener runs on this queue, so a removal can
    /// wait for the batch in flight.
    consume_lock: smol::lock::Mutex<()>,
    /// Orderly: signalled when messages arrive or the lock is obtained.
    wake: (Sender<()>, Receiver<()>),
    /// The pull loop; dropping it cancels the loop.
    pull_task: Mutex<Option<smol::Task<()>>>,
    /// Orderly: the consume loop. Never cancelled while it may be inside the
    /// listener (the blocking call would outlive its permit).
    consume_task: Mutex<Option<smol::Task<()>>>,
}

impl ProcessQueue {
    fn new(next_offset: i64, locked: bool) -> Self {
        ProcessQueue {
            state: Mutex::new(PqState {
                msgs: BTreeMap::new(),
                consuming: BTreeMap::new(),
                bytes: 0,
                max_offset: -1,
                next_offset,
                broker_id: 0,
                locked,
                last_lock: Instant::now(),
            }),
            dropped: AtomicBool::new(false),
            consume_lock: smol::lock::Mutex::new(()),
            wake: bounded(1),
            pull_task: Mutex::new(None),
            consume_task: Mutex::new(None),
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, PqState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop_pulling(&self) {
        drop(
            self.pull_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    fn put(&self, msgs: &[MessageExt]) {
        let mut s = self.lock_state();
        for m in msgs {
            if s.msgs.insert(m.queue_offset, m.clone()).is_none() {
                s.bytes += m.body.len();
            }
            s.max_offset = s.max_offset.max(m.queue_offset);
        }
        drop(s);
        let _ = self.wake.0.try_send(());
    }

    /// Removes finished messages; the offset to commit: the smallest offset
    /// still cached, or the one after the largest ever cached; -1 if nothing
    /// was ever cached.
    fn remove(&self, offsets: &[i64]) -> i64 {
        let mut s = self.lock_state();
        for o in offsets {
            if let Some(m) = s.msgs.remove(o) {
                s.bytes = s.bytes.saturating_sub(m.body.len());
            }
        }
        match s.msgs.keys().next() {
            Some(first) => *first,
            None if s.max_offset >= 0 => s.max_offset + 1,
            None => -1,
        }
    }

    fn cached(&self) -> (usize, usize) {
        let s = self.lock_state();
        (s.msgs.len() + s.consuming.len(), s.bytes)
    }

    /// How far consumption has run past the oldest message still in
    /// process: offsets from it to the newest ever cached; 0 when nothing is
    /// cached. Java's getMaxSpan stops at the newest message still cached, so
    /// once the messages after a slow one are done its queue is pulled on as
    /// if nothing held it; this does not forget them.
    fn span(&self) -> usize {
        let s = self.lock_state();
        s.msgs.keys().next().map_or(0, |first| {
            usize::try_from(s.max_offset - first).unwrap_or(usize::MAX)
        })
    }

    fn lock_is_fresh(&self) -> bool {
        let s = self.lock_state();
        s.locked && s.last_lock.elapsed() < LOCK_MAX_LIVE
    }

    /// Orderly: moves the first `n` messages to `consuming` and returns them.
    fn take(&self, n: usize) -> Vec<MessageExt> {
        let mut s = self.lock_state();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some((offset, m)) = s.msgs.pop_first() else {
                break;
            };
            s.consuming.insert(offset, m.clone());
            out.push(m);
        }
        out
    }

    /// Orderly: the batch in `consuming` is done; the offset after it.
    fn commit(&self) -> i64 {
        let mut s = self.lock_state();
        let consuming = std::mem::take(&mut s.consuming);
        let bytes: usize = consuming.values().map(|m| m.body.len()).sum();
        s.bytes = s.bytes.saturating_sub(bytes);
        consuming.keys().next_back().map_or(-1, |last| last + 1)
    }

    /// Orderly: puts a batch back to be consumed again (with its updated
    /// reconsume counts).
    fn consume_again(&self, msgs: Vec<MessageExt>) {
        let mut s = self.lock_state();
        for m in msgs {
            s.consuming.remove(&m.queue_offset);
            s.msgs.insert(m.queue_offset, m);
        }
    }
}

/// Concurrent mode: a batch of one queue waiting for a listener call (Java's
/// ConsumeRequest).
struct ConsumeRequest {
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    msgs: Vec<MessageExt>,
}

// ---------------------------------------------------------------------------
// The consumer.

struct Inner {
    instance: Arc<ClientInstance>,
    config: PushConsumerConfig,
    listener: Listener,
    store: OffsetStore,
    /// Topic → subscription, the retry topic included (clustering).
    subscriptions: BTreeMap<String, SubscriptionData>,
    queues: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    /// One permit per listener call in flight; shutdown takes them all.
    permits: Arc<Semaphore>,
    /// Concurrent mode: batches waiting for a listener call, taken in arrival
    /// order by `consume_threads` workers, so the oldest message of a queue
    /// is consumed first and its committed offset keeps up (a task per batch
    /// racing for a permit let late batches overtake early ones for as long
    /// as new ones kept coming). Unbounded: each queue stops pulling at its
    /// flow-control thresholds, which bounds what can wait here, and a full
    /// channel would only add a second, coarser limit.
    requests: (Sender<ConsumeRequest>, Receiver<ConsumeRequest>),
    /// Signalled to rebalance now (NOTIFY_CONSUMER_IDS_CHANGED).
    rebalance_now: (Sender<()>, Receiver<()>),
    /// Offsets a broker told us to reset to (RESET_CONSUMER_CLIENT_OFFSET),
    /// applied by the next rebalance.
    pending_resets: Mutex<Vec<(MessageQueue, i64)>>,
    /// Whether the last rebalance settled every topic (else retry in 1 s).
    balanced: AtomicBool,
    closed: AtomicBool,
    /// Rebalance, persist and lock loops; cancelled at shutdown.
    tasks: Mutex<Vec<smol::Task<()>>>,
}

impl Member for Inner {
    fn consumer_data(&self) -> Option<ConsumerData> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        Some(ConsumerData {
            consume_from_where: self.config.consume_from.as_consume_from_where(),
            consume_type: ConsumeType::ConsumePassively,
            group_name: self.config.group.clone(),
            message_model: self.config.message_model,
            subscription_data_set: self.subscriptions.values().cloned().collect(),
            unit_mode: false,
        })
    }

    fn on_server_request(
        &self,
        _broker: &str,
        request: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        if is_ids_changed_for(request, &self.config.group) {
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
        self.subscriptions.keys().cloned().collect()
    }
}

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
        let store = offset_store_for(
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
            smol::spawn(rebalance_loop(weak.clone())),
            smol::spawn(persist_loop(weak.clone())),
        ];
        if inner.needs_locks() {
            tasks.push(smol::spawn(lock_loop(weak.clone())));
        }
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
        if !inner.config.orderly {
            for _ in 0..inner.config.consume_threads {
                // Detached: a worker ends when the request channel closes
                // (shutdown, drop); cancelling one inside the listener would
                // free its permit while the call still runs.
                smol::spawn(consume_worker(weak.clone(), inner.requests.1.clone())).detach();
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
        let mut out: Vec<MessageQueue> = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Stops pulling, waits (up to 30 s) for listener calls in flight,
    /// commits the offsets, releases queue locks and tells the brokers the
    /// consumer left. No message reaches the listener after it returns.
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
        let mut held = Vec::with_capacity(inner.config.consume_threads);
        while held.len() < inner.config.consume_threads {
            let left = deadline.saturating_duration_since(Instant::now());
            let permit =
                smol::future::or(async { Some(inner.permits.acquire_arc().await) }, async {
                    smol::Timer::after(left).await;
                    None
                })
                .await;
            match permit {
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
            drop(
                pq.consume_task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
            );
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
        smol::block_on(self.shutdown())
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
                pq.dropped.store(true, Ordering::Release);
                pq.stop_pulling();
            }
        }
    }
}

impl Inner {
    fn needs_locks(&self) -> bool {
        self.config.orderly && self.config.message_model == MessageModel::Clustering
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// One rebalance of every subscribed topic; false if a topic could not
    /// be settled.
    /// Applies offsets a broker told us to reset to: each queue is dropped
    /// without committing its old offset, the new one is committed, and the
    /// rebalance that follows starts the queue again from it.
    async fn apply_resets(self: &Arc<Self>) {
        let resets = std::mem::take(
            &mut *self
                .pending_resets
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (mq, offset) in resets {
            if !self.subscriptions.contains_key(&mq.topic) {
                continue;
            }
            let pq = self
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&mq);
            if let Some(pq) = pq {
                pq.dropped.store(true, Ordering::Release);
                pq.stop_pulling();
                let _ = pq.wake.0.try_send(());
            }
            self.store.update(&mq, offset, false);
            if let Err(e) = self
                .store
                .persist_all(Some(std::slice::from_ref(&mq)), true)
                .await
            {
                log::warn!(
                    "{}: committing reset offset of {mq:?}: {e}",
                    self.config.group
                );
            }
            log::info!("{}: {mq:?} reset to offset {offset}", self.config.group);
        }
    }

    async fn rebalance(self: &Arc<Self>) -> bool {
        self.apply_resets().await;
        let mut balanced = true;
        for topic in self.subscriptions.keys() {
            if self.is_closed() {
                return true;
            }
            match rebalance::assignment(
                &self.instance,
                &self.config.group,
                self.config.message_model,
                topic,
            )
            .await
            {
                Ok(set) => {
                    if !self.apply(topic, set.into_iter().collect()).await {
                        balanced = false;
                    }
                }
                Err(Incomplete::Failed(e)) => {
                    log::debug!("{}: rebalance of {topic}: {e}", self.config.group);
                    balanced = false;
                }
                Err(why) => {
                    log::debug!("{}: rebalance of {topic}: {why:?}", self.config.group);
                    balanced = false;
                }
            }
        }
        if self.needs_locks() && !self.is_closed() {
            // Queues whose lock another client still held: try again now,
            // and in a second if still not ours (not only every 20 s).
            let unlocked = self
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .any(|pq| !pq.lock_is_fresh());
            if unlocked {
                self.lock_all().await;
                balanced &= self
                    .queues
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .all(|pq| pq.lock_is_fresh());
            }
        }
        balanced
    }

    /// Makes `new` the assignment of `topic`; false if a new queue could not
    /// be started (retried by the next rebalance).
    async fn apply(self: &Arc<Self>, topic: &str, new: BTreeSet<MessageQueue>) -> bool {
        let (removed, added): (Vec<(MessageQueue, Arc<ProcessQueue>)>, Vec<MessageQueue>) = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<MessageQueue> = queues
                .keys()
                .filter(|q| q.topic == topic && !new.contains(*q))
                .cloned()
                .collect();
            let removed = gone
                .into_iter()
                .filter_map(|q| queues.remove(&q).map(|pq| (q, pq)))
                .collect();
            let added = new
                .iter()
                .filter(|q| !queues.contains_key(*q))
                .cloned()
                .collect();
            (removed, added)
        };
        for (mq, pq) in removed {
            self.remove_queue(&mq, &pq).await;
        }
        if added.is_empty() {
            return true;
        }
        let locked = if self.needs_locks() {
            lock_batch(
                &self.instance,
                &self.config.group,
                &added.iter().cloned().collect(),
            )
            .await
        } else {
            BTreeSet::new()
        };
        let mut complete = true;
        for mq in added {
            if self.is_closed() {
                return true;
            }
            // Java's removeDirtyOffset: what the broker has is what counts.
            self.store.remove(&mq);
            let offset = match compute_pull_from_where(
                &self.instance,
                &self.store,
                &mq,
                self.config.consume_from,
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    log::debug!("{}: start offset of {mq:?}: {e}", self.config.group);
                    complete = false;
                    continue;
                }
            };
            log::info!("{}: now consuming {mq:?} from {offset}", self.config.group);
            let pq = Arc::new(ProcessQueue::new(offset, locked.contains(&mq)));
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            if self.is_closed() || queues.contains_key(&mq) {
                continue;
            }
            let weak = Arc::downgrade(self);
            *pq.pull_task.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(smol::spawn(pull_loop(weak.clone(), mq.clone(), pq.clone())));
            if self.config.orderly {
                *pq.consume_task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(smol::spawn(orderly_loop(weak, mq.clone(), pq.clone())));
            }
            queues.insert(mq, pq);
        }
        complete
    }

    /// A queue left this consumer: stop it, commit its offset, release its lock.
    async fn remove_queue(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) {
        log::info!("{}: no longer consuming {mq:?}", self.config.group);
        pq.dropped.store(true, Ordering::Release);
        // The orderly loop ends by itself once it sees `dropped`.
        pq.stop_pulling();
        let _ = pq.wake.0.try_send(());
        // Orderly: let the batch in flight finish (Java waits up to 1 s).
        let _guard = if self.config.orderly {
            smol::future::or(async { Some(pq.consume_lock.lock().await) }, async {
                smol::Timer::after(Duration::from_secs(1)).await;
                None
            })
            .await
        } else {
            None
        };
        if let Err(e) = self.store.persist(mq).await {
            log::debug!("committing {mq:?} on removal: {e}");
        }
        self.store.remove(mq);
        if self.needs_locks() {
            let set: BTreeSet<MessageQueue> = [mq.clone()].into_iter().collect();
            unlock_batch(&self.instance, &self.config.group, &set).await;
        }
    }

    /// The assigned queues and their state, taken out of the lock.
    fn assigned_queues(&self) -> Vec<(MessageQueue, Arc<ProcessQueue>)> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Renews the locks of every assigned queue (orderly, clustering).
    async fn lock_all(&self) {
        let queues = self.assigned_queues();
        if queues.is_empty() {
            return;
        }
        let set: BTreeSet<MessageQueue> = queues.iter().map(|(q, _)| q.clone()).collect();
        let locked = lock_batch(&self.instance, &self.config.group, &set).await;
        for (mq, pq) in queues {
            let mut s = pq.lock_state();
            if locked.contains(&mq) {
                s.locked = true;
                s.last_lock = Instant::now();
            } else {
                s.locked = false;
            }
            drop(s);
            let _ = pq.wake.0.try_send(());
        }
    }

    /// The messages as the listener sees them: retried ones under their
    /// original topic.
    fn restore_retry_topic(&self, msgs: &mut [MessageExt]) {
        let retry = retry_topic(&self.config.group);
        for m in msgs {
            if m.topic == retry {
                if let Some(original) = m.properties.get(RETRY_TOPIC) {
                    m.topic = original.clone();
                }
            }
        }
    }

    /// Runs the listener on a blocking thread; a panic counts as `Later`.
    async fn call_listener(&self, msgs: Vec<MessageExt>) -> ConsumeStatus {
        let listener = self.listener.clone();
        smol::unblock(move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| listener(&msgs))).unwrap_or_else(|_| {
                log::warn!("the message listener panicked; the messages will be retried");
                ConsumeStatus::Later
            })
        })
        .await
    }

    /// CONSUMER_SEND_MSG_BACK with delay level 0 (the broker picks 3 +
    /// reconsume times), falling back to re-sending to the retry topic.
    async fn send_back(&self, msg: &MessageExt) -> Result<()> {
        match self.send_msg_back(msg).await {
            Ok(()) => Ok(()),
            Err(e) => {
                log::debug!("send back of {} failed ({e}); re-sending it", msg.msg_id);
                self.resend_to_retry(msg, msg.reconsume_times + 1).await
            }
        }
    }

    async fn send_msg_back(&self, msg: &MessageExt) -> Result<()> {
        let mq = MessageQueue::new(msg.topic.clone(), msg.broker_name.clone(), msg.queue_id);
        let addr = master_addr_of(&self.instance, &mq).await?;
        let mut cmd = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK);
        cmd.language = LanguageCode::Rust;
        ConsumerSendMsgBackRequestHeader {
            offset: msg.commit_log_offset,
            group: self.config.group.clone(),
            delay_level: 0,
            origin_msg_id: Some(msg.msg_id.clone()),
            origin_topic: Some(msg.topic.clone()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.config.max_reconsume_times),
        }
        .encode(&mut cmd.ext_fields);
        cmd.put("bname", &msg.broker_name);
        let resp = self
            .instance
            .invoke(&addr, cmd, self.instance.config().request_timeout)
            .await?;
        if resp.code == response::SUCCESS {
            Ok(())
        } else {
            Err(ClientError::refused(resp))
        }
    }

    /// Re-sends `msg` to `%RETRY%<group>` as the Java client's inner producer
    /// does: RETRY_TOPIC, ORIGIN_MESSAGE_ID, DELAY = 3 + reconsume times, and
    /// `reconsume_times` / max in the header (the broker sends it to the
    /// dead-letter queue once the count reaches the max).
    async fn resend_to_retry(&self, msg: &MessageExt, reconsume_times: i32) -> Result<()> {
        let retry = retry_topic(&self.config.group);
        let mq = MessageQueue::new(retry.clone(), msg.broker_name.clone(), 0);
        let addr = master_addr_of(&self.instance, &mq).await?;
        let mut props = msg.properties.clone();
        props.remove("MIN_OFFSET");
        props.remove("MAX_OFFSET");
        props.remove(RECONSUME_TIME);
        props.remove(MAX_RECONSUME_TIMES);
        props
            .entry(ORIGIN_MESSAGE_ID.to_owned())
            .or_insert_with(|| msg.msg_id.clone());
        props.insert(RETRY_TOPIC.into(), msg.topic.clone());
        props.insert(keys::DELAY.into(), (3 + msg.reconsume_times).to_string());
        props
            .entry(keys::UNIQ_KEY.to_owned())
            .or_insert_with(|| unique_id(&self.instance.config().client_ip));
        props.insert(keys::WAIT.into(), "true".into());
        let header = SendMessageRequestHeader {
            producer_group: CLIENT_INNER_PRODUCER.into(),
            topic: retry,
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 0,
            sys_flag: 0,
            born_timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
            flag: msg.flag,
            properties: Some(properties::encode(
                props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
            reconsume_times: Some(reconsume_times),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: Some(self.config.max_reconsume_times),
            broker_name: Some(msg.broker_name.clone()),
        };
        let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2);
        cmd.language = LanguageCode::Rust;
        header.encode_v2(&mut cmd.ext_fields);
        cmd.body = msg.body.clone();
        let resp = self
            .instance
            .invoke(&addr, cmd, self.instance.config().request_timeout)
            .await?;
        match resp.code {
            response::SUCCESS
            | response::FLUSH_DISK_TIMEOUT
            | response::FLUSH_SLAVE_TIMEOUT
            | response::SLAVE_NOT_AVAILABLE => Ok(()),
            _ => Err(ClientError::refused(resp)),
        }
    }
}

/// Concurrent mode: one of `consume_threads` tasks taking batches in arrival
/// order. Messages that could not be sent back stay in their process queue
/// (so the offset cannot pass them) and are queued again after a while.
async fn consume_worker(weak: Weak<Inner>, requests: Receiver<ConsumeRequest>) {
    while let Ok(request) = requests.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        let ConsumeRequest { mq, pq, msgs } = request;
        let failed = consume_once(&inner, &mq, &pq, msgs).await;
        if failed.is_empty() {
            continue;
        }
        let again = inner.requests.0.clone();
        // Detached: it ends after the delay; a closed channel drops the batch
        // (nothing is consumed after shutdown).
        smol::spawn(async move {
            smol::Timer::after(LOCAL_RETRY_DELAY).await;
            let _ = again
                .send(ConsumeRequest {
                    mq,
                    pq,
                    msgs: failed,
                })
                .await;
        })
        .detach();
    }
}

/// One listener call for `msgs`, then the offset; returns the messages to
/// consume again locally.
async fn consume_once(
    inner: &Inner,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    msgs: Vec<MessageExt>,
) -> Vec<MessageExt> {
    let permits = inner.permits.clone();
    let _permit = permits.acquire_arc().await;
    // Checked under the permit: shutdown takes every permit after closing.
    if inner.is_closed() || pq.is_dropped() {
        return Vec::new();
    }
    let status = inner.call_listener(msgs.clone()).await;
    let mut failed = Vec::new();
    let mut done: Vec<i64> = Vec::with_capacity(msgs.len());
    match status {
        ConsumeStatus::Success => done.extend(msgs.iter().map(|m| m.queue_offset)),
        ConsumeStatus::Later if inner.config.message_model == MessageModel::Broadcasting => {
            // As Java: broadcasting has no retry topic; the messages are dropped.
            log::warn!(
                "{}: broadcasting consumer returned Later; {} message(s) dropped",
                inner.config.group,
                msgs.len()
            );
            done.extend(msgs.iter().map(|m| m.queue_offset));
        }
        ConsumeStatus::Later => {
            for m in msgs {
                match inner.send_back(&m).await {
                    Ok(()) => done.push(m.queue_offset),
                    Err(e) => {
                        log::warn!("{}: cannot send {} back: {e}", inner.config.group, m.msg_id);
                        let mut m = m;
                        m.reconsume_times += 1;
                        failed.push(m);
                    }
                }
            }
        }
    }
    let offset = pq.remove(&done);
    if offset >= 0 && !pq.is_dropped() {
        inner.store.update(mq, offset, true);
    }
    failed
}

/// Orderly mode: hands one queue's messages to the listener one batch at a
/// time, in offset order, while the queue's lock is held.
async fn orderly_loop(weak: Weak<Inner>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
    let wake = pq.wake.1.clone();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() || pq.is_dropped() {
            return;
        }
        if inner.needs_locks() && !pq.lock_is_fresh() {
            drop(inner);
            wait_signal(&wake, Duration::from_millis(500)).await;
            continue;
        }
        let guard = pq.consume_lock.lock().await;
        let batch = pq.take(inner.config.consume_batch_max_size);
        if batch.is_empty() {
            drop(guard);
            drop(inner);
            wait_signal(&wake, Duration::from_secs(1)).await;
            continue;
        }
        let permit = inner.permits.acquire_arc().await;
        if inner.is_closed() || pq.is_dropped() {
            pq.consume_again(batch);
            return;
        }
        let mut shown = batch.clone();
        inner.restore_retry_topic(&mut shown);
        let status = inner.call_listener(shown).await;
        let suspend = match status {
            ConsumeStatus::Success => None,
            ConsumeStatus::Later => {
                // Java's checkReconsumeTimes: past the limit a message is
                // re-sent (to the DLQ, by the broker); otherwise, or if that
                // fails, the whole batch is consumed again after a pause.
                let mut suspend = false;
                let mut again = Vec::with_capacity(batch.len());
                for mut m in batch {
                    if m.reconsume_times >= inner.config.max_reconsume_times {
                        let mut original = m.clone();
                        inner.restore_retry_topic(std::slice::from_mut(&mut original));
                        if let Err(e) = inner.resend_to_retry(&original, m.reconsume_times).await {
                            log::warn!(
                                "{}: cannot dead-letter {}: {e}",
                                inner.config.group,
                                m.msg_id
                            );
                            suspend = true;
                            m.reconsume_times += 1;
                        }
                    } else {
                        suspend = true;
                        m.reconsume_times += 1;
                    }
                    again.push(m);
                }
                suspend.then_some(again)
            }
        };
        match suspend {
            None => {
                let offset = pq.commit();
                if offset >= 0 && !pq.is_dropped() {
                    inner.store.update(&mq, offset, false);
                }
                drop(permit);
                drop(guard);
            }
            Some(again) => {
                pq.consume_again(again);
                drop(permit);
                drop(guard);
                drop(inner);
                smol::Timer::after(ORDERLY_SUSPEND).await;
            }
        }
    }
}

/// The long-polling loop of one assigned queue.
async fn pull_loop(weak: Weak<Inner>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
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
            smol::Timer::after(PULL_DELAY_WHEN_FULL).await;
            continue;
        }
        if inner.needs_locks() && !pq.lock_is_fresh() {
            drop(inner);
            wait_signal(&pq.wake.1, Duration::from_millis(500)).await;
            continue;
        }
        let (offset, broker_id) = {
            let s = pq.lock_state();
            (s.next_offset, s.broker_id)
        };
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
                timeout: PUSH_REQUEST_TIMEOUT,
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
                smol::Timer::after(delay).await;
                continue;
            }
        };
        {
            let mut s = pq.lock_state();
            s.next_offset = outcome.next_begin_offset;
            s.broker_id = outcome.suggest_which_broker_id;
        }
        match outcome.status {
            PullStatus::Found(mut msgs) if !msgs.is_empty() => {
                inner.restore_retry_topic(&mut msgs);
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

/// Rebalances at start, every 20 s, at once when told, and every second
/// while a topic could not be settled (no route yet, heartbeat not seen).
async fn rebalance_loop(weak: Weak<Inner>) {
    let Some(inner) = weak.upgrade() else { return };
    let rx = inner.rebalance_now.1.clone();
    // Routes first, so the heartbeat reaches every broker of the topics.
    for topic in inner.subscriptions.keys() {
        if let Err(e) = inner.instance.update_route(topic).await {
            log::debug!("{}: route of {topic}: {e}", inner.config.group);
        }
    }
    inner.instance.send_heartbeat_to_all_brokers().await;
    drop(inner);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        let balanced = inner.rebalance().await;
        inner.balanced.store(balanced, Ordering::Release);
        drop(inner);
        let wait = if balanced {
            rebalance::REBALANCE_INTERVAL
        } else {
            Duration::from_secs(1)
        };
        wait_signal(&rx, wait).await;
    }
}

/// Commits the offsets (one-way) every persist interval.
async fn persist_loop(weak: Weak<Inner>) {
    let Some(every) = weak
        .upgrade()
        .map(|i| i.instance.config().persist_consumer_offset_interval)
    else {
        return;
    };
    loop {
        smol::Timer::after(every).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        let mqs: Vec<MessageQueue> = inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if let Err(e) = inner.store.persist_all(Some(&mqs), false).await {
            log::debug!("persisting offsets of {}: {e}", inner.config.group);
        }
    }
}

/// Orderly, clustering: renews the queue locks every 20 s.
async fn lock_loop(weak: Weak<Inner>) {
    loop {
        smol::Timer::after(LOCK_INTERVAL).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        inner.lock_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(offset: i64) -> MessageExt {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().expect("an address");
        MessageExt {
            msg_id: format!("m{offset}"),
            offset_msg_id: String::new(),
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 0,
            queue_offset: offset,
            commit_log_offset: 0,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: addr,
            store_timestamp: 0,
            store_host: addr,
            reconsume_times: 0,
            properties: BTreeMap::new(),
            body: vec![0; 10],
        }
    }

    #[test]
    fn committed_offset_never_passes_a_message_in_process() {
        let pq = ProcessQueue::new(0, false);
        assert_eq!(pq.remove(&[]), -1);
        pq.put(&[msg(3), msg(4), msg(5)]);
        // 4 finished first: 3 is still in process.
        assert_eq!(pq.remove(&[4]), 3);
        assert_eq!(pq.remove(&[3]), 5);
        assert_eq!(pq.remove(&[5]), 6);
        assert_eq!(pq.cached(), (0, 0));
    }

    #[test]
    fn span_reaches_from_the_oldest_in_process_to_the_newest_cached() {
        let pq = ProcessQueue::new(0, false);
        assert_eq!(pq.span(), 0);
        pq.put(&[msg(10)]);
        assert_eq!(pq.span(), 0);
        pq.put(&[msg(11), msg(2500)]);
        assert_eq!(pq.span(), 2490);
        // Everything after 10 is done, 10 still in process: the span stays.
        pq.remove(&[11, 2500]);
        assert_eq!(pq.span(), 2490);
        pq.remove(&[10]);
        assert_eq!(pq.span(), 0);
        pq.put(&[msg(2501)]);
        assert_eq!(pq.span(), 0);
    }

    #[test]
    fn orderly_batches_are_taken_in_order_and_can_be_retried() {
        let pq = ProcessQueue::new(0, true);
        pq.put(&[msg(7), msg(5), msg(6)]);
        let batch = pq.take(2);
        let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
        assert_eq!(offsets, [5, 6]);
        pq.consume_again(batch);
        let batch = pq.take(2);
        assert_eq!(batch[0].queue_offset, 5);
        assert_eq!(pq.commit(), 7);
        assert_eq!(pq.take(5).len(), 1);
        assert_eq!(pq.commit(), 8);
        assert_eq!(pq.cached(), (0, 0));
    }

    #[test]
    fn retried_messages_get_their_topic_back() {
        let instance = ClientInstance::start(super::super::ClientConfig::new("127.0.0.1:1"))
            .expect("an instance");
        let consumer = PushConsumer::start(
            instance.clone(),
            PushConsumerConfig::new("G"),
            vec![("T".into(), "*".into())],
            Arc::new(|_: &[MessageExt]| ConsumeStatus::Success),
        )
        .expect("a consumer");
        let mut m = msg(1);
        m.topic = "%RETRY%G".into();
        m.properties.insert(RETRY_TOPIC.into(), "T".into());
        let mut msgs = [m];
        consumer.inner.restore_retry_topic(&mut msgs);
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
