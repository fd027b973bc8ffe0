//! mq: the Rust client of mq, a RocketMQ-compatible message queue. What
//! producers and consumers (and `mqctl`, the C ABI and the bindings) stand on.
//!
//! - [`instance`]: the shared client core (routes, connections, heartbeats).
//! - [`connection`]: one multiplexed connection to a NameServer or Broker.
//! - [`message`]: messages sent and received, compression, unique ids.
//! - [`producer`]: sync, async, one-way, batch and ordered sends.
//! - [`transaction`]: the transactional producer and check-backs.
//! - [`consumer`]: the lite pull and the push consumer, with their rebalance,
//!   offsets and pull kernel.
//! - [`error`]: the client's error type and the stable kinds of errors.
//! - `outbox`: a connection's write side (callers write; a task waits when full).
//! - `runtime`: the executor and threads an instance owns, and stopping them.
//! - `route`: which queues of a route producers write and consumers read.
//! - `timeout`: waiting with a limit.
//!
//! Threads: every task of the library runs on the executor of a
//! [`ClientInstance`] and on the threads it starts (`mq-client-<n>-<i>`);
//! there is no global executor. An instance stops its threads when it is
//! shut down or when its last handle (its own, a producer's or a consumer's)
//! is dropped, also from a callback on one of those threads. The `*_blocking`
//! wrappers run a call on the caller's thread with [`block_on`], which parks
//! it while the call waits. Not the library's own: `async-io`'s reactor
//! thread (one per process) and the `blocking` pool (listener calls, file
//! writes), whose threads exit when idle.
//!
//! Locks: every `std::sync` lock is taken with
//! `.unwrap_or_else(PoisonError::into_inner)`, as in the daemon. A lock is
//! held for a few statements that call no application code (listeners and
//! callbacks run outside every lock), so a lock a panic left behind still
//! holds whole data, and its poison must not turn every later send, pull or
//! heartbeat of the process into a panic too.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod connection;
pub mod consumer;
pub mod error;
pub mod instance;
pub mod message;
mod oneshot;
mod outbox;
pub mod producer;
mod route;
mod runtime;
mod timeout;
pub mod transaction;

/// The wire formats the client speaks, for types such as `MessageQueue`.
pub use mq_protocol as protocol;

pub use consumer::{
    ConsumeFrom, ConsumeStatus, Listener, PullConsumer, PullConsumerConfig, PushConsumer,
    PushConsumerConfig,
};
pub use error::{ClientError, ErrorKind, Result};
pub use instance::{ClientConfig, ClientInstance, Member};
pub use message::{Message, MessageExt};
pub use mq_protocol::acl::Credentials;
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus};
pub use runtime::block_on;
pub use transaction::{Transaction, TransactionListener, TransactionProducer, TransactionState};
