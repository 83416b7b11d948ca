//! Polling with a deadline (the harness never sleeps a fixed time to synchronise).

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
