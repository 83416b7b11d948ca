//! The supervisor's worker pool as a Python object: `pause()`, `resume()` and `stop(grace)`
//! run on tokio's blocking threads with the GIL, and the supervisor awaits them (it bounds the
//! pause with `pause_timeout` itself).

use dramatiq_sentinel_supervisor::{BoxFuture, Workers};
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A Python object with `pause()`, `resume()` and `stop(grace_seconds)` methods. Exceptions
/// they raise are printed (the Python side logs its own failures before they get here).
pub(crate) struct PyWorkers {
    pub(crate) obj: Arc<Py<PyAny>>,
}

/// Calls `obj.<method>(*args)` on a blocking thread, with the GIL.
async fn call(obj: Arc<Py<PyAny>>, method: &'static str, grace: Option<f64>) {
    let task = tokio::task::spawn_blocking(move || {
        Python::attach(|py| {
            let result = match grace {
                Some(g) => obj.call_method1(py, method, (g,)),
                None => obj.call_method0(py, method),
            };
            if let Err(e) = result {
                e.print(py);
            }
        });
    });
    let _ = task.await;
}

impl Workers for PyWorkers {
    fn pause(&self) -> BoxFuture<'_, ()> {
        Box::pin(call(Arc::clone(&self.obj), "pause", None))
    }

    fn resume(&self) -> BoxFuture<'_, ()> {
        Box::pin(call(Arc::clone(&self.obj), "resume", None))
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(call(
            Arc::clone(&self.obj),
            "stop",
            Some(grace.as_secs_f64()),
        ))
    }
}
