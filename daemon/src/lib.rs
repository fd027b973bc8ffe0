//! mq-daemon: the servers of mq.
//!
//! - [`acl`]: access control, RocketMQ 4.9.7's plain ACL (`aclEnable`, `plain_acl.yml`).
//! - [`broker`]: the Broker (send, pull with long polling, offsets, admin).
//! - [`descriptors`]: the file descriptor budget shared by connections and the store.
//! - [`ha`]: master/slave replication (RocketMQ's classic HA protocol).
//! - [`metrics`]: the optional Prometheus endpoint of the broker and the NameServer.
//! - [`namesrv`]: the NameServer (route table, broker liveness).
//! - [`notify`]: systemd's readiness protocol (`READY=1`, `STOPPING=1`, `WATCHDOG=1`).
//! - [`peer`]: connections the daemon opens to other servers (NameServers).
//! - [`properties_file`]: Java's `.properties` format, read as UTF-8 (`broker.conf`).
//! - [`server`]: the TCP server speaking RocketMQ's remoting protocol.
//! - [`settings`]: settings as one table of keys, read with the source of each value.
//! - [`shutdown`]: the one shutdown signal every listener and loop waits on.
//! - [`store`]: the message store (CommitLog, ConsumeQueue, IndexFile, recovery).
//! - [`watchdog`]: the systemd watchdog ping, sent only while the servers answer.
//!
//! Locks: every `std::sync` lock is taken with
//! `.unwrap_or_else(PoisonError::into_inner)`. A handler that panics costs its
//! one request (the server catches it); if it held a lock, the poison must not
//! turn every later request that takes the lock into a panic too. Tables are
//! changed in single statements, so a lock a panic left behind holds whole data.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod acl;
pub mod broker;
pub mod descriptors;
pub mod ha;
pub mod metrics;
pub mod namesrv;
pub mod notify;
pub mod peer;
pub mod properties_file;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod watchdog;
