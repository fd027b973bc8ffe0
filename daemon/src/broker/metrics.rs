//! What the broker's Prometheus endpoint (`metricsPort`) shows.
//!
//! First the families of Apache's rocketmq-exporter, with its names, label
//! names and types (all gauges), computed from the same statistics the
//! exporter would fetch with VIEW_BROKER_STATS_DATA, GET_CONSUME_STATS and
//! GET_BROKER_RUNTIME_INFO, so that its Grafana dashboards work unchanged:
//! `rocketmq_broker_tps`, `rocketmq_broker_qps`, `rocketmq_producer_tps`,
//! `rocketmq_producer_message_size`, `rocketmq_producer_offset`,
//! `rocketmq_topic_retry_offset`, `rocketmq_topic_dlq_offset`,
//! `rocketmq_consumer_tps`, `rocketmq_consumer_message_size`,
//! `rocketmq_send_back_nums`, `rocketmq_consumer_offset`, `rocketmq_group_diff`,
//! `rocketmq_group_retrydiff`, `rocketmq_group_dlqdiff`,
//! `rocketmq_group_get_latency_by_storetime` and the `rocketmq_brokeruntime_*`
//! family. Rates are over the last minute, as the exporter reads them.
//!
//! Then mq's own (`mq_*`: totals as counters, latency histograms of appends,
//! flushes and SYNC_MASTER replication, how far each slave is behind,
//! connections, store size) and the process's (`process_*`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mq_protocol::body::MessageModel;
use mq_protocol::topics::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};

use super::handle::{admin::runtime_info, offsets::topic_consume_stats};
use super::{Broker, Replication};
use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::{process, MetricsSource};

/// The broker, as a scrape sees it.
pub(crate) struct BrokerMetrics {
    pub(crate) broker: Arc<Broker>,
    /// Connections open to the main and VIP ports.
    pub(crate) connections: Arc<AtomicUsize>,
}

/// `rocketmq_brokeruntime_*` families: (name suffix, runtime info key, which
/// of a three-rate value; `None` for a plain number).
const RUNTIME: &[(&str, &str, Option<usize>)] = &[
    ("msg_put_total_today_now", "msgPutTotalTodayNow", None),
    ("msg_gettotal_today_now", "msgGetTotalTodayNow", None),
    ("dispatch_behind_bytes", "dispatchBehindBytes", None),
    ("put_message_size_total", "putMessageSizeTotal", None),
    ("put_message_average_size", "putMessageAverageSize", None),
    (
        "query_threadpool_queue_capacity",
        "queryThreadPoolQueueCapacity",
        None,
    ),
    (
        "remain_transientstore_buffer_numbs",
        "remainTransientStoreBufferNumbs",
        None,
    ),
    (
        "earliest_message_timestamp",
        "earliestMessageTimeStamp",
        None,
    ),
    (
        "putmessage_entire_time_max",
        "putMessageEntireTimeMax",
        None,
    ),
    (
        "start_accept_sendrequest_time",
        "startAcceptSendRequestTimeStamp",
        None,
    ),
    (
        "send_threadpool_queue_size",
        "sendThreadPoolQueueSize",
        None,
    ),
    ("putmessage_times_total", "putMessageTimesTotal", None),
    (
        "getmessage_entire_time_max",
        "getMessageEntireTimeMax",
        None,
    ),
    ("pagecache_lock_time_mills", "pageCacheLockTimeMills", None),
    ("commitlog_disk_ratio", "commitLogDiskRatio", None),
    ("consumequeue_disk_ratio", "consumeQueueDiskRatio", None),
    ("getfound_tps600", "getFoundTps", Some(2)),
    ("getfound_tps60", "getFoundTps", Some(1)),
    ("getfound_tps10", "getFoundTps", Some(0)),
    ("gettotal_tps600", "getTotalTps", Some(2)),
    ("gettotal_tps60", "getTotalTps", Some(1)),
    ("gettotal_tps10", "getTotalTps", Some(0)),
    ("gettransfered_tps600", "getTransferedTps", Some(2)),
    ("gettransfered_tps60", "getTransferedTps", Some(1)),
    ("gettransfered_tps10", "getTransferedTps", Some(0)),
    ("getmiss_tps600", "getMissTps", Some(2)),
    ("getmiss_tps60", "getMissTps", Some(1)),
    ("getmiss_tps10", "getMissTps", Some(0)),
    ("put_tps600", "putTps", Some(2)),
    ("put_tps60", "putTps", Some(1)),
    ("put_tps10", "putTps", Some(0)),
    ("dispatch_maxbuffer", "dispatchMaxBuffer", None),
    (
        "pull_threadpoolqueue_capacity",
        "pullThreadPoolQueueCapacity",
        None,
    ),
    (
        "send_threadpoolqueue_capacity",
        "sendThreadPoolQueueCapacity",
        None,
    ),
    ("pull_threadpoolqueue_size", "pullThreadPoolQueueSize", None),
    (
        "query_threadpoolqueue_size",
        "queryThreadPoolQueueSize",
        None,
    ),
    (
        "pull_threadpoolqueue_headwait_timemills",
        "pullThreadPoolQueueHeadWaitTimeMills",
        None,
    ),
    (
        "query_threadpoolqueue_headwait_timemills",
        "queryThreadPoolQueueHeadWaitTimeMills",
        None,
    ),
    (
        "send_threadpoolqueue_headwait_timemills",
        "sendThreadPoolQueueHeadWaitTimeMills",
        None,
    ),
    (
        "msg_gettotal_yesterdaymorning",
        "msgGetTotalYesterdayMorning",
        None,
    ),
    (
        "msg_puttotal_yesterdaymorning",
        "msgPutTotalYesterdayMorning",
        None,
    ),
    ("msg_gettotal_todaymorning", "msgGetTotalTodayMorning", None),
    ("msg_puttotal_todaymorning", "msgPutTotalTodayMorning", None),
    ("commitlog_maxoffset", "commitLogMaxOffset", None),
    ("commitlog_minoffset", "commitLogMinOffset", None),
    ("put_latency_99", "putLatency99", None),
    ("put_latency_999", "putLatency999", None),
];

