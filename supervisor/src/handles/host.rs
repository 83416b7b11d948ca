//! [`Host`]: the supervisor as a host outside Rust's async world sees it (see its docs).

use crate::handles::gate::WorkerGate;
use crate::handles::master::MasterConnection;
use crate::supervisor::Supervisor;
use dramatiq_sentinel_core::{Addr, AppErrorKind};
use redis::aio::ConnectionLike;

/// The key a READONLY re-check deletes: a write that changes nothing on a master (the key is
/// never created) and fails with `READONLY` on a replica.
const PROBE_KEY: &str = "dramatiq-sentinel:readonly-probe";

/// Why [`Host::wait_master`] has no master for the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// No verified master within `hold_timeout`, or the master stayed unreachable that long,
    /// or the supervisor stopped; the message says which (it is the master handle's error).
    #[error("{message}")]
    Unavailable {
        /// What the supervisor's master handle reported.
        message: String,
        /// The I/O error kind of that report (`TimedOut` for a failover still in progress,
        /// `ConnectionRefused` for an unreachable master, `NotConnected` once stopped).
        kind: Option<std::io::ErrorKind>,
    },
}

/// The I/O error kind inside a `redis` error, if it wraps one.
fn io_kind(e: &redis::RedisError) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// A running supervisor as a foreign host sees it. Cheap to clone.
///
/// It gives what a host outside Rust's async world needs from a running supervisor when it
/// does its own Redis I/O (a Python extension whose client library opens its own sockets, a C
/// API): the verified master to connect to, the hold while a failover is in progress, a way to
/// tell the supervisor about errors its own connections saw. Each event, flattened for a
/// foreign logging system, is its [`Event::describe`](crate::Event::describe).
///
/// The host keeps no failover logic of its own. Before each command (or each new connection)
/// it asks [`Host::master_now`] (no waiting) and, when that says `None`, awaits
/// [`Host::wait_master`], which waits exactly as a command on the supervisor's own
/// [`MasterConnection`] does (the same hold, the same `hold_timeout`, the same retries on an
/// unreachable master, the same errors). Errors the host's connections see go to
/// [`Host::check_error`], which re-checks them through the supervisor's own connection, so the
/// core receives them as application errors and decides.
///
/// ```no_run
/// # async fn run(supervisor: dramatiq_sentinel_supervisor::Supervisor<impl dramatiq_sentinel_supervisor::Runtime>)
/// # -> Result<(), dramatiq_sentinel_supervisor::HostError> {
/// use dramatiq_sentinel_supervisor::{AppErrorKind, Host};
///
/// let host = Host::new(&supervisor);
/// let master = match host.master_now() {
///     Some(master) => master,
///     None => host.wait_master().await?, // held while a failover is in progress
/// };
/// // ... connect to `master` with your own client; if it answers READONLY:
/// host.check_error(&master, AppErrorKind::ReadOnly).await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Host {
    /// The supervisor's master handle: its hold is the one hosts wait in.
    conn: MasterConnection,
    gate: WorkerGate,
}

impl Host {
    /// The host view of `supervisor`.
    pub fn new<R>(supervisor: &Supervisor<R>) -> Self {
        Self {
            conn: supervisor.master(),
            gate: supervisor.gate(),
        }
    }

    /// The verified master commands may go to now, or `None` while commands are held (a
    /// failover is in progress, or no master was verified yet): then await
    /// [`Host::wait_master`].
    pub fn master_now(&self) -> Option<Addr> {
        if self.conn.is_held() {
            return None;
        }
        self.conn.node()
    }

    /// The generation of the master in use when commands may go to it now (it changes at
    /// every activation of a master, and never goes back), or `None` while commands are held
    /// or once stopped. A host that keeps its own connections records the generation it
    /// connected in and compares it before each send: a connection is good for one
    /// generation only (the fence checked at every send, with no address to compare).
    pub fn generation(&self) -> Option<u64> {
        self.conn
            .shared()
            .slot
            .try_get()
            .map(|(active, _)| active.generation)
    }

    /// Whether commands are held now.
    pub fn is_held(&self) -> bool {
        self.conn.is_held()
    }

    /// The master in use, also while held (for logs and status).
    pub fn current_master(&self) -> Option<Addr> {
        self.conn.node()
    }

    /// Waits until commands may go to a verified master and returns it: a `PING` through the
    /// supervisor's master handle, so the wait is that handle's hold (fenced: until the new
    /// master is in use; unreachable: retried until it answers or another master is in use;
    /// both bounded by `hold_timeout`), and a failure is reported to the core as the handle
    /// reports its own.
    pub async fn wait_master(&self) -> Result<Addr, HostError> {
        let mut conn = self.conn.clone();
        match conn.req_packed_command(&redis::cmd("PING")).await {
            Ok(_) => self.conn.node().ok_or_else(|| HostError::Unavailable {
                message: "dramatiq-sentinel: the supervisor stopped".to_owned(),
                kind: Some(std::io::ErrorKind::NotConnected),
            }),
            Err(e) => Err(HostError::Unavailable {
                message: e.to_string(),
                kind: io_kind(&e),
            }),
        }
    }

    /// Tells the core that the host saw `kind` on its own connection to `node`. Errors about
    /// a node that is not the master in use are dropped (they are about an earlier master).
    /// The error is re-checked through the supervisor's own master connection (a `PING`, or
    /// for `READONLY` a write that changes nothing on a master), which reports what it sees to
    /// the core; the core decides. Completes when the re-check has (at most `command_timeout`,
    /// or `hold_timeout` while held); run it in the background.
    pub async fn check_error(&self, node: &Addr, kind: AppErrorKind) {
        if self.conn.node().as_ref() != Some(node) {
            return;
        }
        let mut cmd = match kind {
            AppErrorKind::ReadOnly => redis::cmd("DEL"),
            AppErrorKind::Io | AppErrorKind::Timeout => redis::cmd("PING"),
        };
        if kind == AppErrorKind::ReadOnly {
            cmd.arg(PROBE_KEY);
        }
        let mut conn = self.conn.clone();
        let _ = conn.req_packed_command(&cmd).await;
    }

    /// The worker gate (a permit per job; closed while fenced).
    pub fn gate(&self) -> &WorkerGate {
        &self.gate
    }
}
