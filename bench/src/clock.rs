//! One clock for every process of a benchmark run: `CLOCK_MONOTONIC` in nanoseconds, which
//! Python (`time.monotonic_ns`), Node (`process.hrtime.bigint`) and this crate all read on
//! Linux, so timestamps from the peers, our writers and the observer compare directly.

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds of `CLOCK_MONOTONIC`.
///
/// `clock_gettime(CLOCK_MONOTONIC)` cannot fail on Linux; if it ever did, this returns 0 and
/// the figures of that run would be visibly absurd rather than silently wrong.
pub(crate) fn now_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// Milliseconds from `from` to `to` (negative when `to` comes first).
pub(crate) fn ms_between(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1e6
}

/// Sleeps until the clock reads `deadline` (returns at once if it has passed).
pub(crate) fn sleep_until_ns(deadline: u64) {
    let now = now_ns();
    if deadline > now {
        std::thread::sleep(std::time::Duration::from_nanos(deadline - now));
    }
}
