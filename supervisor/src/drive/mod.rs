//! The drive loop: the supervisor's task that owns the core ([`driver`]), the execution of its
//! actions ([`exec`]), the state its tasks and the application's handles share ([`shared`]),
//! and the one task that calls the worker pool ([`workers`]).

pub(crate) mod driver;
pub(crate) mod exec;
#[cfg(test)]
mod exec_tests;
pub(crate) mod shared;
pub(crate) mod worker_calls;
pub(crate) mod workers;
