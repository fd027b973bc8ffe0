//! The broker itself, as admin tools ask about it: GET_BROKER_RUNTIME_INFO
//! (mqadmin brokerStatus), GET_BROKER_CONFIG, and DELETE_EXPIRED_COMMITLOG
//! (one retention round now, as if it were `deleteWhen`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::broker::stats::rate::PerSecond;
use crate::store::disk_guard::human_bytes;
use crate::store::dispatch::SCHEDULE_TOPIC;

use mq_protocol::body::KvTable;
use mq_protocol::frame::RemotingCommand;

use super::{ok, ok_body, Reply};
use crate::broker::{Broker, Replication};

/// GET_BROKER_RUNTIME_INFO: counters and store state, as a KV table.
pub(crate) fn get_broker_runtime_info(broker: &Broker, req: &RemotingCommand) -> Reply {
    Ok(ok_body(req, runtime_info(broker).encode()))
}

/// GET_BROKER_CONFIG: the configuration as properties text, with the topic
/// table's data version.
pub(crate) fn get_broker_config(broker: &Broker, req: &RemotingCommand) -> Reply {
    let mut resp = ok_body(req, broker.config().to_properties().into_bytes());
    let version = broker.topics.data_version();
    resp.put("version", String::from_utf8_lossy(&version.encode()));
    Ok(resp)
}

/// DELETE_EXPIRED_COMMITLOG: deletes the expired commit log segments now.
pub(crate) async fn delete_expired_commitlog(broker: &Broker, req: &RemotingCommand) -> Reply {
    let store = broker.store.clone();
    let n = blocking::unblock(move || store.delete_expired_now()).await?;
    log::info!("deleted {n} expired commit log segments on request");
    Ok(ok(req))
}

