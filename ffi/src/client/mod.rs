//! The client side of the protocol.
//!
//! - [`remoting`]: one multiplexed connection to a NameServer or Broker.

pub mod remoting;
