//! The NameServer's route table, as RocketMQ 4.9's `RouteInfoManager`: which
//! brokers serve which topics, which brokers make up which clusters, and when
//! each broker was last heard from.
//!
//! The table is plain data with no locking and no clock of its own: callers
//! hold it behind one lock and pass `now`, which keeps every rule here testable
//! without sleeping. Every removal is logged at info level, because "why did my
//! route disappear" is the first question an operator asks.
//!
//! Shape (protocol reference §9.8):
//!
//! | Table | Key | Value |
//! |---|---|---|
//! | topics | topic → broker name | [`QueueData`] (queue counts, perm, sys flag) |
//! | brokers | broker name | [`BrokerData`] (cluster, broker id → address) |
//! | clusters | cluster name | broker names |
//! | live | broker address | last heard, topic DataVersion, connection, HA address |
//! | filter servers | broker address | filter server addresses (always empty in practice) |

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mq_protocol::body::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData,
};

/// Broker id of a master (RocketMQ `MixAll.MASTER_ID`).
pub(crate) const MASTER_ID: i64 = 0;

/// `PermName.PERM_READ`.
pub(crate) const PERM_READ: i32 = 0x4;
/// `PermName.PERM_WRITE`.
pub(crate) const PERM_WRITE: i32 = 0x2;

/// `TopicSysFlag.FLAG_UNIT`.
const FLAG_UNIT: i32 = 0x1;
/// `TopicSysFlag.FLAG_UNIT_SUB`.
const FLAG_UNIT_SUB: i32 = 0x2;

/// One REGISTER_BROKER, decoded.
#[derive(Debug, Clone)]
pub(crate) struct BrokerRegistration {
    /// The cluster the broker belongs to.
    pub cluster_name: String,
    /// `ip:port` clients use.
    pub broker_addr: String,
    /// Shared by a master and its slaves.
    pub broker_name: String,
    /// 0 for the master, above 0 for slaves.
    pub broker_id: i64,
    /// `ip:port` of the broker's HA service, handed to its slaves.
    pub ha_server_addr: String,
    /// The broker's topics and their version.
    pub topics: TopicConfigSerializeWrapper,
    /// Filter servers; `None` leaves the recorded list alone (pre-3.0.11 bodies
    /// do not carry one).
    pub filter_servers: Option<Vec<String>>,
    /// The connection the registration came on: closing it removes the broker.
    pub conn_id: u64,
}

/// What a registering slave learns about its master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegisterResult {
    /// The master's HA address, if the master is registered.
    pub ha_server_addr: Option<String>,
    /// The master's address, if the master is registered.
    pub master_addr: Option<String>,
}

/// What the NameServer knows about one live broker address.
#[derive(Debug, Clone)]
struct BrokerLiveInfo {
    /// Last REGISTER_BROKER, or QUERY_DATA_VERSION that found nothing changed;
    /// the expiry scan measures silence from here.
    last_update: Instant,
    /// Version of the topic table last registered; a master's queue data is
    /// only rewritten when this changes.
    data_version: DataVersion,
    /// The connection that registered it, so a closed connection removes it.
    conn_id: u64,
    /// Handed to the broker's slaves in their registration response.
    ha_server_addr: String,
}

/// Why a broker address is being removed (for the log).
#[derive(Debug, Clone, Copy)]
enum Removal {
    /// UNREGISTER_BROKER.
    Unregistered,
    /// The registering connection closed.
    ConnectionClosed(u64),
    /// Silent for longer than the expiry.
    Expired(Duration),
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Unregistered => f.write_str("it unregistered"),
            Removal::ConnectionClosed(id) => write!(f, "its connection {id} closed"),
            Removal::Expired(silent) => write!(f, "it has not been heard from for {silent:?}"),
        }
    }
}

