//! Every broker.conf key mq reads: RocketMQ's names (BrokerConfig,
//! NettyServerConfig and MessageStoreConfig share one namespace) where
//! RocketMQ has the setting, `(mq)` in the meaning where it does not. This
//! table is the one list: the file and `--key value` are read through it,
//! GET_BROKER_CONFIG and `mqd broker --print-config` print from it, and the
//! README's table is checked against it.

use std::path::PathBuf;
use std::time::Duration;

use super::config::BrokerConfig;
use crate::settings::{
    parse, parse_bool, parse_connection_limit, parse_millis, parse_port_or_off, Setting,
};
use crate::store::FlushDiskType;

/// Bytes of one ConsumeQueue entry: `mappedFileSizeConsumeQueue` is in bytes,
/// the store counts entries.
const CQ_ENTRY: usize = 20;

/// RocketMQ keys mq accepts without a warning and without effect: the JVM
/// broker's home directory, and timing knobs of RocketMQ's file deletion that
/// mq's retention does not need.
pub(crate) const IGNORED: &[&str] = &[
    "rocketmqHome",
    "deleteCommitLogFilesInterval",
    "destroyMapedFileIntervalForcibly",
    "redeleteHangedFileInterval",
];

/// The broker's keys.
pub(crate) static BROKER_SETTINGS: [Setting<BrokerConfig>; 59] = [
    Setting {
        key: "brokerClusterName",
        default: "DefaultCluster",
        meaning: "The cluster the broker registers in.",
        set: |c, v| {
            c.cluster_name = v.trim().to_owned(); Ok(())
        },
        get: |c| c.cluster_name.clone(),
    },
    Setting {
        key: "brokerName",
        default: "broker-a",
        meaning: "The broker group's name: a master and its slaves share it.",
        set: |c, v| {
            c.broker_name = v.trim().to_owned(); Ok(())
        },
        get: |c| c.broker_name.clone(),
    },
    Setting {
        key: "brokerId",
        default: "0",
        meaning: "0 for a master, any id > 0 for a slave.",
        set: |c, v| {
            c.broker_id = parse(v)?; Ok(())
        },
        get: |c| c.broker_id.to_string(),
    },
    Setting {
        key: "brokerRole",
        default: "ASYNC_MASTER",
        meaning: "`ASYNC_MASTER`, `SYNC_MASTER` (a send is acknowledged once the slave has it) or `SLAVE`.",
        set: |c, v| {
            c.broker_role = v.trim().parse()?;
            Ok(())
        },
        get: |c| c.role_name().to_owned(),
    },
    Setting {
        key: "namesrvAddr",
        default: "(none; `NAMESRV_ADDR`)",
        meaning: "NameServers to register with, `;` between them.",
        set: |c, v| {
            c.namesrv_addrs = v
                .split(';')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(())
        },
        get: |c| c.namesrv_addrs.join(";"),
    },
    Setting {
        key: "brokerIP1",
        default: "127.0.0.1",
        meaning: "The address clients are told to use; also what the broker binds unless `listenIP` is set.",
        set: |c, v| {
            // brokerIP2 follows brokerIP1 unless set after it, as in RocketMQ's
            // sample configurations that set only brokerIP1.
            c.broker_ip1 = parse(v)?;
            c.broker_ip2 = c.broker_ip1;
            Ok(())
        },
        get: |c| c.broker_ip1.to_string(),
    },
    Setting {
        key: "brokerIP2",
        default: "`brokerIP1`",
        meaning: "The address of the HA service a master announces to its slaves.",
        set: |c, v| {
            c.broker_ip2 = parse(v)?; Ok(())
        },
        get: |c| c.broker_ip2.to_string(),
    },
    Setting {
        key: "listenIP",
        default: "`brokerIP1`",
        meaning: "(mq) The address the broker binds, when not `brokerIP1` (e.g. `0.0.0.0`).",
        set: |c, v| {
            c.listen_ip = Some(parse(v)?); Ok(())
        },
        get: |c| c.listen_ip.map(|x| x.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "listenPort",
        default: "10911",
        meaning: "The main port; the VIP port is `listenPort - 2`.",
        set: |c, v| {
            c.listen_port = parse(v)?; Ok(())
        },
        get: |c| c.listen_port.to_string(),
    },
    Setting {
        key: "haListenPort",
        default: "`listenPort + 1`",
        meaning: "The port a master's slaves connect to.",
        set: |c, v| {
            c.ha_listen_port = Some(parse(v)?); Ok(())
        },
        get: |c| c.ha_port().to_string(),
    },
    Setting {
        key: "haMasterAddress",
        default: "(from the NameServers)",
        meaning: "A slave's master HA address (`host:port`), fixed.",
        set: |c, v| {
            c.ha.master_address = Some(v.trim().to_owned()).filter(|a| !a.is_empty());
            Ok(())
        },
        get: |c| c.ha.master_address.clone().unwrap_or_default(),
    },
    Setting {
        key: "haSendHeartbeatInterval",
        default: "5000",
        meaning: "ms: an idle replication link carries a heartbeat each way this often.",
        set: |c, v| {
            c.ha.send_heartbeat_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.ha.send_heartbeat_interval.as_millis().to_string(),
    },
    Setting {
        key: "haHousekeepingInterval",
        default: "20000",
        meaning: "ms: a replication link silent this long is closed (and the slave connects again).",
        set: |c, v| {
            c.ha.housekeeping_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.ha.housekeeping_interval.as_millis().to_string(),
    },
    Setting {
        key: "haTransferBatchSize",
        default: "32768",
        meaning: "Most CommitLog bytes in one replication frame.",
        set: |c, v| {
            c.ha.transfer_batch_size = parse(v)?; Ok(())
        },
        get: |c| c.ha.transfer_batch_size.to_string(),
    },
    Setting {
        key: "haSlaveFallbehindMax",
        default: "268435456",
        meaning: "Bytes: a SYNC_MASTER whose slave is further behind answers SLAVE_NOT_AVAILABLE at once.",
        set: |c, v| {
            c.ha.slave_fallbehind_max = parse(v)?; Ok(())
        },
        get: |c| c.ha.slave_fallbehind_max.to_string(),
    },
    Setting {
        key: "slaveTimeout",
        default: "3000",
        meaning: "ms a SYNC_MASTER's send waits for its slave before FLUSH_SLAVE_TIMEOUT.",
        set: |c, v| {
            c.ha.slave_timeout = parse_millis(v)?; Ok(())
        },
        get: |c| c.ha.slave_timeout.as_millis().to_string(),
    },
    Setting {
        key: "slaveReadEnable",
        default: "false",
        meaning: "A master sends consumers far behind (`accessMessageInMemoryMaxRatio`) to the slave, and a slave keeps them.",
        set: |c, v| {
            c.slave_read_enable = parse_bool(v)?; Ok(())
        },
        get: |c| c.slave_read_enable.to_string(),
    },
    Setting {
        key: "accessMessageInMemoryMaxRatio",
        default: "40",
        meaning: "Percent of RAM a consumer may be behind before it counts as reading from disk.",
        set: |c, v| {
            c.store.access_message_in_memory_max_ratio = parse(v)?; Ok(())
        },
        get: |c| c.store.access_message_in_memory_max_ratio.to_string(),
    },
    Setting {
        key: "brokerPermission",
        default: "6",
        meaning: "Permission ANDed into every topic's on registration (6 read and write, 4 read, 2 write).",
        set: |c, v| {
            c.broker_permission = parse(v)?; Ok(())
        },
        get: |c| c.broker_permission.to_string(),
    },
    Setting {
        key: "autoCreateTopicEnable",
        default: "true",
        meaning: "Create a topic on its first send (from TBW102).",
        set: |c, v| {
            c.auto_create_topic_enable = parse_bool(v)?; Ok(())
        },
        get: |c| c.auto_create_topic_enable.to_string(),
    },
    Setting {
        key: "defaultTopicQueueNums",
        default: "8",
        meaning: "Queues of an automatically created topic (1 to 1024).",
        set: |c, v| {
            c.default_topic_queue_nums = parse(v)?; Ok(())
        },
        get: |c| c.default_topic_queue_nums.to_string(),
    },
    Setting {
        key: "autoCreateSubscriptionGroup",
        default: "true",
        meaning: "Create a consumer group on its first use.",
        set: |c, v| {
            c.auto_create_subscription_group = parse_bool(v)?; Ok(())
        },
        get: |c| c.auto_create_subscription_group.to_string(),
    },
    Setting {
        key: "registerNameServerPeriod",
        default: "30000",
        meaning: "ms between registrations with every NameServer (clamped to 10000..60000).",
        set: |c, v| {
            // RocketMQ clamps it to 10..60 s.
            let ms: u64 = parse(v)?;
            c.register_name_server_period = Duration::from_millis(ms.clamp(10_000, 60_000));
            Ok(())
        },
        get: |c| c.register_name_server_period.as_millis().to_string(),
    },
    Setting {
        key: "longPollingEnable",
        default: "true",
        meaning: "Park a pull that finds nothing until a message arrives or it times out.",
        set: |c, v| {
            c.long_polling_enable = parse_bool(v)?; Ok(())
        },
        get: |c| c.long_polling_enable.to_string(),
    },
    Setting {
        key: "shortPollingTimeMills",
        default: "1000",
        meaning: "ms a pull that finds nothing is held when long polling is off.",
        set: |c, v| {
            c.short_polling_time = parse_millis(v)?; Ok(())
        },
        get: |c| c.short_polling_time.as_millis().to_string(),
    },
    Setting {
        key: "regionId",
        default: "DefaultRegion",
        meaning: "The region reported in routes.",
        set: |c, v| {
            c.region_id = v.trim().to_owned(); Ok(())
        },
        get: |c| c.region_id.clone(),
    },
    Setting {
        key: "traceOn",
        default: "true",
        meaning: "Reported in routes for the clients' message trace.",
        set: |c, v| {
            c.trace_on = parse_bool(v)?; Ok(())
        },
        get: |c| c.trace_on.to_string(),
    },
    Setting {
        key: "flushConsumerOffsetInterval",
        default: "5000",
        meaning: "ms between saves of consumer offsets (and at shutdown).",
        set: |c, v| {
            c.flush_consumer_offset_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.flush_consumer_offset_interval.as_millis().to_string(),
    },
    Setting {
        key: "serverFrameMaxLength",
        default: "16777216",
        meaning: "(mq) Largest request frame in bytes.",
        set: |c, v| {
            c.max_frame = parse(v)?; Ok(())
        },
        get: |c| c.max_frame.to_string(),
    },
    Setting {
        key: "aclEnable",
        default: "false",
        meaning: "Check every request against the plain ACL accounts (signature, then permission), as RocketMQ 4.9.7 does.",
        set: |c, v| {
            c.acl_enable = parse_bool(v)?;
            Ok(())
        },
        get: |c| c.acl_enable.to_string(),
    },
    Setting {
        key: "plainAclFile",
        default: "(`$ROCKETMQ_HOME/conf/plain_acl.yml` and `conf/acl/*.yml`)",
        meaning: "(mq) The ACL accounts file, in `plain_acl.yml`'s format; re-read when it changes.",
        set: |c, v| {
            let v = v.trim();
            c.acl_file = (!v.is_empty()).then(|| PathBuf::from(v));
            Ok(())
        },
        get: |c| c.acl_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
    },
    Setting {
        key: "accessKey",
        default: "(none)",
        meaning: "(mq) The access key the broker signs its own requests with (registrations, a slave's copying from its master); with `secretKey`.",
        set: |c, v| {
            c.credentials
                .get_or_insert_with(|| mq_protocol::acl::Credentials::new("", ""))
                .access_key = v.trim().to_owned();
            Ok(())
        },
        get: |c| c.credentials.as_ref().map(|k| k.access_key.clone()).unwrap_or_default(),
    },
    Setting {
        key: "secretKey",
        default: "(none)",
        meaning: "(mq) The secret key that goes with `accessKey`; never printed.",
        set: |c, v| {
            c.credentials
                .get_or_insert_with(|| mq_protocol::acl::Credentials::new("", ""))
                .secret_key = v.trim().to_owned();
            Ok(())
        },
        // The secret is never shown, not by GET_BROKER_CONFIG nor --print-config.
        get: |_| String::new(),
    },
    Setting {
        key: "metricsPort",
        default: "(none: off)",
        meaning: "(mq) Port of the Prometheus endpoint (rocketmq-exporter's metric names), on the broker's listen address; 0 for none.",
        set: |c, v| {
            c.metrics_port = parse_port_or_off(v)?;
            Ok(())
        },
        get: |c| c.metrics_port.map(|p| p.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "serverMaxConnections",
        default: "(share of `RLIMIT_NOFILE`)",
        meaning: "(mq) Connections each of the main and VIP ports holds at once.",
        set: |c, v| {
            c.max_connections = Some(parse_connection_limit(v)?);
            Ok(())
        },
        get: |c| c.max_connections.map(|n| n.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "transactionTimeOut",
        default: "6000",
        meaning: "ms before a half message is first checked back with its producer.",
        set: |c, v| {
            c.transaction.timeout = parse_millis(v)?; Ok(())
        },
        get: |c| c.transaction.timeout.as_millis().to_string(),
    },
    Setting {
        key: "transactionCheckInterval",
        default: "60000",
        meaning: "ms between transaction check rounds.",
        set: |c, v| {
            c.transaction.check_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.transaction.check_interval.as_millis().to_string(),
    },
    Setting {
        key: "transactionCheckMax",
        default: "15",
        meaning: "Check-backs before a half message is given up.",
        set: |c, v| {
            c.transaction.check_max = parse(v)?; Ok(())
        },
        get: |c| c.transaction.check_max.to_string(),
    },
    Setting {
        key: "storePathRootDir",
        default: "`$HOME/store`",
        meaning: "The store's directory (commitlog, consumequeue, index, config files).",
        set: |c, v| {
            match v.trim() {
                "" => Err("must name a directory".into()),
                path => {
                    c.store.root = PathBuf::from(path);
                    Ok(())
                }
            }
        },
        get: |c| c.store.root.display().to_string(),
    },
    Setting {
        key: "flushDiskType",
        default: "ASYNC_FLUSH",
        meaning: "`ASYNC_FLUSH` (acknowledge, flush every `flushIntervalCommitLog`) or `SYNC_FLUSH` (acknowledge once on disk).",
        set: |c, v| {
            c.store.flush_disk_type = v.trim().parse::<FlushDiskType>()?;
            Ok(())
        },
        get: |c| match c.store.flush_disk_type {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH".into(),
            FlushDiskType::SyncFlush => "SYNC_FLUSH".into(),
        },
    },
    Setting {
        key: "mappedFileSizeCommitLog",
        default: "1073741824",
        meaning: "Bytes per CommitLog segment (a slave needs its master's).",
        set: |c, v| {
            c.store.commit_log_file_size = parse(v)?; Ok(())
        },
        get: |c| c.store.commit_log_file_size.to_string(),
    },
    Setting {
        key: "mappedFileSizeConsumeQueue",
        default: "6000000",
        meaning: "Bytes per ConsumeQueue file (20 per entry).",
        set: |c, v| {
            let bytes: usize = parse(v)?;
            c.store.consume_queue_entries_per_file = (bytes / CQ_ENTRY).max(1);
            Ok(())
        },
        get: |c| (c.store.consume_queue_entries_per_file * CQ_ENTRY).to_string(),
    },
    Setting {
        key: "maxHashSlotNum",
        default: "5000000",
        meaning: "Hash slots per IndexFile.",
        set: |c, v| {
            c.store.index_hash_slots = parse(v)?; Ok(())
        },
        get: |c| c.store.index_hash_slots.to_string(),
    },
    Setting {
        key: "maxIndexNum",
        default: "20000000",
        meaning: "Entries per IndexFile.",
        set: |c, v| {
            c.store.index_max_entries = parse(v)?; Ok(())
        },
        get: |c| c.store.index_max_entries.to_string(),
    },
    Setting {
        key: "messageIndexEnable",
        default: "true",
        meaning: "Index message keys (QUERY_MESSAGE, `mqctl query`).",
        set: |c, v| {
            c.store.message_index_enable = parse_bool(v)?; Ok(())
        },
        get: |c| c.store.message_index_enable.to_string(),
    },
    Setting {
        key: "flushIntervalCommitLog",
        default: "500",
        meaning: "ms between ASYNC_FLUSH flushes.",
        set: |c, v| {
            c.store.flush_interval_commit_log = parse_millis(v)?; Ok(())
        },
        get: |c| c.store.flush_interval_commit_log.as_millis().to_string(),
    },
    Setting {
        key: "flushCommitLogLeastPages",
        default: "4",
        meaning: "Dirty 4 KiB pages an ASYNC_FLUSH flush waits for ...",
        set: |c, v| {
            c.store.flush_commit_log_least_pages = parse(v)?; Ok(())
        },
        get: |c| c.store.flush_commit_log_least_pages.to_string(),
    },
    Setting {
        key: "flushCommitLogThoroughInterval",
        default: "10000",
        meaning: "... unless this many ms have passed.",
        set: |c, v| {
            c.store.flush_commit_log_thorough_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.store.flush_commit_log_thorough_interval.as_millis().to_string(),
    },
    Setting {
        key: "flushIntervalConsumeQueue",
        default: "1000",
        meaning: "ms between flushes of ConsumeQueues, IndexFiles and the checkpoint.",
        set: |c, v| {
            c.store.flush_interval_consume_queue = parse_millis(v)?; Ok(())
        },
        get: |c| c.store.flush_interval_consume_queue.as_millis().to_string(),
    },
    Setting {
        key: "syncFlushTimeout",
        default: "5000",
        meaning: "ms a SYNC_FLUSH send waits for the disk before FLUSH_DISK_TIMEOUT.",
        set: |c, v| {
            c.store.sync_flush_timeout = parse_millis(v)?; Ok(())
        },
        get: |c| c.store.sync_flush_timeout.as_millis().to_string(),
    },
    Setting {
        key: "fileReservedTime",
        default: "72",
        meaning: "Hours a CommitLog segment is kept.",
        set: |c, v| {
            let hours: u64 = parse(v)?;
            c.store.file_reserved_time = Duration::from_secs(hours.saturating_mul(3600));
            Ok(())
        },
        get: |c| (c.store.file_reserved_time.as_secs() / 3600).to_string(),
    },
    Setting {
        key: "deleteWhen",
        default: "04",
        meaning: "Hours of the day (local time, `;` between) at which expired segments are deleted.",
        set: |c, v| {
            c.store.delete_when = v.trim().to_owned(); Ok(())
        },
        get: |c| c.store.delete_when.clone(),
    },
    Setting {
        key: "diskMaxUsedSpaceRatio",
        default: "75",
        meaning: "Percent of disk above which expired segments are deleted at any hour.",
        set: |c, v| {
            c.store.disk_max_used_space_ratio = parse(v)?; Ok(())
        },
        get: |c| c.store.disk_max_used_space_ratio.to_string(),
    },
    Setting {
        key: "diskSpaceCleanForciblyRatio",
        default: "85",
        meaning: "Percent of disk above which unexpired segments go, with `cleanFileForciblyEnable`.",
        set: |c, v| {
            c.store.disk_space_clean_forcibly_ratio = parse(v)?; Ok(())
        },
        get: |c| c.store.disk_space_clean_forcibly_ratio.to_string(),
    },
    Setting {
        key: "diskSpaceWarningLevelRatio",
        default: "90",
        meaning: "Percent of disk above which sends are refused.",
        set: |c, v| {
            c.store.disk_space_warning_level_ratio = parse(v)?; Ok(())
        },
        get: |c| c.store.disk_space_warning_level_ratio.to_string(),
    },
    Setting {
        key: "cleanFileForciblyEnable",
        default: "false",
        meaning: "Delete unexpired segments when the disk is full (on in RocketMQ; off in mq: a full disk refuses sends instead).",
        set: |c, v| {
            c.store.clean_file_forcibly_enable = parse_bool(v)?; Ok(())
        },
        get: |c| c.store.clean_file_forcibly_enable.to_string(),
    },
    Setting {
        key: "cleanResourceInterval",
        default: "10000",
        meaning: "ms between retention rounds.",
        set: |c, v| {
            c.store.clean_resource_interval = parse_millis(v)?; Ok(())
        },
        get: |c| c.store.clean_resource_interval.as_millis().to_string(),
    },
    Setting {
        key: "maxMessageSize",
        default: "4194304",
        meaning: "Largest message body in bytes.",
        set: |c, v| {
            c.store.max_message_size = parse(v)?; Ok(())
        },
        get: |c| c.store.max_message_size.to_string(),
    },
    Setting {
        key: "messageDelayLevel",
        default: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
        meaning: "The delay of each delay level.",
        set: |c, v| {
            c.store.message_delay_level = v.trim().to_owned(); Ok(())
        },
        get: |c| c.store.message_delay_level.clone(),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_defaults_and_the_readme() {
        crate::settings::check_table::<BrokerConfig>();
    }
}
