//! The broker's statistics, as RocketMQ 4.9.7's BrokerStatsManager and
//! StoreStatsService keep them and its admin tools read them: per topic, per
//! group and topic, and for the whole broker; rates over the last seconds,
//! minute, hour and day; message totals at the start of today and yesterday;
//! append latencies; requests in flight.
//!
//! Counting is cheap on the request path: one map lookup per request (a read
//! lock, taken for writing only the first time a topic or group is seen) and
//! relaxed atomic additions. The [`sampler`](crate::broker::task::stats) takes
//! the samples rates are computed from, every second and every 10 s, as
//! StatsItem does.
//!
//! - [`item`]: one statistic and its minute, hour and day windows.
//! - [`rate`]: the store's per-second rates (`putTps`, `getTransferedTps`, ...).
//! - [`put_latency`]: how long appends take.
//! - [`in_flight`]: requests being handled, and the age of the oldest.

pub(crate) mod in_flight;
pub(crate) mod item;
pub(crate) mod put_latency;
pub(crate) mod rate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::metrics::histogram::Histogram;
use in_flight::InFlight;
use item::{Snapshot, StatsItem};
use put_latency::PutLatency;
use rate::{RateCounters, Rates};

/// Statistic names, as BrokerStatsManager spells them (VIEW_BROKER_STATS_DATA's
/// `statsName`).
pub(crate) mod names {
    /// Messages stored per topic; key: the topic.
    pub(crate) const TOPIC_PUT_NUMS: &str = "TOPIC_PUT_NUMS";
    /// Bytes stored per topic; key: the topic.
    pub(crate) const TOPIC_PUT_SIZE: &str = "TOPIC_PUT_SIZE";
    /// Messages pulled per group; key: `topic@group`.
    pub(crate) const GROUP_GET_NUMS: &str = "GROUP_GET_NUMS";
    /// Bytes pulled per group; key: `topic@group`.
    pub(crate) const GROUP_GET_SIZE: &str = "GROUP_GET_SIZE";
    /// Messages a group sent back for retry; key: `topic@group`.
    pub(crate) const SNDBCK_PUT_NUMS: &str = "SNDBCK_PUT_NUMS";
    /// Messages stored by the broker; key: the cluster name.
    pub(crate) const BROKER_PUT_NUMS: &str = "BROKER_PUT_NUMS";
    /// Messages pulled from the broker; key: the cluster name.
    pub(crate) const BROKER_GET_NUMS: &str = "BROKER_GET_NUMS";
}

/// A day in ms: today's and yesterday's totals start at UTC midnight (RocketMQ
/// takes the host's local midnight; mq keeps no time zone table).
const DAY_MS: i64 = 86_400_000;

/// A topic's statistics.
#[derive(Debug)]
pub(crate) struct TopicStats {
    /// Messages stored.
    pub(crate) put_nums: StatsItem,
    /// Bytes stored.
    pub(crate) put_size: StatsItem,
}

/// A group's statistics on one topic.
#[derive(Debug)]
pub(crate) struct GroupStats {
    /// Messages pulled.
    pub(crate) get_nums: StatsItem,
    /// Bytes pulled.
    pub(crate) get_size: StatsItem,
    /// Messages sent back for retry.
    pub(crate) send_back: StatsItem,
}

/// The three windows of one statistic, as VIEW_BROKER_STATS_DATA answers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Windows {
    pub(crate) minute: Snapshot,
    pub(crate) hour: Snapshot,
    pub(crate) day: Snapshot,
}

/// Put and get totals at the start of today and of yesterday.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mornings {
    day: i64,
    /// Messages stored since start, at the start of today.
    pub(crate) put_today: u64,
    /// ... and at the start of yesterday.
    pub(crate) put_yesterday: u64,
    /// Messages pulled since start, at the start of today.
    pub(crate) get_today: u64,
    /// ... and at the start of yesterday.
    pub(crate) get_yesterday: u64,
}

