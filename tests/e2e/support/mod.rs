//! What the end-to-end tests share, re-exported here so that a test module
//! says `use crate::support::*;`:
//!
//! - [`tempdir`]: a fresh directory, removed on drop.
//! - [`ports`]: free loopback ports for NameServers and brokers.
//! - [`mqd`]: `mqd` processes, always this build's: start, readiness,
//!   SIGTERM, restart, logs on failure; `mqd standalone` for client tests.
//! - [`threads`] and [`broker`]: a NameServer and a Broker in this process.
//! - [`netns`]: a network namespace behind a veth pair, to cut and heal.
//! - [`ha`]: master/slave groups of `mqd` processes, and what replication
//!   tests ask of them.
//! - [`remoting`]: connections, requests and calls over `RemotingClient`;
//!   waiting for a condition with a deadline.
//! - [`requests`]: the broker's requests as Java clients send them.
//! - [`frames`]: raw frames on plain TCP, for peers that misbehave.
//! - [`client`]: helpers for tests that use mq's Rust client.
//! - [`cli`]: mqctl run in this process, its output captured.
//! - [`libmq`]: the built `libmq.so`, loaded with `dlopen`, its functions
//!   declared from `mq.h` (not re-exported: `use crate::support::libmq::*`).
//! - [`tasks`]: a test's own futures side by side.

pub mod broker;
pub mod cli;
pub mod client;
pub mod frames;
pub mod ha;
pub mod libmq;
pub mod mqd;
pub mod netns;
pub mod ports;
pub mod remoting;
pub mod requests;
pub mod tasks;
pub mod tempdir;
pub mod threads;

pub use broker::*;
pub use cli::*;
pub use client::*;
pub use frames::*;
pub use ha::*;
pub use mqd::*;
pub use netns::*;
pub use ports::*;
pub use remoting::*;
pub use requests::*;
pub use tasks::*;
pub use tempdir::*;
pub use threads::*;
