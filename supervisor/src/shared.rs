//! State shared by the supervisor's task, its helper tasks and the user's handles, and the
//! messages the helper tasks send to the supervisor's task.

use crate::connect::{ConnCache, Endpoint};
use crate::error::SupervisorError;
use crate::events::{Broadcast, Hooks};
use crate::gate::{WorkerGate, Workers};
use crate::hold::Slot;
use crate::master::{Active, Line};
use crate::runtime::Runtime;
use crate::sync::Done;
use async_channel::Sender;
use dramatiq_sentinel_core::{Addr, AppErrorKind, Config, OpId, Reply};
use redis::aio::MultiplexedConnection;
use std::sync::{Arc, Mutex, Weak};

/// A completion or request for the supervisor's task.
pub(crate) enum Input {
    ListenerSubscribed(OpId),
    ListenerMessage(OpId, Vec<u8>, Vec<u8>),
    ListenerPong(OpId),
    ListenerFailed(OpId, String),
    SentinelReply(OpId, Result<Reply, String>),
    NodeReply(OpId, Result<Reply, String>),
    /// A `Connect` completed: the `ROLE` reply and the prepared connection.
    Connected(OpId, Result<(Reply, MultiplexedConnection), String>),
    WorkersPaused(OpId),
    AppError(Addr, AppErrorKind),
    /// A status query wants the sentinels and the master in use.
    Snapshot(Sender<Snapshot>),
    Shutdown,
}

/// What the supervisor's task knows, for a status query.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) sentinels: Vec<Addr>,
    pub(crate) master: Option<Addr>,
    pub(crate) fenced: bool,
}

/// Everything the tasks and handles share.
pub(crate) struct Shared {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) cfg: Config,
    pub(crate) inbox: Sender<Input>,
    /// The application's master connection, held while fenced.
    pub(crate) slot: Slot<Active>,
    /// The dedicated connections of `MasterConnection::dedicated` handles.
    pub(crate) dedicated: Mutex<Vec<Weak<Line>>>,
    pub(crate) gate: WorkerGate,
    pub(crate) workers: Option<Arc<dyn Workers>>,
    pub(crate) events: Broadcast,
    pub(crate) hooks: Hooks,
    /// Cached connections for sentinel queries.
    pub(crate) sentinels: ConnCache,
    /// Cached connections for `ROLE` probes of data nodes.
    pub(crate) probes: ConnCache,
    /// How to reach data nodes.
    pub(crate) data: Endpoint,
    /// How to reach sentinels (for listeners).
    pub(crate) sentinel: Endpoint,
    /// How the supervisor ended: `Ok` after a shutdown, or the fatal error.
    pub(crate) done: Done<Result<(), SupervisorError>>,
}

impl Shared {
    /// Closes everything the handles use: the gate for good, the master connection (commands
    /// in flight are cancelled, later ones fail), dedicated and cached connections, and the
    /// event streams.
    pub(crate) fn close(&self) {
        self.gate.stop();
        if let Some(active) = self.slot.stop() {
            active.cancel.cancel();
            active.line.clear_unless(None);
        }
        for own in crate::sync::lock(&self.dedicated).drain(..) {
            if let Some(own) = own.upgrade() {
                own.clear_unless(None);
            }
        }
        self.sentinels.clear();
        self.probes.clear();
        self.events.close();
    }
}
