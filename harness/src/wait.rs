//! Polling with a deadline (the harness, the pool and the scenarios never sleep a fixed time to
//! synchronise).

use std::time::{Duration, Instant};

/// How often conditions are re-checked.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Ok` or `timeout` has passed; on timeout returns the last
/// `Err` description (the last observation, for the error message).
pub(crate) fn poll<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(detail) if Instant::now() >= deadline => return Err(detail),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// A generous deadline for anything a busy machine may slow down (a failover, a pool draining
/// its queue): what the scenarios, the pool and the drill wait at most.
pub const WAIT: Duration = Duration::from_secs(60);

/// Calls `check` until it returns `Ok`, or panics after `timeout` with `what` and the last
/// observation (the `Err` text). For tests and drills, where a timeout is a failure.
///
/// # Panics
/// When `timeout` passes without `check` returning `Ok`.
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    poll(timeout, check).unwrap_or_else(|last| {
        panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
    })
}
