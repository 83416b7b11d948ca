//! The master connection handle: a `redis` async connection that always talks to the verified
//! current master, holds commands while fenced, is cancelled when the master moves, and reports
//! what it sees to the supervisor.

use crate::convert::{error_kind, has_readonly};
use crate::hold::HoldError;
use crate::runtime::timeout;
use crate::shared::{Input, Shared};
use crate::sync::{Cancel, lock};
use dramatiq_sentinel_core::{Addr, AppErrorKind};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The connection to one master, for one generation (one `Activate`).
#[derive(Clone)]
pub(crate) struct Active {
    pub(crate) generation: u64,
    pub(crate) node: Addr,
    pub(crate) conn: MultiplexedConnection,
    /// Set when this generation is replaced: commands still in flight on it fail.
    pub(crate) cancel: Arc<Cancel>,
}

/// The dedicated connection of a [`MasterConnection::dedicated`] handle.
pub(crate) type Own = Mutex<Option<Active>>;

/// A connection to the current Redis master that follows failovers. Use it like any `redis`
/// async connection (`redis::cmd(..).query_async(&mut conn)`, `AsyncCommands`, pipelines).
///
/// - While a failover is in progress (fenced), new commands wait until the new master is
///   verified and connected, at most `hold_timeout`; then they fail with a clear I/O error
///   (kind `TimedOut`).
/// - Each command runs with `command_timeout` (if set). `READONLY` replies, I/O errors and
///   timeouts are reported to the supervisor, which re-checks the master.
/// - When the master moves, commands still in flight on the old one (blocking ones included)
///   fail with an I/O error of kind `ConnectionAborted`, and every connection to it closes.
/// - After the supervisor stopped, commands fail with an I/O error of kind `NotConnected`.
///
/// Clones share one multiplexed connection. Blocking commands (`BLMOVE`, `BLPOP`, ...) stall
/// every other command of a shared connection, so send them on a [`MasterConnection::dedicated`]
/// handle.
#[derive(Clone)]
pub struct MasterConnection {
    shared: Arc<Shared>,
    own: Option<Arc<Own>>,
}

impl std::fmt::Debug for MasterConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterConnection")
            .field("node", &self.node())
            .field("dedicated", &self.own.is_some())
            .finish()
    }
}

fn io_error(kind: io::ErrorKind, message: String) -> RedisError {
    io::Error::new(kind, message).into()
}

impl MasterConnection {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, own: None }
    }

    /// The master commands go to now (the last verified one, also while fenced).
    pub fn node(&self) -> Option<Addr> {
        self.shared.slot.current().map(|a| a.node)
    }

    /// Whether new commands are held now (a failover is in progress).
    pub fn is_held(&self) -> bool {
        self.shared.slot.is_fenced()
    }

    /// A handle with a connection of its own to the current master (opened on first use, and
    /// again after each failover), for blocking commands. Its clones share that connection.
    pub fn dedicated(&self) -> MasterConnection {
        let own = Arc::new(Mutex::new(None));
        let mut registry = lock(&self.shared.dedicated);
        registry.retain(|w| w.strong_count() > 0);
        registry.push(Arc::downgrade(&own));
        MasterConnection {
            shared: Arc::clone(&self.shared),
            own: Some(own),
        }
    }

    fn report(&self, node: &Addr, kind: AppErrorKind) {
        let _ = self
            .shared
            .inbox
            .try_send(Input::AppError(node.clone(), kind));
    }

    async fn acquire(&self) -> RedisResult<Active> {
        let rt = &*self.shared.rt;
        let hold = self.shared.cfg.hold_timeout();
        let active = self
            .shared
            .slot
            .acquire(rt, hold)
            .await
            .map_err(|e| match e {
                HoldError::TimedOut(hold) => io_error(
                    io::ErrorKind::TimedOut,
                    format!(
                        "dramatiq-sentinel: no verified master for {hold:?} (hold_timeout): \
                     a failover is in progress"
                    ),
                ),
                HoldError::Stopped => io_error(
                    io::ErrorKind::NotConnected,
                    "dramatiq-sentinel: the supervisor stopped".to_owned(),
                ),
            })?;
        let Some(own) = &self.own else {
            return Ok(active);
        };
        if let Some(mine) = lock(own)
            .as_ref()
            .filter(|m| m.generation == active.generation)
        {
            return Ok(mine.clone());
        }
        match self.shared.data.open(rt, &active.node).await {
            Ok(conn) => {
                let mine = Active { conn, ..active };
                *lock(own) = Some(mine.clone());
                Ok(mine)
            }
            Err(e) => {
                self.report(&active.node, AppErrorKind::Io);
                Err(io_error(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "dramatiq-sentinel: cannot open a dedicated connection to master {}: {e}",
                        active.node
                    ),
                ))
            }
        }
    }

    /// Runs one call on the current master's connection, with the hold, the command timeout,
    /// the cancellation of its generation, and error reporting.
    async fn run<T, F, Fut>(&self, call: F, readonly: impl Fn(&T) -> bool) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        enum Outcome<T> {
            Done(RedisResult<T>),
            Cancelled,
            TimedOut(Duration),
        }
        let active = self.acquire().await?;
        let node = &active.node;
        let moved = || {
            io_error(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "dramatiq-sentinel: the master moved away from {node}; \
                     this command on the old master was cancelled"
                ),
            )
        };
        if active.cancel.is_cancelled() {
            return Err(moved());
        }
        let raced = futures_lite::future::or(
            async { Outcome::Done(call(active.conn.clone()).await) },
            async {
                active.cancel.cancelled().await;
                Outcome::Cancelled
            },
        );
        let outcome = match self.shared.cfg.command_timeout() {
            Some(limit) => timeout(&*self.shared.rt, limit, raced)
                .await
                .unwrap_or(Outcome::TimedOut(limit)),
            None => raced.await,
        };
        match outcome {
            Outcome::Done(Ok(v)) => {
                if readonly(&v) {
                    self.report(node, AppErrorKind::ReadOnly);
                }
                Ok(v)
            }
            Outcome::Done(Err(e)) => {
                if let Some(kind) = error_kind(&e)
                    && !active.cancel.is_cancelled()
                {
                    self.report(node, kind);
                }
                Err(e)
            }
            Outcome::Cancelled => Err(moved()),
            Outcome::TimedOut(limit) => {
                self.report(node, AppErrorKind::Timeout);
                Err(io_error(
                    io::ErrorKind::TimedOut,
                    format!(
                        "dramatiq-sentinel: no answer from master {node} within {limit:?} \
                         (command_timeout)"
                    ),
                ))
            }
        }
    }
}

impl ConnectionLike for MasterConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.run(
            move |mut conn| async move { conn.req_packed_command(cmd).await },
            has_readonly,
        ))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.run(
            move |mut conn| async move { conn.req_packed_commands(pipeline, offset, count).await },
            |values: &Vec<Value>| values.iter().any(has_readonly),
        ))
    }

    fn get_db(&self) -> i64 {
        0
    }
}
