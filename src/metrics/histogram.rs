//! A latency histogram of atomics, for hot paths that must not take a lock (the HSM pool,
//! the audit trail): one relaxed increment per bucket boundary crossed is all an
//! observation costs. Read at scrape time and encoded as a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds: 50 µs (a software token's call, a write to a fast disk)
/// to 5 s (a hung device or disk).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// Counts per bucket (not cumulative; the last one past every bound) and the sum in
/// nanoseconds.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds_nanos: [u64; LATENCY_BUCKETS.len()],
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            bounds_nanos: LATENCY_BUCKETS.map(|s| (s * 1e9) as u64),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// What a scrape reads: the sum in seconds, the count, and the buckets as the encoder takes
/// them, `(upper bound, observations above the previous bound and at or below this one)`,
/// `+Inf` last (the encoder makes them cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl AtomicHistogram {
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = self
            .bounds_nanos
            .iter()
            .position(|b| nanos <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The buckets, read without a lock; the count is their total, so the two always agree.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|b| b.1).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let h = AtomicHistogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(s.buckets[0], (0.00005, 1));
        let at = |bound: f64| s.buckets.iter().find(|b| b.0 == bound).unwrap().1;
        assert_eq!(at(0.0025), 0);
        assert_eq!(at(0.005), 1);
        assert_eq!(at(5.0), 0);
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum - 10.00304).abs() < 1e-9, "{}", s.sum);
    }
}
