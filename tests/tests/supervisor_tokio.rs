//! The supervisor scenario suite on tokio (`dramatiq-sentinel-tokio`).

use dramatiq_sentinel_tests::scenarios::TestRuntime;
use std::future::Future;

/// A multi-threaded tokio runtime per scenario.
struct TokioTests(tokio::runtime::Runtime);

impl TestRuntime for TokioTests {
    type Rt = dramatiq_sentinel_tokio::Tokio;
    const NAME: &'static str = "tokio";

    fn new() -> Self {
        Self(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        )
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

dramatiq_sentinel_tests::supervisor_suite!(TokioTests);
