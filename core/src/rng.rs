//! A tiny seeded generator (SplitMix64): the core's jitter and the simulator's only source of
//! variation. Deterministic: the same seed gives the same numbers.

use std::time::Duration;

/// Deterministic pseudo-random numbers from a seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number uniformly in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `pct` percent.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn chance(&mut self, pct: u8) -> bool {
        self.below(100) < u64::from(pct)
    }

    /// A duration uniformly in `lo..=hi` (microsecond resolution).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo_us, hi_us) = (lo.as_micros() as u64, hi.as_micros() as u64);
        if hi_us <= lo_us {
            return lo;
        }
        Duration::from_micros(lo_us + self.below(hi_us - lo_us + 1))
    }
}