/// Group → topic → statistics.
type GroupTable = HashMap<String, HashMap<String, Arc<GroupStats>>>;

/// Everything counted.
#[derive(Debug)]
pub(crate) struct BrokerStats {
    /// The key of the broker-wide statistics, as in RocketMQ.
    cluster: String,
    /// When counting began (the broker's start), ms since the epoch.
    origin_ms: i64,
    topics: RwLock<HashMap<String, Arc<TopicStats>>>,
    groups: RwLock<GroupTable>,
    /// Messages stored by this broker.
    pub(crate) broker_put: StatsItem,
    /// Messages pulled from this broker.
    pub(crate) broker_get: StatsItem,
    /// The per-second counters.
    pub(crate) counters: RateCounters,
    rates: Rates,
    /// Bytes stored since start.
    pub(crate) put_bytes: AtomicU64,
    /// Appends the store refused since start.
    pub(crate) put_failed: AtomicU64,
    /// How long appends take.
    pub(crate) put_latency: PutLatency,
    /// How long SYNC_MASTER sends waited for a slave's acknowledgement.
    pub(crate) replication_wait: Histogram,
    /// The slowest read of messages for a pull, ms.
    pub(crate) get_max_ms: AtomicU64,
    mornings: Mutex<Mornings>,
    /// Sends being handled.
    pub(crate) sends: InFlight,
    /// Pulls being handled (parked pulls are not: they wait for messages).
    pub(crate) pulls: InFlight,
    /// Message queries being handled.
    pub(crate) queries: InFlight,
    /// Transaction ends being handled.
    pub(crate) end_transactions: InFlight,
    /// 10-second ticks so far.
    ticks: AtomicU64,
    /// Seconds sampled so far.
    seconds: AtomicU64,
}

fn new_group_stats(now_ms: i64, origin_ms: i64) -> GroupStats {
    GroupStats {
        get_nums: StatsItem::new(now_ms, origin_ms),
        get_size: StatsItem::new(now_ms, origin_ms),
        send_back: StatsItem::new(now_ms, origin_ms),
    }
}

impl BrokerStats {
    /// Nothing counted yet, at `now_ms`.
    pub(crate) fn new(cluster: &str, now_ms: i64) -> Self {
        BrokerStats {
            cluster: cluster.to_owned(),
            origin_ms: now_ms,
            topics: RwLock::default(),
            groups: RwLock::default(),
            broker_put: StatsItem::new(now_ms, now_ms),
            broker_get: StatsItem::new(now_ms, now_ms),
            counters: RateCounters::default(),
            rates: Rates::new(now_ms),
            put_bytes: AtomicU64::new(0),
            put_failed: AtomicU64::new(0),
            put_latency: PutLatency::default(),
            replication_wait: Histogram::default(),
            get_max_ms: AtomicU64::new(0),
            mornings: Mutex::new(Mornings {
                day: now_ms.div_euclid(DAY_MS),
                ..Mornings::default()
            }),
            sends: InFlight::default(),
            pulls: InFlight::default(),
            queries: InFlight::default(),
            end_transactions: InFlight::default(),
            ticks: AtomicU64::new(0),
            seconds: AtomicU64::new(0),
        }
    }

