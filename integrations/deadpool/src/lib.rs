//! # dramatiq-sentinel-deadpool
//!
//! A [deadpool](https://docs.rs/deadpool) pool of Redis connections that follow Sentinel
//! failovers: each pooled connection is a [`MasterConnection::dedicated`] handle of the
//! dramatiq-sentinel supervisor, with a socket of its own to the verified master. While a
//! failover is in progress its commands are held; they go to the new master once it is
//! verified, and the socket to the old master is closed. A pooled connection therefore never
//! talks to a demoted master, which is what deadpool-redis's Sentinel pool cannot promise (it
//! recycles a connection if it answers `PING`, and a demoted master still does).
//!
//! When is a pool worth it? The supervisor's [`MasterConnection`] is already a cheap clone of
//! one multiplexed connection: for ordinary commands and pipelines from many tasks, clone it
//! and skip the pool. Take connections from a pool for what needs a socket of your own:
//! `WATCH`/`MULTI`/`EXEC` transactions, blocking commands (`BLPOP`, `BLMOVE`, `XREAD BLOCK`)
//! from many tasks at once, connection state such as `CLIENT TRACKING`, or to spread heavy
//! traffic over several sockets. The pool bounds how many such sockets exist.
//!
//! ```no_run
//! # async fn run(supervisor: dramatiq_sentinel_supervisor::Supervisor<impl Sized>) -> Result<(), Box<dyn std::error::Error>> {
//! use dramatiq_sentinel_deadpool::{Pool, pool};
//! use redis::AsyncCommands;
//!
//! let pool: Pool = pool(&supervisor.master(), 16)?;
//! let mut conn = pool.get().await?;
//! let _: () = conn.set("greeting", "hello").await?;
//! # Ok(()) }
//! ```
//!
//! Features `tokio` and `smol` match the runtime shims (one is needed): each enables the
//! `redis` crate's runtime and deadpool's, for pool timeouts (set them with
//! [`deadpool::managed::PoolBuilder::runtime`] and `wait_timeout`). Commands are bounded by
//! the supervisor's own `command_timeout` and `hold_timeout` in any case.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use dramatiq_sentinel_supervisor::MasterConnection;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::ops::{Deref, DerefMut};

pub use deadpool;

/// Creates and recycles the pool's connections: [`MasterConnection::dedicated`] handles of
/// one supervisor.
#[derive(Debug, Clone)]
pub struct Manager {
    master: MasterConnection,
}

impl Manager {
    /// A manager whose connections are dedicated handles of `master`'s supervisor.
    pub fn new(master: &MasterConnection) -> Self {
        Self {
            master: master.clone(),
        }
    }
}

impl managed::Manager for Manager {
    type Type = MasterConnection;
    type Error = RedisError;

    /// A dedicated handle; its socket opens on its first command (held, like every command,
    /// until a verified master can be reached, at most `hold_timeout`).
    async fn create(&self) -> Result<MasterConnection, RedisError> {
        Ok(self.master.dedicated())
    }

    /// No `PING`: the handle never talks to anything but the verified master, and reconnects
    /// by itself. A connection is dropped from the pool only once its supervisor stopped (a
    /// check without a lock while no failover is under way).
    async fn recycle(&self, conn: &mut MasterConnection, _: &Metrics) -> RecycleResult<RedisError> {
        if conn.is_stopped() {
            return Err(RecycleError::message("the supervisor stopped"));
        }
        Ok(())
    }
}

deadpool::managed_reexports!(
    "dramatiq-sentinel-deadpool",
    Manager,
    Connection,
    RedisError,
    std::convert::Infallible
);

/// A connection taken from the [`Pool`]; back to the pool when dropped. Use it like any
/// `redis` async connection (`AsyncCommands`, `query_async`, pipelines).
pub struct Connection {
    conn: Object,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("master", &*self.conn)
            .finish()
    }
}

impl Connection {
    /// Takes this connection out of its pool for good (the pool shrinks by one).
    pub fn take(this: Self) -> MasterConnection {
        Object::take(this.conn)
    }
}

impl From<Object> for Connection {
    fn from(conn: Object) -> Self {
        Self { conn }
    }
}

impl Deref for Connection {
    type Target = MasterConnection;

    fn deref(&self) -> &MasterConnection {
        &self.conn
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut MasterConnection {
        &mut self.conn
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.conn.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// A builder for a pool of dedicated connections of `master`'s supervisor (set its size,
/// timeouts and runtime, then `build()`).
pub fn builder(master: &MasterConnection) -> PoolBuilder {
    Pool::builder(Manager::new(master))
}

/// A pool of at most `max_size` dedicated connections of `master`'s supervisor.
pub fn pool(master: &MasterConnection, max_size: usize) -> Result<Pool, BuildError> {
    builder(master).max_size(max_size).build()
}
