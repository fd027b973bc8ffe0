//! The broker's configuration: RocketMQ's `broker.conf` keys (BrokerConfig,
//! NettyServerConfig and MessageStoreConfig share one namespace), read from a
//! Java properties file and overridden by `--key value` pairs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::settings::{BROKER_SETTINGS, IGNORED};
use crate::ha::HaConfig;
use crate::settings::{Configurable, Layered, Setting};
use crate::store::StoreConfig;

/// The broker's role in a master/slave pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerRole {
    /// Master; acknowledges before replication.
    #[default]
    AsyncMaster,
    /// Master; acknowledges once the slave has the bytes.
    SyncMaster,
    /// Slave.
    Slave,
}

impl std::str::FromStr for BrokerRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
            "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
            "SLAVE" => Ok(BrokerRole::Slave),
            other => Err(format!(
                "brokerRole must be ASYNC_MASTER, SYNC_MASTER or SLAVE, not {other:?}"
            )),
        }
    }
}

/// Everything a broker is configured with.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `brokerClusterName`.
    pub cluster_name: String,
    /// `brokerName`.
    pub broker_name: String,
    /// `brokerId`: 0 for a master.
    pub broker_id: i64,
    /// `namesrvAddr`: NameServers, `;`-separated in the file.
    pub namesrv_addrs: Vec<String>,
    /// `brokerIP1`: the address clients are told to use.
    pub broker_ip1: IpAddr,
    /// `brokerIP2`: the address of the HA service.
    pub broker_ip2: IpAddr,
    /// `listenPort`.
    pub listen_port: u16,
    /// `listenIP` (mq): the address to bind; defaults to `brokerIP1`.
    pub listen_ip: Option<IpAddr>,
    /// `brokerRole`.
    pub broker_role: BrokerRole,
    /// `haListenPort`: the HA port a master's slaves connect to; `None` is
    /// `listenPort + 1`, as RocketMQ's BrokerStartup sets it.
    pub ha_listen_port: Option<u16>,
    /// Replication: `haSendHeartbeatInterval`, `haHousekeepingInterval`,
    /// `haTransferBatchSize`, `haSlaveFallbehindMax`, `slaveTimeout`,
    /// `haMasterAddress`.
    pub ha: HaConfig,
    /// `slaveReadEnable` (false): a master tells a consumer that has fallen
    /// more than `accessMessageInMemoryMaxRatio` of memory behind to pull from
    /// the slave (its group's `whichBrokerWhenConsumeSlowly`), and a slave
    /// keeps such a consumer (else it sends it back to the master).
    pub slave_read_enable: bool,
    /// `brokerPermission`: ANDed into every topic's permission on registration.
    pub broker_permission: i32,
    /// `autoCreateTopicEnable`.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums`.
    pub default_topic_queue_nums: i32,
    /// `autoCreateSubscriptionGroup`.
    pub auto_create_subscription_group: bool,
    /// `registerNameServerPeriod`.
    pub register_name_server_period: Duration,
    /// `longPollingEnable`.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills`.
    pub short_polling_time: Duration,
    /// `regionId`.
    pub region_id: String,
    /// `traceOn`.
    pub trace_on: bool,
    /// `flushConsumerOffsetInterval` (5 s): how often offsets are persisted.
    pub flush_consumer_offset_interval: Duration,
    /// `serverFrameMaxLength` (mq): largest request frame (16 MiB).
    pub max_frame: usize,
    /// `serverMaxConnections` (mq; RocketMQ has no connection limit):
    /// connections each of the main and VIP listeners holds at once, one more
    /// being closed as soon as it is accepted. `None`: each listener's share
    /// of the descriptor limit ([`crate::descriptors`]).
    pub max_connections: Option<usize>,
    /// `metricsPort` (mq): the port of the Prometheus endpoint (`GET
    /// /metrics`, rocketmq-exporter's metric names), on the main port's
    /// address. Absent or 0: no endpoint.
    pub metrics_port: Option<u16>,
    /// `transactionTimeOut`, `transactionCheckInterval`, `transactionCheckMax`.
    pub transaction: super::transaction::TransactionConfig,
    /// `aclEnable`: check every request against the plain ACL accounts.
    pub acl_enable: bool,
    /// `plainAclFile` (mq): the accounts file. Unset: where 4.9.7 reads
    /// them, `$ROCKETMQ_HOME/conf/plain_acl.yml` and `conf/acl/`
    /// ([`BrokerConfig::acl_files`]).
    pub acl_file: Option<PathBuf>,
    /// `accessKey` and `secretKey` (mq): what the broker signs its own
    /// requests with (registrations with NameServers that check them, a
    /// slave's copying from a master with ACL on). Both or neither.
    pub credentials: Option<mq_protocol::acl::Credentials>,
    /// The store's settings (`storePathRootDir`, `flushDiskType`, ...).
    pub store: StoreConfig,
    /// Keys given that mq does not know, kept for GET_BROKER_CONFIG.
    pub unknown: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        BrokerConfig {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            namesrv_addrs: Vec::new(),
            broker_ip1: ip,
            broker_ip2: ip,
            listen_port: 10911,
            listen_ip: None,
            broker_role: BrokerRole::AsyncMaster,
            ha_listen_port: None,
            ha: HaConfig::default(),
            slave_read_enable: false,
            broker_permission: 6,
            auto_create_topic_enable: true,
            default_topic_queue_nums: 8,
            auto_create_subscription_group: true,
            register_name_server_period: Duration::from_secs(30),
            long_polling_enable: true,
            short_polling_time: Duration::from_secs(1),
            region_id: "DefaultRegion".into(),
            trace_on: true,
            flush_consumer_offset_interval: Duration::from_secs(5),
            max_frame: mq_protocol::frame::DEFAULT_MAX_FRAME,
            max_connections: None,
            metrics_port: None,
            transaction: super::transaction::TransactionConfig::default(),
            acl_enable: false,
            acl_file: None,
            credentials: None,
            store: StoreConfig::new(home.join("store")),
            unknown: BTreeMap::new(),
        }
    }
}

