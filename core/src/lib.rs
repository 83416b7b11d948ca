//! # dramatiq-sentinel-core
//!
//! The sans-IO heart of dramatiq-sentinel: a deterministic state machine that makes every
//! Redis Sentinel failover decision for a process running job workers, and performs no I/O.
//!
//! Inputs are sentinel pub/sub messages, sentinel and data-node replies, worker pause
//! acknowledgements, errors the application saw, and deadlines, each with the current time.
//! Outputs are [`Action`]s for a runtime to perform (subscribe, query, connect, fence, pause,
//! activate, resume, ...), [`Event`]s describing each decision, and the next deadline.
//! See [`Core`] for the drive loop.
//!
//! The runtime shims `dramatiq-sentinel-tokio` and `dramatiq-sentinel-smol` drive it with real
//! Redis connections. With the `sim` feature, the module `sim` drives it against a simulated
//! world of sentinels, data nodes and workers on a virtual clock, to fuzz a configuration
//! offline.

mod action;
mod addr;
mod backoff;
mod config;
mod config_error;
mod context;
mod describe;
mod discovery;
mod entry;
mod epochs;
mod event;
#[cfg(any(test, feature = "sim"))]
mod event_examples;
mod event_text;
mod history;
mod input;
mod listeners;
mod lost;
mod machine;
mod op;
mod parse;
mod pause_policy;
mod reply;
mod rng;
pub mod setting;
mod setting_info;
#[cfg(feature = "sim")]
pub mod sim;
mod switch;
mod timers;
mod watches;

pub use action::{Action, Shutdown};
pub use addr::{Addr, AddrError, NatMap};
pub use backoff::Backoff;
pub use config::{Config, ConfigBuilder, SETTINGS};
pub use config_error::{ConfigError, MAX_DURATION};
pub use describe::{Description, EventLevel, FieldValue};
pub use entry::{SentinelEntry, flags_healthy};
pub use event::{
    AppErrorKind, DetectionPath, DiscoveryError, Event, FatalError, IgnoreReason, LostCommand,
};
pub use input::{Input, IoError, IoErrorKind};
pub use lost::MAX_LOST_BYTES;
pub use machine::{Core, Deadline};
pub use op::OpId;
pub use parse::{FailoverSignal, Role, SentinelMessage, decode_message, message_concerns};
pub use pause_policy::PauseTimeoutPolicy;
pub use reply::Reply;
pub use setting_info::{SettingInfo, SettingKind};
pub use timers::TimerReason;

/// The channel pattern listeners subscribe to (`PSUBSCRIBE`): every sentinel event, since
/// early failover signals arrive on many channels.
pub const LISTENER_PATTERN: &str = "*";
