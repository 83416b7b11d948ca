//! State shared by the supervisor's task, its helper tasks and the user's handles, and the
//! messages the helper tasks send to the supervisor's task.

use crate::config::Config;
use crate::drive::worker_calls::WorkerCalls;
use crate::error::SupervisorError;
use crate::handles::gate::{WorkerGate, Workers};
use crate::handles::hold::Slot;
use crate::handles::master::line::{Active, Line};
use crate::net::cache::ConnCache;
use crate::net::connect::Endpoint;
use crate::net::link::Prepared;
use crate::net::share::SharedConnections;
use crate::net::watch::WatchHub;
use crate::observe::events::{Broadcast, Fanout, Hooks};
use crate::runtime::Runtime;
use crate::sync::{Cancel, Done, lock};
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{Addr, AppErrorKind, Input as CoreInput, IoError, OpId, Reply};
use std::sync::{Arc, Mutex, Weak};

/// How many completions may wait for the supervisor's task. Every sender awaits room (so
/// nothing is dropped, and a task blocked by a slow hook slows the senders down instead of
/// growing the queue): listeners, completions of the core's actions (bounded by the actions in
/// flight), the worker task, status queries. Application errors do not queue here: they
/// coalesce in [`Shared::app_errors`].
pub(crate) const INBOX_CAPACITY: usize = 256;

/// A completion or request for the supervisor's task.
pub(crate) enum Input {
    /// For the core, as it is.
    Core(CoreInput),
    /// A `Connect` completed: the `ROLE` reply and the prepared connection.
    Connected(OpId, Result<(Reply, Prepared), IoError>),
    /// Application errors are waiting in [`Shared::app_errors`].
    AppErrors,
    /// A status query wants the sentinels and the master in use.
    Snapshot(Sender<Snapshot>),
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
    /// Errors the application saw, not yet given to the core: one entry per node and kind, so
    /// a thousand failing commands make one report.
    pub(crate) app_errors: Mutex<Vec<(Addr, AppErrorKind)>>,
    /// Set by [`crate::Supervisor::shutdown`] (and a dropped `start`).
    pub(crate) stop_requested: Cancel,
    /// Jitter of the connection retries of master handles, seeded from the configuration.
    pub(crate) jitter: Mutex<fastrand::Rng>,
    /// The application's master connection, held while fenced.
    pub(crate) slot: Slot<Arc<Active>>,
    /// The dedicated connections of `MasterConnection::dedicated` handles.
    pub(crate) dedicated: Mutex<Vec<Weak<Line>>>,
    pub(crate) gate: WorkerGate,
    pub(crate) workers: Option<Arc<dyn Workers>>,
    /// What the worker task should do next.
    pub(crate) workers_calls: WorkerCalls,
    /// Where every event goes (log, metrics, hooks, subscribers).
    pub(crate) events: Fanout,
    /// Cached connections for sentinel queries (shared with other supervisors, when given
    /// [`SharedConnections`]).
    pub(crate) sentinels: Arc<ConnCache>,
    /// Cached connections for `ROLE` probes of data nodes (shared likewise).
    pub(crate) probes: Arc<ConnCache>,
    /// Watch connections on data nodes (shared likewise).
    pub(crate) watches: Arc<WatchHub>,
    /// How to reach data nodes.
    pub(crate) data: Endpoint,
    /// How the supervisor ended: `Ok` after a shutdown, or the fatal error.
    pub(crate) done: Done<Result<(), SupervisorError>>,
}