/// The route table. See the module docs for its shape.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// Topic → broker name → queues. A topic is present only while some
    /// broker serves it.
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// Broker name → its addresses. Present only while some address is.
    brokers: BTreeMap<String, BrokerData>,
    /// Cluster → broker names. Present only while some broker is.
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// Broker address → liveness.
    live: BTreeMap<String, BrokerLiveInfo>,
    /// Broker address → filter servers (only non-empty lists are kept).
    filter_servers: BTreeMap<String, Vec<String>>,
}

impl RouteTable {
    /// An empty table.
    pub(crate) fn new() -> Self {
        RouteTable::default()
    }

    /// Records a broker's registration (REGISTER_BROKER).
    ///
    /// A master's topics replace its queue data for every topic it lists, but
    /// only on its first registration or when its DataVersion changed; slaves
    /// only add their address. An address registered under another id of the
    /// same broker name (a slave promoted to master) moves to the new id, and a
    /// new address for an id replaces the old one.
    pub(crate) fn register(&mut self, reg: BrokerRegistration, now: Instant) -> RegisterResult {
        self.clusters
            .entry(reg.cluster_name.clone())
            .or_default()
            .insert(reg.broker_name.clone());

        let mut first = false;
        let broker = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| {
                first = true;
                BrokerData {
                    broker_addrs: BTreeMap::new(),
                    broker_name: reg.broker_name.clone(),
                    cluster: reg.cluster_name.clone(),
                }
            });
        // One address has one id: a slave switched to master must not stay
        // listed as a slave too.
        broker
            .broker_addrs
            .retain(|id, addr| *addr != reg.broker_addr || *id == reg.broker_id);
        let old_addr = broker
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone());
        first |= old_addr.is_none();
        let replaced = old_addr.filter(|old| *old != reg.broker_addr);
        if let Some(old) = &replaced {
            log::info!(
                "broker {} id {} of cluster {} moved from {old} to {}",
                reg.broker_name,
                reg.broker_id,
                reg.cluster_name,
                reg.broker_addr
            );
        }
        let master_addr = broker.broker_addrs.get(&MASTER_ID).cloned();

        if let Some(old) = replaced {
            // Its entry is gone from the broker data; its liveness record would
            // only linger until expiry, so drop it now unless something else
            // still lists that address.
            if !self.is_listed(&old) {
                self.live.remove(&old);
                self.filter_servers.remove(&old);
            }
        }

        if reg.broker_id == MASTER_ID {
            let changed = self
                .live
                .get(&reg.broker_addr)
                .is_none_or(|live| live.data_version != reg.topics.data_version);
            if changed || first {
                for (key, config) in &reg.topics.topic_config_table {
                    // Java keys the queue data by the config's own name; fall
                    // back to the map key if a sender left the name out.
                    let topic = if config.topic_name.is_empty() {
                        key.as_str()
                    } else {
                        config.topic_name.as_str()
                    };
                    self.update_queue_data(topic, &reg.broker_name, config);
                }
            }
        }

        let previous = self.live.insert(
            reg.broker_addr.clone(),
            BrokerLiveInfo {
                last_update: now,
                data_version: reg.topics.data_version,
                conn_id: reg.conn_id,
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if previous.is_none() {
            log::info!(
                "new broker registered: {} ({} id {}, cluster {}), HA server {}",
                reg.broker_addr,
                reg.broker_name,
                reg.broker_id,
                reg.cluster_name,
                reg.ha_server_addr
            );
        }

        match reg.filter_servers {
            Some(list) if list.is_empty() => {
                self.filter_servers.remove(&reg.broker_addr);
            }
            Some(list) => {
                self.filter_servers.insert(reg.broker_addr.clone(), list);
            }
            None => {}
        }

        let mut result = RegisterResult::default();
        if reg.broker_id != MASTER_ID {
            if let Some(master) = master_addr {
                if let Some(live) = self.live.get(&master) {
                    result.ha_server_addr = Some(live.ha_server_addr.clone());
                    result.master_addr = Some(master);
                }
            }
        }
        result
    }

    /// Whether any broker data lists `addr`.
    fn is_listed(&self, addr: &str) -> bool {
        self.brokers
            .values()
            .any(|b| b.broker_addrs.values().any(|a| a == addr))
    }

    fn update_queue_data(&mut self, topic: &str, broker_name: &str, config: &TopicConfig) {
        let queue_data = QueueData {
            broker_name: broker_name.to_owned(),
            perm: config.perm,
            read_queue_nums: config.read_queue_nums,
            topic_sys_flag: config.topic_sys_flag,
            write_queue_nums: config.write_queue_nums,
        };
        match self.topics.get_mut(topic) {
            None => {
                log::info!("new topic registered: {topic} on {broker_name} {queue_data:?}");
                self.topics.insert(
                    topic.to_owned(),
                    BTreeMap::from([(broker_name.to_owned(), queue_data)]),
                );
            }
            Some(queues) => {
                let old = queues.insert(broker_name.to_owned(), queue_data.clone());
                if let Some(old) = old.filter(|old| *old != queue_data) {
                    log::info!("topic {topic} changed on {broker_name}: {old:?} -> {queue_data:?}");
                }
            }
        }
    }

    /// Removes a broker address on UNREGISTER_BROKER. The id's entry is only
    /// removed if it still holds `addr`: a late unregister from a replaced
    /// process must not remove its successor. Returns whether anything was
    /// removed.
    pub(crate) fn unregister(
        &mut self,
        broker_name: &str,
        broker_addr: &str,
        broker_id: i64,
    ) -> bool {
        let holds = self
            .brokers
            .get(broker_name)
            .and_then(|b| b.broker_addrs.get(&broker_id))
            .is_some_and(|a| a == broker_addr);
        if holds {
            self.remove_addr(broker_addr, Removal::Unregistered);
            return true;
        }
        // Not (or no longer) listed under that id: forget its liveness only,
        // unless another id of some broker still uses the address.
        let was_live = !self.is_listed(broker_addr) && self.live.remove(broker_addr).is_some();
        if was_live {
            self.filter_servers.remove(broker_addr);
        }
        log::info!(
            "unregister of {broker_addr} ({broker_name} id {broker_id}): not registered under that id{}",
            if was_live { "; dropped its liveness record" } else { "" }
        );
        was_live
    }

    /// Removes every broker address registered through connection `conn_id`
    /// (the connection closed). Returns how many.
    pub(crate) fn remove_connection(&mut self, conn_id: u64) -> usize {
        let addrs: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| live.conn_id == conn_id)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &addrs {
            self.remove_addr(addr, Removal::ConnectionClosed(conn_id));
        }
        addrs.len()
    }

    /// Removes every broker address not heard from for longer than `expiry`.
    /// Returns how many.
    pub(crate) fn remove_expired(&mut self, now: Instant, expiry: Duration) -> usize {
        let expired: Vec<(String, Duration)> = self
            .live
            .iter()
            .filter_map(|(addr, live)| {
                let silent = now.saturating_duration_since(live.last_update);
                (silent > expiry).then(|| (addr.clone(), silent))
            })
            .collect();
        for (addr, silent) in &expired {
            self.remove_addr(addr, Removal::Expired(*silent));
        }
        expired.len()
    }

    /// Forgets `addr`: its liveness, its place in its broker data, and when
    /// that was the broker name's last address, the broker name in its cluster
    /// and its queue data in every topic (dropping topics left with none).
    fn remove_addr(&mut self, addr: &str, why: Removal) {
        self.live.remove(addr);
        self.filter_servers.remove(addr);
        let mut emptied = Vec::new();
        for (name, broker) in &mut self.brokers {
            let ids: Vec<i64> = broker
                .broker_addrs
                .iter()
                .filter(|(_, a)| *a == addr)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                broker.broker_addrs.remove(&id);
                log::info!(
                    "broker {addr} ({name} id {id}, cluster {}) removed: {why}",
                    broker.cluster
                );
            }
            if broker.broker_addrs.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.remove_broker_name(&name);
        }
    }

    /// Drops a broker name that has no address left.
    fn remove_broker_name(&mut self, name: &str) {
        self.brokers.remove(name);
        log::info!("broker name {name} has no address left; removed");
        self.clusters.retain(|cluster, names| {
            if names.remove(name) && names.is_empty() {
                log::info!("cluster {cluster} has no broker left; removed");
                return false;
            }
            true
        });
        self.topics.retain(|topic, queues| {
            if queues.remove(name).is_none() {
                return true;
            }
            if queues.is_empty() {
                log::info!("topic {topic} removed: its last broker {name} is gone");
                return false;
            }
            log::info!("topic {topic}: queues of {name} removed");
            true
        });
    }

    /// The route of `topic` (GET_ROUTEINFO_BY_TOPIC), or `None` unless it has
    /// queue data and at least one of its brokers has an address.
    pub(crate) fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topics.get(topic)?;
        let broker_datas: Vec<BrokerData> = queues
            .keys()
            .filter_map(|name| self.brokers.get(name).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        let mut filter_server_table = BTreeMap::new();
        if !self.filter_servers.is_empty() {
            for addr in broker_datas.iter().flat_map(|b| b.broker_addrs.values()) {
                if let Some(list) = self.filter_servers.get(addr) {
                    filter_server_table.insert(addr.clone(), list.clone());
                }
            }
        }
        Some(TopicRouteData {
            broker_datas,
            filter_server_table,
            order_topic_conf: None,
            queue_datas: queues.values().cloned().collect(),
        })
    }

    /// Every broker and cluster (GET_BROKER_CLUSTER_INFO).
    pub(crate) fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    /// How many clusters, broker addresses and topics the table holds.
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        (self.clusters.len(), self.live.len(), self.topics.len())
    }

    /// Every topic (GET_ALL_TOPIC_LIST_FROM_NAMESERVER).
    pub(crate) fn all_topics(&self) -> TopicList {
        topic_list(self.topics.keys().cloned())
    }

    /// Deletes a topic (DELETE_TOPIC_IN_NAMESRV): everywhere, or only from the
    /// brokers of `cluster`. Returns whether the topic had queue data there.
    pub(crate) fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) -> bool {
        let Some(cluster) = cluster else {
            let removed = self.topics.remove(topic).is_some();
            if removed {
                log::info!("topic {topic} deleted");
            }
            return removed;
        };
        let (Some(names), Some(queues)) = (self.clusters.get(cluster), self.topics.get_mut(topic))
        else {
            return false;
        };
        let mut removed = false;
        for name in names {
            if queues.remove(name).is_some() {
                log::info!("topic {topic} deleted from {name} (cluster {cluster})");
                removed = true;
            }
        }
        if queues.is_empty() {
            self.topics.remove(topic);
            log::info!("topic {topic} has no broker left; removed");
        }
        removed
    }

    /// QUERY_DATA_VERSION: whether `version` differs from the one `broker_addr`
    /// last registered (true for an unknown broker), and the recorded one. An
    /// unchanged version counts as a heartbeat.
    pub(crate) fn query_data_version(
        &mut self,
        broker_addr: &str,
        version: &DataVersion,
        now: Instant,
    ) -> (bool, Option<DataVersion>) {
        match self.live.get_mut(broker_addr) {
            None => (true, None),
            Some(live) => {
                let changed = live.data_version != *version;
                if !changed {
                    live.last_update = now;
                }
                (changed, Some(live.data_version))
            }
        }
    }

    /// Takes write permission from every topic of `broker_name`
    /// (WIPE_WRITE_PERM_OF_BROKER). Returns the number of topics touched.
    pub(crate) fn wipe_write_perm(&mut self, broker_name: &str) -> usize {
        self.update_perm(broker_name, |perm| perm & !PERM_WRITE)
    }

    /// Makes every topic of `broker_name` readable and writable
    /// (ADD_WRITE_PERM_OF_BROKER), as Java does: the perm becomes exactly RW.
    /// Returns the number of topics touched.
    pub(crate) fn add_write_perm(&mut self, broker_name: &str) -> usize {
        self.update_perm(broker_name, |_| PERM_READ | PERM_WRITE)
    }

    fn update_perm(&mut self, broker_name: &str, change: impl Fn(i32) -> i32) -> usize {
        let mut count = 0;
        for queues in self.topics.values_mut() {
            if let Some(queue_data) = queues.get_mut(broker_name) {
                queue_data.perm = change(queue_data.perm);
                count += 1;
            }
        }
        count
    }

    /// The topics served by brokers of `cluster` (GET_TOPICS_BY_CLUSTER); empty
    /// for an unknown cluster.
    pub(crate) fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let Some(names) = self.clusters.get(cluster) else {
            return TopicList::default();
        };
        topic_list(
            self.topics
                .iter()
                .filter(|(_, queues)| names.iter().any(|name| queues.contains_key(name)))
                .map(|(topic, _)| topic.clone()),
        )
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: in 4.9 every cluster name and every broker
    /// name is a system topic (each broker creates topics named after them),
    /// with the address of one broker to ask for details.
    pub(crate) fn system_topics(&self) -> TopicList {
        let mut list = topic_list(
            self.clusters
                .iter()
                .flat_map(|(cluster, names)| std::iter::once(cluster).chain(names))
                .cloned(),
        );
        list.broker_addr = self
            .brokers
            .values()
            .find_map(|b| b.broker_addrs.values().next().cloned());
        list
    }

    /// GET_UNIT_TOPIC_LIST: topics with the unit flag.
    pub(crate) fn unit_topics(&self) -> TopicList {
        self.topics_where(|flag| flag & FLAG_UNIT != 0)
    }

    /// GET_HAS_UNIT_SUB_TOPIC_LIST: topics with the unit-subscription flag.
    pub(crate) fn has_unit_sub_topics(&self) -> TopicList {
        self.topics_where(|flag| flag & FLAG_UNIT_SUB != 0)
    }

    /// GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: topics with the unit-subscription
    /// flag but not the unit flag.
    pub(crate) fn has_unit_sub_ununit_topics(&self) -> TopicList {
        self.topics_where(|flag| flag & FLAG_UNIT == 0 && flag & FLAG_UNIT_SUB != 0)
    }

    /// Topics whose sys flag satisfies `pick`. Like Java, only one broker's
    /// queue data is looked at: the flag is a property of the topic.
    fn topics_where(&self, pick: impl Fn(i32) -> bool) -> TopicList {
        topic_list(
            self.topics
                .iter()
                .filter(|(_, queues)| {
                    queues
                        .values()
                        .next()
                        .is_some_and(|q| pick(q.topic_sys_flag))
                })
                .map(|(topic, _)| topic.clone()),
        )
    }
}

