//! The supervisor scenario suite on smol (`dramatiq-sentinel-smol`).
//!
//! In a workspace build the `redis` crate has both `tokio-comp` and `smol-comp`, and uses tokio
//! for any connection made while a tokio runtime is entered. So this suite checks that none
//! ever is: every task the supervisor or a scenario spawns, and every future the test thread
//! blocks on, asserts on each poll that no tokio runtime is entered (the one thing `redis`
//! looks at), and after each `block_on` no tokio worker thread may exist in the process. With
//! `tokio-comp` in the build and no tokio context, a connection made through tokio would panic
//! ("no reactor running"): the suite passing means `redis` used smol and `async-io`.

use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_smol::Smol;
use dramatiq_sentinel_supervisor::{BoxFuture, RedisStream, Runtime};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

/// Polls that found a tokio runtime entered.
static IN_TOKIO: AtomicUsize = AtomicUsize::new(0);

/// Whether the current thread is inside a tokio runtime (what `redis` checks).
fn tokio_entered() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Tokio worker threads of this process (named `tokio-runtime-worker` by default).
fn tokio_threads() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("tokio"))
        .collect()
}

/// A future that records (and panics on) every poll made inside a tokio runtime.
struct NoTokio<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for NoTokio<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if tokio_entered() {
            IN_TOKIO.fetch_add(1, Ordering::SeqCst);
            panic!("a smol scenario was polled inside a tokio runtime");
        }
        self.0.as_mut().poll(cx)
    }
}

/// [`Smol`] (smol's global executor, `async-io` timers), with every spawned task wrapped in
/// [`NoTokio`].
#[derive(Debug, Clone, Default)]
struct CheckedSmol(Smol);

impl Runtime for CheckedSmol {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        self.0.spawn(Box::pin(NoTokio(future)));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.0.sleep_until(deadline)
    }

    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        let connect = self.0.connect_tcp(host, port)?;
        Some(Box::pin(NoTokio(connect)))
    }
}

/// Scenarios block on `smol::block_on` (no tokio anywhere); tasks run on smol's global
/// executor threads.
struct SmolTests;

impl TestRuntime for SmolTests {
    type Rt = CheckedSmol;
    const NAME: &'static str = "smol";

    fn new() -> Self {
        Self
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        assert!(
            !tokio_entered(),
            "the smol suite runs inside a tokio runtime"
        );
        let out = smol::block_on(NoTokio(Box::pin(future)));
        assert_eq!(IN_TOKIO.load(Ordering::SeqCst), 0, "polls inside tokio");
        assert_eq!(tokio_threads(), Vec::<String>::new(), "tokio threads exist");
        out
    }
}

dramatiq_sentinel_tests::supervisor_suite!(SmolTests);

/// The check above can fail: inside a tokio runtime (a current-thread one, so that no tokio
/// thread appears while other tests of this binary run), `tokio_entered` sees it.
#[test]
fn the_tokio_check_detects_tokio() {
    assert!(!tokio_entered());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    assert!(rt.block_on(async { tokio_entered() }));
    assert!(!tokio_entered());
}