    /// A topic's statistics, made on first use.
    pub(crate) fn topic(&self, topic: &str) -> Arc<TopicStats> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return t.clone();
        }
        let now = mq_protocol::time::now_ms();
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(topic.to_owned())
            .or_insert_with(|| {
                Arc::new(TopicStats {
                    put_nums: StatsItem::new(now, self.origin_ms),
                    put_size: StatsItem::new(now, self.origin_ms),
                })
            })
            .clone()
    }

    /// A group's statistics on a topic, made on first use.
    pub(crate) fn group(&self, group: &str, topic: &str) -> Arc<GroupStats> {
        if let Some(g) = self
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group)
            .and_then(|topics| topics.get(topic))
        {
            return g.clone();
        }
        let now = mq_protocol::time::now_ms();
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(group.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_insert_with(|| Arc::new(new_group_stats(now, self.origin_ms)))
            .clone()
    }

    /// A send stored `messages` messages, `bytes` bytes, in `took`.
    pub(crate) fn on_put(&self, topic: &str, messages: u64, bytes: u64, took: Duration) {
        let t = self.topic(topic);
        t.put_nums.add(messages, 1);
        t.put_size.add(bytes, 1);
        self.broker_put.add(messages, 1);
        self.counters.put.fetch_add(messages, Ordering::Relaxed);
        self.put_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.put_latency.record(took);
    }

    /// The store refused an append.
    pub(crate) fn on_put_failed(&self) {
        self.put_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A pull read `messages` messages of `bytes` bytes (none: a miss) in `took`.
    pub(crate) fn on_pull(
        &self,
        group: &str,
        topic: &str,
        messages: u64,
        bytes: u64,
        took: Duration,
    ) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.get_max_ms.fetch_max(ms, Ordering::Relaxed);
        if messages == 0 {
            self.counters.get_miss.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let g = self.group(group, topic);
        g.get_nums.add(messages, 1);
        g.get_size.add(bytes, 1);
        self.broker_get.add(messages, 1);
        self.counters.get_found.fetch_add(1, Ordering::Relaxed);
        self.counters
            .transferred
            .fetch_add(messages, Ordering::Relaxed);
    }

    /// A consumer of `group` sent a message of `topic` back for retry.
    pub(crate) fn on_send_back(&self, group: &str, topic: &str) {
        self.group(group, topic).send_back.add(1, 1);
    }

    /// One statistic by RocketMQ's name and key; `None` if never counted.
    pub(crate) fn view(&self, name: &str, key: &str, now_ms: i64) -> Option<Windows> {
        let windows = |item: &StatsItem| Windows {
            minute: item.minute(now_ms),
            hour: item.hour(now_ms),
            day: item.day(now_ms),
        };
        let group_item = |pick: fn(&GroupStats) -> &StatsItem| {
            let (topic, group) = key.split_once('@')?;
            let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
            let stats = groups.get(group)?.get(topic)?;
            Some(windows(pick(stats)))
        };
        let topic_item = |pick: fn(&TopicStats) -> &StatsItem| {
            let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
            topics.get(key).map(|t| windows(pick(t)))
        };
        match name {
            names::TOPIC_PUT_NUMS => topic_item(|t| &t.put_nums),
            names::TOPIC_PUT_SIZE => topic_item(|t| &t.put_size),
            names::GROUP_GET_NUMS => group_item(|g| &g.get_nums),
            names::GROUP_GET_SIZE => group_item(|g| &g.get_size),
            names::SNDBCK_PUT_NUMS => group_item(|g| &g.send_back),
            names::BROKER_PUT_NUMS if key == self.cluster => Some(windows(&self.broker_put)),
            names::BROKER_GET_NUMS if key == self.cluster => Some(windows(&self.broker_get)),
            _ => None,
        }
    }

    /// Messages per second `group` pulled from `topic` over the last minute.
    pub(crate) fn group_get_tps(&self, group: &str, topic: &str, now_ms: i64) -> f64 {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        groups
            .get(group)
            .and_then(|topics| topics.get(topic))
            .map_or(0.0, |g| g.get_nums.minute(now_ms).tps)
    }

    /// Every topic counted, sorted.
    pub(crate) fn topics(&self) -> Vec<(String, Arc<TopicStats>)> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every (group, topic) counted, sorted.
    pub(crate) fn groups(&self) -> Vec<(String, String, Arc<GroupStats>)> {
        let mut all: Vec<_> = self
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flat_map(|(g, topics)| {
                topics
                    .iter()
                    .map(move |(t, s)| (g.clone(), t.clone(), s.clone()))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    /// Forgets a deleted topic's statistics.
    pub(crate) fn remove_topic(&self, topic: &str) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
        for topics in self
            .groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .values_mut()
        {
            topics.remove(topic);
        }
    }

    /// Store rates over the last `secs` seconds.
    pub(crate) fn rates(&self, secs: usize, now_ms: i64) -> rate::PerSecond {
        self.rates.over(secs, now_ms, self.counters.counts())
    }

    /// Today's and yesterday's starting totals.
    pub(crate) fn mornings(&self) -> Mornings {
        *self.mornings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sampler's work, once a second: the per-second rates; every 10 s
    /// the windows of every statistic; every minute the latency bands; at
    /// midnight the day's starting totals.
    pub(crate) fn sample(&self, now_ms: i64) {
        self.rates.sample(now_ms, self.counters.counts());
        let second = self.seconds.fetch_add(1, Ordering::Relaxed) + 1;
        if second.is_multiple_of(60) {
            self.put_latency.roll_minute();
        }
        if second.is_multiple_of(10) {
            let tick = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
            self.broker_put.sample(tick, now_ms);
            self.broker_get.sample(tick, now_ms);
            for (_, t) in self.topics() {
                t.put_nums.sample(tick, now_ms);
                t.put_size.sample(tick, now_ms);
            }
            for (_, _, g) in self.groups() {
                g.get_nums.sample(tick, now_ms);
                g.get_size.sample(tick, now_ms);
                g.send_back.sample(tick, now_ms);
            }
        }
        let day = now_ms.div_euclid(DAY_MS);
        let mut m = self.mornings.lock().unwrap_or_else(PoisonError::into_inner);
        if day != m.day {
            *m = Mornings {
                day,
                put_yesterday: m.put_today,
                put_today: self.broker_put.value(),
                get_yesterday: m.get_today,
                get_today: self.broker_get.value(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_and_pulls_show_under_rocketmq_names() {
        let stats = BrokerStats::new("DefaultCluster", 0);
        stats.on_put("T", 3, 300, Duration::from_millis(1));
        stats.on_pull("G", "T", 2, 200, Duration::from_millis(1));
        stats.on_pull("G", "T", 0, 0, Duration::from_millis(1));
        let w = stats.view(names::TOPIC_PUT_NUMS, "T", 1000).unwrap();
        assert_eq!((w.minute.sum, w.hour.sum, w.day.sum), (3, 3, 3));
        assert_eq!(
            stats
                .view(names::TOPIC_PUT_SIZE, "T", 1000)
                .unwrap()
                .day
                .sum,
            300
        );
        let w = stats.view(names::GROUP_GET_NUMS, "T@G", 1000).unwrap();
        assert_eq!((w.minute.sum, w.minute.avgpt), (2, 2.0));
        assert_eq!(
            stats
                .view(names::BROKER_PUT_NUMS, "DefaultCluster", 1000)
                .unwrap()
                .day
                .sum,
            3
        );
        assert!(stats.view(names::BROKER_PUT_NUMS, "Other", 1000).is_none());
        assert!(stats.view(names::TOPIC_PUT_NUMS, "Nope", 1000).is_none());
        assert!(stats.view("NO_SUCH_STAT", "T", 1000).is_none());
        let c = stats.counters.counts();
        assert_eq!(
            (c.put, c.get_found, c.get_miss, c.transferred),
            (3, 1, 1, 2)
        );
    }

    #[test]
    fn midnight_moves_todays_totals_to_yesterday() {
        let stats = BrokerStats::new("C", DAY_MS - 2000);
        stats.on_put("T", 5, 5, Duration::ZERO);
        stats.sample(DAY_MS + 1);
        let m = stats.mornings();
        assert_eq!((m.put_today, m.put_yesterday), (5, 0));
        stats.on_put("T", 2, 2, Duration::ZERO);
        stats.sample(2 * DAY_MS + 1);
        let m = stats.mornings();
        assert_eq!((m.put_today, m.put_yesterday), (7, 5));
    }
}
