//! Push consumer settings (DefaultMQPushConsumer's fields) and their Java
//! defaults.

use std::path::PathBuf;

use mq_protocol::body::MessageModel;

use crate::consumer::consume_from::ConsumeFrom;

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
