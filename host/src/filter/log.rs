//! Rate limits for what filters put in the log.
//!
//! A filter runs once per document: a guest that prints on every call, or a
//! filter that fails on every document, would otherwise write a log line per
//! Event and drown everything else. Each filter gets its own budgets (one for
//! what the guest prints, one for failures), shared by all its instances, so
//! one noisy filter cannot silence another. Lines over budget are counted
//! and the count is attached to the next line that gets through.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `burst` lines at once, then `per_second` on average.
#[derive(Debug)]
pub(crate) struct LogLimit {
    state: Mutex<Bucket>,
    burst: f64,
    per_second: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogLimit {
    /// A budget of `burst` lines at once, refilled at `per_second`.
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        Self {
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
                suppressed: 0,
            }),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
        }
    }

    /// Whether a line may be logged now. `Some(n)`: yes, and `n` lines were
    /// suppressed since the last one that was logged; `None`: no (counted).
    pub(crate) fn allow(&self) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of
        // two numbers; the numbers are still usable.
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_and_reported() {
        let limit = LogLimit::new(3, 1);
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        for _ in 0..10 {
            assert_eq!(limit.allow(), None);
        }
        // Refill one token by hand rather than sleeping for a second.
        limit.state.lock().unwrap().tokens = 1.0;
        assert_eq!(limit.allow(), Some(10));
        assert_eq!(limit.allow(), None);
    }
}
