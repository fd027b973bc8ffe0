//! The store's per-second rates, as RocketMQ's StoreStatsService reports them
//! in `putTps`, `getFoundTps`, `getMissTps`, `getTotalTps` and
//! `getTransferedTps`: a counter for each, sampled once a second into the last
//! ten minutes, and rates over the last 10, 60 and 600 seconds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The counters, in the order of [`Counts`]' fields.
#[derive(Debug, Default)]
pub(crate) struct RateCounters {
    /// Messages stored.
    pub(crate) put: AtomicU64,
    /// Pulls that found messages.
    pub(crate) get_found: AtomicU64,
    /// Pulls that found none.
    pub(crate) get_miss: AtomicU64,
    /// Messages handed to consumers.
    pub(crate) transferred: AtomicU64,
}

/// The counters' values at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) put: u64,
    pub(crate) get_found: u64,
    pub(crate) get_miss: u64,
    pub(crate) transferred: u64,
}

impl RateCounters {
    /// The values now.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            put: self.put.load(Ordering::Relaxed),
            get_found: self.get_found.load(Ordering::Relaxed),
            get_miss: self.get_miss.load(Ordering::Relaxed),
            transferred: self.transferred.load(Ordering::Relaxed),
        }
    }
}

/// Samples kept: ten minutes and one.
const KEEP: usize = 601;

/// Per-second samples of [`RateCounters`].
#[derive(Debug)]
pub(crate) struct Rates {
    samples: Mutex<VecDeque<(i64, Counts)>>,
}

/// Rates per second over one span.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PerSecond {
    pub(crate) put: f64,
    pub(crate) get_found: f64,
    pub(crate) get_miss: f64,
    pub(crate) transferred: f64,
}

impl Rates {
    /// No samples but one of zeros at `now_ms`.
    pub(crate) fn new(now_ms: i64) -> Self {
        Rates {
            samples: Mutex::new(VecDeque::from([(now_ms, Counts::default())])),
        }
    }

    /// Adds the sample of this second.
    pub(crate) fn sample(&self, now_ms: i64, counts: Counts) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((now_ms, counts));
        while samples.len() > KEEP {
            samples.pop_front();
        }
    }

    /// Rates from the sample `secs` seconds back (or the oldest, early on) to
    /// `now`.
    pub(crate) fn over(&self, secs: usize, now_ms: i64, now: Counts) -> PerSecond {
        let (at, then) = {
            let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            let back = samples.len().saturating_sub(secs + 1);
            samples.get(back).copied().unwrap_or((now_ms, now))
        };
        let elapsed = (now_ms - at) as f64 / 1000.0;
        let rate = |a: u64, b: u64| {
            if elapsed > 0.0 {
                b.saturating_sub(a) as f64 / elapsed
            } else {
                0.0
            }
        };
        PerSecond {
            put: rate(then.put, now.put),
            get_found: rate(then.get_found, now.get_found),
            get_miss: rate(then.get_miss, now.get_miss),
            transferred: rate(then.transferred, now.transferred),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_the_span_asked() {
        let rates = Rates::new(0);
        for s in 1..=20 {
            let counts = Counts {
                put: s * 100,
                ..Counts::default()
            };
            rates.sample(s as i64 * 1000, counts);
        }
        let now = Counts {
            put: 2000,
            ..Counts::default()
        };
        // From the sample at 10 s (1000) to now at 20 s (2000).
        let r = rates.over(10, 20_000, now);
        assert!((r.put - 100.0).abs() < 1e-9, "{r:?}");
        // Early on: the oldest sample, at 0.
        let r = rates.over(600, 20_000, now);
        assert!((r.put - 100.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.get_miss, 0.0);
    }
}
