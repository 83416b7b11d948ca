//! Exponential backoff: `min`, then `×factor` after each failure, capped at `max`.

use std::time::Duration;

/// The delay sequence of one retrying activity (a listener, the discovery loop).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, factor: f64) -> Self {
        Self {
            min,
            max,
            factor,
            failures: 0,
        }
    }

    /// The delay before the next attempt, then counts one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = delay(self.min, self.max, self.factor, self.failures);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Back to `min` after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `min × factor^failures`, capped at `max`; never panics (inputs validated by the config).
fn delay(min: Duration, max: Duration, factor: f64, failures: u32) -> Duration {
    let secs = min.as_secs_f64() * factor.powi(failures.min(1024) as i32);
    if !secs.is_finite() || secs >= max.as_secs_f64() {
        max
    } else {
        Duration::from_secs_f64(secs).clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_sequence() {
        let mut b = Backoff::new(Duration::from_secs(3), Duration::from_secs(60), 2.0);
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [3, 6, 12, 24, 48, 60, 60]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(3));
    }

    proptest! {
        #[test]
        fn within_bounds_and_monotonic(min_ms in 1u64..10_000, extra in 0u64..100_000, factor in 1.0f64..10.0, n in 0usize..2000) {
            let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(min_ms + extra));
            let mut b = Backoff::new(min, max, factor);
            let mut last = Duration::ZERO;
            for _ in 0..n {
                let d = b.next_delay();
                prop_assert!(d >= min && d <= max && d >= last);
                last = d;
            }
        }
    }
}
