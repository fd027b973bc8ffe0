//! How long appends take, as RocketMQ's StoreStatsService reports it: the
//! slowest since start (`putMessageEntireTimeMax`), the count per coarse band
//! over the last minute (`putMessageDistributeTime`), and the 99th and 99.9th
//! percentiles over the last minute (`putLatency99`, `putLatency999`) from
//! finer bands. Each minute the sampler moves the current counts to "last
//! minute" and starts again at zero.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::histogram::Histogram;

/// The coarse bands' names, as mqadmin and rocketmq-exporter read them.
pub(crate) const BAND_NAMES: [&str; 13] = [
    "[<=0ms]",
    "[0~10ms]",
    "[10~50ms]",
    "[50~100ms]",
    "[100~200ms]",
    "[200~500ms]",
    "[500ms~1s]",
    "[1~2s]",
    "[2~3s]",
    "[3~4s]",
    "[4~5s]",
    "[5~10s]",
    "[10s~]",
];

/// Upper bound in ms of each coarse band but the last.
const BAND_UPPER_MS: [u64; 12] = [
    0, 10, 50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000, 10_000,
];

/// Upper bounds in ms of the fine bands: RocketMQ's steps of 1 ms to 20 ms,
/// 2 ms to 50, 5 to 100, 10 to 200, 50 to 500, 100 to 1 s, 1 s to 10 s.
fn fine_bounds() -> Vec<u64> {
    let mut bounds = Vec::new();
    let mut at = 0;
    for (step, times) in [
        (1, 20),
        (2, 15),
        (5, 10),
        (10, 10),
        (50, 6),
        (100, 5),
        (1000, 9),
    ] {
        for _ in 0..times {
            at += step;
            bounds.push(at);
        }
    }
    bounds
}

/// Append latencies.
#[derive(Debug)]
pub(crate) struct PutLatency {
    max_ms: AtomicU64,
    bands: [AtomicU64; 13],
    last_bands: [AtomicU64; 13],
    fine_bounds: Vec<u64>,
    /// One more than the bounds: the last is over 10 s.
    fine: Vec<AtomicU64>,
    last_fine: Vec<AtomicU64>,
    /// The same observations for Prometheus, never reset.
    pub(crate) histogram: Histogram,
}

impl Default for PutLatency {
    fn default() -> Self {
        let fine_bounds = fine_bounds();
        let n = fine_bounds.len() + 1;
        PutLatency {
            max_ms: AtomicU64::new(0),
            bands: Default::default(),
            last_bands: Default::default(),
            fine_bounds,
            fine: (0..n).map(|_| AtomicU64::new(0)).collect(),
            last_fine: (0..n).map(|_| AtomicU64::new(0)).collect(),
            histogram: Histogram::default(),
        }
    }
}

impl PutLatency {
    /// Records one append.
    pub(crate) fn record(&self, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.max_ms.fetch_max(ms, Ordering::Relaxed);
        let band = BAND_UPPER_MS.partition_point(|&upper| upper < ms);
        self.bands[band].fetch_add(1, Ordering::Relaxed);
        let fine = self.fine_bounds.partition_point(|&upper| upper < ms);
        self.fine[fine].fetch_add(1, Ordering::Relaxed);
        self.histogram.record(took);
    }

    /// The slowest append since start, ms.
    pub(crate) fn max_ms(&self) -> u64 {
        self.max_ms.load(Ordering::Relaxed)
    }

    /// Starts a new minute.
    pub(crate) fn roll_minute(&self) {
        for (cur, last) in self.bands.iter().zip(&self.last_bands) {
            last.store(cur.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        for (cur, last) in self.fine.iter().zip(&self.last_fine) {
            last.store(cur.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Last minute's count per coarse band, as `putMessageDistributeTime`
    /// writes it: `[<=0ms]:3 [0~10ms]:5 ... `.
    pub(crate) fn distribution(&self) -> String {
        BAND_NAMES
            .iter()
            .zip(&self.last_bands)
            .map(|(name, n)| format!("{name}:{} ", n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Last minute's count per coarse band.
    pub(crate) fn bands(&self) -> [u64; 13] {
        std::array::from_fn(|i| self.last_bands[i].load(Ordering::Relaxed))
    }

    /// The `px` quantile (0.99) of last minute's appends in ms, interpolated
    /// within its fine band as RocketMQ does; 0 with no appends.
    pub(crate) fn percentile(&self, px: f64) -> f64 {
        let counts: Vec<u64> = self
            .last_fine
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let target = (total as f64 * px) as u64;
        let mut passed = 0;
        for (i, &count) in counts.iter().enumerate() {
            if target <= passed + count {
                if count == 0 {
                    return 0.0;
                }
                let lower = if i == 0 { 0 } else { self.fine_bounds[i - 1] };
                // Past the last bound RocketMQ's band ends at Long.MAX_VALUE;
                // report its lower edge instead of an absurd figure.
                let Some(&upper) = self.fine_bounds.get(i) else {
                    return lower as f64;
                };
                let into = (target - passed) as f64 / count as f64;
                return lower as f64 + (upper - lower) as f64 * into;
            }
            passed += count;
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_percentiles_of_the_last_minute() {
        let lat = PutLatency::default();
        for _ in 0..99 {
            lat.record(Duration::from_micros(300));
        }
        lat.record(Duration::from_millis(42));
        assert_eq!(lat.max_ms(), 42);
        // Nothing shows until the minute rolls.
        assert!(lat.distribution().starts_with("[<=0ms]:0 [0~10ms]:0 "));
        lat.roll_minute();
        assert!(lat
            .distribution()
            .starts_with("[<=0ms]:99 [0~10ms]:0 [10~50ms]:1 "));
        // 99 of 100 in the first fine band (0-1 ms): p99 inside it.
        let p99 = lat.percentile(0.99);
        assert!(p99 <= 1.0, "{p99}");
        let max = lat.percentile(1.0);
        assert!((40.0..=42.0).contains(&max), "{max}");
        lat.roll_minute();
        assert_eq!(lat.percentile(0.99), 0.0);
    }
}
