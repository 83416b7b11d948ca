//! # dramatiq-sentinel-tokio
//!
//! The dramatiq-sentinel supervisor on tokio: it watches Redis Sentinel, moves a master
//! connection to each new master and pauses your workers around each switch. Everything but
//! the executor lives in `dramatiq-sentinel-supervisor`; this crate plugs tokio in ([`Tokio`])
//! and enables the `redis` crate's `tokio-comp` (and, with the `tls-rustls` or
//! `tls-native-tls` feature, its TLS support).
//!
//! Start it inside a tokio runtime:
//!
//! ```no_run
//! use dramatiq_sentinel_tokio::{Config, Supervisor, redis::AsyncCommands};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder()
//!     .sentinels(["127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"])
//!     .service_name("mymaster")
//!     .build()?;
//! let supervisor = Supervisor::start(config).await?;
//! let mut redis = supervisor.master();
//! let gate = supervisor.gate();
//! loop {
//!     let _permit = gate.enter().await?; // waits while a failover is in progress
//!     let job: Option<String> = redis.lmove("queue", "processing",
//!         redis::Direction::Right, redis::Direction::Left).await?;
//!     let Some(job) = job else { break };
//!     // ... run the job ...
//!     let _: () = redis.lrem("processing", 1, &job).await?;
//! }
//! supervisor.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! See `examples/worker.rs` for a complete program.

use dramatiq_sentinel_supervisor::{RedisStream, Runtime};
use std::time::Instant;

pub use dramatiq_sentinel_supervisor::prelude::*;

/// The tokio [`Runtime`]: tasks and timers on one tokio runtime, held by its handle, so the
/// supervisor's handles ([`MasterConnection`], [`WorkerGate`], ...) work from any thread, also
/// one outside that runtime.
///
/// [`Tokio::default`] (what [`Supervisor::start`] and [`Supervisor::builder`] use) holds the
/// runtime of its first use, the one [`Builder::start`] runs in; [`Tokio::current`] the one it
/// is called in; [`Tokio::with_handle`] names one explicitly.
#[derive(Debug, Clone, Default)]
pub struct Tokio {
    handle: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Tokio {
    /// The runtime of `handle`.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        Self {
            handle: handle.into(),
        }
    }

    /// The runtime this is called in.
    pub fn current() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Self::with_handle(handle),
            Err(_) => Self::default(),
        }
    }

    /// The runtime held, or else the current one (held from then on).
    fn handle(&self) -> &tokio::runtime::Handle {
        self.handle.get_or_init(|| {
            tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
                // A programming error, named as such: there is no runtime to run on.
                panic!(
                    "dramatiq-sentinel-tokio: no tokio runtime: start the supervisor inside \
                     one, or build it with `Builder::new(Tokio::with_handle(handle), config)`"
                )
            })
        })
    }
}

impl Runtime for Tokio {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        drop(self.handle().spawn(future));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        // A tokio timer registers with the runtime that is current when it is created.
        let _entered = self.handle().enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        let host = host.to_owned();
        let connect = async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(Box::pin(stream) as RedisStream)
        };
        // The socket registers with the runtime current when it is polled: this one, also
        // when the future runs elsewhere.
        Some(Box::pin(InRuntime {
            handle: self.handle().clone(),
            future: Box::pin(connect),
        }))
    }
}

/// A future polled with a tokio runtime entered.
struct InRuntime<F> {
    handle: tokio::runtime::Handle,
    future: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> std::future::Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.handle.enter();
        this.future.as_mut().poll(cx)
    }
}

/// The supervisor on tokio; see [`dramatiq_sentinel_supervisor::Supervisor`]. Start it with
/// [`Supervisor::start`] or [`Supervisor::builder`] from within a tokio runtime.
pub type Supervisor = dramatiq_sentinel_supervisor::Supervisor<Tokio>;

/// Configures a [`Supervisor`] on tokio; see [`dramatiq_sentinel_supervisor::Builder`].
pub type Builder = dramatiq_sentinel_supervisor::Builder<Tokio>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The stream `connect_tcp` gives works, also when its future is polled outside the
    /// runtime (the socket registers with the runtime it was made for).
    #[test]
    fn connect_tcp_works_outside_the_runtime() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0_u8; 4];
            stream.read_exact(&mut buf).expect("read");
            stream.write_all(&buf).expect("echo");
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio");
        let rt = Tokio::with_handle(runtime.handle().clone());
        let connect = rt.connect_tcp("127.0.0.1", port).expect("supported");
        // Polled on this thread, where no runtime is entered.
        let stream = futures_executor(connect).expect("connected");
        let echoed = runtime.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = stream;
            stream.write_all(b"ping").await.expect("write");
            let mut buf = [0_u8; 4];
            stream.read_exact(&mut buf).await.expect("read");
            buf
        });
        assert_eq!(&echoed, b"ping");
        server.join().expect("server");
    }

    /// Blocks on a future with a thread-parking waker (no runtime).
    fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}
