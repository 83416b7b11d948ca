//! The executors the drill runs on, as [`TestRuntime`]s so that the scenarios' worker pool
//! runs unchanged on them.

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
