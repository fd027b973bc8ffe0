//! mq: the Rust client of mq, a RocketMQ-compatible message queue. What
//! producers and consumers (and `mqctl`, the C ABI and the bindings) stand on.
//!
//! - [`connection`]: one multiplexed connection to a NameServer or Broker.
//! - [`instance`]: the shared client core (routes, connections, heartbeats).
//! - [`message`]: messages sent and received, compression, unique ids.
//! - [`producer`]: sync, async, one-way, batch and ordered sends.
//! - [`offset_store`]: consumer offsets, on the broker or in a local file.
//! - [`rebalance`]: which queues a consumer reads; queue locks.
//! - [`pull_consumer`]: the lite pull consumer (poll, assign, seek, commit).
//! - [`push_consumer`]: the push consumer (listener, concurrent or orderly).
//! - [`transaction`]: the transactional producer and check-backs.
//! - [`error`]: the client's error type.
//!
//! Locks: every `std::sync` lock is taken with
//! `.unwrap_or_else(PoisonError::into_inner)`, as in the daemon. A listener or
//! callback that panics is caught (or ends its own task), so a panic never
//! leaves a table half-changed; if one held a lock, the poison must not turn
//! every later send, pull or heartbeat of the process into a panic too.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod connection;
pub mod error;
pub mod instance;
pub mod message;
pub mod offset_store;
pub mod producer;
pub mod pull_consumer;
pub mod push_consumer;
pub mod rebalance;
pub mod transaction;

/// The wire formats the client speaks, for types such as `MessageQueue`.
pub use mq_protocol as protocol;

pub use error::{ClientError, Result};
pub use instance::{ClientConfig, ClientInstance, Member};
pub use message::{Message, MessageExt};
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus};
pub use pull_consumer::{ConsumeFrom, PullConsumer, PullConsumerConfig};
pub use push_consumer::{ConsumeStatus, Listener, PushConsumer, PushConsumerConfig};
pub use transaction::{TransactionListener, TransactionProducer, TransactionState};
