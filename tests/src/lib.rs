//! The scenario suite of dramatiq-sentinel against real Redis.
//!
//! [`scenarios`] runs the supervisor, the integrations and the reference job pool through
//! failovers of real Redis Sentinel deployments started by
//! [`dramatiq_sentinel_harness`], on every runtime shim (`tests/supervisor_tokio.rs`,
//! `tests/supervisor_smol.rs`). `tests/harness.rs` tests the harness itself, and
//! `tests/readme_example.rs` the README's example program and its Rust fragments.

#[cfg(doctest)]
mod readme;
pub mod scenarios;
