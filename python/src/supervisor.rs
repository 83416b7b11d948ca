//! `Supervisor`: the Rust supervisor on a tokio runtime owned by this object, and the calls
//! the Python package makes into it. Blocking calls release the GIL.

use crate::config::NativeConfig;
use crate::events::EventQueue;
use crate::workers::PyWorkers;
use crate::{MasterUnavailable, StartError, records};
use dramatiq_sentinel_supervisor::Host;
use dramatiq_sentinel_tokio::{Addr, AppErrorKind, Permit, Supervisor};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The pause between two waits for the master when the first failed at once.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running supervisor and its runtime.
struct Running {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    sup: Supervisor,
    host: Host,
    events: Arc<EventQueue>,
}

impl Running {
    /// Runs `future` to completion on this thread, inside the runtime's context (so it works
    /// from Python threads and from the runtime's own blocking threads alike).
    fn wait<F: Future>(&self, future: F) -> F::Output {
        let _entered = self.handle.enter();
        futures_lite::future::block_on(future)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.events.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The supervisor (`Supervisor.start(config, workers, on_exit)`).
#[pyclass(frozen, name = "Supervisor", module = "dramatiq_sentinel._native")]
pub(crate) struct NativeSupervisor {
    running: Mutex<Option<Arc<Running>>>,
    /// The host view, outside the lock: the per-send generation check reads it directly.
    host: Host,
    events: Arc<EventQueue>,
}

/// A permit of the worker gate: one job may run until it is released (or dropped).
#[pyclass(frozen, name = "Permit", module = "dramatiq_sentinel._native")]
pub(crate) struct NativePermit {
    permit: Mutex<Option<Permit>>,
}

#[pymethods]
impl NativePermit {
    /// Returns the permit (idempotent).
    fn release(&self) {
        lock(&self.permit).take();
    }
}

fn addr_tuple(a: &Addr) -> (String, u16) {
    (a.host().to_owned(), a.port())
}

fn stopped() -> PyErr {
    MasterUnavailable::new_err("dramatiq-sentinel: the supervisor is not running")
}

impl NativeSupervisor {
    fn running(&self) -> PyResult<Arc<Running>> {
        lock(&self.running).clone().ok_or_else(stopped)
    }
}

#[pymethods]
impl NativeSupervisor {
    /// Starts the supervisor on a runtime of its own and returns once a master is verified
    /// (or raises `StartError` naming why not). `workers` (with `pause()`, `resume()`,
    /// `stop(grace_seconds)`) is the pool the supervisor pauses; `on_exit(code)` runs right
    /// before the process exits after a pause timeout.
    #[staticmethod]
    #[pyo3(signature = (config, workers=None, on_exit=None))]
    fn start(
        py: Python<'_>,
        config: PyRef<'_, NativeConfig>,
        workers: Option<Py<PyAny>>,
        on_exit: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dramatiq-sentinel")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a tokio runtime: {e}")))?;
        let events = Arc::new(EventQueue::default());
        let queue = Arc::clone(&events);
        let mut builder =
            Supervisor::builder(config.config.clone()).on_event(move |e| queue.push(e));
        if let Some(obj) = workers {
            builder = builder.workers(PyWorkers { obj: Arc::new(obj) });
        }
        if let Some(hook) = on_exit {
            builder = builder.before_exit(move |code| {
                Python::attach(|py| {
                    if let Err(e) = hook.call1(py, (code,)) {
                        e.print(py);
                    }
                });
            });
        }
        let started = py.detach(|| rt.block_on(builder.start()));
        match started {
            Ok(sup) => {
                let host = Host::new(&sup);
                Ok(Self {
                    host: host.clone(),
                    events: Arc::clone(&events),
                    running: Mutex::new(Some(Arc::new(Running {
                        handle: rt.handle().clone(),
                        rt: Some(rt),
                        sup,
                        host,
                        events,
                    }))),
                })
            }
            Err(e) => {
                rt.shutdown_background();
                Err(StartError::new_err(e.to_string()))
            }
        }
    }

    /// The verified master commands may go to now, or `None` while commands are held.
    fn master_now(&self) -> PyResult<Option<(String, u16)>> {
        Ok(self.running()?.host.master_now().as_ref().map(addr_tuple))
    }

    /// The master in use (also while held), or `None` once stopped.
    fn current_master(&self) -> PyResult<Option<(String, u16)>> {
        Ok(self
            .running()?
            .host
            .current_master()
            .as_ref()
            .map(addr_tuple))
    }

    /// Whether commands are held now (a failover is in progress).
    fn is_held(&self) -> PyResult<bool> {
        Ok(self.running()?.host.is_held())
    }

    /// The generation of the master in use if commands may go to it now, else `None` (held,
    /// or stopped): the check before every send (one lock, no allocation, GIL kept).
    fn generation(&self) -> Option<u64> {
        self.host.generation()
    }

    /// The verified master and its generation, `(host, port, generation)`, waiting (GIL
    /// released) while commands are held: at most `hold_timeout`, and at most `timeout`
    /// seconds when given (what is left of a command's deadline). Raises
    /// `MasterUnavailable(message, kind)` after that. With `probe`, always waits through the
    /// supervisor's own connection (after a connect failure: the wait then includes the hold
    /// on an unreachable master).
    #[pyo3(signature = (probe=false, timeout=None))]
    fn wait_master(
        &self,
        py: Python<'_>,
        probe: bool,
        timeout: Option<f64>,
    ) -> PyResult<(String, u16, u64)> {
        let running = self.running()?;
        if !probe && let Some(found) = in_use(&running.host) {
            return Ok(found);
        }
        let limit = timeout
            .map(|t| Duration::try_from_secs_f64(t.max(0.0)))
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let deadline = limit.map(|l| Instant::now() + l);
        let mut first = true;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let host = &running.host;
            let pause = !std::mem::take(&mut first);
            let result = py.detach(|| {
                if pause {
                    // A wait that failed at once (a connection that broke): the next one
                    // after a short pause, so a master failing every command fast is not
                    // spun on.
                    std::thread::sleep(RETRY_PAUSE.min(left.unwrap_or(RETRY_PAUSE)));
                }
                running.wait(async {
                    match left {
                        Some(left) => tokio::time::timeout(left, host.wait_master())
                            .await
                            .unwrap_or_else(|_| Err(out_of_time(limit))),
                        None => host.wait_master().await,
                    }
                })
            });
            match result {
                Ok(_) => {
                    if let Some(found) = in_use(host) {
                        return Ok(found);
                    }
                    // Fenced or moved again right after the wait: wait once more.
                }
                Err(dramatiq_sentinel_supervisor::HostError::Unavailable { message, kind }) => {
                    // The supervisor's PING was cut (its connection broke, or the master moved
                    // under it), or got no answer in `command_timeout`: the next one
                    // reconnects, or waits in the hold on an unreachable master, within the
                    // caller's deadline.
                    // (A connection that broke reports no I/O kind.)
                    let time_left = deadline.is_some_and(|d| Instant::now() < d);
                    let again = match kind {
                        None | Some(std::io::ErrorKind::ConnectionAborted) => time_left,
                        Some(std::io::ErrorKind::TimedOut) => time_left,
                        _ => false,
                    };
                    if !again {
                        return Err(MasterUnavailable::new_err((
                            message,
                            kind.map(|k| format!("{k:?}")),
                        )));
                    }
                }
                Err(other) => {
                    return Err(MasterUnavailable::new_err((
                        other.to_string(),
                        None::<String>,
                    )));
                }
            }
        }
    }

    /// Waits (GIL released) at most `timeout` seconds until a master other than the one of
    /// activation count `seen` was activated; returns the activation count.
    fn wait_activation(&self, py: Python<'_>, seen: u64, timeout: f64) -> PyResult<u64> {
        let limit = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let events = Arc::clone(&self.events);
        Ok(py.detach(|| events.wait_activation(seen, limit)))
    }

    /// Reports an error the Python client saw on `host:port`: `kind` is `"readonly"`, `"io"`
    /// or `"timeout"`. Returns at once; the supervisor re-checks it in the background.
    fn check_error(&self, host: String, port: u16, kind: &str) -> PyResult<()> {
        let kind = match kind {
            "readonly" => AppErrorKind::ReadOnly,
            "io" => AppErrorKind::Io,
            "timeout" => AppErrorKind::Timeout,
            other => {
                return Err(PyValueError::new_err(format!(
                    "kind: `{other}` is not readonly, io or timeout"
                )));
            }
        };
        let running = self.running()?;
        let h = running.host.clone();
        running.handle.spawn(async move {
            h.check_error(&Addr::new(host, port), kind).await;
        });
        Ok(())
    }

    /// Takes a permit of the worker gate, waiting (GIL released) at most `timeout` seconds
    /// while it is closed (fenced). `None` on timeout; raises `MasterUnavailable` once the
    /// supervisor stopped.
    fn enter_gate(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<NativePermit>> {
        let running = self.running()?;
        let limit = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let gate = running.host.gate().clone();
        let entered =
            py.detach(|| running.wait(async { tokio::time::timeout(limit, gate.enter()).await }));
        match entered {
            Ok(Ok(permit)) => Ok(Some(NativePermit {
                permit: Mutex::new(Some(permit)),
            })),
            Ok(Err(_)) => Err(MasterUnavailable::new_err(
                "dramatiq-sentinel: the supervisor stopped: no new job may start",
            )),
            Err(_) => Ok(None),
        }
    }

    /// The next event as a dict, waiting (GIL released) at most `timeout` seconds; `None` if
    /// none came (or the supervisor stopped and every event was taken).
    fn next_event<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let limit = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let events = Arc::clone(&self.events);
        match py.detach(|| events.pop(limit)) {
            Some(event) => records::event(py, &event).map(Some),
            None => Ok(None),
        }
    }

    /// How many events were dropped because the Python side fell behind (routine ones
    /// first; see `events.rs`).
    fn dropped_events(&self) -> u64 {
        self.events.dropped()
    }

    /// Master, replicas, sentinels and quorum as the first answering sentinel sees them.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let running = self.running()?;
        let status = py.detach(|| running.wait(running.sup.status()));
        match status {
            Ok(s) => records::status(py, &s),
            Err(e) => Err(MasterUnavailable::new_err(e.to_string())),
        }
    }

    /// Whether the supervisor stopped (shut down, or failed).
    fn is_stopped(&self) -> bool {
        lock(&self.running)
            .as_ref()
            .is_none_or(|r| r.sup.is_stopped())
    }

    /// Shuts the supervisor down (jobs in flight get `stop_grace`), waiting at most `timeout`
    /// seconds (GIL released), then stops its runtime. Idempotent. Returns how it ended:
    /// `None` after a clean shutdown, else the error text.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<String>> {
        let Some(running) = lock(&self.running).take() else {
            return Ok(None);
        };
        let limit = Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let ended = py.detach(|| {
            running.wait(async { tokio::time::timeout(limit, running.sup.shutdown()).await })
        });
        drop(running);
        Ok(match ended {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("the supervisor did not stop within {limit:?}")),
        })
    }

    /// Forgets the supervisor without stopping it: for a forked child, where its threads and
    /// sockets do not exist (stopping them would wait forever).
    fn abandon(&self) {
        if let Some(running) = lock(&self.running).take() {
            std::mem::forget(running);
        }
    }
}

/// The master in use with its generation, read consistently (the generation is the same
/// before and after reading the address), or `None` while held.
fn in_use(host: &Host) -> Option<(String, u16, u64)> {
    let generation = host.generation()?;
    let master = host.master_now()?;
    (host.generation() == Some(generation)).then(|| {
        let (h, p) = addr_tuple(&master);
        (h, p, generation)
    })
}

/// The error of a command whose own deadline passed while it waited for the master.
fn out_of_time(limit: Option<Duration>) -> dramatiq_sentinel_supervisor::HostError {
    let left = limit.map_or(0.0, |l| l.as_secs_f64());
    dramatiq_sentinel_supervisor::HostError::Unavailable {
        message: format!(
            "dramatiq-sentinel: no verified master before the command's deadline \
             (hold_timeout from its start; {left:.2} s of it were left for this wait)"
        ),
        kind: Some(std::io::ErrorKind::TimedOut),
    }
}
