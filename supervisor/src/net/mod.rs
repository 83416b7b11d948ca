//! Redis I/O: opening connections ([`connect`]), the caches of connections for short commands
//! ([`cache`]), one opening in flight per address ([`flight`]), what supervisors share
//! ([`share`]), the master connections the supervisor drives ([`link`]), sentinel listeners
//! ([`listener`]), replica watches ([`watch`]), backlog reads ([`backlog`]), the status query
//! ([`status`]), the conversions between the `redis` crate and the core ([`convert`]), and
//! room in the process's descriptor table ([`fd_table`]).

pub(crate) mod backlog;
pub(crate) mod cache;
pub(crate) mod connect;
pub(crate) mod convert;
pub(crate) mod fd_table;
pub(crate) mod flight;
pub(crate) mod link;
pub(crate) mod listener;
#[cfg(any(test, feature = "bench"))]
pub(crate) mod resp;
pub(crate) mod share;
pub(crate) mod status;
pub(crate) mod watch;
