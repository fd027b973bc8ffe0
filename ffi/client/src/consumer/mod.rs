//! The consumers and what they share.
//!
//! - [`PullConsumer`] (`lite_pull`): the lite pull consumer (poll, assign,
//!   seek, commit).
//! - [`PushConsumer`] (`push`): the push consumer (listener, concurrent or
//!   orderly).
//!
//! Both stand on the same parts, each a module that depends only on those
//! below it in this list:
//!
//! - `rebalance`: which queues of a topic this consumer reads.
//! - `pull`: the PULL_MESSAGE kernel and the pull loops' delays.
//! - `consume_from`: [`ConsumeFrom`], and where a queue without an offset starts.
//! - `offset_store`: the group's offsets, on the broker or in a local file.
//! - `queue_offsets`: a queue's offsets as its broker has them.
//! - `queue_lock`: the broker locks of orderly consumers.
//! - `broker_requests`: what brokers ask consumers (rebalance now, reset offsets).

mod broker_requests;
mod consume_from;
mod lite_pull;
mod offset_store;
mod pull;
mod push;
mod queue_lock;
mod queue_offsets;
mod rebalance;

pub use consume_from::ConsumeFrom;
pub use lite_pull::{PullConsumer, PullConsumerConfig};
pub use offset_store::default_offset_dir;
pub use push::{ConsumeStatus, Listener, PushConsumer, PushConsumerConfig};
pub use queue_offsets::{max_offset, min_offset, search_offset};
