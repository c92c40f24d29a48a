//! Circuit breaker for establishing connections.
//!
//! Closed: attempts go through and failures are counted. After `failure_threshold` consecutive
//! failures it opens: attempts fail fast with `circuit_open` and the server is left alone. Once
//! `recovery_timeout` has passed it is half-open: one trial attempt is let through; success closes
//! it, failure opens it again for another `recovery_timeout`.

use std::time::{Duration, Instant};

use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub recovery_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(60),
        }
    }
}

/// What the breaker says about a new attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this is the single half-open trial.
    Trial,
    /// Fail fast; the circuit reopens for trials after this long.
    Rejected { retry_in: Duration },
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    pub times_opened: u64,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: CircuitState::Closed,
            consecutive_failures: 0,
            opened_at: None,
            trial_in_flight: false,
            times_opened: 0,
        }
    }

    /// The state as of `now` (an open breaker past its recovery timeout reads as half-open).
    pub fn state(&self, now: Instant) -> CircuitState {
        match (self.state, self.opened_at) {
            (CircuitState::Open, Some(t)) if now.duration_since(t) >= self.cfg.recovery_timeout => {
                CircuitState::HalfOpen
            }
            (s, _) => s,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state(now) {
            CircuitState::Closed => Admission::Allowed,
            CircuitState::Open => Admission::Rejected {
                retry_in: self
                    .cfg
                    .recovery_timeout
                    .saturating_sub(now.duration_since(self.opened_at.unwrap_or(now))),
            },
            CircuitState::HalfOpen => {
                if self.trial_in_flight {
                    Admission::Rejected {
                        retry_in: Duration::ZERO,
                    }
                } else {
                    self.state = CircuitState::HalfOpen;
                    self.trial_in_flight = true;
                    Admission::Trial
                }
            }
        }
    }

    pub fn on_success(&mut self) {
        self.state = CircuitState::Closed;
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.trial_in_flight = false;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures += 1;
        let was_trial = self.trial_in_flight;
        self.trial_in_flight = false;
        if was_trial || self.consecutive_failures >= self.cfg.failure_threshold {
            if self.state != CircuitState::Open || was_trial {
                self.times_opened += 1;
            }
            self.state = CircuitState::Open;
            self.opened_at = Some(now);
        }
    }

    /// A trial that ended without telling success or failure (e.g. cancelled) frees the slot.
    pub fn on_abandoned(&mut self) {
        self.trial_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens_then_closes() {
        let cfg = BreakerConfig {
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(10),
        };
        let mut b = Breaker::new(cfg);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Admission::Allowed);
            b.on_failure(t0);
        }
        assert_eq!(b.state(t0), CircuitState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), CircuitState::Open);
        assert!(matches!(
            b.admit(t0 + Duration::from_secs(5)),
            Admission::Rejected { .. }
        ));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert_eq!(b.admit(later), Admission::Trial);
        // only one trial at a time
        assert!(matches!(b.admit(later), Admission::Rejected { .. }));
        b.on_failure(later);
        assert_eq!(b.state(later), CircuitState::Open);
        let again = later + Duration::from_secs(10);
        assert_eq!(b.admit(again), Admission::Trial);
        b.on_success();
        assert_eq!(b.state(again), CircuitState::Closed);
        assert_eq!(b.times_opened, 2);
    }
}
