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

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
mod config;
mod drive;
mod error;
#[cfg(test)]
mod fake_redis;
mod handles;
mod net;
mod observe;
mod runtime;
mod supervisor;
#[cfg(test)]
mod switch_tests;
mod sync;
#[cfg(test)]
mod testing;

pub use config::{ClientCert, Config, ConfigBuilder, Credentials, IO_SETTINGS};
pub use dramatiq_sentinel_core::{
    Addr, AppErrorKind, ConfigError, Description, DetectionPath, DiscoveryError, Event, EventLevel,
    FatalError, FieldValue, IgnoreReason, LostCommand, NatMap, PauseTimeoutPolicy, SETTINGS,
    SettingInfo, SettingKind,
};
pub use error::{StartError, SupervisorError};
pub use handles::failure::{Cause, Failure};
pub use handles::gate::{GateStopped, LostWrites, Permit, WorkerGate, Workers};
pub use handles::host::{Host, HostError};
pub use handles::master::MasterConnection;
pub use handles::pubsub::PubSub;
pub use net::share::SharedConnections;
pub use net::status::{NodeStatus, Quorum, Status, StatusError, read_status, subscribe_sentinel};
pub use observe::events::EventStream;
pub use observe::metrics;
pub use runtime::{BoxFuture, RedisStream, Runtime};
pub use supervisor::{Builder, Supervisor};

/// What an application names, re-exported by each runtime shim with one glob
/// (`pub use dramatiq_sentinel_supervisor::prelude::*`), so the shims offer the same API.
pub mod prelude {
    pub use crate::{
        Addr, AppErrorKind, BoxFuture, Cause, ClientCert, Config, ConfigBuilder, ConfigError,
        Credentials, DetectionPath, DiscoveryError, Event, EventStream, Failure, FatalError,
        GateStopped, IgnoreReason, MasterConnection, NatMap, NodeStatus, PauseTimeoutPolicy,
        Permit, PubSub, Quorum, SharedConnections, StartError, Status, StatusError,
        SupervisorError, WorkerGate, Workers, core_api, metrics, redis,
    };
}

/// The core crate, for everything this crate does not re-export.
pub use dramatiq_sentinel_core as core_api;
/// The `redis` crate this crate is built against.
pub use redis;
