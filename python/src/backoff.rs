//! The core's backoff ([`Backoff`]) for the Python package's own waits between two sends of
//! one command, so every retrying activity, in Rust and in Python, grows and jitters its
//! delays the same way.

use dramatiq_sentinel_supervisor::core_api::Backoff;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::time::Duration;

/// `Backoff(min, max, factor)`: delays from `min` seconds growing ×`factor` after each
/// failure up to `max`, each drawn from `[base / 2, base]` at the caller's uniform draw.
#[pyclass(name = "Backoff", module = "dramatiq_sentinel._native")]
pub(crate) struct NativeBackoff(Backoff);

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name}: {value} is not a duration in seconds")))
}

#[pymethods]
impl NativeBackoff {
    #[new]
    fn new(min: f64, max: f64, factor: f64) -> PyResult<Self> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(PyValueError::new_err(format!(
                "factor: {factor} must be a finite number >= 1"
            )));
        }
        Ok(Self(Backoff::new(
            seconds("min", min)?,
            seconds("max", max)?,
            factor,
        )))
    }

    /// The delay in seconds before the next attempt, at `unit` (a uniform draw from
    /// `[0, 1]`), then counts one more failure.
    fn next_delay(&mut self, unit: f64) -> f64 {
        self.0.next_delay_at(unit).as_secs_f64()
    }

    /// Back to `min`.
    fn reset(&mut self) {
        self.0.reset();
    }
}
