//! Housekeeping: persists consumer offsets every `flushConsumerOffsetInterval`
//! and expires clients silent for 120 s and stale queue locks (checked every
//! 10 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;

/// How long a client may stay silent before it is forgotten (RocketMQ:
/// channelExpiredTimeout).
const CLIENT_EXPIRY: Duration = Duration::from_secs(120);
/// How often expired clients and locks are looked for.
const EXPIRY_SCAN: Duration = Duration::from_secs(10);

/// Runs until shutdown.
pub(crate) async fn housekeeping_loop(broker: Arc<Broker>) {
    let tick = broker
        .config
        .flush_consumer_offset_interval
        .min(EXPIRY_SCAN);
    let mut last_scan = Instant::now();
    loop {
        let stop = broker.shutdown.sleep(tick).await;
        if stop {
            return;
        }
        let b = broker.clone();
        if let Err(e) = blocking::unblock(move || b.offsets.persist()).await {
            log::error!("persisting consumer offsets: {e}");
        }
        if last_scan.elapsed() >= EXPIRY_SCAN {
            last_scan = Instant::now();
            for group in broker.clients.remove_expired(CLIENT_EXPIRY) {
                broker.notify_consumer_ids_changed(&group);
            }
            broker.locks.remove_expired();
        }
    }
}
