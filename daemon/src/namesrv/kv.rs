//! The NameServer's KV configuration (RocketMQ's `KVConfigManager`):
//! namespace → key → value, set by admin tools. The one namespace RocketMQ
//! itself reads is [`ORDER_TOPIC_CONFIG`].
//!
//! Unlike RocketMQ, which writes `kvConfig.json`, mq keeps it in memory only:
//! NameServers keep nothing on disk (see the design), so an operator who
//! relies on ordered-topic configuration re-applies it after a restart.

use std::collections::{BTreeMap, HashMap};

use mq_protocol::body::KvTable;

/// Namespace of ordered-topic configuration (`NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG`):
/// topic → `brokerName:queueNum;…`. Sent to every registering broker and, with
/// `orderMessageEnable`, put in routes.
pub(crate) const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

/// The KV table.
#[derive(Debug, Default)]
pub(crate) struct KvConfig {
    /// Namespace → key → value. A namespace stays once created, even when its
    /// last key is deleted, as in RocketMQ (so listing it then finds an empty
    /// table rather than nothing).
    namespaces: HashMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    /// Sets `key` in `namespace`.
    pub(crate) fn put(&mut self, namespace: &str, key: &str, value: &str) {
        let table = self
            .namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| {
                log::info!("KV config: new namespace {namespace}");
                BTreeMap::new()
            });
        match table.insert(key.to_owned(), value.to_owned()) {
            Some(_) => log::info!("KV config updated: {namespace} {key}={value}"),
            None => log::info!("KV config created: {namespace} {key}={value}"),
        }
    }

    /// The value of `key` in `namespace`.
    pub(crate) fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.namespaces.get(namespace)?.get(key).map(String::as_str)
    }

    /// Removes `key` from `namespace`; returns whether it was there.
    pub(crate) fn delete(&mut self, namespace: &str, key: &str) -> bool {
        let removed = self
            .namespaces
            .get_mut(namespace)
            .and_then(|table| table.remove(key));
        if let Some(value) = &removed {
            log::info!("KV config deleted: {namespace} {key} (was {value})");
        }
        removed.is_some()
    }

    /// The whole namespace, or `None` if it was never created.
    pub(crate) fn namespace(&self, namespace: &str) -> Option<KvTable> {
        self.namespaces.get(namespace).map(|table| KvTable {
            table: table.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_list() {
        let mut kv = KvConfig::default();
        assert!(kv.namespace("NS").is_none());
        kv.put("NS", "k", "v1");
        kv.put("NS", "k", "v2");
        kv.put("NS", "j", "w");
        assert_eq!(kv.get("NS", "k"), Some("v2"));
        assert_eq!(kv.get("NS", "missing"), None);
        assert_eq!(kv.get("Other", "k"), None);
        assert_eq!(kv.namespace("NS").expect("namespace").table.len(), 2);
        assert!(kv.delete("NS", "k"));
        assert!(!kv.delete("NS", "k"));
        assert!(!kv.delete("Other", "k"));
        kv.delete("NS", "j");
        // The namespace outlives its keys.
        assert_eq!(kv.namespace("NS"), Some(KvTable::default()));
    }
}
