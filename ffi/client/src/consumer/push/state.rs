//! What a push consumer's tasks share (its `Inner`): settings, listener,
//! offsets, subscriptions, the assigned queues, the concurrent mode's request
//! channel, and the signals of the background loops; and what it announces
//! in heartbeats and does with requests brokers send.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_channel::{Receiver, Sender};
use async_executor::Task;
use async_lock::Semaphore;

use mq_protocol::body::{ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData};
use mq_protocol::frame::RemotingCommand;

use super::config::PushConsumerConfig;
use super::listener::Listener;
use super::process_queue::ProcessQueue;
use crate::consumer::broker_requests::{is_ids_changed_for, reset_offsets_for};
use crate::consumer::offset_store::OffsetStore;
use crate::instance::{ClientInstance, Member};
use crate::message::MessageExt;

/// Concurrent mode: a batch of one queue waiting for a listener call (Java's
/// ConsumeRequest).
pub(super) struct ConsumeRequest {
    pub(super) mq: MessageQueue,
    pub(super) pq: Arc<ProcessQueue>,
    pub(super) msgs: Vec<MessageExt>,
}

/// The consumer's shared state; tasks hold it weakly, so dropping the
/// [`PushConsumer`](super::PushConsumer) ends them.
pub(super) struct Inner {
    pub(super) instance: Arc<ClientInstance>,
    pub(super) config: PushConsumerConfig,
    pub(super) listener: Listener,
    pub(super) store: OffsetStore,
    /// Topic → subscription, the retry topic included (clustering).
    pub(super) subscriptions: BTreeMap<String, SubscriptionData>,
    /// The assigned queues; an entry goes when its queue leaves this consumer.
    pub(super) queues: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    /// One permit per listener call in flight; shutdown takes them all.
    pub(super) permits: Arc<Semaphore>,
    /// Concurrent mode: batches waiting for a listener call, taken in arrival
    /// order by `consume_threads` workers, so the oldest message of a queue
    /// is consumed first and its committed offset keeps up (a task per batch
    /// racing for a permit let late batches overtake early ones for as long
    /// as new ones kept coming). Unbounded: each queue stops pulling at its
    /// flow-control thresholds, which bounds what can wait here, and a full
    /// channel would only add a second, coarser limit.
    pub(super) requests: (Sender<ConsumeRequest>, Receiver<ConsumeRequest>),
    /// Signalled to rebalance now (NOTIFY_CONSUMER_IDS_CHANGED).
    pub(super) rebalance_now: (Sender<()>, Receiver<()>),
    /// Offsets a broker told us to reset to (RESET_CONSUMER_CLIENT_OFFSET),
    /// applied by the next rebalance.
    pub(super) pending_resets: Mutex<Vec<(MessageQueue, i64)>>,
    /// Whether the last rebalance settled every topic (else retry in 1 s).
    pub(super) balanced: AtomicBool,
    /// Set by shutdown or drop: every loop ends, nothing more is consumed.
    pub(super) closed: AtomicBool,
    /// Rebalance, persist and lock loops; cancelled at shutdown.
    pub(super) tasks: Mutex<Vec<Task<()>>>,
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

impl Inner {
    /// Orderly clustering consumers lock their queues at the broker.
    pub(super) fn needs_locks(&self) -> bool {
        self.config.orderly && self.config.message_model == MessageModel::Clustering
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The assigned queues, sorted.
    pub(super) fn assigned(&self) -> Vec<MessageQueue> {
        let mut out: Vec<MessageQueue> = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// The assigned queues and their state, taken out of the lock.
    pub(super) fn assigned_queues(&self) -> Vec<(MessageQueue, Arc<ProcessQueue>)> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