/// GET_BROKER_RUNTIME_INFO's table: every key RocketMQ 4.9.7 fills (its
/// StoreStatsService, DefaultMessageStore and AdminBrokerProcessor), with the
/// same formats, so that mqadmin clusterList and brokerStatus, the Dashboard
/// and rocketmq-exporter parse it; plus mq's replication keys.
pub(crate) fn runtime_info(broker: &Broker) -> KvTable {
    let now = mq_protocol::time::now_ms();
    let stats = &broker.stats;
    let store = &broker.store;
    let (min, max) = store.commit_log_range();
    let mut table = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        table.insert(k.to_owned(), v);
    };
    put("brokerVersionDesc", "V4_9_7".into());
    put(
        "brokerVersion",
        mq_protocol::frame::CURRENT_VERSION.to_string(),
    );
    put("bootTimestamp", broker.boot_timestamp.to_string());
    put("runtime", runtime_text(broker.started.elapsed().as_secs()));

    // Messages and bytes stored, pulls answered, and their rates.
    let counts = stats.counters.counts();
    let bytes = stats.put_bytes.load(Ordering::Relaxed);
    put("putMessageTimesTotal", counts.put.to_string());
    put("putMessageSizeTotal", bytes.to_string());
    put(
        "putMessageAverageSize",
        java_double(bytes as f64 / counts.put.max(1) as f64),
    );
    put(
        "putMessageFailedTimes",
        stats.put_failed.load(Ordering::Relaxed).to_string(),
    );
    put(
        "putMessageEntireTimeMax",
        stats.put_latency.max_ms().to_string(),
    );
    put(
        "getMessageEntireTimeMax",
        stats.get_max_ms.load(Ordering::Relaxed).to_string(),
    );
    put("putMessageDistributeTime", stats.put_latency.distribution());
    put(
        "putLatency99",
        format!("{:.2}", stats.put_latency.percentile(0.99)),
    );
    put(
        "putLatency999",
        format!("{:.2}", stats.put_latency.percentile(0.999)),
    );
    let spans = [10, 60, 600].map(|secs| stats.rates(secs, now));
    let three = |pick: fn(&PerSecond) -> f64| {
        spans
            .iter()
            .map(|r| java_double(pick(r)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    put("putTps", three(|r| r.put));
    put("getFoundTps", three(|r| r.get_found));
    put("getMissTps", three(|r| r.get_miss));
    put("getTotalTps", three(|r| r.get_found + r.get_miss));
    put("getTransferedTps", three(|r| r.transferred));

    // Today's and yesterday's totals.
    let mornings = stats.mornings();
    put("msgPutTotalTodayNow", stats.broker_put.value().to_string());
    put("msgPutTotalTodayMorning", mornings.put_today.to_string());
    put(
        "msgPutTotalYesterdayMorning",
        mornings.put_yesterday.to_string(),
    );
    put("msgGetTotalTodayNow", stats.broker_get.value().to_string());
    put("msgGetTotalTodayMorning", mornings.get_today.to_string());
    put(
        "msgGetTotalYesterdayMorning",
        mornings.get_yesterday.to_string(),
    );

    // RocketMQ's thread pool queues: here, the requests being handled.
    let capacity = request_capacity(broker).to_string();
    for (prefix, size_key, capacity_key, tracker) in [
        (
            Some("send"),
            "sendThreadPoolQueueSize",
            "sendThreadPoolQueueCapacity",
            &stats.sends,
        ),
        (
            Some("pull"),
            "pullThreadPoolQueueSize",
            "pullThreadPoolQueueCapacity",
            &stats.pulls,
        ),
        (
            Some("query"),
            "queryThreadPoolQueueSize",
            "queryThreadPoolQueueCapacity",
            &stats.queries,
        ),
        (
            None,
            "EndTransactionQueueSize",
            "EndTransactionThreadPoolQueueCapacity",
            &stats.end_transactions,
        ),
    ] {
        put(size_key, tracker.len().to_string());
        put(capacity_key, capacity.clone());
        if let Some(prefix) = prefix {
            put(
                &format!("{prefix}ThreadPoolQueueHeadWaitTimeMills"),
                tracker.oldest_wait_ms(now).to_string(),
            );
        }
    }

    // The store.
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    put(
        "dispatchBehindBytes",
        (max - store.dispatched_offset()).max(0).to_string(),
    );
    // RocketMQ 4.9.7 declares dispatchMaxBuffer and never sets it.
    put("dispatchMaxBuffer", "0".into());
    put("pageCacheLockTimeMills", store.lock_time_ms().to_string());
    // An empty log has no earliest message: say "now", so that clusterList
    // shows 0 hours of messages rather than the 56 years since 1970.
    put(
        "earliestMessageTimeStamp",
        store.earliest_store_time().unwrap_or(now).to_string(),
    );
    // mq accepts sends as soon as it listens (RocketMQ's default of 0: no
    // holding back after start).
    put("startAcceptSendRequestTimeStamp", "0".into());
    // mq has no transient store pool: RocketMQ reports Integer.MAX_VALUE then.
    put("remainTransientStoreBufferNumbs", i32::MAX.to_string());
    put(
        "remainHowManyDataToFlush",
        human_bytes(store.unflushed_bytes().unsigned_abs()),
    );
    let disk = store.disk_reading();
    // One file system holds the log, the queues and the index.
    let used = if disk.total_bytes > 0 {
        (disk.total_bytes - disk.free_bytes.min(disk.total_bytes)) as f64 / disk.total_bytes as f64
    } else {
        0.0
    };
    let commit_log_dir = store.root().join("commitlog");
    put("commitLogDiskRatio", java_double(used));
    put(
        &format!("commitLogDiskRatio_{}", commit_log_dir.display()),
        java_double(used),
    );
    put("consumeQueueDiskRatio", java_double(used));
    put(
        "commitLogDirCapacity",
        format!(
            "Total : {}, Free : {}.",
            human_bytes(disk.total_bytes),
            human_bytes(disk.free_bytes)
        ),
    );
    put("diskFull", store.is_disk_full().to_string());
    for queue in store.queue_ids(SCHEDULE_TOPIC) {
        let level = queue + 1;
        put(
            &format!("scheduleMessageOffset_{level}"),
            format!(
                "{},{}",
                broker.schedule.get(level),
                store.max_offset(SCHEDULE_TOPIC, queue)
            ),
        );
    }
    put("brokerRole", broker.config().role_name().to_owned());
    // Replication (mq's keys; RocketMQ 4.9 reports none): a master's slaves
    // and how far they acknowledged, a slave's master and whether it is linked.
    match &broker.replication {
        Replication::Master(ha) => {
            let links = ha.links();
            put("haSlaveCount", links.len().to_string());
            put("haSlaveAckOffset", ha.acked().to_string());
            for link in links {
                put(&format!("haSlave_{}", link.addr), link.acked.to_string());
            }
        }
        Replication::Slave(client) => {
            put("haMasterAddress", client.master().unwrap_or_default());
            put("haConnected", client.is_connected().to_string());
            put("masterAddr", broker.master_addr().unwrap_or_default());
        }
    }
    put("pullHoldingRequests", broker.holds.len().to_string());
    KvTable { table }
}

/// Requests the broker handles at once at most: each connection's limit
/// times the connections a listener admits.
fn request_capacity(broker: &Broker) -> usize {
    let per_connection = crate::server::ServerLimits::default().max_in_flight;
    let connections = broker
        .config()
        .max_connections
        .unwrap_or_else(|| crate::descriptors::connections_per_listener(2));
    per_connection.saturating_mul(connections)
}

/// Uptime as RocketMQ writes it: `[ 0 days, 1 hours, 2 minutes, 3 seconds ]`.
fn runtime_text(secs: u64) -> String {
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A double as Java's `String.valueOf` writes the common cases: always with a
/// fraction (`0.0`, `12.5`), never in exponent form for rates and ratios.
fn java_double(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rocketmq_writes_them() {
        assert_eq!(
            runtime_text(93_784),
            "[ 1 days, 2 hours, 3 minutes, 4 seconds ]"
        );
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(3.0), "3.0");
    }
}
