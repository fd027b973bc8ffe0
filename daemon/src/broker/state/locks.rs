//! Queue locks of orderly consumers (RocketMQ's RebalanceLockManager): which
//! client of a group holds which queue, renewed by LOCK_BATCH_MQ and dropped
//! when not renewed for [`LOCK_MAX_LIVE`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mq_protocol::body::MessageQueue;

/// How long a queue lock lives without renewal (RocketMQ: 60 s).
const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

/// The owner of each locked queue of one group, and when it last renewed.
type GroupLocks = HashMap<MessageQueue, (String, Instant)>;

/// Which client holds which queue (orderly consumption), with expiry.
#[derive(Default)]
pub(crate) struct LockManager {
    table: Mutex<HashMap<String, GroupLocks>>,
}

impl LockManager {
    /// Locks what it can of `queues` for `client`; returns the queues the client now holds.
    pub(crate) fn lock(
        &self,
        group: &str,
        client: &str,
        queues: &BTreeSet<MessageQueue>,
    ) -> BTreeSet<MessageQueue> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let locks = table.entry(group.to_owned()).or_default();
        let mut granted = BTreeSet::new();
        for mq in queues {
            match locks.get_mut(mq) {
                Some((owner, at)) if owner == client => {
                    *at = now;
                    granted.insert(mq.clone());
                }
                Some((_, at)) if now.duration_since(*at) < LOCK_MAX_LIVE => {}
                _ => {
                    locks.insert(mq.clone(), (client.to_owned(), now));
                    granted.insert(mq.clone());
                }
            }
        }
        granted
    }

    /// Releases the queues `client` holds among `queues`.
    pub(crate) fn unlock(&self, group: &str, client: &str, queues: &BTreeSet<MessageQueue>) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(locks) = table.get_mut(group) {
            for mq in queues {
                if locks.get(mq).is_some_and(|(owner, _)| owner == client) {
                    locks.remove(mq);
                }
            }
        }
    }

    /// Drops expired locks.
    pub(crate) fn remove_expired(&self) {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        for locks in table.values_mut() {
            locks.retain(|_, (_, at)| now.duration_since(*at) < LOCK_MAX_LIVE);
        }
        table.retain(|_, l| !l.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_exclusive_and_renewable() {
        let locks = LockManager::default();
        let q: BTreeSet<MessageQueue> = [
            MessageQueue::new("T", "b", 0),
            MessageQueue::new("T", "b", 1),
        ]
        .into();
        assert_eq!(locks.lock("G", "c1", &q).len(), 2);
        assert!(locks.lock("G", "c2", &q).is_empty());
        assert_eq!(locks.lock("G", "c1", &q).len(), 2);
        locks.unlock("G", "c1", &q);
        assert_eq!(locks.lock("G", "c2", &q).len(), 2);
        // Another group's locks are separate.
        assert_eq!(locks.lock("H", "c1", &q).len(), 2);
    }
}