/// The `rocketmq_brokeruntime_pmdt_*` suffixes, one per put latency band.
const PMDT: [&str; 13] = [
    "0ms",
    "0to10ms",
    "10to50ms",
    "50to100ms",
    "100to200ms",
    "200to500ms",
    "500to1s",
    "1to2s",
    "2to3s",
    "3to4s",
    "4to5s",
    "5to10s",
    "10stomore",
];

impl MetricsSource for BrokerMetrics {
    fn render(&self, out: &mut Exposition) {
        let b = &*self.broker;
        let now = mq_protocol::time::now_ms();
        let config = b.config();
        let cluster = config.cluster_name.as_str();
        let name = config.broker_name.as_str();
        let addr = config.broker_addr().to_string();
        let stats = &b.stats;

        // Broker rates.
        let broker_labels = [("cluster", cluster), ("brokerIP", &addr), ("broker", name)];
        out.family("rocketmq_broker_tps", Kind::Gauge, "BrokerPutNums")
            .sample(&broker_labels, stats.broker_put.minute(now).tps);
        out.family("rocketmq_broker_qps", Kind::Gauge, "BrokerGetNums")
            .sample(&broker_labels, stats.broker_get.minute(now).tps);

        // Topics.
        let topics = stats.topics();
        out.family("rocketmq_producer_tps", Kind::Gauge, "TopicPutNums");
        for (topic, t) in &topics {
            out.sample(
                &[("cluster", cluster), ("broker", name), ("topic", topic)],
                t.put_nums.minute(now).tps,
            );
        }
        out.family(
            "rocketmq_producer_message_size",
            Kind::Gauge,
            "TopicPutMessageSize",
        );
        for (topic, t) in &topics {
            out.sample(
                &[("cluster", cluster), ("broker", name), ("topic", topic)],
                t.put_size.minute(now).tps,
            );
        }
        let mut offsets = Vec::new();
        for topic in b.topics.all().topic_config_table.into_keys() {
            let end: i64 = b
                .store
                .queue_ids(&topic)
                .into_iter()
                .map(|q| b.store.max_offset(&topic, q))
                .sum();
            offsets.push((topic, end));
        }
        for (family, help, prefix) in [
            ("rocketmq_producer_offset", "TopicOffset", None),
            (
                "rocketmq_topic_retry_offset",
                "TopicRetryOffset",
                Some(RETRY_GROUP_TOPIC_PREFIX),
            ),
        ] {
            out.family(family, Kind::Gauge, help);
            for (topic, end) in &offsets {
                let is_retry = topic.starts_with(RETRY_GROUP_TOPIC_PREFIX);
                let is_dlq = topic.starts_with(DLQ_GROUP_TOPIC_PREFIX);
                let wanted = match prefix {
                    None => !is_retry && !is_dlq,
                    Some(_) => is_retry,
                };
                if wanted {
                    out.sample(
                        &[("cluster", cluster), ("broker", name), ("topic", topic)],
                        *end as f64,
                    );
                }
            }
        }
        out.family("rocketmq_topic_dlq_offset", Kind::Gauge, "TopicRetryOffset");
        for (topic, end) in &offsets {
            if let Some(group) = topic.strip_prefix(DLQ_GROUP_TOPIC_PREFIX) {
                out.sample(
                    &[("cluster", cluster), ("broker", name), ("group", group)],
                    *end as f64,
                );
            }
        }

        // Groups: pull rates.
        let groups = stats.groups();
        for (family, help, pick) in [
            (
                "rocketmq_consumer_tps",
                "GroupGetNums",
                (|g, now| g.get_nums.minute(now).tps) as fn(&super::stats::GroupStats, i64) -> f64,
            ),
            (
                "rocketmq_consumer_message_size",
                "GroupGetMessageSize",
                |g, now| g.get_size.minute(now).tps,
            ),
            ("rocketmq_send_back_nums", "SendBackNums", |g, now| {
                g.send_back.minute(now).sum as f64
            }),
        ] {
            out.family(family, Kind::Gauge, help);
            for (group, topic, g) in &groups {
                out.sample(
                    &[
                        ("cluster", cluster),
                        ("broker", name),
                        ("topic", topic),
                        ("group", group),
                    ],
                    pick(g, now),
                );
            }
        }

        // Groups: progress.
        let mut progress = Vec::new();
        for group in b.groups.snapshot().subscription_group_table.into_keys() {
            let online = b.clients.consumer_ids(&group).len();
            let broadcasting = b
                .clients
                .consumer_connection(&group)
                .is_some_and(|c| c.message_model == MessageModel::Broadcasting);
            for topic in b.offsets.topics_of_group(&group) {
                if let Some(cs) = topic_consume_stats(b, &group, &topic, now) {
                    progress.push((group.clone(), topic, online, broadcasting, cs));
                }
            }
        }
        out.family(
            "rocketmq_consumer_offset",
            Kind::Gauge,
            "GroupBrokerTotalOffset",
        );
        for (group, topic, _, _, cs) in &progress {
            let committed: i64 = cs.offset_table.values().map(|o| o.consumer_offset).sum();
            out.sample(
                &[
                    ("cluster", cluster),
                    ("broker", name),
                    ("topic", topic),
                    ("group", group),
                ],
                committed as f64,
            );
        }
        for (family, help, pick) in [
            (
                "rocketmq_group_diff",
                "GroupDiff",
                (|t: &str| {
                    !t.starts_with(RETRY_GROUP_TOPIC_PREFIX)
                        && !t.starts_with(DLQ_GROUP_TOPIC_PREFIX)
                }) as fn(&str) -> bool,
            ),
            ("rocketmq_group_retrydiff", "GroupRetryDiff", |t| {
                t.starts_with(RETRY_GROUP_TOPIC_PREFIX)
            }),
            ("rocketmq_group_dlqdiff", "GroupDLQDiff", |t| {
                t.starts_with(DLQ_GROUP_TOPIC_PREFIX)
            }),
        ] {
            out.family(family, Kind::Gauge, help);
            // The exporter reports lag for clustering groups only (msgModel 1).
            for (group, topic, online, _, cs) in progress.iter().filter(|p| !p.3) {
                if pick(topic) {
                    let diff: i64 = cs
                        .offset_table
                        .values()
                        .map(|o| (o.broker_offset - o.consumer_offset).max(0))
                        .sum();
                    out.sample(
                        &[
                            ("group", group),
                            ("topic", topic),
                            ("countOfOnlineConsumers", &online.to_string()),
                            ("msgModel", "1"),
                        ],
                        diff as f64,
                    );
                }
            }
        }
        out.family(
            "rocketmq_group_get_latency_by_storetime",
            Kind::Gauge,
            "GroupGetLatencyByStoreTime",
        );
        for (group, topic, _, _, cs) in progress.iter().filter(|p| !p.3) {
            // How old the oldest message not yet consumed is, over the queues.
            let lag = cs
                .offset_table
                .iter()
                .filter(|(_, o)| o.consumer_offset < o.broker_offset)
                .filter_map(|(mq, o)| {
                    b.store
                        .message_store_time(topic, mq.queue_id, o.consumer_offset)
                })
                .map(|stored| (now - stored).max(0))
                .max()
                .unwrap_or(0);
            out.sample(
                &[
                    ("cluster", cluster),
                    ("broker", name),
                    ("topic", topic),
                    ("group", group),
                ],
                lag as f64,
            );
        }

        // The runtime info, as the exporter turns it into gauges.
        let info = runtime_info(b).table;
        let boot = b.boot_timestamp.to_string();
        let version = mq_protocol::frame::CURRENT_VERSION.to_string();
        let runtime_labels = [
            ("cluster", cluster),
            ("brokerIP", addr.as_str()),
            ("brokerHost", ""),
            ("des", "V4_9_7"),
            ("boottime", boot.as_str()),
            ("broker_version", version.as_str()),
        ];
        for (suffix, band) in PMDT.iter().zip(stats.put_latency.bands()) {
            out.family(
                &format!("rocketmq_brokeruntime_pmdt_{suffix}"),
                Kind::Gauge,
                "Appends in this latency band over the last minute.",
            )
            .sample(&runtime_labels, band as f64);
        }
        for &(suffix, key, which) in RUNTIME {
            let Some(text) = info.get(key) else { continue };
            let field = match which {
                Some(i) => text.split(' ').nth(i),
                None => Some(text.as_str()),
            };
            if let Some(value) = field.and_then(|f| f.parse::<f64>().ok()) {
                out.family(&format!("rocketmq_brokeruntime_{suffix}"), Kind::Gauge, key)
                    .sample(&runtime_labels, value);
            }
        }
        let disk = b.store.disk_reading();
        out.family(
            "rocketmq_brokeruntime_commitlogdir_capacity_free",
            Kind::Gauge,
            "brokerRuntimeCommitLogDirCapacityFree",
        )
        .sample(&runtime_labels, disk.free_bytes as f64);
        out.family(
            "rocketmq_brokeruntime_commitlogdir_capacity_total",
            Kind::Gauge,
            "brokerRuntimeCommitLogDirCapacityTotal",
        )
        .sample(&runtime_labels, disk.total_bytes as f64);
        out.family(
            "rocketmq_brokeruntime_remain_howmanydata_toflush",
            Kind::Gauge,
            "Bytes appended and not yet flushed.",
        )
        .sample(&runtime_labels, b.store.unflushed_bytes() as f64);

        // mq's own.
        let counts = stats.counters.counts();
        out.single(
            "mq_messages_put_total",
            Kind::Counter,
            "Messages stored since start.",
            counts.put as f64,
        );
        out.single(
            "mq_messages_pulled_total",
            Kind::Counter,
            "Messages handed to consumers since start.",
            counts.transferred as f64,
        );
        out.single(
            "mq_put_bytes_total",
            Kind::Counter,
            "Bytes stored since start.",
            stats.put_bytes.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "mq_put_failures_total",
            Kind::Counter,
            "Appends the store refused since start.",
            stats.put_failed.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "mq_put_latency_seconds",
            Kind::Histogram,
            "Time to append a send's messages to the CommitLog.",
        )
        .histogram(&[], &stats.put_latency.histogram.values());
        out.family(
            "mq_flush_latency_seconds",
            Kind::Histogram,
            "Time of each CommitLog flush (msync).",
        )
        .histogram(&[], &b.store.flush_latency());
        out.family(
            "mq_replication_latency_seconds",
            Kind::Histogram,
            "Time a SYNC_MASTER send waited for its flush and a slave's acknowledgement.",
        )
        .histogram(&[], &stats.replication_wait.values());
        out.single(
            "mq_connections",
            Kind::Gauge,
            "Remoting connections open to the main and VIP ports.",
            self.connections.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "mq_pull_holding_requests",
            Kind::Gauge,
            "Pulls parked until messages arrive (long polling).",
            b.holds.len() as f64,
        );
        let (min, max) = b.store.commit_log_range();
        match &b.replication {
            Replication::Master(ha) => {
                out.family(
                    "mq_ha_slave_behind_bytes",
                    Kind::Gauge,
                    "Bytes of the CommitLog a connected slave has not acknowledged.",
                );
                for link in ha.links() {
                    let behind = if link.acked < 0 {
                        max
                    } else {
                        max - link.acked
                    };
                    out.sample(&[("slave", &link.addr.to_string())], behind.max(0) as f64);
                }
            }
            Replication::Slave(client) => out.single(
                "mq_ha_connected",
                Kind::Gauge,
                "1 while this slave is linked to its master.",
                f64::from(u8::from(client.is_connected())),
            ),
        }
        out.single(
            "mq_store_commitlog_bytes",
            Kind::Gauge,
            "Bytes of messages the CommitLog holds (its end less its start).",
            (max - min).max(0) as f64,
        );
        out.single(
            "mq_store_disk_free_bytes",
            Kind::Gauge,
            "Free bytes on the store's file system.",
            disk.free_bytes as f64,
        );
        out.single(
            "mq_store_disk_total_bytes",
            Kind::Gauge,
            "Size of the store's file system.",
            disk.total_bytes as f64,
        );
        process::render(out);
    }
}
