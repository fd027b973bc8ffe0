//! Consumer offsets (RocketMQ's ConsumerOffsetManager): the committed offset of
//! every group on every queue, persisted to `config/consumerOffset.json` every
//! `flushConsumerOffsetInterval` and at shutdown.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use mq_protocol::body::ConsumerOffsetSerializeWrapper;

use crate::broker::error::BrokerError;
use crate::broker::persist::ConfigFile;
use crate::store::StoreError;

/// Committed offsets keyed by `topic@group`, then queue id.
pub(crate) struct OffsetManager {
    table: RwLock<BTreeMap<String, BTreeMap<i32, i64>>>,
    /// Set on every commit, cleared when persisted: idle brokers don't rewrite the file.
    dirty: AtomicBool,
    file: ConfigFile,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl OffsetManager {
    /// Loads `config/consumerOffset.json` under `root`.
    pub(crate) fn load(root: &Path) -> Result<Self, BrokerError> {
        let file = ConfigFile::new(root, "consumerOffset.json");
        let table = file
            .load(|b| ConsumerOffsetSerializeWrapper::decode(b).map_err(|e| e.to_string()))
            .map_err(BrokerError::LoadTable)?
            .map(|w| w.offset_table)
            .unwrap_or_default();
        Ok(OffsetManager {
            table: RwLock::new(table),
            dirty: AtomicBool::new(false),
            file,
        })
    }

    /// Stores the offset of `group` on `topic`/`queue_id`.
    pub(crate) fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        table
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// The committed offset, if any.
    pub(crate) fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id))
            .copied()
    }

    /// The groups with offsets on `topic`.
    pub(crate) fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table
            .keys()
            .filter_map(|k| k.split_once('@'))
            .filter(|(t, _)| *t == topic)
            .map(|(_, g)| g.to_owned())
            .collect()
    }

    /// The topics a group has offsets on.
    pub(crate) fn topics_of_group(&self, group: &str) -> Vec<String> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table
            .keys()
            .filter_map(|k| k.split_once('@'))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_owned())
            .collect()
    }

    /// Forgets every offset on `topic`.
    pub(crate) fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        table.retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets every offset of `group`.
    pub(crate) fn remove_group(&self, group: &str) {
        let suffix = format!("@{group}");
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        table.retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Release);
    }

    /// The whole table, as GET_ALL_CONSUMER_OFFSET returns it.
    pub(crate) fn snapshot(&self) -> ConsumerOffsetSerializeWrapper {
        ConsumerOffsetSerializeWrapper {
            offset_table: self
                .table
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// A slave takes its master's offsets: each of the master's entries
    /// replaces its own (entries only the slave has stay, as in RocketMQ).
    pub(crate) fn merge_from_master(&self, master: ConsumerOffsetSerializeWrapper) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (key, queues) in master.offset_table {
            let entry = table.entry(key).or_default();
            if *entry != queues {
                *entry = queues;
                changed = true;
            }
        }
        if changed {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Writes the file if anything changed since the last write.
    pub(crate) fn persist(&self) -> Result<(), StoreError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.file
            .save_with(|| self.snapshot().encode())
            .inspect_err(|_| {
                // Try again next time.
                self.dirty.store(true, Ordering::Release);
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    #[test]
    fn offsets_survive_a_reload() {
        let dir = TempDir::new("offsets");
        let offsets = OffsetManager::load(dir.path()).unwrap();
        offsets.commit("G", "T", 0, 10);
        offsets.commit("G", "T", 3, 7);
        offsets.commit("H", "T", 0, 1);
        assert_eq!(offsets.query("G", "T", 3), Some(7));
        assert_eq!(offsets.query("G", "T", 1), None);
        offsets.persist().unwrap();
        let again = OffsetManager::load(dir.path()).unwrap();
        assert_eq!(again.query("G", "T", 0), Some(10));
        assert_eq!(again.groups_of_topic("T").len(), 2);
        let text = std::fs::read_to_string(dir.path().join("config/consumerOffset.json")).unwrap();
        assert!(text.contains("T@G"), "{text}");
    }
}
