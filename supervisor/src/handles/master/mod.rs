//! The master connection handle: a `redis` async connection that always talks to the verified
//! current master, holds commands while fenced, is cancelled when the master moves, and reports
//! what it sees to the supervisor.

pub(crate) mod line;

use crate::drive::shared::Shared;
use crate::handles::failure;
use crate::handles::hold::HoldError;
use crate::net::convert::{error_kind, has_readonly};
use crate::net::link::{self, Link};
use crate::observe::metrics;
use crate::runtime::{deadline_after, until};
use crate::sync::lock;
use dramatiq_sentinel_core::{Addr, AppErrorKind};
use line::Found;
use line::{Active, Line};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;

/// A connection to the current Redis master that follows failovers. Use it like any `redis`
/// async connection (`redis::cmd(..).query_async(&mut conn)`, `AsyncCommands`, pipelines).
///
/// - While a failover is in progress (fenced), new commands wait until the new master is
///   verified and connected (or the fence is lifted), at most `hold_timeout`; then they fail
///   with a clear I/O error (kind `TimedOut`). Held commands go to the new master as soon as
///   it is in use, before the workers resume, so jobs in flight can acknowledge there.
/// - A command that finds the master unreachable before it is sent (it must connect and the
///   connection is refused, reset, unanswered, or the master is still loading) is held too,
///   until the master answers again or a failover installs another one, within the same
///   `hold_timeout`; then it fails with an I/O error of kind `ConnectionRefused` naming the
///   master (or `TimedOut` as above if a failover holds it at the deadline). Only one
///   connection attempt per connection is in flight, however many commands wait: retries
///   come after a jittered delay growing from 100 ms to 1 s. A command sent on a connection
///   that breaks fails at once, also when the break was not noticed before sending (it may or
///   may not have run).
/// - Each command runs with `command_timeout` (if set). `READONLY` replies, I/O errors and
///   timeouts are reported to the supervisor, which re-checks the master.
/// - When the master moves, commands still in flight on the old one (blocking ones included)
///   fail with an I/O error of kind `ConnectionAborted`, and every connection to it closes.
/// - After the supervisor stopped, commands fail with an I/O error of kind `NotConnected`.
///
/// A connection that breaks is replaced on the next command (to the same master).
/// Clones share one multiplexed connection. Blocking commands (`BLMOVE`, `BLPOP`, ...) stall
/// every other command of a shared connection, so send them on a [`MasterConnection::dedicated`]
/// handle. The handle may be used from any thread, also outside the executor the supervisor
/// runs on: connections are opened on the supervisor's runtime.
///
/// # Cost
/// While no failover is under way, a command costs what it costs on the `redis` crate's own
/// `MultiplexedConnection`: a handle keeps the connection it used last and checks that it is
/// still the one to use with one atomic load (no lock, no shared reference count, no
/// allocation of its own). Give each task its own clone (a clone is as cheap as cloning a
/// `MultiplexedConnection`) rather than sharing one behind a lock. The first command after
/// each change (a failover, a broken connection) takes a slower path once. With TLS, or on a
/// [`Runtime`](crate::Runtime) without [`connect_tcp`](crate::Runtime::connect_tcp), every
/// command takes that slower path (a lock, a clone and a cancellation listener).
#[derive(Clone)]
pub struct MasterConnection {
    shared: Arc<Shared>,
    own: Option<Arc<Line>>,
    /// What this handle used last, valid while the slot's version is unchanged.
    held: Option<Held>,
}

/// A connection a handle keeps between commands: only one the supervisor drives
/// ([`Link::cut_on_cancel`]), which a switch closes whoever holds a clone.
#[derive(Clone)]
struct Held {
    /// The slot's version when it was acquired.
    version: u64,
    active: Arc<Active>,
    epoch: u64,
    conn: MultiplexedConnection,
}

impl std::fmt::Debug for MasterConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterConnection")
            .field("node", &self.node())
            .field("dedicated", &self.own.is_some())
            .finish()
    }
}

/// What a command of a handle got when it could not use the connection it kept.
struct Ready {
    active: Arc<Active>,
    epoch: u64,
    link: Link,
    /// The slot's version when the master was read.
    version: u64,
}

/// One call of a handle: a command, or a pipeline's replies `offset..offset + count`.
#[derive(Clone, Copy)]
enum Call<'c> {
    Command(&'c Cmd),
    Pipeline(&'c Pipeline, usize, usize),
}

impl Call<'_> {
    /// Sends it on `conn`; a pipeline's replies come as one array.
    async fn send(self, conn: &mut MultiplexedConnection) -> RedisResult<Value> {
        match self {
            Call::Command(cmd) => conn.send_packed_command(cmd).await,
            Call::Pipeline(pipeline, offset, count) => conn
                .send_packed_commands(pipeline, offset, count)
                .await
                .map(Value::Array),
        }
    }
}

