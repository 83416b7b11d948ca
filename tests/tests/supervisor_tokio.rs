//! The supervisor scenario suite on tokio (`dramatiq-sentinel-tokio`): a multi-threaded tokio
//! runtime per scenario.

dramatiq_sentinel_tests::supervisor_suite!(dramatiq_sentinel_harness::runtime::TokioRuntime);
