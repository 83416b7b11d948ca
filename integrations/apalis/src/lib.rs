//! # dramatiq-sentinel-apalis
//!
//! [apalis](https://docs.rs/apalis) workers and [apalis-redis](https://docs.rs/apalis-redis)
//! storage that follow Redis Sentinel failovers, on the dramatiq-sentinel supervisor. apalis-redis
//! is generic over its connection (`RedisStorage<Args, Conn>`); this crate gives it the
//! supervisor's master handle, and gives the supervisor the apalis workers:
//!
//! - [`ApalisConnection`]: the storage's connection, a
//!   [`MasterConnection`](dramatiq_sentinel_supervisor::MasterConnection) that always talks to
//!   the verified master (commands held during a failover and sent to the new master, every
//!   connection to the old one closed), and that sends a command cut by a failover again, so
//!   that apalis workers (which stop at their first Redis error) live through master kills and
//!   freezes. [`storage`] builds a `RedisStorage` on it.
//! - [`ApalisWorkers`]: the supervisor's [`Workers`](dramatiq_sentinel_supervisor::Workers)
//!   trait for apalis workers (pause = stop polling and wait for the tasks in flight, resume,
//!   stop with a grace period). It does not ask for a drain: see its documentation.
//!
//! Features `tokio` and `smol` pick the executor, like the runtime shims: they enable
//! apalis-redis's matching `redis` runtime and re-export the shim as the module `tokio`
//! or `smol`. Nothing else differs: this crate does no I/O of its own.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # mod example {
//! use apalis_core::worker::builder::WorkerBuilder;
//! use dramatiq_sentinel_apalis::tokio::{Config, Supervisor};
//! use dramatiq_sentinel_apalis::{ApalisWorkers, storage};
//!
//! async fn send_email(to: String) -> Result<(), std::io::Error> {
//!     println!("email to {to}");
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder()
//!     .sentinels(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
//!     .service_name("mymaster")
//!     .build()?;
//! let pool = ApalisWorkers::new();
//! let supervisor = Supervisor::builder(config).workers(pool.clone()).start().await?;
//! let emails = storage::<String>(&supervisor.master(), apalis_redis::Config::default().queue("emails"));
//! let worker = WorkerBuilder::new(pool.context("email-worker-1"))
//!     .backend(emails)
//!     .build(send_email);
//! worker.run().await?;
//! supervisor.shutdown().await?;
//! # Ok(()) }
//! # }
//! ```
//!
//! See `examples/apalis_worker.rs` (tokio) and `examples/apalis_worker_smol.rs` for complete programs.

mod connection;
mod workers;

pub use apalis_redis;
pub use connection::ApalisConnection;
pub use workers::ApalisWorkers;

/// apalis-redis storage on the supervisor's master handle.
pub type Storage<Args> = apalis_redis::RedisStorage<Args, ApalisConnection>;

/// An apalis-redis storage for `Args` with `config`, on `master` (a clone of the supervisor's
/// master handle: storages share its multiplexed connection).
pub fn storage<Args>(
    master: &dramatiq_sentinel_supervisor::MasterConnection,
    config: apalis_redis::Config,
) -> Storage<Args> {
    apalis_redis::RedisStorage::new(ApalisConnection::new(master.clone())).with_config(config)
}

/// The tokio runtime shim, `dramatiq-sentinel-tokio` (feature `tokio`).
#[cfg(feature = "tokio")]
pub mod tokio {
    pub use dramatiq_sentinel_tokio::*;
}

/// The smol runtime shim, `dramatiq-sentinel-smol` (feature `smol`).
#[cfg(feature = "smol")]
pub mod smol {
    pub use dramatiq_sentinel_smol::*;
}
