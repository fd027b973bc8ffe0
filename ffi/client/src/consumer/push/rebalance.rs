//! A push consumer's side of rebalancing (Java's RebalancePushImpl): it
//! applies the group's assignment to its process queues, starting a pull loop
//! (and, orderly, a consume loop) for each new queue from where the group left
//! it, and stopping, committing and unlocking each queue it lost; it applies
//! offsets a broker said to reset to, and renews orderly queue locks.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use mq_protocol::body::MessageQueue;

use super::orderly::orderly_loop;
use super::process_queue::ProcessQueue;
use super::pull_loop::pull_loop;
use super::state::Inner;
use crate::consumer::consume_from::start_offset;
use crate::consumer::queue_lock::{lock_batch, unlock_batch};
use crate::consumer::rebalance::{assignment, Incomplete};
use crate::timeout::within;

/// One rebalance of every subscribed topic, after applying resets; false if
/// a topic could not be settled (the caller retries sooner).
pub(super) async fn rebalance(inner: &Arc<Inner>) -> bool {
    apply_resets(inner).await;
    let mut balanced = true;
    for topic in inner.subscriptions.keys() {
        if inner.is_closed() {
            return true;
        }
        match assignment(
            &inner.instance,
            &inner.config.group,
            inner.config.message_model,
            topic,
        )
        .await
        {
            Ok(set) => {
                if !apply(inner, topic, set.into_iter().collect()).await {
                    balanced = false;
                }
            }
            Err(Incomplete::Failed(e)) => {
                log::debug!("{}: rebalance of {topic}: {e}", inner.config.group);
                balanced = false;
            }
            Err(why) => {
                log::debug!("{}: rebalance of {topic}: {why:?}", inner.config.group);
                balanced = false;
            }
        }
    }
    if inner.needs_locks() && !inner.is_closed() {
        // Queues whose lock another client still held: try again now,
        // and in a second if still not ours (not only every 20 s).
        let unlocked = inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|pq| !pq.lock_is_fresh());
        if unlocked {
            lock_all(inner).await;
            balanced &= inner
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .all(|pq| pq.lock_is_fresh());
        }
    }
    balanced
}

/// Applies offsets a broker told us to reset to: each queue is dropped
/// without committing its old offset, the new one is committed, and the
/// rebalance that follows starts the queue again from it.
async fn apply_resets(inner: &Inner) {
    let resets = std::mem::take(
        &mut *inner
            .pending_resets
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    for (mq, offset) in resets {
        if !inner.subscriptions.contains_key(&mq.topic) {
            continue;
        }
        let pq = inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&mq);
        if let Some(pq) = pq {
            pq.mark_dropped();
            pq.stop_pulling();
            pq.wake();
        }
        inner.store.update(&mq, offset, false);
        if let Err(e) = inner.store.persist(&mq).await {
            log::warn!(
                "{}: committing reset offset of {mq:?}: {e}",
                inner.config.group
            );
        }
        log::info!("{}: {mq:?} reset to offset {offset}", inner.config.group);
    }
}

/// Makes `new` the assignment of `topic`; false if a new queue could not
/// be started (retried by the next rebalance).
async fn apply(inner: &Arc<Inner>, topic: &str, new: BTreeSet<MessageQueue>) -> bool {
    let (removed, added): (Vec<(MessageQueue, Arc<ProcessQueue>)>, Vec<MessageQueue>) = {
        let mut queues = inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<MessageQueue> = queues
            .keys()
            .filter(|q| q.topic == topic && !new.contains(*q))
            .cloned()
            .collect();
        let removed = gone
            .into_iter()
            .filter_map(|q| queues.remove(&q).map(|pq| (q, pq)))
            .collect();
        let added = new
            .iter()
            .filter(|q| !queues.contains_key(*q))
            .cloned()
            .collect();
        (removed, added)
    };
    for (mq, pq) in removed {
        remove_queue(inner, &mq, &pq).await;
    }
    if added.is_empty() {
        return true;
    }
    let locked = if inner.needs_locks() {
        lock_batch(
            &inner.instance,
            &inner.config.group,
            &added.iter().cloned().collect(),
        )
        .await
    } else {
        BTreeSet::new()
    };
    let mut complete = true;
    for mq in added {
        if inner.is_closed() {
            return true;
        }
        // Java's removeDirtyOffset: what the broker has is what counts.
        inner.store.remove(&mq);
        let offset = match start_offset(
            &inner.instance,
            &inner.store,
            &mq,
            inner.config.consume_from,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                log::debug!("{}: start offset of {mq:?}: {e}", inner.config.group);
                complete = false;
                continue;
            }
        };
        log::info!("{}: now consuming {mq:?} from {offset}", inner.config.group);
        let pq = Arc::new(ProcessQueue::new(offset, locked.contains(&mq)));
        let mut queues = inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.is_closed() || queues.contains_key(&mq) {
            continue;
        }
        let weak = Arc::downgrade(inner);
        let i = &inner.instance;
        let pull = i.spawn(pull_loop(weak.clone(), mq.clone(), pq.clone()));
        let consume = inner
            .config
            .orderly
            .then(|| i.spawn(orderly_loop(weak, mq.clone(), pq.clone())))
            .flatten();
        pq.set_tasks(pull, consume);
        queues.insert(mq, pq);
    }
    complete
}

/// A queue left this consumer: stop it, commit its offset, release its lock.
async fn remove_queue(inner: &Inner, mq: &MessageQueue, pq: &Arc<ProcessQueue>) {
    log::info!("{}: no longer consuming {mq:?}", inner.config.group);
    pq.mark_dropped();
    // The orderly loop ends by itself once it sees `dropped`.
    pq.stop_pulling();
    pq.wake();
    // Orderly: let the batch in flight finish (Java waits up to 1 s).
    let _guard = if inner.config.orderly {
        within(Duration::from_secs(1), pq.consume_lock.lock()).await
    } else {
        None
    };
    if let Err(e) = inner.store.persist(mq).await {
        log::debug!("committing {mq:?} on removal: {e}");
    }
    inner.store.remove(mq);
    if inner.needs_locks() {
        let set: BTreeSet<MessageQueue> = [mq.clone()].into_iter().collect();
        unlock_batch(&inner.instance, &inner.config.group, &set).await;
    }
}

/// Renews the locks of every assigned queue (orderly, clustering).
pub(super) async fn lock_all(inner: &Inner) {
    let queues = inner.assigned_queues();
    if queues.is_empty() {
        return;
    }
    let set: BTreeSet<MessageQueue> = queues.iter().map(|(q, _)| q.clone()).collect();
    let locked = lock_batch(&inner.instance, &inner.config.group, &set).await;
    for (mq, pq) in queues {
        pq.set_locked(locked.contains(&mq));
    }
}
