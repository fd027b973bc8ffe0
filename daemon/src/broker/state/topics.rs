//! Topic configurations (RocketMQ's TopicConfigManager): the system topics a 4.9
//! broker always has, auto-creation from `TBW102`, and `config/topics.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use thiserror::Error;

use mq_protocol::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};

use crate::broker::error::BrokerError;
use crate::broker::persist::ConfigFile;
use crate::store::StoreError;

pub(crate) use mq_protocol::topics::{AUTO_CREATE_TOPIC_KEY, RETRY_GROUP_TOPIC_PREFIX};

/// A topic RocketMQ brokers keep for self tests.
pub(crate) const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Where consumers' offset-moved events go.
pub(crate) const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";

/// Permission bits (RocketMQ `PermName`).
pub(crate) mod perm {
    /// Readable.
    pub(crate) const READ: i32 = 4;
    /// Writable.
    pub(crate) const WRITE: i32 = 2;
    /// Topics may be created from this one.
    pub(crate) const INHERIT: i32 = 1;

    /// Whether `perm` allows reading.
    pub(crate) fn readable(perm: i32) -> bool {
        perm & READ != 0
    }

    /// Whether `perm` allows writing.
    pub(crate) fn writable(perm: i32) -> bool {
        perm & WRITE != 0
    }
}

/// Why a topic name is refused (RocketMQ's TopicValidator).
#[derive(Debug, Error)]
pub enum InvalidTopic {
    /// The name is empty.
    #[error("the topic name is empty")]
    Empty,
    /// The name is longer than 127 bytes.
    #[error("the topic name is longer than 127 characters: {0}")]
    TooLong(String),
    /// The name has a character outside `[%|a-zA-Z0-9_-]`.
    #[error("the topic name {0:?} contains illegal characters; allowed are [%|a-zA-Z0-9_-]")]
    IllegalCharacters(String),
}

/// Checks a topic name as RocketMQ's TopicValidator does.
pub(crate) fn validate_topic(topic: &str) -> Result<(), InvalidTopic> {
    if topic.is_empty() {
        return Err(InvalidTopic::Empty);
    }
    if topic.len() > 127 {
        return Err(InvalidTopic::TooLong(topic.to_owned()));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'-' || b == b'_')
    {
        return Err(InvalidTopic::IllegalCharacters(topic.to_owned()));
    }
    Ok(())
}

/// The broker's topics.
pub(crate) struct TopicManager {
    table: RwLock<(BTreeMap<String, TopicConfig>, DataVersion)>,
    file: ConfigFile,
}

fn system_topic(name: &str, read: i32, write: i32, perm: i32) -> TopicConfig {
    TopicConfig {
        topic_name: name.to_owned(),
        read_queue_nums: read,
        write_queue_nums: write,
        perm,
        ..TopicConfig::default()
    }
}

impl TopicManager {
    /// Loads `config/topics.json` under `root` and adds the system topics.
    pub(crate) fn load(
        root: &Path,
        cluster: &str,
        broker_name: &str,
        auto_create: bool,
        default_queue_nums: i32,
    ) -> Result<Self, BrokerError> {
        let file = ConfigFile::new(root, "topics.json");
        let loaded = file
            .load(|bytes| TopicConfigSerializeWrapper::decode(bytes).map_err(|e| e.to_string()))
            .map_err(BrokerError::LoadTable)?;
        let (mut table, version) = match loaded {
            Some(wrapper) => (wrapper.topic_config_table, wrapper.data_version),
            None => (BTreeMap::new(), DataVersion::default()),
        };
        let rw = perm::READ | perm::WRITE;
        let mut system = vec![
            system_topic(SELF_TEST_TOPIC, 1, 1, rw),
            system_topic(cluster, 16, 16, rw),
            system_topic(broker_name, 1, 1, rw),
            system_topic(OFFSET_MOVED_EVENT, 1, 1, rw),
            system_topic(crate::store::dispatch::SCHEDULE_TOPIC, 18, 18, rw),
        ];
        if auto_create {
            system.push(system_topic(
                AUTO_CREATE_TOPIC_KEY,
                default_queue_nums,
                default_queue_nums,
                rw | perm::INHERIT,
            ));
        } else {
            table.remove(AUTO_CREATE_TOPIC_KEY);
        }
        for topic in system {
            table.entry(topic.topic_name.clone()).or_insert(topic);
        }
        Ok(TopicManager {
            table: RwLock::new((table, version)),
            file,
        })
    }

