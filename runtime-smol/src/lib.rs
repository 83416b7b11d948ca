//! # dramatiq-sentinel-smol
//!
//! The dramatiq-sentinel supervisor on smol: it watches Redis Sentinel, moves a master
//! connection to each new master and pauses your workers around each switch. Everything but
//! the executor lives in `dramatiq-sentinel-supervisor`; this crate plugs smol in ([`Smol`]:
//! smol tasks and `async-io` timers) and enables the `redis` crate's `smol-comp` (and, with the
//! `tls-rustls` or `tls-native-tls` feature, its TLS support).
//!
//! The public names are those of `dramatiq-sentinel-tokio`: switching executors is a change
//! of one dependency line. Start it from any smol context, e.g. `smol::block_on`:
//!
//! ```no_run
//! use dramatiq_sentinel_smol::{Config, Supervisor, redis::AsyncCommands};
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
//! # fn main() { smol::block_on(run()).unwrap(); }
//! ```
//!
//! # Which executor runs the tasks
//! [`Supervisor::start`] and [`Supervisor::builder`] spawn the supervisor's tasks on smol's
//! global executor (`smol::spawn`), which runs on its own threads (`SMOL_THREADS`, default 1),
//! so they make progress whatever the caller's thread does. To keep them on an executor of
//! your own, start through [`Builder::new`] with [`Smol::with_executor`]; that executor must
//! be run (e.g. `executor.run(..)` on some threads) for as long as the supervisor lives. The
//! `redis` crate spawns each connection's driver on smol's global executor in any case.
//!
//! If `redis` is also built with `tokio-comp` (e.g. another crate of your build enables it),
//! it uses tokio for connections made while a tokio runtime is entered: run the supervisor
//! on smol threads only, as the two executors above do.
//!
//! See `examples/smol_worker.rs` for a complete program.

mod stream;

use dramatiq_sentinel_supervisor::{RedisStream, Runtime};
use smol::Executor;
use std::sync::Arc;
use std::time::Instant;

pub use dramatiq_sentinel_supervisor::prelude::*;

/// The smol [`Runtime`]: detached smol tasks (on smol's global executor, or on the one given
/// to [`Smol::with_executor`]) and `async-io` timers.
#[derive(Debug, Clone, Default)]
pub struct Smol {
    executor: Option<Arc<Executor<'static>>>,
}

impl Smol {
    /// Spawns the supervisor's tasks on `executor` instead of smol's global executor. The
    /// application must keep running it; see the [crate documentation](crate).
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            executor: Some(executor),
        }
    }
}

impl Runtime for Smol {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        // `smol::Timer` is `async_io::Timer`.
        let timer = smol::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }

    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        Some(Box::pin(stream::connect(host.to_owned(), port)))
    }
}

/// The supervisor on smol; see [`dramatiq_sentinel_supervisor::Supervisor`]. Start it with
/// [`Supervisor::start`] or [`Supervisor::builder`] (smol's global executor), or with
/// [`Builder::new`] and [`Smol::with_executor`].
pub type Supervisor = dramatiq_sentinel_supervisor::Supervisor<Smol>;

/// Configures a [`Supervisor`] on smol; see [`dramatiq_sentinel_supervisor::Builder`].
pub type Builder = dramatiq_sentinel_supervisor::Builder<Smol>;