/// A pipeline's replies, from the array [`Call::send`] made of them.
fn replies(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        other => vec![other],
    }
}

impl MasterConnection {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            own: None,
            held: None,
        }
    }

    /// The supervisor's shared state (for the pub/sub handle).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The master commands go to now (the last verified one, also while fenced).
    pub fn node(&self) -> Option<Addr> {
        self.shared.slot.current().map(|a| a.node.clone())
    }

    /// Whether the supervisor stopped: every command fails from now on. Without a lock while
    /// the connection this handle kept is still valid (a pool can ask at every checkout).
    pub fn is_stopped(&self) -> bool {
        !self.keeps_connection() && self.shared.slot.is_stopped()
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
            held: None,
        }
    }

    /// Sends one packed command and reads its reply, as
    /// [`ConnectionLike::req_packed_command`] does, as a plain `async fn` (no boxed future):
    /// for wrappers that box a future of their own around it.
    pub async fn send_packed_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        self.command(cmd).await
    }

    /// Sends a packed pipeline and reads `count` replies from `offset`, as
    /// [`ConnectionLike::req_packed_commands`] does, as a plain `async fn`.
    pub async fn send_packed_commands(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.run(Call::Pipeline(pipeline, offset, count))
            .await
            .map(replies)
    }

    /// Whether the next command goes straight to the connection this handle kept (the
    /// steady-state check).
    pub(crate) fn keeps_connection(&self) -> bool {
        let version = self.shared.slot.version();
        self.held.as_ref().is_some_and(|h| h.version == version)
    }

    /// The slot's version this handle's kept connection is valid for, if it kept one.
    #[cfg(test)]
    pub(crate) fn held_version(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.version)
    }

    /// [`MasterConnection::run`] for one command, written out: the steady-state path of the
    /// common case, without the pipeline's branch.
    async fn command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let Self { shared, own, held } = self;
        let version = shared.slot.version();
        let h = match held {
            Some(h) if h.version == version => h,
            _ => {
                let slow = send_slow(shared, own, held, Call::Command(cmd));
                return counted(shared, Box::pin(slow).await);
            }
        };
        let sent = h.conn.send_packed_command(cmd).await;
        kept_reply(shared, own, held, sent)
    }

    /// Runs one call on the current master's connection, with the hold, the command timeout
    /// (the connection's own), the cancellation of its generation, and error reporting; counts
    /// the failover errors it returns (metrics). The steady-state path, written as one
    /// function: on the connection this handle kept if the slot's version did not change
    /// since, else [`send_slow`].
    async fn run(&mut self, call: Call<'_>) -> RedisResult<Value> {
        let Self { shared, own, held } = self;
        let version = shared.slot.version();
        let h = match held {
            Some(h) if h.version == version => h,
            // Boxed: the steady-state future stays as small as the plain connection's.
            _ => return counted(shared, Box::pin(send_slow(shared, own, held, call)).await),
        };
        let sent = match call {
            Call::Command(cmd) => h.conn.send_packed_command(cmd).await,
            Call::Pipeline(pipeline, offset, count) => h
                .conn
                .send_packed_commands(pipeline, offset, count)
                .await
                .map(Value::Array),
        };
        kept_reply(shared, own, held, sent)
    }
}

/// The end of a call on the connection a handle kept: a `READONLY` reply reported, a failure
/// settled (the kept connection dropped when the failure says so) and counted.
fn kept_reply(
    shared: &Shared,
    own: &Option<Arc<Line>>,
    held: &mut Option<Held>,
    sent: RedisResult<Value>,
) -> RedisResult<Value> {
    let Some(h) = held.as_ref() else {
        return counted(shared, sent);
    };
    match sent {
        Ok(v) => {
            if has_readonly(&v) {
                shared.report(&h.active.node, AppErrorKind::ReadOnly);
            }
            Ok(v)
        }
        Err(e) => {
            let outcome = settle(shared, own, &h.active, h.epoch, Some(Err(e)));
            if outcome.drop_held {
                *held = None;
            }
            counted(shared, outcome.result)
        }
    }
}

/// Counts a failover error a command returns (metrics), and returns the result.
fn counted(shared: &Shared, result: RedisResult<Value>) -> RedisResult<Value> {
    if let Err(e) = &result {
        metrics::command_failed(shared.cfg.service_name(), e);
    }
    result
}

