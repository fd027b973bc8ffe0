//! The broker's configuration: RocketMQ's `broker.conf` keys (BrokerConfig,
//! NettyServerConfig and MessageStoreConfig share one namespace), read from a
//! Java properties file and overridden by `--key value` pairs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::ha::HaConfig;
use crate::store::{FlushDiskType, StoreConfig};

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
            transaction: super::transaction::TransactionConfig::default(),
            acl_enable: false,
            acl_file: None,
            credentials: None,
            store: StoreConfig::new(home.join("store")),
            unknown: BTreeMap::new(),
        }
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a valid value"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("{key}: {other:?} is not true or false")),
    }
}

impl BrokerConfig {
    /// Reads a Java properties file's text.
    pub fn from_properties(text: &str) -> Result<Self, String> {
        let entries =
            crate::properties_file::parse(text).map_err(|e| format!("broker config: {e}"))?;
        let mut config = BrokerConfig::default();
        let mut store_path_set = false;
        for entry in &entries {
            store_path_set |= entry.key == "storePathRootDir";
            config.set(&entry.key, &entry.value)?;
        }
        if !store_path_set {
            log::info!(
                "storePathRootDir not set; using {}",
                config.store.root.display()
            );
        }
        Ok(config)
    }

    /// Sets one key, as given in the file or as `--key value`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let s = &mut self.store;
        match key {
            "brokerClusterName" => self.cluster_name = v.to_owned(),
            "brokerName" => self.broker_name = v.to_owned(),
            "brokerId" => self.broker_id = parse(key, v)?,
            "namesrvAddr" => {
                self.namesrv_addrs = v
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "brokerIP1" => {
                self.broker_ip1 = parse(key, v)?;
                self.broker_ip2 = self.broker_ip1;
            }
            "brokerIP2" => self.broker_ip2 = parse(key, v)?,
            "listenPort" => self.listen_port = parse(key, v)?,
            "listenIP" => self.listen_ip = Some(parse(key, v)?),
            "brokerRole" => self.broker_role = parse(key, v)?,
            "haListenPort" => self.ha_listen_port = Some(parse(key, v)?),
            "haSendHeartbeatInterval" => {
                self.ha.send_heartbeat_interval = Duration::from_millis(parse(key, v)?)
            }
            "haHousekeepingInterval" => {
                self.ha.housekeeping_interval = Duration::from_millis(parse(key, v)?)
            }
            "haTransferBatchSize" => self.ha.transfer_batch_size = parse(key, v)?,
            "haSlaveFallbehindMax" => self.ha.slave_fallbehind_max = parse(key, v)?,
            "slaveTimeout" => self.ha.slave_timeout = Duration::from_millis(parse(key, v)?),
            "haMasterAddress" => {
                self.ha.master_address = Some(v.to_owned()).filter(|a| !a.is_empty())
            }
            "slaveReadEnable" => self.slave_read_enable = parse_bool(key, v)?,
            "accessMessageInMemoryMaxRatio" => {
                s.access_message_in_memory_max_ratio = parse(key, v)?
            }
            "brokerPermission" => self.broker_permission = parse(key, v)?,
            "autoCreateTopicEnable" => self.auto_create_topic_enable = parse_bool(key, v)?,
            "defaultTopicQueueNums" => self.default_topic_queue_nums = parse(key, v)?,
            "autoCreateSubscriptionGroup" => {
                self.auto_create_subscription_group = parse_bool(key, v)?
            }
            "registerNameServerPeriod" => {
                // RocketMQ clamps it to 10..60 s.
                let ms: u64 = parse(key, v)?;
                self.register_name_server_period = Duration::from_millis(ms.clamp(10_000, 60_000));
            }
            "longPollingEnable" => self.long_polling_enable = parse_bool(key, v)?,
            "shortPollingTimeMills" => {
                self.short_polling_time = Duration::from_millis(parse(key, v)?)
            }
            "regionId" => self.region_id = v.to_owned(),
            "traceOn" => self.trace_on = parse_bool(key, v)?,
            "flushConsumerOffsetInterval" => {
                self.flush_consumer_offset_interval = Duration::from_millis(parse(key, v)?)
            }
            "serverFrameMaxLength" => self.max_frame = parse(key, v)?,
            "serverMaxConnections" => match parse::<usize>(key, v)? {
                0 => return Err(format!("{key}: must be at least 1")),
                n => self.max_connections = Some(n),
            },
            "transactionTimeOut" => {
                self.transaction.timeout = Duration::from_millis(parse(key, v)?)
            }
            "transactionCheckInterval" => {
                self.transaction.check_interval = Duration::from_millis(parse(key, v)?)
            }
            "transactionCheckMax" => self.transaction.check_max = parse(key, v)?,
            "aclEnable" => self.acl_enable = parse_bool(key, v)?,
            "accessKey" | "secretKey" => {
                let c = self
                    .credentials
                    .get_or_insert_with(|| mq_protocol::acl::Credentials::new("", ""));
                if key == "accessKey" {
                    c.access_key = v.to_owned();
                } else {
                    c.secret_key = v.to_owned();
                }
            }
            "plainAclFile" => self.acl_file = (!v.is_empty()).then(|| PathBuf::from(v)),
            "storePathRootDir" => s.root = PathBuf::from(v),
            "flushDiskType" => s.flush_disk_type = v.parse::<FlushDiskType>()?,
            "mappedFileSizeCommitLog" => s.commit_log_file_size = parse(key, v)?,
            "mappedFileSizeConsumeQueue" => {
                let bytes: usize = parse(key, v)?;
                s.consume_queue_entries_per_file = (bytes / 20).max(1);
            }
            "maxHashSlotNum" => s.index_hash_slots = parse(key, v)?,
            "maxIndexNum" => s.index_max_entries = parse(key, v)?,
            "messageIndexEnable" => s.message_index_enable = parse_bool(key, v)?,
            "flushIntervalCommitLog" => {
                s.flush_interval_commit_log = Duration::from_millis(parse(key, v)?)
            }
            "flushCommitLogLeastPages" => s.flush_commit_log_least_pages = parse(key, v)?,
            "flushCommitLogThoroughInterval" => {
                s.flush_commit_log_thorough_interval = Duration::from_millis(parse(key, v)?)
            }
            "flushIntervalConsumeQueue" => {
                s.flush_interval_consume_queue = Duration::from_millis(parse(key, v)?)
            }
            "syncFlushTimeout" => s.sync_flush_timeout = Duration::from_millis(parse(key, v)?),
            "fileReservedTime" => {
                s.file_reserved_time = Duration::from_secs(parse::<u64>(key, v)? * 3600)
            }
            "deleteWhen" => s.delete_when = v.to_owned(),
            "diskMaxUsedSpaceRatio" => s.disk_max_used_space_ratio = parse(key, v)?,
            // RocketMQ 4.9 reads these two as system properties
            // (rocketmq.broker.diskSpace...), 5.x as broker.conf keys.
            "diskSpaceCleanForciblyRatio" => s.disk_space_clean_forcibly_ratio = parse(key, v)?,
            "diskSpaceWarningLevelRatio" => s.disk_space_warning_level_ratio = parse(key, v)?,
            "cleanFileForciblyEnable" => s.clean_file_forcibly_enable = parse_bool(key, v)?,
            "cleanResourceInterval" => {
                s.clean_resource_interval = Duration::from_millis(parse(key, v)?)
            }
            "maxMessageSize" => s.max_message_size = parse(key, v)?,
            "messageDelayLevel" => s.message_delay_level = v.to_owned(),
            "deleteCommitLogFilesInterval"
            | "destroyMapedFileIntervalForcibly"
            | "redeleteHangedFileInterval" => {
                // Timing knobs of RocketMQ's file deletion that mq does not need.
                self.unknown.insert(key.to_owned(), v.to_owned());
            }
            other => {
                log::warn!("unknown broker config key {other} (ignored)");
                self.unknown.insert(other.to_owned(), v.to_owned());
            }
        }
        Ok(())
    }

