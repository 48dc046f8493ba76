//! The latency histogram: fixed buckets, allocated once, never growing during a run.
//!
//! Owns: recording latencies and reading quantiles. Must not: allocate after construction, or
//! know where the latencies come from.

/// to 100 ms, 10 ms up to 10 s, then one overflow bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    pub max_ns: u64,
}

const BUCKETS: usize = 1000 + 900 + 900 + 990 + 1;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        let us = ns / 1000;
        let b = match us {
            0..1_000 => us,
            1_000..10_000 => 1_000 + (us - 1_000) / 10,
            10_000..100_000 => 1_900 + (us - 10_000) / 100,
            100_000..10_000_000 => 2_800 + (us - 100_000) / 10_000,
            _ => BUCKETS as u64 - 1,
        };
        (b as usize).min(BUCKETS - 1)
    }

    /// The upper edge of bucket `b`, in microseconds.
    fn upper_us(b: usize) -> f64 {
        let b = b as f64;
        match b {
            x if x < 1_000.0 => x + 1.0,
            x if x < 1_900.0 => 1_000.0 + (x - 1_000.0 + 1.0) * 10.0,
            x if x < 2_800.0 => 10_000.0 + (x - 1_900.0 + 1.0) * 100.0,
            x => 100_000.0 + (x - 2_800.0 + 1.0) * 10_000.0,
        }
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The `p`-quantile (0..=1) in microseconds: the upper edge of its bucket, at most the
    /// maximum seen. None when empty.
    pub fn quantile_us(&self, p: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::upper_us(b).min(self.max_ns as f64 / 1000.0));
            }
        }
        Some(self.max_ns as f64 / 1000.0)
    }

    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max_ns = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record(us * 1000 + 500);
        }
        assert_eq!(h.quantile_us(0.5), Some(51.0));
        assert_eq!(h.quantile_us(0.99), Some(100.0));
        assert_eq!(h.max_ns, 100_500);
        h.record(5_000_000_000);
        assert_eq!(h.quantile_us(1.0), Some(5_000_000.0));
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
    }
}
