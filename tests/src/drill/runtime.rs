//! The executors the drill runs on (`--runtime`), as [`TestRuntime`]s so that the scenarios'
//! worker pool runs unchanged on them. Only the chosen one is created.

use super::error::DrillError;
use crate::scenarios::TestRuntime;
use std::future::Future;

/// A multi-threaded tokio runtime (two worker threads), for `dramatiq-sentinel-tokio`.
#[derive(Debug)]
pub(crate) struct TokioDrill(tokio::runtime::Runtime);

impl TokioDrill {
    pub(crate) fn try_new() -> Result<Self, DrillError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map(Self)
            .map_err(|source| DrillError::Runtime {
                runtime: "tokio",
                source,
            })
    }
}

impl TestRuntime for TokioDrill {
    type Rt = dramatiq_sentinel_tokio::Tokio;
    const NAME: &'static str = "tokio";

    /// Panics if the runtime cannot be created; the drill uses [`TokioDrill::try_new`].
    fn new() -> Self {
        Self::try_new().expect("a tokio runtime")
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// smol's global executor (`SMOL_THREADS` threads, default one) and `async-io` timers, for
/// `dramatiq-sentinel-smol`. No tokio runtime exists in the process then, so the `redis`
/// crate (built with both runtimes in this workspace) uses smol for every connection.
#[derive(Debug, Default)]
pub(crate) struct SmolDrill;

impl TestRuntime for SmolDrill {
    type Rt = dramatiq_sentinel_smol::Smol;
    const NAME: &'static str = "smol";

    fn new() -> Self {
        Self
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}
