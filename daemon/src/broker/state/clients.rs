//! Producers and consumers known from their heartbeats (RocketMQ's
//! ConsumerManager and ProducerManager): who is in which group, on which
//! connection, subscribed to what. Membership changes are reported back so the
//! broker can send NOTIFY_CONSUMER_IDS_CHANGED to the group.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mq_protocol::body::{
    self, ConsumeFromWhere, ConsumeType, ConsumerConnection, ConsumerData, MessageModel,
    ProducerConnection, SubscriptionData,
};

use crate::server::Connection;

/// One client on one connection.
#[derive(Clone)]
pub(crate) struct ClientChannel {
    /// The connection it heartbeats on.
    pub(crate) conn: Arc<Connection>,
    /// Its client id (`ip@instance`).
    pub(crate) client_id: String,
    /// Language name from its requests.
    pub(crate) language: String,
    /// Version ordinal from its requests.
    pub(crate) version: i32,
    /// Last heartbeat.
    pub(crate) last_update: Instant,
}

/// A consumer group as its members describe it.
pub(crate) struct ConsumerGroupInfo {
    /// Pull or push.
    pub(crate) consume_type: ConsumeType,
    /// Clustering or broadcasting.
    pub(crate) message_model: MessageModel,
    /// Where new consumers start.
    pub(crate) consume_from_where: ConsumeFromWhere,
    /// Members by connection id.
    pub(crate) channels: HashMap<u64, ClientChannel>,
    /// Subscriptions by topic.
    pub(crate) subscriptions: BTreeMap<String, SubscriptionData>,
}

/// Every client of the broker.
#[derive(Default)]
pub(crate) struct ClientManager {
    consumers: RwLock<HashMap<String, ConsumerGroupInfo>>,
    producers: RwLock<HashMap<String, HashMap<u64, ClientChannel>>>,
}

impl ClientManager {
    /// Records a consumer's heartbeat. Returns true when the group's members
    /// or subscriptions changed (the group should be notified).
    pub(crate) fn register_consumer(&self, channel: ClientChannel, data: &ConsumerData) -> bool {
        let mut consumers = self
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let group = consumers
            .entry(data.group_name.clone())
            .or_insert_with(|| ConsumerGroupInfo {
                consume_type: data.consume_type,
                message_model: data.message_model,
                consume_from_where: data.consume_from_where,
                channels: HashMap::new(),
                subscriptions: BTreeMap::new(),
            });
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        let conn_id = channel.conn.id;
        let new_member = match group.channels.get_mut(&conn_id) {
            Some(existing) => {
                let renamed = existing.client_id != channel.client_id;
                *existing = channel;
                renamed
            }
            None => {
                group.channels.insert(conn_id, channel);
                true
            }
        };
        // Subscriptions: as in RocketMQ, the newest heartbeat describes the group.
        let mut subscriptions = BTreeMap::new();
        for sub in &data.subscription_data_set {
            let mut sub = sub.clone();
            // Never trust codeSet (section 10): recompute it from the tags.
            sub.code_set = sub.tag_codes();
            subscriptions.insert(sub.topic.clone(), sub);
        }
        let changed_subs = subscriptions.keys().ne(group.subscriptions.keys())
            || subscriptions.iter().any(|(t, s)| {
                group.subscriptions.get(t).map(|old| &old.sub_string) != Some(&s.sub_string)
            });
        // Keep a newer version when an older heartbeat arrives late.
        for (topic, sub) in subscriptions.iter_mut() {
            if let Some(old) = group.subscriptions.get(topic) {
                if old.sub_string == sub.sub_string && old.sub_version > sub.sub_version {
                    sub.sub_version = old.sub_version;
                }
            }
        }
        group.subscriptions = subscriptions;
        new_member || changed_subs
    }

