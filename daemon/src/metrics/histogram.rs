//! A latency histogram for the Prometheus endpoint: fixed bucket bounds, an
//! atomic count per bucket, a sum and a count, so that recording costs a few
//! relaxed additions and no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: 50 µs to 10 s, roughly ×2.5 apart,
/// which covers an in-memory append as well as a slow `msync` or a slave's
/// acknowledgement over a WAN.
pub const BOUNDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Durations recorded so far.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last counts what exceeds every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram's values at one time, cumulative as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValues {
    /// (upper bound in seconds, observations at or under it), ending with +Inf.
    pub cumulative: Vec<(f64, u64)>,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BOUNDS.partition_point(|&b| b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The values now.
    pub fn values(&self) -> HistogramValues {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, bucket) in self.buckets.iter().enumerate() {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push((BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), running));
        }
        HistogramValues {
            // The +Inf bucket and the count must agree; buckets are read first.
            count: running,
            cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_at_or_under_their_bound() {
        let h = Histogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let v = h.values();
        assert_eq!(v.count, 3);
        assert_eq!(v.cumulative[0], (0.000_05, 1));
        let at_5ms = v.cumulative.iter().find(|(b, _)| *b == 0.005).unwrap();
        assert_eq!(at_5ms.1, 2);
        assert_eq!(v.cumulative.last().unwrap(), &(f64::INFINITY, 3));
        assert!((v.sum_seconds - 60.003_05).abs() < 1e-9);
    }
}
