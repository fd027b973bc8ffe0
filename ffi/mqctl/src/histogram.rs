//! A fixed-size latency histogram for `mqctl bench`, recorded from many tasks
//! at once without locks. Values are microseconds: exact below 2048 µs, then
//! 1024 buckets per power of two (under 0.1 % error), capped at 2^37 µs
//! (about 38 hours). 28 672 buckets, whatever the run's length.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are their own bucket.
const LINEAR: u64 = 2048;
/// Buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;
/// Highest power of two tracked; larger values count in the last bucket.
const MAX_BIT: u32 = 36;
const BUCKETS: usize = LINEAR as usize + ((MAX_BIT - 11 + 1) as usize) * SUB as usize;

/// The histogram tasks record into.
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    max: AtomicU64,
}

/// A copy of the counts at one moment (or the difference of two).
#[derive(Clone)]
pub struct Snapshot {
    counts: Vec<u64>,
    /// Values recorded.
    pub total: u64,
    sum: u64,
    max: u64,
}

fn index(us: u64) -> usize {
    let v = us.min((1u64 << (MAX_BIT + 1)) - 1);
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) - SUB;
    LINEAR as usize + (msb - 11) as usize * SUB as usize + sub as usize
}

/// The largest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    if (i as u64) < LINEAR {
        return i as u64;
    }
    let k = (i - LINEAR as usize) as u64;
    let msb = 11 + (k / SUB) as u32;
    let sub = SUB + k % SUB;
    ((sub + 1) << (msb - SUB_BITS)) - 1
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value in microseconds.
    pub fn record(&self, us: u64) {
        self.counts[index(us)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        Snapshot {
            total: counts.iter().sum(),
            counts,
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// What was recorded between `earlier` and this snapshot; its max is the
    /// top of the highest bucket used (capped by the overall max).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let max = counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| upper(i).min(self.max));
        Snapshot {
            total: counts.iter().sum(),
            counts,
            sum: self.sum.saturating_sub(earlier.sum),
            max,
        }
    }

    /// Mean in microseconds (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1) in microseconds: the top of the bucket
    /// holding it, capped by the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Largest value in microseconds.
    pub fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_then_within_a_thousandth() {
        for v in [
            0u64,
            1,
            2047,
            2048,
            2049,
            4095,
            4096,
            1_000_000,
            123_456_789,
        ] {
            let i = index(v);
            assert!(upper(i) >= v, "{v}");
            assert!(upper(i) - v <= v / 1000, "{v}: {}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v, "{v}");
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_intervals() {
        let h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        let a = h.snapshot();
        assert_eq!(a.quantile(0.5), 50);
        assert_eq!(a.quantile(0.99), 99);
        assert_eq!(a.max(), 100);
        assert_eq!(a.mean(), 50.5);
        h.record(5000);
        let d = h.snapshot().since(&a);
        assert_eq!(d.total, 1);
        assert_eq!(d.quantile(0.5), 5000);
        assert_eq!(d.max(), 5000);
    }
}