/// Acquires the master (waiting in the hold if need be), keeps its connection in `held` for
/// the next commands if the supervisor drives it, and sends `call` on it.
async fn send_slow(
    shared: &Arc<Shared>,
    own: &Option<Arc<Line>>,
    held: &mut Option<Held>,
    call: Call<'_>,
) -> RedisResult<Value> {
    *held = None;
    let Ready {
        active,
        epoch,
        link,
        version,
    } = acquire(shared, own).await?;
    if !link.cut_on_cancel {
        // The `redis` crate drives this connection: it stays open after a switch while a
        // clone exists, so nothing is kept and the command races the cancellation itself.
        let mut conn = link.conn;
        let result = active.cancel.run(call.send(&mut conn)).await;
        return settle(shared, own, &active, epoch, result).result;
    }
    if active.cancel.is_cancelled() {
        // Replaced since it was acquired: never send on the old master.
        return Err(failure::moved(&active.node));
    }
    let h = held.insert(Held {
        version,
        active,
        epoch,
        conn: link.conn,
    });
    let result = call.send(&mut h.conn).await;
    let outcome = settle(shared, own, &h.active, h.epoch, Some(result));
    if outcome.drop_held {
        *held = None;
    }
    outcome.result
}

/// The line a handle with its own line `own` uses for `active`.
fn line_of<'a>(own: &'a Option<Arc<Line>>, active: &'a Active) -> &'a Arc<Line> {
    own.as_ref().unwrap_or(&active.line)
}

/// Waits for the master (the hold), and returns it with the connection to use, its epoch
/// and the slot's version, connecting this handle's line if it is empty (one attempt in
/// flight per line).
async fn acquire(shared: &Arc<Shared>, own: &Option<Arc<Line>>) -> RedisResult<Ready> {
    // The common case after a change (a switch, a resume): the master is usable and its
    // connection open; take them without registering listeners.
    if let Some((active, version)) = shared.slot.try_get()
        && let Some((epoch, link)) = line_of(own, &active).get(active.generation)
    {
        return Ok(Ready {
            active,
            epoch,
            link,
            version,
        });
    }
    let rt = &*shared.rt;
    let hold = shared.cfg.hold_timeout();
    let started = Instant::now();
    let deadline = deadline_after(hold);
    let mut reported: Option<Addr> = None;
    let mut held = metrics::Hold::new(shared.cfg.service_name(), started);
    loop {
        let acquiring = shared.slot.acquire(rt, deadline);
        let mut acquiring = std::pin::pin!(acquiring);
        let acquired = match futures_lite::future::poll_once(&mut acquiring).await {
            Some(acquired) => acquired,
            None => {
                held.waiting(); // fenced, or no verified master yet
                acquiring.await
            }
        };
        let acquired = acquired.map_err(|e| match e {
            HoldError::TimedOut => failure::held_too_long(hold),
            HoldError::Stopped => failure::stopped(),
        })?;
        let (active, version, changed) = (acquired.value, acquired.version, acquired.changed);
        let line = Arc::clone(line_of(own, &active));
        let line_changed = line.listen();
        let (retry_at, error) = match line.find(active.generation, Instant::now()) {
            Found::Ready(epoch, link) => {
                return Ok(Ready {
                    active,
                    epoch,
                    link,
                    version,
                });
            }
            Found::Connect => {
                connect(shared, &active, &line);
                (None, None)
            }
            Found::Wait { retry_at, error } => (retry_at, error),
        };
        if let Some(e) = error {
            if reported.as_ref() != Some(&active.node) {
                shared.report(&active.node, AppErrorKind::Io);
                reported = Some(active.node.clone());
            }
            if !e.unreachable || Instant::now() >= deadline {
                let waited = e.unreachable.then(|| started.elapsed());
                return Err(failure::unreachable(&active.node, waited, &e.to_string()));
            }
            debug!(node = %active.node, error = %e, "master unreachable: command held");
            held.waiting();
        }
        // Wait for the attempt in flight, the next attempt, or another master / a fence.
        let wake = retry_at.map_or(deadline, |t| t.min(deadline));
        until(rt, wake, futures_lite::future::or(line_changed, changed)).await;
    }
}

/// Opens the line's connection on the supervisor's runtime (so a handle used from any
/// thread connects within it), closed when `active`'s generation is cancelled, and
/// records the outcome in the line.
fn connect(shared: &Arc<Shared>, active: &Active, line: &Arc<Line>) {
    let shared = Arc::clone(shared);
    let line = Arc::clone(line);
    let (generation, node) = (active.generation, active.node.clone());
    let cancel = Arc::clone(&active.cancel);
    let rt = Arc::clone(&shared.rt);
    rt.spawn(Box::pin(async move {
        let rt = &*shared.rt;
        let response_timeout = shared.cfg.command_timeout();
        let result = link::open(&shared.data, rt, &node, response_timeout, &cancel).await;
        line.finish(generation, result, &shared.jitter);
    }));
}

