//! The deployment harness: starting, controlling and observing real `redis-server` data nodes
//! and sentinels on loopback ports (see the [crate] docs).

mod binary;
mod client;
mod config;
mod control;
mod describe;
mod error;
mod handle;
mod ids;
mod launch;
mod monitor;
mod nat;
mod observe;
mod options;
mod ports;
mod process;
mod role;
mod tls;

pub use binary::{REDIS_SERVER_ENV, RedisBinary, ServerKind};
pub use client::{Auth, connect};
pub use error::{HarnessError, Result};
pub use handle::{DIR_PREFIX, Deployment, KEEP_LOGS_ENV};
pub use ids::{NodeId, ProcessId, SentinelId};
pub use monitor::{Executed, Monitor, unix_now};
pub use options::DeploymentOptions;
pub use ports::dead_port;
pub use process::kill_detached;
pub use role::Role;
pub use tls::TlsFiles;
