//! The message store: one CommitLog for every topic, and the ConsumeQueues and
//! IndexFiles derived from it.
//!
//! - [`mapped_file`]: fixed-size mmap'd files with write and flush positions.
//! - [`config`]: settings, named after RocketMQ's `MessageStoreConfig`.
//! - [`error`]: the store's error type.
//! - [`consume_queue`]: per topic and queue, 20-byte entries pointing into the log.
//! - [`index_file`]: the key index (RocketMQ's IndexFile layout).

pub mod config;
pub mod consume_queue;
pub mod error;
pub mod index_file;
pub mod mapped_file;
#[cfg(test)]
pub(crate) mod test_util;