    /// The configuration of `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(topic)
            .cloned()
    }

    /// Every topic.
    pub(crate) fn all(&self) -> TopicConfigSerializeWrapper {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        TopicConfigSerializeWrapper {
            topic_config_table: table.0.clone(),
            data_version: table.1,
        }
    }

    /// The current data version.
    pub(crate) fn data_version(&self) -> DataVersion {
        self.table.read().unwrap_or_else(PoisonError::into_inner).1
    }

    /// Creates or replaces a topic, bumps the data version and persists.
    pub(crate) fn put(&self, config: TopicConfig) -> Result<(), StoreError> {
        {
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            table.0.insert(config.topic_name.clone(), config);
            bump(&mut table.1);
        }
        self.persist()
    }

    /// Deletes a topic. Returns whether it existed.
    pub(crate) fn delete(&self, topic: &str) -> Result<bool, StoreError> {
        let existed = {
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            let existed = table.0.remove(topic).is_some();
            if existed {
                bump(&mut table.1);
            }
            existed
        };
        if existed {
            self.persist()?;
        }
        Ok(existed)
    }

    /// The topic, created from `default_topic` when it is missing and the
    /// template allows inheriting (RocketMQ's createTopicInSendMessageMethod).
    /// Returns the config and whether it was created now.
    pub(crate) fn get_or_create_for_send(
        &self,
        topic: &str,
        default_topic: &str,
        client_queue_nums: i32,
    ) -> Result<Option<(TopicConfig, bool)>, StoreError> {
        if let Some(config) = self.get(topic) {
            return Ok(Some((config, false)));
        }
        let Some(template) = self.get(default_topic) else {
            return Ok(None);
        };
        if template.perm & perm::INHERIT == 0 {
            return Ok(None);
        }
        let queues = client_queue_nums.clamp(1, template.write_queue_nums.max(1));
        let config = TopicConfig {
            topic_name: topic.to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: template.perm & !perm::INHERIT,
            topic_sys_flag: 0,
            ..TopicConfig::default()
        };
        log::info!("auto-creating topic {topic} with {queues} queues from {default_topic}");
        self.put(config.clone())?;
        Ok(Some((config, true)))
    }

    /// A retry or dead-letter topic, created with `queues` queues if missing.
    pub(crate) fn get_or_create_system(
        &self,
        topic: &str,
        queues: i32,
        perm: i32,
    ) -> Result<(TopicConfig, bool), StoreError> {
        if let Some(config) = self.get(topic) {
            return Ok((config, false));
        }
        let config = system_topic(topic, queues, queues, perm);
        self.put(config.clone())?;
        Ok((config, true))
    }

    /// A slave takes its master's topics: the whole table and its data
    /// version replace its own when the version differs, and are persisted.
    /// Returns whether anything changed.
    pub(crate) fn replace_all(
        &self,
        master: TopicConfigSerializeWrapper,
    ) -> Result<bool, StoreError> {
        {
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            if table.1 == master.data_version {
                return Ok(false);
            }
            *table = (master.topic_config_table, master.data_version);
        }
        self.persist()?;
        Ok(true)
    }

    /// Writes `config/topics.json`.
    pub(crate) fn persist(&self) -> Result<(), StoreError> {
        self.file.save_with(|| {
            mq_protocol::fastjson::to_string_pretty(&self.all())
                .expect("topic configs always serialise")
                .into_bytes()
        })
    }
}

fn bump(version: &mut DataVersion) {
    version.counter += 1;
    version.timestamp = mq_protocol::time::now_ms();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::TempDir;

    #[test]
    fn system_topics_auto_creation_and_persistence() {
        let dir = TempDir::new("topics");
        let topics = TopicManager::load(dir.path(), "DefaultCluster", "broker-a", true, 8).unwrap();
        let tbw = topics.get(AUTO_CREATE_TOPIC_KEY).unwrap();
        assert_eq!((tbw.write_queue_nums, tbw.perm), (8, 7));
        let (created, new) = topics
            .get_or_create_for_send("Fresh", AUTO_CREATE_TOPIC_KEY, 4)
            .unwrap()
            .unwrap();
        assert!(new);
        assert_eq!((created.write_queue_nums, created.perm), (4, 6));
        assert!(topics
            .get_or_create_for_send("Other", "NoSuchTemplate", 4)
            .unwrap()
            .is_none());
        let v = topics.data_version();
        assert!(v.counter >= 1);
        drop(topics);
        let again = TopicManager::load(dir.path(), "DefaultCluster", "broker-a", false, 8).unwrap();
        assert_eq!(again.get("Fresh").unwrap().write_queue_nums, 4);
        assert!(again.get(AUTO_CREATE_TOPIC_KEY).is_none());
        assert!(again
            .get_or_create_for_send("X", AUTO_CREATE_TOPIC_KEY, 4)
            .unwrap()
            .is_none());
    }

    #[test]
    fn topic_names_are_validated() {
        assert!(validate_topic("TopicTest").is_ok());
        assert!(validate_topic("%RETRY%group-1").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("has space").is_err());
        assert!(validate_topic(&"t".repeat(128)).is_err());
    }
}
