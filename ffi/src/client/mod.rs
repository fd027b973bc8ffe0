//! The client side of the protocol: what producers and consumers (and `mqctl`,
//! the C ABI and the bindings) stand on.
//!
//! - [`remoting`]: one multiplexed connection to a NameServer or Broker.
//! - [`instance`]: the shared client core (routes, connections, heartbeats).
//! - [`message`]: messages sent and received, compression, unique ids.
//! - [`producer`]: sync, async, one-way, batch and ordered sends.
//! - [`transaction`]: the transactional producer and check-backs.
//! - [`error`]: the client's error type.

pub mod error;
pub mod instance;
pub mod message;
pub mod producer;
pub mod remoting;
pub mod transaction;

pub use error::{ClientError, Result};
pub use instance::{ClientConfig, ClientInstance, Member};
pub use message::{Message, MessageExt};
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus};
pub use transaction::{TransactionListener, TransactionProducer, TransactionState};
