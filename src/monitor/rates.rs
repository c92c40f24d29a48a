//! Cumulative counters into per-second rates, the one place that knows how.
//!
//! PostgreSQL's statistics are counters that only grow until they are reset (pg_stat_reset,
//! pg_stat_statements_reset, a crash, an evicted statement entry). Rates divide the increase by
//! the time between the two readings on the *server's* clock, so a slow network or a late tick
//! does not distort them. A counter that went down was reset: its increase is then its current
//! value (what accumulated since the reset), never a negative number.

/// One reading of a cumulative counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: f64,
    /// Server clock (seconds since the epoch) when it was read.
    pub epoch: f64,
}

/// How much a counter grew between two readings; never negative.
pub fn increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev {
        cur - prev
    } else {
        // Reset between the readings: what it holds now accumulated since the reset.
        cur.max(0.0)
    }
}

/// Increase and per-second rate between two readings; `None` when the server clock did not move
/// forward (same reading twice, or a clock step backwards).
pub fn delta(prev: Reading, cur: Reading) -> Option<(f64, f64)> {
    let dt = cur.epoch - prev.epoch;
    if dt.is_nan() || dt <= 0.0 || !dt.is_finite() {
        return None;
    }
    let inc = increase(prev.value, cur.value);
    Some((inc, inc / dt))
}

/// Share of `hit` among `hit + read`, or `None` when there was no block access at all.
pub fn ratio(hit: f64, read: f64) -> Option<f64> {
    let total = hit + read;
    (total > 0.0).then(|| hit / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: f64, epoch: f64) -> Reading {
        Reading { value, epoch }
    }

    #[test]
    fn rate_uses_the_server_clock() {
        let (inc, rate) = delta(r(1000.0, 100.0), r(1400.0, 104.0)).unwrap();
        assert_eq!(inc, 400.0);
        assert_eq!(rate, 100.0);
    }

    #[test]
    fn a_reset_counter_never_gives_a_negative_rate() {
        let (inc, rate) = delta(r(1_000_000.0, 100.0), r(30.0, 110.0)).unwrap();
        assert_eq!(inc, 30.0);
        assert_eq!(rate, 3.0);
        let (inc, rate) = delta(r(5.0, 100.0), r(0.0, 101.0)).unwrap();
        assert_eq!((inc, rate), (0.0, 0.0));
    }

    #[test]
    fn no_rate_without_elapsed_server_time() {
        assert!(delta(r(1.0, 100.0), r(2.0, 100.0)).is_none());
        assert!(delta(r(1.0, 100.0), r(2.0, 99.0)).is_none());
    }

    #[test]
    fn ratio_needs_accesses() {
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(ratio(99.0, 1.0), Some(0.99));
    }
}
