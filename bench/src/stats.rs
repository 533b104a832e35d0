//! Latency histograms (µs, hdrhistogram) and what a worker reports back.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency recorded exactly: 60 s; anything longer is clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A worker's (or a run's) counts and latencies in the measured interval.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latencies of successful operations, µs.
    pub latency: Histogram<u64>,
    /// Successful operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Secondary count (writes made, for watch-fanout).
    pub writes: u64,
    /// watch-fanout: events of acknowledged writes a watcher never received.
    pub missed: u64,
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()));
        Stats {
            latency,
            ops: 0,
            errors: 0,
            writes: 0,
            missed: 0,
        }
    }

    /// Counts a success that took `elapsed`.
    pub fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.latency.saturating_record(us.clamp(1, MAX_LATENCY_US));
        self.ops += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ops += other.ops;
        self.errors += other.errors;
        self.writes += other.writes;
        self.missed += other.missed;
    }

    /// Latency at quantile `q` (0..=1), µs; 0 with no samples.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// `Histogram::new(3)` only fails for a precision above 5.
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected precision 3")
}
