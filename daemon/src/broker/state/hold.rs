//! Long polling (RocketMQ's PullRequestHoldService): a pull that finds nothing
//! and may be suspended is parked here, and answered as soon as a message for
//! its queue is dispatched (the store's arrival listener wakes it) or when its
//! suspend timeout runs out, whichever comes first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};

use mq_protocol::frame::RemotingCommand;

use crate::server::Connection;

/// A parked pull.
pub(crate) struct HeldPull {
    /// Where to answer.
    pub(crate) conn: Arc<Connection>,
    /// The original request, re-executed on wake-up.
    pub(crate) request: RemotingCommand,
    /// The offset the pull waits beyond.
    pub(crate) offset: i64,
    /// When to give up and answer PULL_NOT_FOUND.
    pub(crate) deadline: Instant,
}

/// Parked pulls by topic and queue.
#[derive(Default)]
pub(crate) struct PullHolds {
    held: Mutex<HashMap<(String, i32), Vec<HeldPull>>>,
    /// Queues that got messages since the waker last looked, with their new max offset.
    arrived: Mutex<HashMap<(String, i32), i64>>,
    /// Wakes the waker task; bounded to one pending wake-up (they coalesce).
    wake: Option<(Sender<()>, Receiver<()>)>,
}

impl PullHolds {
    /// An empty set of holds.
    pub(crate) fn new() -> Self {
        PullHolds {
            held: Mutex::default(),
            arrived: Mutex::default(),
            wake: Some(async_channel::bounded(1)),
        }
    }

    /// Parks a pull.
    pub(crate) fn hold(&self, topic: &str, queue_id: i32, pull: HeldPull) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((topic.to_owned(), queue_id))
            .or_default()
            .push(pull);
    }

    /// Called (on the store's dispatcher thread) when a message reaches a queue.
    /// Cheap: records the queue and wakes the waker task if anyone waits on it.
    pub(crate) fn notify_arrival(&self, topic: &str, queue_id: i32, max_offset: i64) {
        let key = (topic.to_owned(), queue_id);
        if !self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&key)
        {
            return;
        }
        let mut arrived = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = arrived.entry(key).or_insert(max_offset);
        *entry = (*entry).max(max_offset);
        drop(arrived);
        if let Some((tx, _)) = &self.wake {
            // A wake-up already pending covers this one too.
            let _ = tx.try_send(());
        }
    }

    /// Waits until an arrival is notified or `timeout` passes.
    pub(crate) async fn wait(&self, timeout: Duration) {
        if let Some((_, rx)) = &self.wake {
            futures_lite::future::or(
                async {
                    let _ = rx.recv().await;
                },
                async {
                    async_io::Timer::after(timeout).await;
                },
            )
            .await;
        }
    }

    /// Takes the pulls that can be answered now: those on queues that got a
    /// message past their offset, those whose deadline passed, and those whose
    /// connection closed (dropped silently). `current_max` gives a queue's max
    /// offset, to catch arrivals that raced with parking.
    pub(crate) fn take_ready(
        &self,
        now: Instant,
        current_max: impl Fn(&str, i32) -> i64,
    ) -> Vec<(HeldPull, bool)> {
        let arrived: HashMap<(String, i32), i64> =
            std::mem::take(&mut *self.arrived.lock().unwrap_or_else(PoisonError::into_inner));
        let mut ready = Vec::new();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut emptied = HashSet::new();
        for (key, pulls) in held.iter_mut() {
            let max = arrived
                .get(key)
                .copied()
                .unwrap_or_else(|| current_max(&key.0, key.1));
            let mut i = 0;
            while i < pulls.len() {
                let p = &pulls[i];
                if p.conn.is_closed() {
                    pulls.swap_remove(i);
                } else if max > p.offset {
                    ready.push((pulls.swap_remove(i), true));
                } else if now >= p.deadline {
                    ready.push((pulls.swap_remove(i), false));
                } else {
                    i += 1;
                }
            }
            if pulls.is_empty() {
                emptied.insert(key.clone());
            }
        }
        for key in emptied {
            held.remove(&key);
        }
        ready
    }

    /// Takes every parked pull (shutdown answers them all).
    pub(crate) fn take_all(&self) -> Vec<HeldPull> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.drain().flat_map(|(_, pulls)| pulls).collect()
    }

    /// How many pulls are parked.
    pub(crate) fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum()
    }
}
