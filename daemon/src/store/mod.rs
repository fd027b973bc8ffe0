//! The message store: one CommitLog for every topic, and the ConsumeQueues and
//! IndexFiles derived from it.
//!
//! - [`message_store`]: [`MessageStore`], the whole store as the broker uses it.
//! - [`commit_log`]: the sequential log of every message, in mapped segments.
//! - [`consume_queue`]: per topic and queue, 20-byte entries pointing into the log.
//! - [`index_file`]: the key index (RocketMQ's IndexFile layout).
//! - [`dispatch`]: the thread that builds queues and index from the log.
//! - [`flush`]: ASYNC_FLUSH and SYNC_FLUSH (group commit).
//! - [`doorbell`]: wakes whoever waits for new CommitLog data (replication).
//! - [`recovery`]: finding the valid end of the log after a clean stop or a crash.
//! - [`checkpoint`]: flush times that tell crash recovery where to start.
//! - [`retention`]: deleting expired segments.
//! - [`disk_guard`]: refusing appends while the disk is too full.
//! - [`mapped_file`]: fixed-size mmap'd files with write and flush positions.
//! - [`config`]: settings, named after RocketMQ's `MessageStoreConfig`.
//! - [`error`]: the store's error type.

// The modules are the store's inside; the broker, the integration tests and
// the benchmark use the store through `MessageStore` and the types its methods
// take and return, re-exported below.
pub(crate) mod checkpoint;
pub(crate) mod commit_log;
pub(crate) mod config;
pub(crate) mod consume_queue;
pub(crate) mod disk_guard;
pub(crate) mod dispatch;
pub(crate) mod doorbell;
pub(crate) mod error;
pub(crate) mod flush;
pub(crate) mod index_file;
pub(crate) mod mapped_file;
pub(crate) mod message_store;
pub(crate) mod recovery;
pub(crate) mod retention;
#[cfg(test)]
pub(crate) mod test_util;

pub use commit_log::{AppendResult, PutMessage, RecordBytes};
pub use config::{FlushDiskType, StoreConfig};
pub use consume_queue::CqEntry;
pub use disk_guard::DiskReading;
pub use dispatch::{Arrival, ArrivalListener};
pub use doorbell::Doorbell;
pub use error::StoreError;
pub use message_store::{
    physical_memory, Durability, GetResult, GetStatus, MessageStore, Stored, Truncated,
};