    /// Checks the settings against each other.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.broker_role == BrokerRole::Slave && self.broker_id == 0 {
            return Err("a SLAVE must have brokerId > 0".into());
        }
        if self.broker_role != BrokerRole::Slave && self.broker_id != 0 {
            return Err("a master must have brokerId 0".into());
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
            return Err("defaultTopicQueueNums must be 1..=1024".into());
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

    /// The configuration as RocketMQ's GET_BROKER_CONFIG prints it.
    pub fn to_properties(&self) -> String {
        let s = &self.store;
        let mut pairs: BTreeMap<String, String> = self.unknown.clone();
        let mut put = |k: &str, v: String| {
            pairs.insert(k.to_owned(), v);
        };
        put("brokerClusterName", self.cluster_name.clone());
        put("brokerName", self.broker_name.clone());
        put("brokerId", self.broker_id.to_string());
        put("namesrvAddr", self.namesrv_addrs.join(";"));
        put("brokerIP1", self.broker_ip1.to_string());
        put("brokerIP2", self.broker_ip2.to_string());
        put("listenPort", self.listen_port.to_string());
        put("brokerRole", self.role_name().into());
        put("haListenPort", self.ha_port().to_string());
        put(
            "haSendHeartbeatInterval",
            self.ha.send_heartbeat_interval.as_millis().to_string(),
        );
        put(
            "haHousekeepingInterval",
            self.ha.housekeeping_interval.as_millis().to_string(),
        );
        put(
            "haTransferBatchSize",
            self.ha.transfer_batch_size.to_string(),
        );
        put(
            "haSlaveFallbehindMax",
            self.ha.slave_fallbehind_max.to_string(),
        );
        put(
            "slaveTimeout",
            self.ha.slave_timeout.as_millis().to_string(),
        );
        if let Some(addr) = &self.ha.master_address {
            put("haMasterAddress", addr.clone());
        }
        put("slaveReadEnable", self.slave_read_enable.to_string());
        put(
            "accessMessageInMemoryMaxRatio",
            s.access_message_in_memory_max_ratio.to_string(),
        );
        put("brokerPermission", self.broker_permission.to_string());
        put(
            "autoCreateTopicEnable",
            self.auto_create_topic_enable.to_string(),
        );
        put(
            "defaultTopicQueueNums",
            self.default_topic_queue_nums.to_string(),
        );
        put(
            "autoCreateSubscriptionGroup",
            self.auto_create_subscription_group.to_string(),
        );
        put("longPollingEnable", self.long_polling_enable.to_string());
        put("regionId", self.region_id.clone());
        put("traceOn", self.trace_on.to_string());
        put("aclEnable", self.acl_enable.to_string());
        // The secret key is never shown.
        if let Some(c) = &self.credentials {
            put("accessKey", c.access_key.clone());
        }
        if let Some(path) = &self.acl_file {
            put("plainAclFile", path.display().to_string());
        }
        put("storePathRootDir", s.root.display().to_string());
        put(
            "flushDiskType",
            match s.flush_disk_type {
                FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
                FlushDiskType::SyncFlush => "SYNC_FLUSH",
            }
            .into(),
        );
        put(
            "mappedFileSizeCommitLog",
            s.commit_log_file_size.to_string(),
        );
        put("maxMessageSize", s.max_message_size.to_string());
        put("deleteWhen", s.delete_when.clone());
        put(
            "fileReservedTime",
            (s.file_reserved_time.as_secs() / 3600).to_string(),
        );
        put(
            "diskMaxUsedSpaceRatio",
            s.disk_max_used_space_ratio.to_string(),
        );
        put(
            "diskSpaceCleanForciblyRatio",
            s.disk_space_clean_forcibly_ratio.to_string(),
        );
        put(
            "diskSpaceWarningLevelRatio",
            s.disk_space_warning_level_ratio.to_string(),
        );
        put(
            "cleanFileForciblyEnable",
            s.clean_file_forcibly_enable.to_string(),
        );
        put("messageDelayLevel", s.message_delay_level.clone());
        if let Some(n) = self.max_connections {
            put("serverMaxConnections", n.to_string());
        }
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
