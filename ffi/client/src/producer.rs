//! The producer (RocketMQ's DefaultMQProducer): sync, async and one-way sends,
//! batches, ordered sends by sharding key, two retries on another broker, and
//! latency fault tolerance; bodies over 4 KiB are zlib-compressed as the Java
//! client does.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mq_protocol::body::{MessageQueue, ProducerData, TopicRouteData};
use mq_protocol::codes::{request, response};
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{
    CommandHeader, SendMessageFields, SendMessageRequestHeader, SendMessageResponseHeader,
};
use mq_protocol::message::{encode_batch_item, sys_flag, BatchItem};
use mq_protocol::properties::{self, java_string_hash, keys};
use mq_protocol::time::now_ms;
use mq_protocol::topics::AUTO_CREATE_TOPIC_KEY;

use super::connection::client_request;
use super::error::{ClientError, Result};
use super::instance::{ClientInstance, Member};
use super::message::{compress, unique_id, Message};
use super::route::publish_queues;
use super::runtime::Runtime;
use super::timeout::within;

/// Producer settings (RocketMQ's DefaultMQProducer fields).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Producer group.
    pub group: String,
    /// Budget of one send, retries included (3 s).
    pub send_timeout: Duration,
    /// Extra attempts of a failed sync send (2).
    pub retry_times_when_send_failed: u32,
    /// Extra attempts of a failed async send (2).
    pub retry_times_when_send_async_failed: u32,
    /// Bodies of at least this many bytes are compressed (4096).
    pub compress_msg_body_over: usize,
    /// Largest body accepted (4 MiB).
    pub max_message_size: usize,
    /// Queues of a topic auto-created on first send (4).
    pub default_topic_queue_nums: i32,
    /// Avoid brokers that failed or answered slowly for a while.
    pub latency_fault_enable: bool,
}

impl ProducerConfig {
    /// Defaults of the Java client for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        ProducerConfig {
            group: group.into(),
            send_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            compress_msg_body_over: 4096,
            max_message_size: 4 * 1024 * 1024,
            default_topic_queue_nums: 4,
            latency_fault_enable: true,
        }
    }
}

/// How the broker stored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored as the broker promises.
    SendOk,
    /// Stored; the SYNC_FLUSH flush timed out.
    FlushDiskTimeout,
    /// Stored on the master; replication timed out.
    FlushSlaveTimeout,
    /// Stored on the master; no slave available.
    SlaveNotAvailable,
}

/// The outcome of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How it was stored.
    pub status: SendStatus,
    /// The client's unique id(s) (UNIQ_KEY), comma separated for a batch.
    pub msg_id: String,
    /// The broker's offset id(s), comma separated for a batch.
    pub offset_msg_id: String,
    /// The queue used.
    pub queue: MessageQueue,
    /// Queue offset of the (first) message.
    pub queue_offset: i64,
    /// Transaction id (transactional sends).
    pub transaction_id: Option<String>,
}

/// Brokers to avoid for a while (RocketMQ's LatencyFaultTolerance).
#[derive(Default)]
struct FaultTable {
    until: Mutex<HashMap<String, Instant>>,
}

impl FaultTable {
    /// Latency thresholds (ms) and how long a broker that crossed each is avoided.
    const LATENCY_MAX: [u64; 7] = [50, 100, 550, 1000, 2000, 3000, 15000];
    const NOT_AVAILABLE: [u64; 7] = [0, 0, 30_000, 60_000, 120_000, 180_000, 600_000];

    fn record(&self, broker: &str, latency: Duration, failed: bool) {
        let ms = if failed {
            30_000
        } else {
            latency.as_millis() as u64
        };
        let pause = Self::LATENCY_MAX
            .iter()
            .rposition(|&max| ms >= max)
            .map_or(0, |i| Self::NOT_AVAILABLE[i]);
        let mut until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if pause == 0 {
            until.remove(broker);
        } else {
            until.insert(
                broker.to_owned(),
                Instant::now() + Duration::from_millis(pause),
            );
        }
    }

