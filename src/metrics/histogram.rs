//! A latency histogram made of atomics: recording is a few relaxed increments (no lock, no
//! allocation), so it can sit on the NFS call path and on every durability wait.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: 50 µs to 10 s, roughly ×2.5 apart, which covers a
/// GETATTR from the inode cache (tens of µs) up to a durability wait through a store outage.
pub const BOUNDS_SECONDS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
const BOUNDS_NANOS: [u64; 16] = {
    let mut n = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        n[i] = (BOUNDS_SECONDS[i] * 1e9) as u64;
        i += 1;
    }
    n
};

#[derive(Debug)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is above every bound (+Inf).
    buckets: [AtomicU64; 17],
    sum_nanos: AtomicU64,
}

/// What a scrape reads: per-bucket counts with their upper bounds (the last is +Inf).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    pub const fn new() -> LatencyHistogram {
        LatencyHistogram { buckets: [const { AtomicU64::new(0) }; 17], sum_nanos: AtomicU64::new(0) }
    }

    pub fn record(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS.partition_point(|&b| b < nanos);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> =
            BOUNDS_SECONDS.iter().zip(&self.buckets).map(|(&b, n)| (b, n.load(Relaxed))).collect();
        buckets.push((f64::INFINITY, self.buckets[16].load(Relaxed)));
        let count = buckets.iter().map(|(_, n)| n).sum();
        HistogramSnapshot { buckets, count, sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::new();
        h.record(Duration::from_micros(50)); // exactly on the first bound
        h.record(Duration::from_micros(51));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.00005, 1));
        assert_eq!(s.buckets[1], (0.0001, 1));
        assert_eq!(s.buckets[6], (0.005, 1));
        assert_eq!(s.buckets[16], (f64::INFINITY, 1));
        assert!((s.sum_seconds - 60.003101).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
