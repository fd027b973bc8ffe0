//! mq-daemon: the servers of mq.
//!
//! - [`store`]: the message store (CommitLog, ConsumeQueue, IndexFile, recovery).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod store;