impl BrokerConfig {
    /// Reads a Java properties file's text (as if it were the file `broker.conf`).
    pub fn from_properties(text: &str) -> Result<Self, String> {
        let mut layered = Layered::<BrokerConfig>::default();
        layered.apply_text(text, std::path::Path::new("broker.conf"))?;
        Ok(layered.into_config())
    }

    /// Sets one key, as given in the file or as `--key value`; an unknown
    /// key is logged and kept for GET_BROKER_CONFIG.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match BROKER_SETTINGS.iter().find(|s| s.key == key) {
            Some(setting) => (setting.set)(self, value).map_err(|e| format!("{key}: {e}")),
            None => {
                if !self.keep_unknown(key, value) {
                    log::warn!("unknown broker config key {key} (ignored)");
                }
                Ok(())
            }
        }
    }

    /// Checks the settings against each other.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.broker_role == BrokerRole::Slave && self.broker_id == 0 {
            return Err("brokerRole SLAVE needs brokerId > 0".into());
        }
        if self.broker_role != BrokerRole::Slave && self.broker_id != 0 {
            return Err(format!(
                "brokerRole {} (a master) needs brokerId 0",
                self.role_name()
            ));
        }
        if self.listen_port < 3 || (self.listen_port == u16::MAX && self.ha_listen_port.is_none()) {
            return Err(format!(
                "listenPort {} leaves no room for the VIP port (listenPort - 2) and HA port (+1)",
                self.listen_port
            ));
        }
        self.ha.validate()?;
        if let Some(c) = &self.credentials {
            if c.access_key.is_empty() || c.secret_key.is_empty() {
                return Err("accessKey and secretKey go together: set both or neither".into());
            }
        }
        self.store.replica = self.broker_role == BrokerRole::Slave;
        if !(1..=1024).contains(&self.default_topic_queue_nums) {
            return Err("defaultTopicQueueNums must be 1 to 1024".into());
        }
        self.store.store_host = self.broker_addr();
        self.store.validate()
    }

    /// `brokerRole` as RocketMQ spells it.
    pub fn role_name(&self) -> &'static str {
        match self.broker_role {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    /// The address clients reach this broker at (`brokerIP1:listenPort`).
    pub fn broker_addr(&self) -> SocketAddr {
        SocketAddr::new(self.broker_ip1, self.listen_port)
    }

    /// The HA port (`haListenPort`, by default `listenPort + 1`).
    pub fn ha_port(&self) -> u16 {
        self.ha_listen_port
            .unwrap_or_else(|| self.listen_port.saturating_add(1))
    }

    /// The address of the HA service slaves are told (`brokerIP2:haListenPort`).
    pub fn ha_addr(&self) -> SocketAddr {
        SocketAddr::new(self.broker_ip2, self.ha_port())
    }

    /// The address the HA service binds (the main listener's IP, HA port).
    pub fn ha_bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen_ip.unwrap_or(self.broker_ip1), self.ha_port())
    }

    /// Where the metrics endpoint listens, when there is one.
    pub fn metrics_bind_addr(&self) -> Option<SocketAddr> {
        let port = self.metrics_port?;
        Some(SocketAddr::new(
            self.listen_ip.unwrap_or(self.broker_ip1),
            port,
        ))
    }

    /// The address the main server binds.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen_ip.unwrap_or(self.broker_ip1), self.listen_port)
    }

    /// The ACL accounts file and the directory of more account files:
    /// `plainAclFile` alone, else where 4.9.7 looks,
    /// `$ROCKETMQ_HOME/conf/plain_acl.yml` and `$ROCKETMQ_HOME/conf/acl/`;
    /// `None` when neither is set.
    pub fn acl_files(&self) -> Option<(PathBuf, Option<PathBuf>)> {
        if let Some(file) = &self.acl_file {
            return Some((file.clone(), None));
        }
        let home = PathBuf::from(std::env::var_os("ROCKETMQ_HOME").filter(|h| !h.is_empty())?);
        let conf = home.join("conf");
        Some((conf.join("plain_acl.yml"), Some(conf.join("acl"))))
    }

    /// The address the VIP server binds (listenPort - 2), which older clients use.
    pub fn vip_bind_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.listen_ip.unwrap_or(self.broker_ip1),
            self.listen_port - 2,
        )
    }

    /// The configuration as RocketMQ's GET_BROKER_CONFIG prints it: every
    /// key with a value, and the unknown keys given, sorted.
    pub fn to_properties(&self) -> String {
        let mut pairs: BTreeMap<String, String> = self.unknown.clone();
        for setting in &BROKER_SETTINGS {
            let value = (setting.get)(self);
            // An unset optional key (listenIP, haMasterAddress) is left out
            // rather than shown empty; namesrvAddr is always there.
            if !value.is_empty() || setting.key == "namesrvAddr" {
                pairs.insert(setting.key.to_owned(), value);
            }
        }
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

impl Configurable for BrokerConfig {
    const NAME: &'static str = "broker";

    fn settings() -> &'static [Setting<Self>] {
        &BROKER_SETTINGS
    }

    fn keep_unknown(&mut self, key: &str, value: &str) -> bool {
        self.unknown.insert(key.to_owned(), value.trim().to_owned());
        IGNORED.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FlushDiskType;

    #[test]
    fn reads_a_rocketmq_broker_conf() {
        let text = "\
# comment
brokerClusterName = DefaultCluster
brokerName=broker-b
brokerId=0
namesrvAddr=127.0.0.1:9876;127.0.0.1:9877
brokerIP1=127.0.0.1
listenPort=20911
storePathRootDir=/tmp/mq-store
flushDiskType=SYNC_FLUSH
deleteWhen=04
fileReservedTime=48
brokerRole=ASYNC_MASTER
autoCreateTopicEnable=false
";
        let mut c = BrokerConfig::from_properties(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.broker_name, "broker-b");
        assert_eq!(c.namesrv_addrs, vec!["127.0.0.1:9876", "127.0.0.1:9877"]);
        assert_eq!(c.listen_port, 20911);
        assert_eq!(c.vip_bind_addr().port(), 20909);
        assert_eq!(c.ha_addr().port(), 20912);
        assert_eq!(c.store.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.store.file_reserved_time, Duration::from_secs(48 * 3600));
        assert_eq!(c.broker_role, BrokerRole::AsyncMaster);
        assert!(!c.auto_create_topic_enable);
        assert_eq!(c.store.store_host, "127.0.0.1:20911".parse().unwrap());
        assert!(c.to_properties().contains("brokerName=broker-b\n"));
    }

    #[test]
    fn replication_roles_and_keys() {
        let text = "\
brokerRole=SLAVE
brokerId=1
listenPort=20911
haMasterAddress=10.0.0.1:20912
haSendHeartbeatInterval=1000
haHousekeepingInterval=3000
haTransferBatchSize=65536
haSlaveFallbehindMax=1048576
slaveTimeout=800
slaveReadEnable=true
";
        let mut c = BrokerConfig::from_properties(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.broker_role, BrokerRole::Slave);
        assert!(c.store.replica);
        assert_eq!(c.ha_addr().port(), 20912);
        assert_eq!(c.ha.master_address.as_deref(), Some("10.0.0.1:20912"));
        assert_eq!(c.ha.send_heartbeat_interval, Duration::from_secs(1));
        assert_eq!(c.ha.housekeeping_interval, Duration::from_secs(3));
        assert_eq!(c.ha.transfer_batch_size, 65536);
        assert_eq!(c.ha.slave_fallbehind_max, 1 << 20);
        assert_eq!(c.ha.slave_timeout, Duration::from_millis(800));
        assert!(c.slave_read_enable);
        let mut c =
            BrokerConfig::from_properties("brokerRole=SYNC_MASTER\nhaListenPort=30000").unwrap();
        c.validate().unwrap();
        assert!(!c.store.replica);
        assert_eq!(c.ha_bind_addr().port(), 30000);
        assert!(c.to_properties().contains("brokerRole=SYNC_MASTER\n"));
    }

    #[test]
    fn metrics_port_is_off_unless_set() {
        assert_eq!(BrokerConfig::default().metrics_bind_addr(), None);
        let c = BrokerConfig::from_properties("metricsPort=0").unwrap();
        assert_eq!(c.metrics_port, None);
        let c = BrokerConfig::from_properties("brokerIP1=10.0.0.5\nmetricsPort=5557").unwrap();
        assert_eq!(
            c.metrics_bind_addr(),
            Some("10.0.0.5:5557".parse().unwrap())
        );
        assert!(c.to_properties().contains("metricsPort=5557\n"));
        let err = BrokerConfig::from_properties("metricsPort=70000").unwrap_err();
        assert!(err.contains("metricsPort"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = BrokerConfig::from_properties("listenPort=abc").unwrap_err();
        assert!(err.contains("listenPort"), "{err}");
        let err = BrokerConfig::from_properties("flushDiskType=SOMETIMES").unwrap_err();
        assert!(err.contains("flushDiskType"), "{err}");
        let err = BrokerConfig::from_properties("serverMaxConnections=0").unwrap_err();
        assert!(err.contains("serverMaxConnections"), "{err}");
        let mut c = BrokerConfig::from_properties("brokerId=1").unwrap();
        assert!(c.validate().is_err());
        let mut c = BrokerConfig::from_properties("brokerRole=SLAVE\nbrokerId=0").unwrap();
        assert!(c.validate().unwrap_err().contains("brokerId > 0"));
        let mut c = BrokerConfig::from_properties("brokerRole=SYNC_MASTER\nbrokerId=1").unwrap();
        assert!(c.validate().unwrap_err().contains("brokerId 0"));
        let mut c = BrokerConfig::from_properties(
            "haSendHeartbeatInterval=5000\nhaHousekeepingInterval=1000",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("haHousekeepingInterval"));
    }
}
