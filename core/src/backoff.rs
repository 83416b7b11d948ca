//! Exponential backoff with jitter: the base delay is `min`, then `×factor` after each failure,
//! capped at `max`; each delay actually used is drawn uniformly from `[base / 2, base]`
//! ("equal jitter"), so processes that failed at the same moment do not retry in lockstep.

use crate::rng::Rng;
use std::time::Duration;

/// The delay sequence of one retrying activity: the core's sentinel listeners, discovery and
/// replica watches, and the supervisor's master connections (one backoff for the project).
///
/// ```
/// use dramatiq_sentinel_core::Backoff;
/// use std::time::Duration;
///
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2.0);
/// // `unit` is the caller's randomness, a uniform draw from [0, 1].
/// assert_eq!(backoff.next_delay_at(1.0), Duration::from_millis(100));
/// assert_eq!(backoff.next_delay_at(0.0), Duration::from_millis(100));
/// assert_eq!(backoff.next_delay_at(1.0), Duration::from_millis(400));
/// backoff.reset();
/// assert_eq!(backoff.failures(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    failures: u32,
}

impl Backoff {
    /// A backoff whose base delay starts at `min` and grows `×factor` after each failure, up
    /// to `max` (a `factor` below 1 or a `max` below `min` never goes under `min` nor over
    /// `max`; the configuration's checks keep them sensible).
    pub fn new(min: Duration, max: Duration, factor: f64) -> Self {
        Self {
            min,
            max,
            factor,
            failures: 0,
        }
    }

    /// The delay before the next attempt, drawn from `[base / 2, base]` at `unit` (a uniform
    /// draw from `[0, 1]`: the caller's randomness, so a fleet that failed together does not
    /// retry in lockstep), then counts one more failure.
    pub fn next_delay_at(&mut self, unit: f64) -> Duration {
        let base = delay(self.min, self.max, self.factor, self.failures);
        self.failures = self.failures.saturating_add(1);
        jitter_at(base, unit)
    }

    /// [`Backoff::next_delay_at`] with the core's seeded generator.
    pub(crate) fn next_delay(&mut self, rng: &mut Rng) -> Duration {
        self.next_delay_at(rng.unit())
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A delay drawn uniformly from `[base / 2, base]`.
pub(crate) fn jitter(base: Duration, rng: &mut Rng) -> Duration {
    jitter_at(base, rng.unit())
}

/// The delay at `unit` of `[base / 2, base]` (`unit` outside `[0, 1]` is clamped, NaN is 0).
fn jitter_at(base: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    base / 2 + (base - base / 2).mul_f64(unit)
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
    use proptest::prelude::{any, prop_assert, proptest};

    #[test]
    fn seed_sequence_with_jitter() {
        let mut rng = Rng::new(7);
        let mut b = Backoff::new(Duration::from_secs(3), Duration::from_secs(60), 2.0);
        for base in [3, 6, 12, 24, 48, 60, 60] {
            let d = b.next_delay(&mut rng).as_secs_f64();
            assert!(d >= base as f64 / 2.0 && d <= base as f64, "{d} for {base}");
        }
        b.reset();
        let d = b.next_delay(&mut rng);
        assert!(d >= Duration::from_millis(1500) && d <= Duration::from_secs(3));
    }

    #[test]
    fn a_fleet_failing_together_spreads_its_retries() {
        // 500 processes with different seeds fail at the same instant: their first retries
        // cover the window [min/2, min] instead of landing on one instant.
        let min = Duration::from_secs(3);
        let delays: Vec<Duration> = (0..500u64)
            .map(|seed| Backoff::new(min, min * 20, 2.0).next_delay(&mut Rng::new(seed)))
            .collect();
        let buckets = delays.iter().fold([0usize; 10], |mut b, d| {
            let i = ((d.as_secs_f64() - 1.5) / 0.15).floor().clamp(0.0, 9.0) as usize;
            b[i] += 1;
            b
        });
        assert!(buckets.iter().all(|&n| n > 20 && n < 90), "{buckets:?}");
    }

    proptest! {
        #[test]
        fn within_bounds(min_ms in 1u64..10_000, extra in 0u64..100_000, factor in 1.0f64..10.0, n in 0usize..2000, seed in any::<u64>()) {
            let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(min_ms + extra));
            let mut b = Backoff::new(min, max, factor);
            let mut rng = Rng::new(seed);
            for i in 0..n {
                let d = b.next_delay(&mut rng);
                let base = delay(min, max, factor, i as u32);
                prop_assert!(d >= base / 2 && d <= base && d >= min / 2 && d <= max);
            }
        }
    }
}
