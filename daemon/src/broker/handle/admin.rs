//! The broker itself, as admin tools ask about it: GET_BROKER_RUNTIME_INFO
//! (mqadmin brokerStatus), GET_BROKER_CONFIG, and DELETE_EXPIRED_COMMITLOG
//! (one retention round now, as if it were `deleteWhen`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

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

/// GET_BROKER_RUNTIME_INFO's table, with the keys mqadmin's brokerStatus prints.
fn runtime_info(broker: &Broker) -> KvTable {
    let (min, max) = broker.store.commit_log_range();
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
    put("runtime", format!("{:?}", broker.started.elapsed()));
    put(
        "msgPutTotalTodayNow",
        broker.put_count.load(Ordering::Relaxed).to_string(),
    );
    put(
        "msgGetTotalTodayNow",
        broker.get_count.load(Ordering::Relaxed).to_string(),
    );
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    put(
        "dispatchBehindBytes",
        (max - broker.store.dispatched_offset()).to_string(),
    );
    put("putMessageDistributeTime", String::new());
    put("pageCacheLockTimeMills", "0".into());
    put("earliestMessageTimeStamp", "0".into());
    put("remainHowManyDataToFlush", "0 B".into());
    put("diskFull", broker.store.is_disk_full().to_string());
    // One file system holds the log, the queues and the index.
    let disk_ratio = format!(
        "{:.2}",
        f64::from(broker.store.disk_reading().used_percent) / 100.0
    );
    put("commitLogDiskRatio", disk_ratio.clone());
    put("consumeQueueDiskRatio", disk_ratio);
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
