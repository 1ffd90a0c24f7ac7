//! Exponential backoff with jitter, for everything that retries.
//!
//! Each failure doubles the ceiling (from `initial` up to `max`) and the
//! actual wait is drawn uniformly between half the ceiling and the ceiling
//! ("equal jitter"), so many kwex replicas that lost the same server do not
//! come back in lock-step, yet no wait is ever near zero. A success resets it.

use std::time::Duration;

/// Backoff state of one retrying activity.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `initial`, never waits longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            ceiling: initial,
            failures: 0,
        }
    }

    /// The wait before the next attempt; call once per failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Call after a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_stay_within_jitter_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let ceilings = [100u64, 200, 400, 800, 800, 800];
        for ceiling in ceilings {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(ceiling / 2),
                "{d:?} below half of {ceiling}"
            );
            assert!(d <= Duration::from_millis(ceiling), "{d:?} above {ceiling}");
        }
        assert_eq!(b.failures(), 6);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        assert_eq!(b.failures(), 1);
    }
}
