//! Tests of dramatiq-sentinel against real Redis.
//!
//! [`harness`] starts real Redis Sentinel deployments (`redis-server` data nodes and
//! `redis-server --sentinel` processes on loopback ports) for the scenario tests, demos and
//! benchmarks of this workspace.

pub mod bench;
pub mod harness;
#[cfg(doctest)]
mod readme;
pub mod scenarios;
mod sync;
