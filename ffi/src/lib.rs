//! mq: a RocketMQ-compatible message queue. This crate is libmq: the wire protocol
//! shared with the daemon, and (in later work) the client and its C ABI.
//!
//! - [`protocol`]: byte layouts of RocketMQ's records and frames, as pure functions
//!   over bytes with every length checked.
//! - [`client`]: connections to NameServers and Brokers.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod client;
pub mod protocol;