    fn available(&self, broker: &str) -> bool {
        let until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        until.get(broker).is_none_or(|t| Instant::now() >= *t)
    }
}

struct Inner {
    instance: Arc<ClientInstance>,
    config: ProducerConfig,
    /// Round-robin position over a topic's queues.
    next: AtomicUsize,
    faults: FaultTable,
    /// Topics sent to (for route refreshes), each with its writable queues
    /// as last derived from its route.
    topics: Mutex<HashMap<String, Option<Published>>>,
    closed: AtomicBool,
}

/// A topic's writable queues and the route they came from: derived again
/// only when the instance holds another route for the topic, not per send.
struct Published {
    /// The topic's route, or the template's (`TBW102`) for a topic not
    /// created yet.
    route: Arc<TopicRouteData>,
    queues: Arc<[MessageQueue]>,
}

impl Member for Inner {
    fn producer_data(&self) -> Option<ProducerData> {
        Some(ProducerData {
            group_name: self.config.group.clone(),
        })
    }

    fn topics(&self) -> Vec<String> {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

/// A producer; cheap to clone and share between tasks and threads.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl Producer {
    /// Starts a producer on `instance`.
    pub fn start(instance: Arc<ClientInstance>, config: ProducerConfig) -> Result<Self> {
        if config.group.is_empty() {
            return Err(ClientError::InvalidArgument(
                "producer group is empty".into(),
            ));
        }
        let inner = Arc::new(Inner {
            instance: instance.clone(),
            config,
            next: AtomicUsize::new(0),
            faults: FaultTable::default(),
            topics: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let member: Arc<dyn Member> = inner.clone();
        instance.register(Arc::downgrade(&member));
        Ok(Producer { inner })
    }

    /// The producer's settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// The writable queues of `topic`; for a topic no NameServer knows, those of
    /// `TBW102` (the broker creates the topic on first send).
    pub async fn queues_for(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.shared_queues(topic).await?.to_vec())
    }

    /// [`queues_for`](Self::queues_for), shared: derived from the route once
    /// per route, not once per send.
    async fn shared_queues(&self, topic: &str) -> Result<Arc<[MessageQueue]>> {
        let i = &self.inner.instance;
        {
            let mut topics = self
                .inner
                .topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !topics.contains_key(topic) {
                topics.insert(topic.to_owned(), None);
            }
        }
        let (route, cap) = match i.route(topic).await {
            Ok(route) => (route, None),
            Err(ClientError::NoRoute(_)) => {
                let template = i
                    .route(AUTO_CREATE_TOPIC_KEY)
                    .await
                    .map_err(|_| ClientError::NoRoute(topic.to_owned()))?;
                (template, Some(self.inner.config.default_topic_queue_nums))
            }
            Err(e) => return Err(e),
        };
        let mut topics = self
            .inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(p)) = topics.get(topic) {
            if Arc::ptr_eq(&p.route, &route) {
                return Ok(Arc::clone(&p.queues));
            }
        }
        let queues: Arc<[MessageQueue]> = publish_queues(topic, &route, cap).into();
        if queues.is_empty() {
            return Err(ClientError::NoRoute(topic.to_owned()));
        }
        topics.insert(
            topic.to_owned(),
            Some(Published {
                route,
                queues: Arc::clone(&queues),
            }),
        );
        Ok(queues)
    }

    /// The client instance the producer runs on.
    pub fn instance(&self) -> &Arc<ClientInstance> {
        &self.inner.instance
    }

    /// Picks a queue round-robin, skipping `avoid` (the broker that failed last)
    /// and brokers in the fault table when others are there.
    pub(crate) fn select<'a>(
        &self,
        queues: &'a [MessageQueue],
        avoid: Option<&str>,
    ) -> &'a MessageQueue {
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let usable = |q: &MessageQueue| {
            Some(q.broker_name.as_str()) != avoid
                && (!self.inner.config.latency_fault_enable
                    || self.inner.faults.available(&q.broker_name))
        };
        (0..queues.len())
            .map(|i| &queues[(start + i) % queues.len()])
            .find(|q| usable(q))
            .or_else(|| {
                (0..queues.len())
                    .map(|i| &queues[(start + i) % queues.len()])
                    .find(|q| Some(q.broker_name.as_str()) != avoid)
            })
            .unwrap_or(&queues[start % queues.len()])
    }

    fn check(&self, msg: &Message) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        if msg.topic.is_empty() || msg.topic.len() > 127 {
            return Err(ClientError::InvalidArgument(format!(
                "bad topic {:?}",
                msg.topic
            )));
        }
        if msg.body.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the message body is empty".into(),
            ));
        }
        if msg.body.len() > self.inner.config.max_message_size {
            return Err(ClientError::InvalidArgument(format!(
                "the message body is {} bytes, over the maximum of {}",
                msg.body.len(),
                self.inner.config.max_message_size
            )));
        }
        Ok(())
    }

    /// Builds the SEND_MESSAGE_V2 request for one message.
    /// The request for `msg` to `mq`, the body to send with it (the
    /// message's own, unless compressed: it is written once, into the
    /// connection's outbox) and the message's id.
    fn build<'m>(
        &self,
        msg: &'m Message,
        mq: &MessageQueue,
        oneway: bool,
        extra_sys_flag: i32,
    ) -> (RemotingCommand, Cow<'m, [u8]>, String) {
        // The message's own properties, then the id and WAIT unless it has
        // them (the order of properties carries no meaning).
        let uniq = match msg.properties.get(keys::UNIQ_KEY) {
            Some(id) => id.clone(),
            None => unique_id(&self.inner.instance.config().client_ip),
        };
        let missing = [(keys::UNIQ_KEY, uniq.as_str()), (keys::WAIT, "true")]
            .into_iter()
            .filter(|(name, _)| !msg.properties.contains_key(*name));
        let props = properties::encode(
            msg.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(missing),
        );
        let mut flag = extra_sys_flag;
        let body = if msg.body.len() >= self.inner.config.compress_msg_body_over {
            flag |= sys_flag::COMPRESSED | sys_flag::COMPRESSION_ZLIB;
            Cow::Owned(compress(&msg.body))
        } else {
            Cow::Borrowed(msg.body.as_slice())
        };
        let header = SendMessageFields {
            producer_group: &self.inner.config.group,
            topic: &msg.topic,
            default_topic: AUTO_CREATE_TOPIC_KEY,
            default_topic_queue_nums: self.inner.config.default_topic_queue_nums,
            queue_id: mq.queue_id,
            sys_flag: flag,
            born_timestamp: now_ms(),
            flag: msg.flag,
            properties: Some(&props),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some(&mq.broker_name),
        };
        let mut cmd = client_request(request::SEND_MESSAGE_V2);
        header.encode_v2(&mut cmd.ext_fields);
        if oneway {
            cmd.set_oneway();
        }
        (cmd, body, uniq)
    }

    /// Sends one message and waits for the broker, retrying on another broker,
    /// within the configured `send_timeout`.
    pub async fn send(&self, msg: &Message) -> Result<SendResult> {
        self.send_within(msg, self.inner.config.send_timeout).await
    }

    /// [`send`](Self::send) with a budget of its own instead of `send_timeout`:
    /// the route lookup, every attempt and retry end within `timeout`.
    pub async fn send_within(&self, msg: &Message, timeout: Duration) -> Result<SendResult> {
        let deadline = Instant::now() + timeout;
        self.check(msg)?;
        let queues = self.queues_before(&msg.topic, deadline, timeout).await?;
        let retries = self.inner.config.retry_times_when_send_failed;
        self.send_with_retries(msg, &queues, retries, deadline, timeout)
            .await
    }

    /// [`queues_for`](Self::queues_for), failing with a timeout at `deadline`
    /// (`budget` is what the error reports).
    pub(crate) async fn queues_before(
        &self,
        topic: &str,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Arc<[MessageQueue]>> {
        let left = deadline.saturating_duration_since(Instant::now());
        within(left, self.shared_queues(topic))
            .await
            .unwrap_or_else(|| Err(send_timed_out(topic, budget)))
    }

    async fn send_with_retries(
        &self,
        msg: &Message,
        queues: &[MessageQueue],
        retries: u32,
        deadline: Instant,
        budget: Duration,
    ) -> Result<SendResult> {
        let mut last_broker: Option<String> = None;
        let mut last_error = None;
        for _ in 0..=retries {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let mq = self.select(queues, last_broker.as_deref());
            match self.send_to(msg, mq, deadline - now).await {
                Ok(result) => return Ok(result),
                Err(e) if retryable(&e) => {
                    log::debug!("send to {} failed, retrying: {e}", mq.broker_name);
                    last_broker = Some(mq.broker_name.clone());
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| send_timed_out(&msg.topic, budget)))
    }

    /// Sends one message to a given queue, without retries.
    pub async fn send_to(
        &self,
        msg: &Message,
        mq: &MessageQueue,
        timeout: Duration,
    ) -> Result<SendResult> {
        self.send_to_with_flag(msg, mq, timeout, 0).await
    }

    /// [`send_to`](Self::send_to) with extra sys flag bits (a half message's
    /// TRANSACTION_PREPARED).
    pub(crate) async fn send_to_with_flag(
        &self,
        msg: &Message,
        mq: &MessageQueue,
        timeout: Duration,
        extra_sys_flag: i32,
    ) -> Result<SendResult> {
        self.check(msg)?;
        let i = &self.inner.instance;
        let addr = match i.master_addr(&mq.broker_name) {
            Some(addr) => addr,
            None => {
                i.update_route(&mq.topic).await.ok();
                i.master_addr(&mq.broker_name)
                    .ok_or_else(|| ClientError::NoBrokerAddress(mq.broker_name.clone()))?
            }
        };
        let (cmd, body, uniq) = self.build(msg, mq, false, extra_sys_flag);
        let started = Instant::now();
        let outcome = i.invoke_with_body(&addr, cmd, &body, timeout).await;
        self.inner
            .faults
            .record(&mq.broker_name, started.elapsed(), outcome.is_err());
        let resp = outcome?;
        send_result(resp, mq, uniq)
    }

    /// Sends one message to the queue chosen by `sharding_key`'s hash: messages
    /// with the same key keep their order (no retry on another queue).
    pub async fn send_ordered(&self, msg: &Message, sharding_key: &str) -> Result<SendResult> {
        self.send_ordered_within(msg, sharding_key, self.inner.config.send_timeout)
            .await
    }

    /// [`send_ordered`](Self::send_ordered) within `timeout` instead of
    /// `send_timeout`.
    pub async fn send_ordered_within(
        &self,
        msg: &Message,
        sharding_key: &str,
        timeout: Duration,
    ) -> Result<SendResult> {
        let deadline = Instant::now() + timeout;
        self.check(msg)?;
        let queues = self.queues_before(&msg.topic, deadline, timeout).await?;
        let index = (java_string_hash(sharding_key).unsigned_abs() as usize) % queues.len();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(send_timed_out(&msg.topic, timeout));
        }
        self.send_to(msg, &queues[index], left).await
    }

    /// Sends one message without waiting for the broker, within the
    /// configured `send_timeout` (the route lookup and the connection).
    pub async fn send_oneway(&self, msg: &Message) -> Result<()> {
        let budget = self.inner.config.send_timeout;
        let deadline = Instant::now() + budget;
        self.check(msg)?;
        let queues = self.queues_before(&msg.topic, deadline, budget).await?;
        let mq = self.select(&queues, None);
        let addr = self
            .inner
            .instance
            .master_addr(&mq.broker_name)
            .ok_or_else(|| ClientError::NoBrokerAddress(mq.broker_name.clone()))?;
        let (cmd, body, _) = self.build(msg, mq, true, 0);
        let left = deadline.saturating_duration_since(Instant::now());
        let oneway = self
            .inner
            .instance
            .invoke_oneway_with_body(&addr, cmd, &body);
        within(left, oneway)
            .await
            .unwrap_or_else(|| Err(send_timed_out(&msg.topic, budget)))
    }

    /// Sends a message in the background; `callback` gets the outcome, once,
    /// on a thread of the client instance: [`ClientError::Closed`] when the
    /// instance shuts down before the send ends. The whole send (the route
    /// lookup, every attempt and retry) ends within `send_timeout`, counted
    /// from this call. `msg` is a [`Message`] or anything that lends one
    /// (an `Arc<Message>` shares it with the caller instead of a copy).
    pub fn send_async<M>(&self, msg: M, callback: impl FnOnce(Result<SendResult>) + Send + 'static)
    where
        M: Borrow<Message> + Send + 'static,
    {
        let producer = self.clone();
        let report = Report(Some(callback));
        let budget = self.inner.config.send_timeout;
        let deadline = Instant::now() + budget;
        // Detached: the callback is how the caller hears of the outcome. If
        // the instance stops first, the task is dropped and `report` says so.
        // Started here: the request goes out from the caller's thread.
        self.inner.instance.start_detached(async move {
            let msg: &Message = msg.borrow();
            let outcome = match producer.check(msg) {
                Err(e) => Err(e),
                Ok(()) => match producer.queues_before(&msg.topic, deadline, budget).await {
                    Ok(queues) => {
                        let retries = producer.inner.config.retry_times_when_send_async_failed;
                        producer
                            .send_with_retries(msg, &queues, retries, deadline, budget)
                            .await
                    }
                    Err(e) => Err(e),
                },
            };
            if Runtime::polled_inline() {
                // Ended in the first poll, on the caller's thread (a send that
                // failed at once): the callback runs on a client thread, as
                // documented, not inside send_async.
                futures_lite::future::yield_now().await;
            }
            // Not held while the application's code runs: if this was the
            // last handle, the instance stops here rather than in the callback.
            drop(producer);
            report.send(outcome);
        });
    }

    /// Sends messages of one topic as one batch (one request, consecutive offsets).
    pub async fn send_batch(&self, msgs: &[Message]) -> Result<SendResult> {
        self.send_batch_within(msgs, self.inner.config.send_timeout)
            .await
    }

    /// [`send_batch`](Self::send_batch) within `timeout` instead of
    /// `send_timeout`.
    pub async fn send_batch_within(
        &self,
        msgs: &[Message],
        timeout: Duration,
    ) -> Result<SendResult> {
        let deadline = Instant::now() + timeout;
        let first = msgs
            .first()
            .ok_or_else(|| ClientError::InvalidArgument("empty batch".into()))?;
        for m in msgs {
            self.check(m)?;
            if m.topic != first.topic {
                return Err(ClientError::InvalidArgument(
                    "a batch must have one topic".into(),
                ));
            }
            if m.properties.contains_key(keys::DELAY) {
                return Err(ClientError::InvalidArgument(
                    "batched messages cannot be delayed".into(),
                ));
            }
        }
        let queues = self.queues_before(&first.topic, deadline, timeout).await?;
        let mut avoid: Option<String> = None;
        let mut last_error = None;
        for _ in 0..=self.inner.config.retry_times_when_send_failed {
            if Instant::now() >= deadline {
                break;
            }
            let mq = self.select(&queues, avoid.as_deref());
            match self
                .send_batch_to(msgs, mq, deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if retryable(&e) => {
                    avoid = Some(mq.broker_name.clone());
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| send_timed_out(&first.topic, timeout)))
    }

    async fn send_batch_to(
        &self,
        msgs: &[Message],
        mq: &MessageQueue,
        timeout: Duration,
    ) -> Result<SendResult> {
        let i = &self.inner.instance;
        let addr = i
            .master_addr(&mq.broker_name)
            .ok_or_else(|| ClientError::NoBrokerAddress(mq.broker_name.clone()))?;
        let mut body = Vec::new();
        let mut ids = Vec::with_capacity(msgs.len());
        for m in msgs {
            let mut props = m.properties.clone();
            let uniq = props
                .entry(keys::UNIQ_KEY.to_owned())
                .or_insert_with(|| unique_id(&i.config().client_ip))
                .clone();
            ids.push(uniq);
            let props = properties::encode(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            encode_batch_item(
                &BatchItem {
                    flag: m.flag,
                    body: &m.body,
                    properties: &props,
                },
                &mut body,
            )
            .map_err(ClientError::InvalidMessage)?;
        }
        let header = SendMessageRequestHeader {
            producer_group: self.inner.config.group.clone(),
            topic: mq.topic.clone(),
            default_topic: AUTO_CREATE_TOPIC_KEY.into(),
            default_topic_queue_nums: self.inner.config.default_topic_queue_nums,
            queue_id: mq.queue_id,
            sys_flag: 0,
            born_timestamp: now_ms(),
            flag: 0,
            properties: Some(properties::encode([(keys::WAIT, "true")])),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(true),
            max_reconsume_times: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        let mut cmd = client_request(request::SEND_BATCH_MESSAGE);
        header.encode_v2(&mut cmd.ext_fields);
        cmd.body = body;
        let started = Instant::now();
        let outcome = i.invoke(&addr, cmd, timeout).await;
        self.inner
            .faults
            .record(&mq.broker_name, started.elapsed(), outcome.is_err());
        send_result(outcome?, mq, ids.join(","))
    }

    /// [`send`](Self::send) for callers without an executor.
    pub fn send_blocking(&self, msg: &Message) -> Result<SendResult> {
        crate::block_on(self.send(msg))
    }

    /// Stops the producer and tells the brokers its group left.
    pub async fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner
            .instance
            .unregister_group(Some(&self.inner.config.group), None)
            .await;
    }
}

/// Calls a `send_async` callback exactly once: with the outcome, or with
/// [`ClientError::Closed`] when the send is dropped unfinished (its instance
/// stopped, and dropped the tasks left on its executor).
struct Report<F: FnOnce(Result<SendResult>)>(Option<F>);

impl<F: FnOnce(Result<SendResult>)> Report<F> {
    fn send(mut self, outcome: Result<SendResult>) {
        if let Some(callback) = self.0.take() {
            callback(outcome);
        }
    }
}

impl<F: FnOnce(Result<SendResult>)> Drop for Report<F> {
    fn drop(&mut self) {
        if let Some(callback) = self.0.take() {
            callback(Err(ClientError::Closed));
        }
    }
}

/// The error of a send whose budget ran out before an answer came.
pub(crate) fn send_timed_out(topic: &str, budget: Duration) -> ClientError {
    ClientError::Remoting(super::connection::RemotingError::Timeout {
        code: request::SEND_MESSAGE_V2,
        addr: topic.to_owned(),
        timeout: budget,
    })
}

/// Whether a failed send is worth another attempt (RocketMQ's retryResponseCodes).
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Remoting(_) | ClientError::NoBrokerAddress(_) => true,
        ClientError::Broker { code, .. } => matches!(
            *code,
            response::TOPIC_NOT_EXIST
                | response::SERVICE_NOT_AVAILABLE
                | response::SYSTEM_ERROR
                | response::NO_PERMISSION
                | response::NO_BUYER_ID
                | response::NOT_IN_CURRENT_UNIT
        ),
        _ => false,
    }
}

fn send_result(resp: RemotingCommand, mq: &MessageQueue, uniq: String) -> Result<SendResult> {
    let status = match resp.code {
        response::SUCCESS => SendStatus::SendOk,
        response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
        response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
        response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
        _ => return Err(ClientError::refused(resp)),
    };
    let header = SendMessageResponseHeader::decode(&resp.ext_fields)
        .map_err(|e| ClientError::decode("send response", e))?;
    Ok(SendResult {
        status,
        msg_id: uniq,
        offset_msg_id: header.msg_id,
        queue: MessageQueue::new(mq.topic.clone(), mq.broker_name.clone(), header.queue_id),
        queue_offset: header.queue_offset,
        transaction_id: header.transaction_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_or_failed_brokers_are_avoided_for_a_while() {
        let faults = FaultTable::default();
        faults.record("a", Duration::from_millis(10), false);
        assert!(faults.available("a"));
        faults.record("a", Duration::from_millis(600), false);
        assert!(!faults.available("a"));
        faults.record("b", Duration::from_millis(1), true);
        assert!(!faults.available("b"));
        faults.record("a", Duration::from_millis(1), false);
        assert!(faults.available("a"));
    }

    #[test]
    fn a_send_ends_within_its_own_budget() {
        use crate::instance::ClientConfig;
        // A NameServer that accepts and never answers: the route lookup
        // alone would take the request timeout (3 s).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = silent.local_addr().expect("its address").to_string();
        let instance = ClientInstance::start(ClientConfig::new(&addr)).expect("an instance");
        let producer = Producer::start(instance.clone(), ProducerConfig::new("P")).unwrap();
        let msg = Message::new("T", "x");
        let started = Instant::now();
        let sent = async_io::block_on(producer.send_within(&msg, Duration::from_millis(200)));
        let took = started.elapsed();
        let err = sent.expect_err("nothing answers");
        assert_eq!(err.kind(), crate::ErrorKind::Timeout, "{err}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        let batch = [msg.clone()];
        let sent =
            async_io::block_on(producer.send_batch_within(&batch, Duration::from_millis(200)));
        assert_eq!(
            sent.expect_err("nothing answers").kind(),
            crate::ErrorKind::Timeout
        );
        let sent =
            async_io::block_on(producer.send_ordered_within(&msg, "k", Duration::from_millis(200)));
        assert_eq!(
            sent.expect_err("nothing answers").kind(),
            crate::ErrorKind::Timeout
        );
        // Async and one-way sends: within send_timeout, the route lookup
        // included.
        let mut config = ProducerConfig::new("P2");
        config.send_timeout = Duration::from_millis(200);
        let quick = Producer::start(instance.clone(), config).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        quick.send_async(msg.clone(), move |outcome| {
            let _ = tx.send((outcome, started.elapsed()));
        });
        let (outcome, took) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the callback");
        let err = outcome.expect_err("nothing answers");
        assert_eq!(err.kind(), crate::ErrorKind::Timeout, "{err}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        let started = Instant::now();
        let sent = crate::block_on(quick.send_oneway(&msg));
        assert_eq!(
            sent.expect_err("nothing answers").kind(),
            crate::ErrorKind::Timeout
        );
        assert!(started.elapsed() < Duration::from_millis(1500));
        drop(silent);
        instance.shutdown();
    }

    #[test]
    fn retryable_codes_match_the_java_client() {
        assert!(retryable(&ClientError::Broker {
            code: 17,
            remark: String::new()
        }));
        assert!(retryable(&ClientError::Broker {
            code: 14,
            remark: String::new()
        }));
        assert!(!retryable(&ClientError::Broker {
            code: 13,
            remark: String::new()
        }));
        assert!(!retryable(&ClientError::InvalidArgument(String::new())));
    }
}
