//! Observability: the one fan-out of events ([`events`]: log, metrics, hooks, subscribers),
//! the `tracing` line of each event ([`event_log`]) and the metrics ([`metrics`]).

pub(crate) mod event_log;
pub(crate) mod events;
pub mod metrics;
