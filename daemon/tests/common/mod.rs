//! Shared helpers for the store's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mq_daemon::store::{MessageStore, PutMessage, StoreConfig};
use mq_protocol::message::{decode_record, Record, StoredMessage};

// The one TempDir of every integration test lives with the end-to-end support.
#[path = "../../../tests/e2e/support/tempdir.rs"]
mod tempdir;
pub use tempdir::TempDir;

/// A store configuration with small files, so tests cross boundaries often.
pub fn small_config(root: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(root);
    config.commit_log_file_size = 64 * 1024;
    config.consume_queue_entries_per_file = 50;
    config.index_hash_slots = 64;
    config.index_max_entries = 200;
    config.flush_interval_commit_log = Duration::from_millis(50);
    config.flush_interval_consume_queue = Duration::from_millis(100);
    config
}

pub fn born() -> SocketAddr {
    "127.0.0.1:5555".parse().expect("address")
}

/// A message of `topic`/`queue_id` with the given body and properties.
pub fn message<'a>(
    topic: &'a str,
    queue_id: i32,
    body: &'a [u8],
    properties: &'a str,
) -> PutMessage<'a> {
    PutMessage {
        topic,
        queue_id,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: born(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        properties,
    }
}

/// Decodes a stored record, checking its CRC.
pub fn decode(bytes: &[u8]) -> StoredMessage<'_> {
    match decode_record(bytes, true) {
        Ok(Record::Message(msg, len)) => {
            assert_eq!(len, bytes.len(), "record length");
            msg
        }
        other => panic!("not a valid message record: {other:?}"),
    }
}

/// Every body of a queue, in offset order, from its min offset.
pub fn read_queue(store: &MessageStore, topic: &str, queue_id: i32) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let got = store.get_messages(topic, queue_id, offset, 32, usize::MAX, &|_| true);
        if got.messages.is_empty() {
            break;
        }
        for record in &got.messages {
            let msg = decode(record);
            out.push((msg.queue_offset, msg.body.to_vec()));
        }
        offset = got.next_begin_offset;
    }
    out
}
