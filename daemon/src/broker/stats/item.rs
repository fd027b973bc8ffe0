//! One counted statistic, as RocketMQ's StatsItem: a running total and a
//! count of calls, bumped with atomics on the request path, and samples of
//! both taken in the background into three windows (the last minute, hour and
//! day) from which rates are computed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A window's samples: taken every `every_ticks` sampler ticks, `keep` at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowSpec {
    pub(crate) every_ticks: u64,
    pub(crate) keep: usize,
}

/// With a sampler tick of 10 s, as RocketMQ: the minute window holds 7
/// samples 10 s apart, the hour window 7 samples 10 minutes apart, and the
/// day window 25 samples an hour apart.
pub(crate) const MINUTE: WindowSpec = WindowSpec {
    every_ticks: 1,
    keep: 7,
};
/// See [`MINUTE`].
pub(crate) const HOUR: WindowSpec = WindowSpec {
    every_ticks: 60,
    keep: 7,
};
/// See [`MINUTE`].
pub(crate) const DAY: WindowSpec = WindowSpec {
    every_ticks: 360,
    keep: 25,
};

/// A point of a window: when, the total then, the calls then.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_ms: i64,
    value: u64,
    times: u64,
}

/// What a window says: the units counted in it, their rate per second, and
/// units per call (RocketMQ's StatsSnapshot).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Snapshot {
    /// Units counted in the window.
    pub(crate) sum: u64,
    /// Units per second.
    pub(crate) tps: f64,
    /// Units per call (0 when calls are not counted).
    pub(crate) avgpt: f64,
}

/// One statistic.
#[derive(Debug)]
pub(crate) struct StatsItem {
    value: AtomicU64,
    times: AtomicU64,
    /// Minute, hour and day samples; only the sampler and readers lock them.
    windows: Mutex<[VecDeque<Sample>; 3]>,
}

impl StatsItem {
    /// A statistic made at `now_ms`, counted since `origin_ms` (the broker's
    /// start): it was zero all that time, so each window starts with a zero
    /// sample a window's length back, or at the origin if that is later.
    /// Starting at `now_ms` instead would turn the first few messages into a
    /// rate over a few milliseconds.
    pub(crate) fn new(now_ms: i64, origin_ms: i64) -> Self {
        let zero_at = |span_ms: i64| Sample {
            at_ms: (now_ms - span_ms).max(origin_ms).min(now_ms),
            value: 0,
            times: 0,
        };
        StatsItem {
            value: AtomicU64::new(0),
            times: AtomicU64::new(0),
            windows: Mutex::new(
                [60_000, 3_600_000, 86_400_000].map(|span| VecDeque::from([zero_at(span)])),
            ),
        }
    }

    /// Counts `units` over `calls` calls (a batch of 3 messages: 3, 1).
    pub(crate) fn add(&self, units: u64, calls: u64) {
        self.value.fetch_add(units, Ordering::Relaxed);
        if calls > 0 {
            self.times.fetch_add(calls, Ordering::Relaxed);
        }
    }

    /// The running total.
    pub(crate) fn value(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    fn now(&self, at_ms: i64) -> Sample {
        Sample {
            at_ms,
            value: self.value(),
            times: self.times.load(Ordering::Relaxed),
        }
    }

    /// Takes the samples due at sampler tick `tick` (the sampler's first tick
    /// is 1; the item was sampled at 0 when made).
    pub(crate) fn sample(&self, tick: u64, now_ms: i64) {
        let now = self.now(now_ms);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for (window, spec) in windows.iter_mut().zip([MINUTE, HOUR, DAY]) {
            if tick.is_multiple_of(spec.every_ticks) {
                window.push_back(now);
                while window.len() > spec.keep {
                    window.pop_front();
                }
            }
        }
    }

    /// The last minute.
    pub(crate) fn minute(&self, now_ms: i64) -> Snapshot {
        self.window(0, now_ms)
    }

    /// The last hour.
    pub(crate) fn hour(&self, now_ms: i64) -> Snapshot {
        self.window(1, now_ms)
    }

    /// The last day.
    pub(crate) fn day(&self, now_ms: i64) -> Snapshot {
        self.window(2, now_ms)
    }

    /// From the window's oldest sample to the counters as they are now: unlike
    /// RocketMQ, which ends at the last sample, what was counted in the last
    /// few seconds shows at once.
    fn window(&self, which: usize, now_ms: i64) -> Snapshot {
        let first = {
            let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            windows[which].front().copied()
        };
        let last = self.now(now_ms);
        first.map_or_else(Snapshot::default, |first| between(first, last))
    }
}

fn between(first: Sample, last: Sample) -> Snapshot {
    let sum = last.value.saturating_sub(first.value);
    let calls = last.times.saturating_sub(first.times);
    let elapsed_ms = last.at_ms - first.at_ms;
    Snapshot {
        sum,
        tps: if elapsed_ms > 0 {
            sum as f64 * 1000.0 / elapsed_ms as f64
        } else {
            0.0
        },
        avgpt: if calls > 0 {
            sum as f64 / calls as f64
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reach_from_their_oldest_sample_to_now() {
        let item = StatsItem::new(0, 0);
        item.add(30, 10);
        // 10 s later: 30 messages in 10 calls over 10 s.
        let s = item.minute(10_000);
        assert_eq!(s.sum, 30);
        assert!((s.tps - 3.0).abs() < 1e-9);
        assert!((s.avgpt - 3.0).abs() < 1e-9);
        assert_eq!(item.day(10_000).sum, 30);
    }

    #[test]
    fn the_minute_window_forgets_older_samples() {
        let item = StatsItem::new(0, 0);
        item.add(100, 1);
        for tick in 1..=7 {
            item.sample(tick, tick as i64 * 10_000);
        }
        // Samples at 10..70 s remain; the 100 counted before 10 s is gone.
        item.add(6, 6);
        let s = item.minute(70_000);
        assert_eq!(s.sum, 6);
        assert!((s.tps - 0.1).abs() < 1e-9);
        // The hour and day windows still start at 0.
        assert_eq!(item.hour(70_000).sum, 106);
        assert_eq!(item.day(70_000).sum, 106);
    }

    #[test]
    fn nothing_counted_is_zero_not_nan() {
        let item = StatsItem::new(5, 5);
        assert_eq!(item.minute(5), Snapshot::default());
    }

    #[test]
    fn a_late_item_counts_from_a_window_back_not_from_its_birth() {
        // Made 2 minutes after the broker started, with 6 messages at once.
        let item = StatsItem::new(120_000, 0);
        item.add(6, 1);
        assert!((item.minute(120_000).tps - 0.1).abs() < 1e-9);
        // The hour and day windows reach back to the broker's start.
        assert!((item.hour(120_000).tps - 0.05).abs() < 1e-9);
        // Made right at start: the window starts at start.
        let item = StatsItem::new(1_000, 0);
        item.add(2, 1);
        assert!((item.minute(1_000).tps - 2.0).abs() < 1e-9);
    }
}
