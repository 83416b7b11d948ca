//! # dramatiq-sentinel-supervisor
//!
//! The async supervisor of dramatiq-sentinel, written once for every executor: it drives the
//! sans-IO [`dramatiq_sentinel_core::Core`] with real Redis I/O (the `redis` crate) and needs
//! only a tiny [`Runtime`] (spawn and a timer) from the executor. Use it through a runtime
//! shim, `dramatiq-sentinel-tokio` or `dramatiq-sentinel-smol`, which plug their executor in
//! and enable the `redis` crate's matching runtime feature (this crate enables none: built on
//! its own, `redis` refuses to compile without one).
//!
//! What it gives an application:
//! - a [`Supervisor`] that starts once a master is verified, or fails with a [`StartError`];
//! - a [`MasterConnection`] that behaves like a `redis` async connection and always talks to
//!   the verified master (commands are held during a failover, cancelled on the old master);
//! - a [`WorkerGate`] (a [`Permit`] per job) and the [`Workers`] trait for self-managed pools;
//! - [`Event`]s as an [`EventStream`] or as hooks, each also logged with `tracing`;
//! - a [`Status`] query (master, replicas, sentinels, quorum);
//! - [`metrics`] through the `metrics` facade, for the exporter the application installs.
//!
//! # How the loop runs
//! One task owns the core. It repeats:
//! 1. drain the core's events: log each, run the hooks, send it to the subscribers;
//! 2. drain the core's actions and execute each in order: Redis calls run on their own tasks
//!    and report back through an inbox; gate and connection changes happen at once;
//! 3. wait for the first of an inbox message or the core's next deadline;
//! 4. feed it to the core with `Instant::now()`, and go back to 1.
//!
//! Every decision is the core's; this crate only executes actions and reports results.

mod backlog;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
mod config;
mod connect;
mod convert;
mod driver;
mod error;
mod event_log;
mod events;
mod exec;
mod failure;
#[cfg(test)]
mod fake_redis;
mod gate;
mod hold;
mod host;
mod link;
mod listener;
mod master;
pub mod metrics;
mod pubsub;
#[cfg(any(test, feature = "bench"))]
mod resp;
mod runtime;
mod shared;
mod status;
mod supervisor;
#[cfg(test)]
mod switch_tests;
mod sync;
#[cfg(test)]
mod testing;
mod watch;
mod workers;

pub use config::{ClientCert, Config, ConfigBuilder, Credentials, IO_SETTINGS};
pub use dramatiq_sentinel_core::{
    Addr, AppErrorKind, ConfigError, Description, DetectionPath, DiscoveryError, Event, EventLevel,
    FatalError, FieldValue, IgnoreReason, LostCommand, NatMap, PauseTimeoutPolicy, SETTINGS,
    SettingInfo, SettingKind,
};
pub use error::{StartError, SupervisorError};
pub use events::EventStream;
pub use failure::Failure;
pub use gate::{GateStopped, LostWrites, Permit, WorkerGate, Workers};
pub use host::{Host, HostError};
pub use master::MasterConnection;
pub use pubsub::PubSub;
pub use runtime::{BoxFuture, RedisStream, Runtime};
pub use status::{NodeStatus, Quorum, Status, StatusError, read_status, subscribe_sentinel};
pub use supervisor::{Builder, Supervisor};

/// The core crate, for everything this crate does not re-export.
pub use dramatiq_sentinel_core as core_api;
/// The `redis` crate this crate is built against.
pub use redis;