    /// Records a producer's heartbeat.
    pub(crate) fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self
            .producers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        producers
            .entry(group.to_owned())
            .or_default()
            .insert(channel.conn.id, channel);
    }

    /// Removes a consumer (UNREGISTER_CLIENT). Returns true when it was a member.
    pub(crate) fn unregister_consumer(&self, group: &str, conn_id: u64) -> bool {
        let mut consumers = self
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(info) = consumers.get_mut(group) else {
            return false;
        };
        let removed = info.channels.remove(&conn_id).is_some();
        if info.channels.is_empty() {
            consumers.remove(group);
        }
        removed
    }

    /// Removes a producer.
    pub(crate) fn unregister_producer(&self, group: &str, conn_id: u64) {
        let mut producers = self
            .producers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(channels) = producers.get_mut(group) {
            channels.remove(&conn_id);
            if channels.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// Forgets every client of a closed connection; returns the consumer groups
    /// that lost a member.
    pub(crate) fn remove_connection(&self, conn_id: u64) -> Vec<String> {
        let changed = {
            let mut consumers = self
                .consumers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let changed: Vec<String> = consumers
                .iter_mut()
                .filter_map(|(name, info)| info.channels.remove(&conn_id).map(|_| name.clone()))
                .collect();
            consumers.retain(|_, info| !info.channels.is_empty());
            changed
        };
        let mut producers = self
            .producers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for channels in producers.values_mut() {
            channels.remove(&conn_id);
        }
        producers.retain(|_, c| !c.is_empty());
        changed
    }

    /// Forgets clients silent for longer than `max_idle` (or whose connection
    /// closed); returns the consumer groups that lost a member.
    pub(crate) fn remove_expired(&self, max_idle: Duration) -> Vec<String> {
        let now = Instant::now();
        let stale =
            |c: &ClientChannel| c.conn.is_closed() || now.duration_since(c.last_update) > max_idle;
        let changed = {
            let mut consumers = self
                .consumers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut changed = Vec::new();
            for (name, info) in consumers.iter_mut() {
                let before = info.channels.len();
                info.channels.retain(|_, c| {
                    let keep = !stale(c);
                    if !keep {
                        log::info!("consumer {} of {name} expired", c.client_id);
                    }
                    keep
                });
                if info.channels.len() != before {
                    changed.push(name.clone());
                }
            }
            consumers.retain(|_, info| !info.channels.is_empty());
            changed
        };
        let mut producers = self
            .producers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for channels in producers.values_mut() {
            channels.retain(|_, c| !stale(c));
        }
        producers.retain(|_, c| !c.is_empty());
        changed
    }

    /// Client ids of a consumer group.
    pub(crate) fn consumer_ids(&self, group: &str) -> Vec<String> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = consumers
            .get(group)
            .map(|info| {
                info.channels
                    .values()
                    .map(|c| c.client_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The connections of a consumer group's members.
    pub(crate) fn consumer_connections(&self, group: &str) -> Vec<Arc<Connection>> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        consumers
            .get(group)
            .map(|info| info.channels.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default()
    }

    /// A group's subscription to `topic`.
    pub(crate) fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        consumers
            .get(group)
            .and_then(|info| info.subscriptions.get(topic).cloned())
    }

    /// Groups that subscribe to `topic`.
    pub(crate) fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        consumers
            .iter()
            .filter(|(_, info)| info.subscriptions.contains_key(topic))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Connections of a producer group (transaction check-back).
    pub(crate) fn producer_connections(&self, group: &str) -> Vec<Arc<Connection>> {
        let producers = self
            .producers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        producers
            .get(group)
            .map(|c| c.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default()
    }

    /// GET_CONSUMER_CONNECTION_LIST's body, if the group is online.
    pub(crate) fn consumer_connection(&self, group: &str) -> Option<ConsumerConnection> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let info = consumers.get(group)?;
        Some(ConsumerConnection {
            connection_set: info.channels.values().map(connection_body).collect(),
            consume_from_where: info.consume_from_where,
            consume_type: info.consume_type,
            message_model: info.message_model,
            subscription_table: info.subscriptions.clone(),
        })
    }

    /// GET_PRODUCER_CONNECTION_LIST's body.
    pub(crate) fn producer_connection(&self, group: &str) -> ProducerConnection {
        let producers = self
            .producers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ProducerConnection {
            connection_set: producers
                .get(group)
                .map(|c| c.values().map(connection_body).collect())
                .unwrap_or_default(),
        }
    }
}

fn connection_body(c: &ClientChannel) -> body::Connection {
    body::Connection {
        client_addr: c.conn.peer.to_string(),
        client_id: c.client_id.clone(),
        language: c.language.clone(),
        version: c.version,
    }
}
