//! The executors the pool, the scenarios, the drill and the benchmark run on: [`TestRuntime`]
//! and its tokio and smol implementations. (The smol scenario suite wraps smol in extra checks
//! of its own, in `tests/tests/supervisor_smol.rs` of the repository.)

use dramatiq_sentinel_supervisor::Runtime;
use std::future::Future;
use std::time::{Duration, Instant};

/// A runtime to run a supervisor and a pool on: a runtime shim's [`Runtime`] type and a
/// `block_on`.
pub trait TestRuntime: Sized + 'static {
    /// The shim's runtime type.
    type Rt: Runtime + Default;
    /// For messages, e.g. `tokio`.
    const NAME: &'static str;
    /// A fresh runtime whose spawned tasks run on background threads (so they make progress
    /// while the test thread runs blocking harness calls).
    fn new() -> Self;
    /// Runs a future to completion on this runtime.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// Runs `future` on a background task of the runtime.
pub fn spawn<R: TestRuntime>(future: impl Future<Output = ()> + Send + 'static) {
    R::Rt::default().spawn(Box::pin(future));
}

/// Sleeps on the runtime's timer.
pub async fn sleep<R: TestRuntime>(d: Duration) {
    R::Rt::default().sleep_until(Instant::now() + d).await;
}

/// A multi-threaded tokio runtime (two worker threads), for `dramatiq-sentinel-tokio`.
#[derive(Debug)]
pub struct TokioRuntime(tokio::runtime::Runtime);

impl TokioRuntime {
    /// A new runtime, or why it could not be created.
    pub fn try_new() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map(Self)
    }
}

impl TestRuntime for TokioRuntime {
    type Rt = dramatiq_sentinel_tokio::Tokio;
    const NAME: &'static str = "tokio";

    /// Panics if the runtime cannot be created; see [`TokioRuntime::try_new`].
    fn new() -> Self {
        Self::try_new().expect("a tokio runtime")
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// smol's global executor (`SMOL_THREADS` threads, default one) and `async-io` timers, for
/// `dramatiq-sentinel-smol`. Without a tokio runtime in the process, the `redis` crate (built
/// with both runtimes in this workspace) uses smol for every connection.
#[derive(Debug, Default)]
pub struct SmolRuntime;

impl TestRuntime for SmolRuntime {
    type Rt = dramatiq_sentinel_smol::Smol;
    const NAME: &'static str = "smol";

    fn new() -> Self {
        Self
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}
