//! What the application holds: the master handle ([`master`]) and its hold ([`hold`]), the
//! errors its commands fail with ([`failure`]), the worker gate ([`gate`]), pub/sub that
//! follows the master ([`pubsub`]) and the handle of hosts outside Rust's async world
//! ([`host`]).

pub(crate) mod failure;
pub(crate) mod gate;
pub(crate) mod hold;
pub(crate) mod host;
pub(crate) mod master;
pub(crate) mod pubsub;