/// A call's result as the handle returns it, and whether the handle must drop the connection
/// it kept.
struct Outcome {
    result: RedisResult<Value>,
    drop_held: bool,
}

/// Turns what the connection returned (`None`: cancelled before a reply) into the handle's
/// result: reports `READONLY` replies and errors to the supervisor, marks a broken connection
/// (the next command reconnects), and names failover errors.
fn settle(
    shared: &Shared,
    own: &Option<Arc<Line>>,
    active: &Active,
    epoch: u64,
    result: Option<RedisResult<Value>>,
) -> Outcome {
    let node = &active.node;
    let e = match result {
        Some(Ok(v)) => {
            if has_readonly(&v) {
                shared.report(node, AppErrorKind::ReadOnly);
            }
            return Outcome {
                result: Ok(v),
                drop_held: false,
            };
        }
        None => {
            return Outcome {
                result: Err(failure::moved(node)),
                drop_held: true,
            };
        }
        Some(Err(e)) => e,
    };
    let mut drop_held = false;
    if e.is_unrecoverable_error() {
        drop_held = true;
        if line_of(own, active).broken(active.generation, epoch) {
            // Other handles that kept this connection take the slow path once, and reconnect.
            shared.slot.touch();
        }
    }
    if active.cancel.is_cancelled() {
        return Outcome {
            result: Err(failure::moved(node)),
            drop_held: true,
        };
    }
    let kind = error_kind(&e);
    if let Some(kind) = kind {
        shared.report(node, kind);
    }
    let result = match (kind, shared.cfg.command_timeout()) {
        (Some(AppErrorKind::Timeout), Some(limit)) => Err(failure::no_answer(node, limit)),
        _ if e.is_io_error() || e.is_connection_dropped() => Err(failure::broke(node, &e)),
        _ => Err(e),
    };
    Outcome { result, drop_held }
}

impl ConnectionLike for MasterConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // An async block around the call: built in its box, where boxing the call's future
        // itself copied its whole 1.3 KB into the box at every command.
        Box::pin(async move { self.command(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.run(Call::Pipeline(pipeline, offset, count))
                .await
                .map(replies)
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.data.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sync::Cancel;
    use crate::testing::{TokioRuntime, shared_on};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A master that cannot be reached: it accepts TCP connections and closes them at once
    /// (the client's `SELECT` fails), counting them.
    fn dead_master() -> (Addr, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (Addr::new("127.0.0.1", port), accepted)
    }

    /// 200 commands held on an unreachable master make one connection attempt at a time,
    /// retried after a jittered delay growing to 1 s: the connects per second do not grow
    /// with the number of commands waiting (each command retrying every 100 ms on its own,
    /// as before, made about 200 × 10 = 2000 per second here).
    #[test]
    fn commands_held_on_a_dead_master_share_one_connection_attempt() {
        let runtime = tokio::runtime::Runtime::new().expect("tokio");
        let hold = Duration::from_secs(3);
        let config = Config::builder()
            .db(1) // so that opening a connection sends SELECT, which the dead master fails
            .hold_timeout(hold)
            .build()
            .expect("valid");
        let (shared, _inbox) = shared_on(Arc::new(TokioRuntime(runtime.handle().clone())), config);
        let (node, accepted) = dead_master();
        shared.slot.install(
            Arc::new(Active {
                generation: 1,
                node: node.clone(),
                line: Arc::new(Line::default()),
                cancel: Arc::new(Cancel::default()),
            }),
            true,
        );
        let started = Instant::now();
        let results = runtime.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let mut conn = MasterConnection::new(Arc::clone(&shared));
                    tokio::spawn(async move { conn.req_packed_command(&redis::cmd("PING")).await })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.expect("task"));
            }
            results
        });
        let elapsed = started.elapsed();
        let connects = accepted.load(Ordering::SeqCst);
        for r in &results {
            let e = r.as_ref().expect_err("unreachable");
            assert!(e.to_string().contains(&node.to_string()), "{e}");
        }
        assert!(elapsed >= hold, "held for the hold timeout: {elapsed:?}");
        // Delays of [50, 100], [100, 200], [200, 400], [400, 800], then [500, 1000] ms: at most
        // about 12 attempts in 3 s (plus slack for a slow machine); never one per command.
        eprintln!("{connects} connects in {elapsed:?} for 200 held commands");
        assert!(
            (2..=20).contains(&connects),
            "{connects} connects in {elapsed:?}"
        );
        // Every command saw the failure once: one report, coalesced.
        assert_eq!(shared.take_app_errors(), vec![(node, AppErrorKind::Io)]);
    }
}