fn topic_list(topics: impl Iterator<Item = String>) -> TopicList {
    TopicList {
        broker_addr: None,
        topic_list: topics.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, perm: i32, queues: i32, sys_flag: i32) -> (String, TopicConfig) {
        (
            name.to_owned(),
            TopicConfig {
                topic_name: name.to_owned(),
                perm,
                read_queue_nums: queues,
                write_queue_nums: queues,
                topic_sys_flag: sys_flag,
                ..TopicConfig::default()
            },
        )
    }

    fn wrapper(counter: i64, topics: &[(String, TopicConfig)]) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter,
                timestamp: 1_700_000_000_000,
            },
            topic_config_table: topics.iter().cloned().collect(),
        }
    }

    fn reg(
        name: &str,
        id: i64,
        addr: &str,
        conn: u64,
        topics: TopicConfigSerializeWrapper,
    ) -> BrokerRegistration {
        BrokerRegistration {
            cluster_name: "DefaultCluster".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            topics,
            filter_servers: Some(Vec::new()),
            conn_id: conn,
        }
    }

    fn master_a(counter: i64, topics: &[(String, TopicConfig)]) -> BrokerRegistration {
        reg("broker-a", 0, "10.0.0.1:10911", 1, wrapper(counter, topics))
    }

    #[test]
    fn registering_a_master_creates_routes() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        let result = table.register(
            master_a(1, &[topic("T", 6, 4, 0), topic("TBW102", 7, 8, 0)]),
            now,
        );
        assert_eq!(result, RegisterResult::default());

        let route = table.route("T").expect("route of T");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-a");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.queue_datas[0].perm, 6);
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].cluster, "DefaultCluster");
        assert_eq!(
            route.broker_datas[0]
                .broker_addrs
                .get(&0)
                .map(String::as_str),
            Some("10.0.0.1:10911")
        );
        assert!(route.filter_server_table.is_empty());
        assert_eq!(
            table.route("TBW102").expect("TBW102").queue_datas[0].perm,
            7
        );
        assert!(table.route("missing").is_none());
        assert_eq!(
            table.all_topics().topic_list,
            BTreeSet::from(["T".to_owned(), "TBW102".to_owned()])
        );
    }

    #[test]
    fn reregistering_with_the_same_version_keeps_queue_data() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        // Same DataVersion, different content: ignored, as in RocketMQ (the
        // version is the broker's promise that nothing changed).
        table.register(master_a(1, &[topic("T", 6, 8, 0)]), now);
        assert_eq!(
            table.route("T").expect("route").queue_datas[0].write_queue_nums,
            4
        );
        // A new version rewrites it.
        table.register(
            master_a(2, &[topic("T", 6, 8, 0), topic("U", 6, 2, 0)]),
            now,
        );
        assert_eq!(
            table.route("T").expect("route").queue_datas[0].write_queue_nums,
            8
        );
        assert!(table.route("U").is_some());
    }

    #[test]
    fn slaves_learn_their_master_and_do_not_touch_queue_data() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        // A slave before its master: no master to report yet.
        let slave = reg(
            "broker-a",
            1,
            "10.0.0.2:10911",
            2,
            wrapper(5, &[topic("T", 6, 16, 0)]),
        );
        assert_eq!(
            table.register(slave.clone(), now),
            RegisterResult::default()
        );
        assert!(
            table.route("T").is_none(),
            "slaves do not create queue data"
        );

        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        let result = table.register(slave, now);
        assert_eq!(result.master_addr.as_deref(), Some("10.0.0.1:10911"));
        assert_eq!(result.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
        let route = table.route("T").expect("route");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
    }

    #[test]
    fn a_new_address_for_an_id_replaces_the_old_one() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        let moved = reg(
            "broker-a",
            0,
            "10.0.0.9:10911",
            7,
            wrapper(1, &[topic("T", 6, 4, 0)]),
        );
        table.register(moved, now);
        let addrs = &table.route("T").expect("route").broker_datas[0].broker_addrs;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[&0], "10.0.0.9:10911");
        // The old address's liveness went with it: its connection closing
        // later removes nothing.
        assert_eq!(table.remove_connection(1), 0);
        assert!(table.route("T").is_some());
    }

    #[test]
    fn a_promoted_slave_is_listed_once() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(
            reg("broker-a", 1, "10.0.0.2:10911", 2, wrapper(1, &[])),
            now,
        );
        table.register(
            reg(
                "broker-a",
                0,
                "10.0.0.2:10911",
                2,
                wrapper(1, &[topic("T", 6, 4, 0)]),
            ),
            now,
        );
        let addrs = &table.cluster_info().broker_addr_table["broker-a"].broker_addrs;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[&0], "10.0.0.2:10911");
        assert!(
            table.route("T").is_some(),
            "first registration as master writes queue data"
        );
    }

    #[test]
    fn unregistering_removes_the_broker_and_its_topics() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        table.register(
            reg(
                "broker-b",
                0,
                "10.0.0.3:10911",
                3,
                wrapper(1, &[topic("T", 6, 4, 0), topic("B", 6, 1, 0)]),
            ),
            now,
        );
        // A stale unregister (wrong address) removes nothing from the route.
        assert!(!table.unregister("broker-a", "10.0.0.8:10911", 0));
        assert_eq!(table.route("T").expect("route").queue_datas.len(), 2);

        assert!(table.unregister("broker-b", "10.0.0.3:10911", 0));
        let route = table.route("T").expect("route");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-a");
        assert!(
            table.route("B").is_none(),
            "a topic left with no broker disappears"
        );
        let info = table.cluster_info();
        assert!(!info.broker_addr_table.contains_key("broker-b"));
        assert_eq!(
            info.cluster_addr_table["DefaultCluster"],
            BTreeSet::from(["broker-a".to_owned()])
        );

        assert!(table.unregister("broker-a", "10.0.0.1:10911", 0));
        let info = table.cluster_info();
        assert!(info.broker_addr_table.is_empty());
        assert!(info.cluster_addr_table.is_empty());
        assert!(table.all_topics().topic_list.is_empty());
    }

    #[test]
    fn a_master_leaving_keeps_the_route_while_a_slave_remains() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        table.register(
            reg("broker-a", 1, "10.0.0.2:10911", 2, wrapper(1, &[])),
            now,
        );
        assert_eq!(table.remove_connection(1), 1);
        let route = table
            .route("T")
            .expect("consumers can still read from the slave");
        assert_eq!(
            route.broker_datas[0]
                .broker_addrs
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(table.remove_connection(2), 1);
        assert!(table.route("T").is_none());
    }

    #[test]
    fn silent_brokers_expire_and_heartbeats_keep_them() {
        let mut table = RouteTable::new();
        let start = Instant::now();
        let expiry = Duration::from_secs(120);
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), start);
        table.register(
            reg(
                "broker-b",
                0,
                "10.0.0.3:10911",
                3,
                wrapper(9, &[topic("T", 6, 4, 0)]),
            ),
            start,
        );

        // broker-b answers QUERY_DATA_VERSION with an unchanged version: a
        // heartbeat. broker-a asks with a changed one: not a heartbeat.
        let later = start + Duration::from_secs(100);
        let b_version = wrapper(9, &[]).data_version;
        assert_eq!(
            table.query_data_version("10.0.0.3:10911", &b_version, later),
            (false, Some(b_version))
        );
        let (changed, recorded) =
            table.query_data_version("10.0.0.1:10911", &wrapper(2, &[]).data_version, later);
        assert!(changed);
        assert_eq!(recorded.map(|v| v.counter), Some(1));
        assert_eq!(
            table.query_data_version("10.9.9.9:1", &b_version, later),
            (true, None)
        );

        assert_eq!(
            table.remove_expired(start + expiry, expiry),
            0,
            "exactly at the limit is still alive"
        );
        assert_eq!(
            table.remove_expired(start + Duration::from_secs(121), expiry),
            1
        );
        let route = table.route("T").expect("broker-b still serves T");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-b");
        assert_eq!(
            table.remove_expired(later + Duration::from_secs(121), expiry),
            1
        );
        assert!(table.route("T").is_none());
        assert!(table.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn a_closed_connection_removes_only_its_brokers() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(master_a(1, &[topic("T", 6, 4, 0)]), now);
        table.register(
            reg(
                "broker-b",
                0,
                "10.0.0.3:10911",
                3,
                wrapper(1, &[topic("T", 6, 4, 0)]),
            ),
            now,
        );
        assert_eq!(table.remove_connection(99), 0);
        assert_eq!(table.remove_connection(3), 1);
        assert_eq!(table.route("T").expect("route").broker_datas.len(), 1);
        assert!(!table
            .cluster_info()
            .broker_addr_table
            .contains_key("broker-b"));
    }

    #[test]
    fn deleting_a_topic_everywhere_or_from_one_cluster() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(
            master_a(1, &[topic("T", 6, 4, 0), topic("U", 6, 4, 0)]),
            now,
        );
        let mut other = reg(
            "broker-x",
            0,
            "10.0.1.1:10911",
            4,
            wrapper(1, &[topic("T", 6, 4, 0)]),
        );
        other.cluster_name = "OtherCluster".into();
        table.register(other, now);

        assert!(!table.delete_topic("T", Some("NoSuchCluster")));
        assert!(table.delete_topic("T", Some("OtherCluster")));
        let route = table.route("T").expect("still on broker-a");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-a");
        assert!(table.delete_topic("T", Some("DefaultCluster")));
        assert!(table.route("T").is_none());
        assert!(table.delete_topic("U", None));
        assert!(!table.delete_topic("U", None));
        assert!(table.all_topics().topic_list.is_empty());
        // The brokers themselves stay.
        assert_eq!(table.cluster_info().broker_addr_table.len(), 2);
    }

    #[test]
    fn wiping_and_adding_write_permission() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(
            master_a(1, &[topic("T", 6, 4, 0), topic("TBW102", 7, 8, 0)]),
            now,
        );
        assert_eq!(table.wipe_write_perm("broker-a"), 2);
        assert_eq!(table.route("T").expect("T").queue_datas[0].perm, PERM_READ);
        assert_eq!(
            table.route("TBW102").expect("TBW102").queue_datas[0].perm,
            PERM_READ | 1
        );
        assert_eq!(table.wipe_write_perm("no-such-broker"), 0);
        assert_eq!(table.add_write_perm("broker-a"), 2);
        assert_eq!(table.route("T").expect("T").queue_datas[0].perm, 6);
        // As in Java, adding sets exactly RW (the inherit bit is not restored).
        assert_eq!(
            table.route("TBW102").expect("TBW102").queue_datas[0].perm,
            6
        );
    }

    #[test]
    fn cluster_and_topic_listings() {
        let mut table = RouteTable::new();
        let now = Instant::now();
        table.register(
            master_a(
                1,
                &[
                    topic("Plain", 6, 4, 0),
                    topic("Unit", 6, 4, 1),
                    topic("UnitSub", 6, 4, 2),
                    topic("Both", 6, 4, 3),
                ],
            ),
            now,
        );
        table.register(
            reg("broker-a", 1, "10.0.0.2:10911", 2, wrapper(1, &[])),
            now,
        );
        let mut other = reg(
            "broker-x",
            0,
            "10.0.1.1:10911",
            4,
            wrapper(1, &[topic("X", 6, 4, 0)]),
        );
        other.cluster_name = "OtherCluster".into();
        table.register(other, now);

        let info = table.cluster_info();
        assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);
        assert_eq!(
            info.cluster_addr_table["OtherCluster"],
            BTreeSet::from(["broker-x".to_owned()])
        );

        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            table.topics_by_cluster("OtherCluster").topic_list,
            set(&["X"])
        );
        assert_eq!(
            table.topics_by_cluster("DefaultCluster").topic_list,
            set(&["Both", "Plain", "Unit", "UnitSub"])
        );
        assert!(table.topics_by_cluster("Nope").topic_list.is_empty());
        assert_eq!(table.unit_topics().topic_list, set(&["Both", "Unit"]));
        assert_eq!(
            table.has_unit_sub_topics().topic_list,
            set(&["Both", "UnitSub"])
        );
        assert_eq!(
            table.has_unit_sub_ununit_topics().topic_list,
            set(&["UnitSub"])
        );

        let system = table.system_topics();
        assert_eq!(
            system.topic_list,
            set(&["DefaultCluster", "OtherCluster", "broker-a", "broker-x"])
        );
        assert_eq!(system.broker_addr.as_deref(), Some("10.0.0.1:10911"));
    }

    #[test]
    fn filter_servers_appear_in_routes() {
        let mut table = RouteTable::new();
        let mut r = master_a(1, &[topic("T", 6, 4, 0)]);
        r.filter_servers = Some(vec!["10.0.0.1:2000".into()]);
        table.register(r, Instant::now());
        let route = table.route("T").expect("route");
        assert_eq!(
            route.filter_server_table["10.0.0.1:10911"],
            vec!["10.0.0.1:2000".to_owned()]
        );
        // An empty list on the next registration clears it.
        table.register(master_a(1, &[]), Instant::now());
        assert!(table
            .route("T")
            .expect("route")
            .filter_server_table
            .is_empty());
    }
}