impl Shared {
    /// The shared state of a supervisor on `rt` with `cfg` (whose `jitter_seed` is set), and
    /// the receiving end of its inbox. Its connections for queries, probes and watches come
    /// from `connections` (shared with the other supervisors given them), or are its own.
    pub(crate) fn new(
        rt: Arc<dyn Runtime>,
        cfg: Config,
        workers: Option<Arc<dyn Workers>>,
        events: Broadcast,
        hooks: Hooks,
        connections: Option<&SharedConnections>,
    ) -> (Arc<Self>, Receiver<Input>) {
        let own = SharedConnections::new();
        let connections = connections.unwrap_or(&own);
        let probing = Endpoint::of(&cfg, cfg.redis_auth(), 0);
        let (inbox, inbox_rx) = async_channel::bounded(INBOX_CAPACITY);
        let seed = cfg.jitter_seed().unwrap_or(0);
        let shared = Shared {
            rt,
            inbox,
            app_errors: Mutex::new(Vec::new()),
            stop_requested: Cancel::default(),
            jitter: Mutex::new(fastrand::Rng::with_seed(seed.rotate_left(17))),
            slot: Slot::new(),
            dedicated: Mutex::new(Vec::new()),
            gate: WorkerGate::new(),
            workers,
            workers_calls: WorkerCalls::default(),
            events: Fanout::new(events, hooks, cfg.service_name()),
            sentinels: connections.cache(Endpoint::of(&cfg, cfg.sentinel_auth(), 0)),
            probes: connections.cache(probing.clone()),
            watches: connections.watches(probing),
            data: Endpoint::of(&cfg, cfg.redis_auth(), cfg.db()),
            done: Done::new(),
            cfg,
        };
        (Arc::new(shared), inbox_rx)
    }

    /// Records an error the application saw on `node`, for the core; wakes the supervisor's
    /// task only for the first pending one.
    pub(crate) fn report(&self, node: &Addr, kind: AppErrorKind) {
        let first = {
            let mut pending = lock(&self.app_errors);
            if pending.iter().any(|(n, k)| n == node && *k == kind) {
                return;
            }
            pending.push((node.clone(), kind));
            pending.len() == 1
        };
        // A full inbox is fine: the task drains the pending errors after every input.
        if first {
            let _ = self.inbox.try_send(Input::AppErrors);
        }
    }

    /// Takes the pending application errors.
    pub(crate) fn take_app_errors(&self) -> Vec<(Addr, AppErrorKind)> {
        std::mem::take(&mut *lock(&self.app_errors))
    }

    /// Installs `active` as the master in use and closes everything to the previous one: the
    /// connections of its generation close (commands in flight on them fail with
    /// `ConnectionAborted`), dedicated connections of older generations are dropped, and every
    /// handle's next command finds `active` (the slot's version changes). Without `release`,
    /// commands keep waiting (the slot stays fenced) until [`Slot::release`].
    pub(crate) fn activate(&self, active: Active, release: bool) {
        let generation = active.generation;
        if let Some(previous) = self.slot.install(Arc::new(active), release) {
            previous.cancel.cancel();
            previous.line.clear_unless(None);
        }
        let mut registry = lock(&self.dedicated);
        registry.retain(|w| w.strong_count() > 0);
        for own in registry.iter().filter_map(Weak::upgrade) {
            own.clear_unless(Some(generation));
        }
    }

    /// Closes everything the handles use: the gate for good, the master connection (its
    /// connections close, commands in flight on them are cancelled, later ones fail: the
    /// slot's version changes), dedicated connections, cached ones no other supervisor uses,
    /// and the event streams.
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
        self.sentinels.leave();
        self.probes.leave();
        self.events.close();
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::drive::shared::Input;
    use crate::testing;
    use dramatiq_sentinel_core::{Addr, AppErrorKind};

    /// A thousand failing commands make one entry and one wake-up of the supervisor's task,
    /// whatever the inbox holds; after the task took them, the next error wakes it again.
    #[test]
    fn application_errors_coalesce() {
        let config = Config::builder().build().expect("valid");
        let (shared, inbox) = testing::shared(config, None);
        let node = Addr::new("127.0.0.1", 6379);
        for _ in 0..1000 {
            shared.report(&node, AppErrorKind::Io);
            shared.report(&node, AppErrorKind::Timeout);
        }
        assert_eq!(inbox.len(), 1);
        assert!(matches!(inbox.try_recv(), Ok(Input::AppErrors)));
        assert_eq!(
            shared.take_app_errors(),
            vec![
                (node.clone(), AppErrorKind::Io),
                (node.clone(), AppErrorKind::Timeout)
            ]
        );
        shared.report(&node, AppErrorKind::ReadOnly);
        assert!(matches!(inbox.try_recv(), Ok(Input::AppErrors)));
    }
}
