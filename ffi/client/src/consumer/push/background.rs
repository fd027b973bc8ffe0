//! A push consumer's background loops: rebalancing, committing offsets, and
//! (orderly, clustering) renewing queue locks. Each holds the consumer
//! weakly and ends once it is closed or dropped.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::rebalance::{lock_all, rebalance};
use super::state::Inner;
use crate::consumer::queue_lock::LOCK_INTERVAL;
use crate::consumer::rebalance::REBALANCE_INTERVAL;
use crate::timeout::wait_signal;

/// Rebalances at start, every 20 s, at once when told, and every second
/// while a topic could not be settled (no route yet, heartbeat not seen).
pub(super) async fn rebalance_loop(weak: Weak<Inner>) {
    let Some(inner) = weak.upgrade() else { return };
    let rx = inner.rebalance_now.1.clone();
    // Routes first, so the heartbeat reaches every broker of the topics.
    for topic in inner.subscriptions.keys() {
        if let Err(e) = inner.instance.update_route(topic).await {
            log::debug!("{}: route of {topic}: {e}", inner.config.group);
        }
    }
    inner.instance.send_heartbeat_to_all_brokers().await;
    drop(inner);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        let balanced = rebalance(&inner).await;
        inner.balanced.store(balanced, Ordering::Release);
        drop(inner);
        let wait = if balanced {
            REBALANCE_INTERVAL
        } else {
            Duration::from_secs(1)
        };
        wait_signal(&rx, wait).await;
    }
}

/// Commits the offsets (one-way) every persist interval.
pub(super) async fn persist_loop(weak: Weak<Inner>) {
    let Some(every) = weak
        .upgrade()
        .map(|i| i.instance.config().persist_consumer_offset_interval)
    else {
        return;
    };
    loop {
        async_io::Timer::after(every).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        let mqs = inner.assigned();
        if let Err(e) = inner.store.persist_all(Some(&mqs), false).await {
            log::debug!("persisting offsets of {}: {e}", inner.config.group);
        }
    }
}

/// Orderly, clustering: renews the queue locks every 20 s.
pub(super) async fn lock_loop(weak: Weak<Inner>) {
    loop {
        async_io::Timer::after(LOCK_INTERVAL).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        lock_all(&inner).await;
    }
}
