//! Subscription group configurations (RocketMQ's SubscriptionGroupManager),
//! created on first use when `autoCreateSubscriptionGroup` is on, persisted to
//! `config/subscriptionGroup.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use mq_protocol::body::{DataVersion, SubscriptionGroupConfig, SubscriptionGroupWrapper};

use crate::broker::error::BrokerError;
use crate::broker::persist::ConfigFile;
use crate::store::StoreError;

/// The broker's subscription groups.
pub(crate) struct GroupManager {
    table: RwLock<(BTreeMap<String, SubscriptionGroupConfig>, DataVersion)>,
    file: ConfigFile,
    auto_create: bool,
}

impl GroupManager {
    /// Loads `config/subscriptionGroup.json` under `root`.
    pub(crate) fn load(root: &Path, auto_create: bool) -> Result<Self, BrokerError> {
        let file = ConfigFile::new(root, "subscriptionGroup.json");
        let loaded = file
            .load(|b| SubscriptionGroupWrapper::decode(b).map_err(|e| e.to_string()))
            .map_err(BrokerError::LoadTable)?;
        let (table, version) = loaded
            .map(|w| (w.subscription_group_table, w.data_version))
            .unwrap_or_default();
        Ok(GroupManager {
            table: RwLock::new((table, version)),
            file,
            auto_create,
        })
    }

    /// The group's configuration, created with defaults if allowed and missing.
    pub(crate) fn find_or_create(
        &self,
        group: &str,
    ) -> Result<Option<SubscriptionGroupConfig>, StoreError> {
        if let Some(config) = self.get(group) {
            return Ok(Some(config));
        }
        if !self.auto_create {
            return Ok(None);
        }
        let config = SubscriptionGroupConfig {
            group_name: group.to_owned(),
            ..SubscriptionGroupConfig::default()
        };
        self.put(config.clone())?;
        Ok(Some(config))
    }

    /// The group's configuration.
    pub(crate) fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(group)
            .cloned()
    }

    /// Creates or replaces a group and persists.
    pub(crate) fn put(&self, config: SubscriptionGroupConfig) -> Result<(), StoreError> {
        {
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            table.0.insert(config.group_name.clone(), config);
            table.1.counter += 1;
            table.1.timestamp = mq_protocol::time::now_ms();
        }
        self.persist()
    }

    /// Deletes a group. Returns whether it existed.
    pub(crate) fn delete(&self, group: &str) -> Result<bool, StoreError> {
        let existed = self
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .remove(group)
            .is_some();
        if existed {
            self.persist()?;
        }
        Ok(existed)
    }

    /// Every group, as GET_ALL_SUBSCRIPTIONGROUP_CONFIG returns it.
    pub(crate) fn snapshot(&self) -> SubscriptionGroupWrapper {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        SubscriptionGroupWrapper {
            subscription_group_table: table.0.clone(),
            data_version: table.1,
        }
    }

    /// A slave takes its master's groups: the whole table and its data
    /// version replace its own when the version differs, and are persisted.
    /// Returns whether anything changed.
    pub(crate) fn replace_all(&self, master: SubscriptionGroupWrapper) -> Result<bool, StoreError> {
        {
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            if table.1 == master.data_version {
                return Ok(false);
            }
            *table = (master.subscription_group_table, master.data_version);
        }
        self.persist()?;
        Ok(true)
    }

    fn persist(&self) -> Result<(), StoreError> {
        self.file.save_with(|| {
            mq_protocol::fastjson::to_string_pretty(&self.snapshot())
                .expect("group configs always serialise")
                .into_bytes()
        })
    }
}
