//! `dramatiq_sentinel._native`: the Rust supervisor (`dramatiq-sentinel-tokio`), hosted for
//! Python. It runs on a tokio runtime of its own (background threads owned by this module)
//! and makes every failover decision; the Python package performs what it is told (pause,
//! resume or stop the dramatiq worker, run hooks, exit) and asks it, before each Redis
//! connection, for the verified master (waiting while commands are held).
//!
//! Nothing here panics across the FFI boundary: every failure is a Python exception whose
//! message names the setting, the sentinel or the master concerned.

mod backoff;
mod config;
mod events;
mod lost;
mod records;
mod supervisor;
mod sync;
mod workers;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    StartError,
    pyo3::exceptions::PyException,
    "The supervisor found no verified master (each sentinel's failure is named)."
);
pyo3::create_exception!(
    _native,
    MasterUnavailable,
    pyo3::exceptions::PyException,
    "No verified master within hold_timeout, or the supervisor stopped."
);

pyo3::create_exception!(
    _native,
    CommandFailed,
    pyo3::exceptions::PyException,
    "A command of a lost-writes hand-back failed (an error reply, a broken connection, or the hand-back is over)."
);

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StartError", py.get_type::<StartError>())?;
    m.add("MasterUnavailable", py.get_type::<MasterUnavailable>())?;
    m.add("CommandFailed", py.get_type::<CommandFailed>())?;
    m.add_class::<backoff::NativeBackoff>()?;
    m.add_class::<config::NativeConfig>()?;
    m.add_function(wrap_pyfunction!(config::settings, m)?)?;
    m.add_class::<supervisor::NativeSupervisor>()?;
    m.add_class::<supervisor::NativePermit>()?;
    m.add_class::<lost::NativeLostWrites>()?;
    Ok(())
}
