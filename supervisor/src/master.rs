//! The master connection handle: a `redis` async connection that always talks to the verified
//! current master, holds commands while fenced, is cancelled when the master moves, and reports
//! what it sees to the supervisor.

use crate::connect::OpenError;
use crate::convert::{error_kind, has_readonly};
use crate::hold::HoldError;
use crate::runtime::{deadline_after, timeout, until};
use crate::shared::{Input, Shared};
use crate::sync::{Cancel, lock};
use dramatiq_sentinel_core::{Addr, AppErrorKind};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

/// How often a command held on an unreachable master retries the connection (a failover
/// installing another master wakes it at once).
const UNREACHABLE_RETRY: Duration = Duration::from_millis(100);

/// The master in use, for one generation (one `Activate`).
#[derive(Clone)]
pub(crate) struct Active {
    pub(crate) generation: u64,
    pub(crate) node: Addr,
    /// The shared connection of this generation.
    pub(crate) line: Arc<Line>,
    /// Set when this generation is replaced: commands still in flight on it fail.
    pub(crate) cancel: Arc<Cancel>,
}

/// A connection slot that is refilled when its connection breaks: the shared connection of a
/// generation, or the connection of a [`MasterConnection::dedicated`] handle.
#[derive(Default)]
pub(crate) struct Line {
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    generation: u64,
    /// Counts the connections put in this line, so a failure only empties the one it saw.
    epoch: u64,
    conn: Option<MultiplexedConnection>,
}

impl Line {
    pub(crate) fn new(generation: u64, conn: MultiplexedConnection) -> Self {
        Self {
            state: Mutex::new(LineState {
                generation,
                epoch: 1,
                conn: Some(conn),
            }),
        }
    }

    /// The connection of this generation, with its epoch, if the line holds one.
    fn get(&self, generation: u64) -> Option<(u64, MultiplexedConnection)> {
        let s = lock(&self.state);
        match &s.conn {
            Some(c) if s.generation == generation => Some((s.epoch, c.clone())),
            _ => None,
        }
    }

    /// Puts a new connection for this generation; returns its epoch.
    fn put(&self, generation: u64, conn: MultiplexedConnection) -> u64 {
        let mut s = lock(&self.state);
        s.generation = generation;
        s.epoch += 1;
        s.conn = Some(conn);
        s.epoch
    }

    /// The connection of `epoch` broke: drop it, the next command reconnects.
    fn broken(&self, generation: u64, epoch: u64) {
        let mut s = lock(&self.state);
        if s.generation == generation && s.epoch == epoch {
            s.conn = None;
        }
    }

    /// Drops the connection unless it belongs to `generation`.
    pub(crate) fn clear_unless(&self, generation: Option<u64>) {
        let mut s = lock(&self.state);
        if Some(s.generation) != generation {
            s.conn = None;
        }
    }
}

/// A connection to the current Redis master that follows failovers. Use it like any `redis`
/// async connection (`redis::cmd(..).query_async(&mut conn)`, `AsyncCommands`, pipelines).
///
/// - While a failover is in progress (fenced), new commands wait until the new master is
///   verified and connected (or the fence is lifted), at most `hold_timeout`; then they fail
///   with a clear I/O error (kind `TimedOut`). Held commands go to the new master as soon as
///   it is in use, before the workers resume, so jobs in flight can acknowledge there.
/// - A command that finds the master unreachable before it is sent (it must connect and the
///   connection is refused, reset, unanswered, or the master is still loading) is held too,
///   retrying every 100 ms, until the master answers again or a failover installs another
///   one, within the same `hold_timeout`; then it fails with an I/O error of kind
///   `ConnectionRefused` naming the master (or `TimedOut` as above if a failover holds it at
///   the deadline). A command sent on a connection that breaks fails at once, also when the
///   break was not noticed before sending (it may or may not have run).
/// - Each command runs with `command_timeout` (if set). `READONLY` replies, I/O errors and
///   timeouts are reported to the supervisor, which re-checks the master.
/// - When the master moves, commands still in flight on the old one (blocking ones included)
///   fail with an I/O error of kind `ConnectionAborted`, and every connection to it closes.
/// - After the supervisor stopped, commands fail with an I/O error of kind `NotConnected`.
///
/// A connection that breaks is replaced on the next command (to the same master).
/// Clones share one multiplexed connection. Blocking commands (`BLMOVE`, `BLPOP`, ...) stall
/// every other command of a shared connection, so send them on a [`MasterConnection::dedicated`]
/// handle.
#[derive(Clone)]
pub struct MasterConnection {
    shared: Arc<Shared>,
    own: Option<Arc<Line>>,
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
        let own = Arc::new(Line::default());
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

    /// Waits for the master (the hold), and returns it with the connection to use and its
    /// epoch, connecting this handle's line if it is empty.
    ///
    /// A master that cannot be reached (refused, reset, no answer, still loading) holds the
    /// command too: it has not been sent, so it waits until the connection opens or the master
    /// changes, retrying every [`UNREACHABLE_RETRY`], all within the same `hold_timeout`.
    async fn acquire(&self) -> RedisResult<(Active, Arc<Line>, u64, MultiplexedConnection)> {
        let rt = &*self.shared.rt;
        let hold = self.shared.cfg.hold_timeout();
        let started = Instant::now();
        let deadline = deadline_after(hold);
        let mut reported: Option<Addr> = None;
        loop {
            let (active, mut changed) = self.shared.slot.acquire(rt, deadline).await.map_err(
                |e| match e {
                    HoldError::TimedOut => io_error(
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
                },
            )?;
            let line = self.own.clone().unwrap_or_else(|| Arc::clone(&active.line));
            if let Some((epoch, conn)) = line.get(active.generation) {
                return Ok((active, line, epoch, conn));
            }
            // A fence or another master while connecting: look again (nothing was sent). The
            // hold deadline bounds the connect too.
            let open = self.shared.data.open(rt, &active.node);
            let opened = until(
                rt,
                deadline,
                futures_lite::future::or(async { Some(open.await) }, async {
                    (&mut changed).await;
                    None
                }),
            )
            .await;
            let e = match opened {
                Some(None) => continue,
                Some(Some(Ok(conn))) => {
                    let epoch = line.put(active.generation, conn.clone());
                    return Ok((active, line, epoch, conn));
                }
                Some(Some(Err(e))) => e,
                None => OpenError {
                    message: "no connection before the hold deadline".to_owned(),
                    unreachable: true,
                },
            };
            if reported.as_ref() != Some(&active.node) {
                self.report(&active.node, AppErrorKind::Io);
                reported = Some(active.node.clone());
            }
            if !e.unreachable || Instant::now() >= deadline {
                let waited = if e.unreachable {
                    format!(" (retried for {:?}, hold_timeout)", started.elapsed())
                } else {
                    String::new()
                };
                return Err(io_error(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "dramatiq-sentinel: cannot connect to master {}{waited}: {e}",
                        active.node
                    ),
                ));
            }
            debug!(node = %active.node, error = %e, "master unreachable: command held");
            let retry = deadline_after(UNREACHABLE_RETRY).min(deadline);
            until(rt, retry, changed).await;
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
        let (active, line, epoch, conn) = self.acquire().await?;
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
        let raced = futures_lite::future::or(async { Outcome::Done(call(conn).await) }, async {
            active.cancel.cancelled().await;
            Outcome::Cancelled
        });
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
                if e.is_unrecoverable_error() {
                    line.broken(active.generation, epoch);
                }
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
        self.shared.data.db
    }
}
