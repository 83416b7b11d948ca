//! Helpers of the unit tests: a runtime made of threads, and a supervisor's shared state
//! without a supervisor's task.

use crate::config::Config;
use crate::drive::shared::{Input, Shared};
use crate::handles::gate::Workers;
use crate::observe::events::{Broadcast, Hooks};
use crate::runtime::{BoxFuture, RedisStream, Runtime};
use async_channel::Receiver;
use std::sync::Arc;
use std::time::Instant;

/// A runtime for unit tests: tasks on their own threads (truly parallel), timers on sleeping
/// threads.
pub(crate) struct ThreadRuntime;

impl Runtime for ThreadRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        std::thread::spawn(move || futures_lite::future::block_on(future));
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let (tx, rx) = async_channel::bounded::<()>(1);
        std::thread::spawn(move || {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            let _ = tx.try_send(());
        });
        Box::pin(async move {
            let _ = rx.recv().await;
        })
    }
}

/// The shared state of a supervisor with `config` on [`ThreadRuntime`], and its inbox.
pub(crate) fn shared(
    config: Config,
    workers: Option<Arc<dyn Workers>>,
) -> (Arc<Shared>, Receiver<Input>) {
    Shared::new(
        Arc::new(ThreadRuntime),
        config.with_jitter_seed(7),
        workers,
        Broadcast::default(),
        Hooks::default(),
        None,
    )
}

/// A two-thread tokio runtime with I/O and timers, as the tests that open connections use.
pub(crate) fn two_thread_tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// A runtime for unit tests that open Redis connections: a multi-thread tokio runtime (the
/// `redis` crate of the unit tests is built with `tokio-comp`).
pub(crate) struct TokioRuntime(pub(crate) tokio::runtime::Handle);

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        drop(self.0.spawn(future));
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let _entered = self.0.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        let (handle, host) = (self.0.clone(), host.to_owned());
        Some(Box::pin(async move {
            // Connected on the runtime's own threads, where the socket registers.
            let stream = handle
                .spawn(async move { tokio::net::TcpStream::connect((host.as_str(), port)).await })
                .await
                .map_err(std::io::Error::other)??;
            Ok(Box::pin(stream) as RedisStream)
        }))
    }
}

/// [`TokioRuntime`] without [`Runtime::connect_tcp`]: the `redis` crate opens and drives the
/// master connections (the master handle's slower path, as with TLS).
pub(crate) struct PlainTokioRuntime(pub(crate) tokio::runtime::Handle);

impl Runtime for PlainTokioRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        drop(self.0.spawn(future));
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let _entered = self.0.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// Like [`shared`], on a tokio runtime.
pub(crate) fn shared_on(rt: Arc<dyn Runtime>, config: Config) -> (Arc<Shared>, Receiver<Input>) {
    Shared::new(
        rt,
        config.with_jitter_seed(7),
        None,
        Broadcast::default(),
        Hooks::default(),
        None,
    )
}
