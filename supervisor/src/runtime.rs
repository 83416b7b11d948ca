//! The tiny runtime trait the supervisor is written against, and the timeout helpers built
//! from it. A runtime shim implements [`Runtime`] with its executor's spawn, timer and TCP
//! connect.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed, sendable future, as the [`Runtime`] and [`crate::Workers`] traits use.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connected byte stream to a Redis server, as [`Runtime::connect_tcp`] returns it (the
/// `redis` crate's `MultiplexedConnection::new_with_config` takes it).
pub type RedisStream = Pin<Box<dyn redis::aio::AsyncStream + Send + Sync>>;

/// What the supervisor needs from an async executor: spawning a task and a timer.
///
/// Everything else (Redis I/O, channels, notifications) is executor-agnostic. The `redis`
/// crate's own runtime feature (`tokio-comp` or `smol-comp`) must match the executor.
pub trait Runtime: Send + Sync + 'static {
    /// Runs the future to completion in the background (detached).
    fn spawn(&self, future: BoxFuture<'static, ()>);

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Opens a plain TCP connection to `host:port` (resolving `host` on this executor), with
    /// the socket options the `redis` crate uses by default; `None` if this runtime does not
    /// offer one (the default).
    ///
    /// The supervisor opens its master connections through it and drives them itself, so a
    /// switch can close a connection to the old master at once, whoever still holds a clone,
    /// which keeps every command of a [`crate::MasterConnection`] free of locks while no
    /// failover is under way. Without it (and with TLS) the `redis` crate opens and drives
    /// them, and each command takes a slower path (a lock and a cancellation listener).
    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        let _ = (host, port);
        None
    }
}

/// `now + limit`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Runs `future` until `deadline`; `None` if the deadline came first.
pub(crate) async fn until<F: Future>(
    rt: &dyn Runtime,
    deadline: Instant,
    future: F,
) -> Option<F::Output> {
    let sleep = rt.sleep_until(deadline);
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep.await;
        None
    })
    .await
}

/// Runs `future` for at most `limit`; `None` if it took longer.
pub(crate) async fn timeout<F: Future>(
    rt: &dyn Runtime,
    limit: Duration,
    future: F,
) -> Option<F::Output> {
    until(rt, deadline_after(limit), future).await
}
