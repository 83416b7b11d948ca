//! The supervisor's worker pool as a Python object: `pause()`, `resume()`, `stop(grace)` and
//! `writes_lost(lost)` run on tokio's blocking threads with the GIL, and the supervisor awaits
//! them (it bounds the pause with `pause_timeout`, and the hand-back with `fence_timeout`).

use crate::lost::NativeLostWrites;
use dramatiq_sentinel_supervisor::{BoxFuture, LostWrites, Workers};
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A Python object with `pause()`, `resume()`, `stop(grace_seconds)` and `writes_lost(lost)`
/// methods. Exceptions they raise are printed (the Python side logs its own failures before
/// they get here).
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

/// Calls `obj.writes_lost(lost)` on a blocking thread, with the GIL; the connection of the
/// hand-back is closed when it returns.
async fn hand_back(obj: Arc<Py<PyAny>>, lost: LostWrites) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return; // the supervisor runs on this module's tokio runtime: not reached
    };
    let task = tokio::task::spawn_blocking(move || {
        Python::attach(|py| {
            let native = match Py::new(py, NativeLostWrites::of(lost, handle)) {
                Ok(native) => native,
                Err(e) => {
                    e.print(py);
                    return;
                }
            };
            if let Err(e) = obj.call_method1(py, "writes_lost", (native.clone_ref(py),)) {
                e.print(py);
            }
            native.get().close();
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

    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        Box::pin(hand_back(Arc::clone(&self.obj), lost))
    }
}
