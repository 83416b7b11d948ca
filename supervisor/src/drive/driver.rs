//! The supervisor's task: it owns the [`Core`] and runs its drive loop: drain events (log,
//! metrics, hooks, subscribers), execute actions in order, then wait for the first of an input or the
//! core's deadline, and feed it with the current time.

use crate::drive::shared::{Input, Shared, Snapshot};
use crate::drive::worker_calls::Want;
use crate::error::SupervisorError;
use crate::net::link::Prepared;
use crate::net::listener::ListenerHandle;
use crate::net::watch::WatchHandle;
use crate::runtime::timeout;
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{Core, Event, FatalError, Input as CoreInput, OpId};
use futures_lite::FutureExt;
use futures_lite::future::or;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error, info};

/// How startup ended, for the caller of `start`.
pub(crate) enum Startup {
    Ready,
    Failed(FatalError),
}

/// The supervisor's task.
pub(crate) struct Driver {
    pub(crate) core: Core,
    pub(crate) shared: Arc<Shared>,
    inbox: Receiver<Input>,
    /// Listener tasks by op; dropping a handle ends its task.
    pub(crate) listeners: HashMap<OpId, ListenerHandle>,
    /// Watch connections on candidates by op; dropping a handle closes the connection.
    pub(crate) watches: HashMap<OpId, WatchHandle>,
    /// Connections opened by `Connect`, until `Activate` or `Discard`.
    pub(crate) prepared: HashMap<OpId, Prepared>,
    /// The generation of the master connection in use (one per `Activate`).
    pub(crate) generation: u64,
    /// The `INFO replication` of the node last activated, read with its verifying `ROLE`,
    /// until the core asks for it (once, right after the activation).
    pub(crate) replication: Option<(dramatiq_sentinel_core::Addr, dramatiq_sentinel_core::Reply)>,
    /// Outcomes of actions known as soon as they were executed (an activation), fed to the
    /// core after the actions drained, like any other input. At most one per action of a
    /// drain.
    pub(crate) outcomes: VecDeque<CoreInput>,
    startup: Option<Sender<Startup>>,
}

enum Wake {
    Input(Input),
    Deadline,
    /// The application asked for a shutdown (or every sender is gone).
    Stop,
}

impl Driver {
    pub(crate) fn new(
        core: Core,
        shared: Arc<Shared>,
        inbox: Receiver<Input>,
        startup: Sender<Startup>,
    ) -> Self {
        Self {
            core,
            shared,
            inbox,
            listeners: HashMap::new(),
            watches: HashMap::new(),
            prepared: HashMap::new(),
            generation: 0,
            replication: None,
            outcomes: VecDeque::new(),
            startup: Some(startup),
        }
    }

    /// Runs the loop until shutdown or a fatal error (or a panic), then closes everything.
    pub(crate) async fn run(self) {
        let shared = Arc::clone(&self.shared);
        let result = match AssertUnwindSafe(self.run_inner()).catch_unwind().await {
            Ok(result) => result.map_err(SupervisorError::Fatal),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(panic = %message, "the supervisor's task panicked");
                Err(SupervisorError::Panicked(message))
            }
        };
        shared.close();
        shared.done.set(result);
    }

    async fn run_inner(mut self) -> Result<(), FatalError> {
        let result = self.drive().await;
        self.listeners.clear();
        self.watches.clear();
        self.prepared.clear();
        if let (Some(tx), Err(e)) = (self.startup.take(), &result) {
            let _ = tx.try_send(Startup::Failed(e.clone()));
        }
        result
    }

    async fn drive(&mut self) -> Result<(), FatalError> {
        loop {
            loop {
                self.drain_events();
                let Some(action) = self.core.poll_action() else {
                    break;
                };
                debug!(?action, "executing");
                if let Some(end) = self.execute(action).await {
                    return end;
                }
            }
            if let Some(outcome) = self.outcomes.pop_front() {
                self.core.handle(Instant::now(), outcome);
                continue;
            }
            let deadline = self.core.poll_timeout();
            let wake = match deadline {
                Some(d) if d.at <= Instant::now() => Wake::Deadline,
                _ => {
                    let sleep = deadline.map(|d| self.shared.rt.sleep_until(d.at));
                    let input = async {
                        match self.inbox.recv().await {
                            Ok(input) => Wake::Input(input),
                            Err(_) => Wake::Stop,
                        }
                    };
                    let stop = async {
                        self.shared.stop_requested.cancelled().await;
                        Wake::Stop
                    };
                    let timer = async {
                        match sleep {
                            Some(sleep) => sleep.await,
                            None => std::future::pending().await,
                        }
                        Wake::Deadline
                    };
                    or(stop, or(input, timer)).await
                }
            };
            let now = Instant::now();
            match wake {
                Wake::Deadline => {
                    if let Some(d) = deadline {
                        debug!(reason = ?d.reason, "deadline");
                    }
                    self.core.handle_timeout(now);
                }
                Wake::Stop => return self.shutdown().await,
                Wake::Input(input) => self.dispatch(input, now),
            }
            for (node, kind) in self.shared.take_app_errors() {
                debug!(node = %node, ?kind, "application error reported");
                self.core.handle(now, CoreInput::AppError { node, kind });
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            self.shared.events.emit(&event);
            if let Event::Ready { .. } = &event
                && let Some(tx) = self.startup.take()
            {
                let _ = tx.try_send(Startup::Ready);
            }
        }
    }

    fn dispatch(&mut self, input: Input, now: Instant) {
        let core = &mut self.core;
        match input {
            Input::Core(input) => {
                // The connection of a failed listener or of a closed watch is gone.
                match &input {
                    CoreInput::ListenerFailed { op, .. } => {
                        self.listeners.remove(op);
                    }
                    CoreInput::WatchClosed { op } => {
                        self.watches.remove(op);
                        debug!(op = %op, "watch connection closed by the server");
                    }
                    _ => {}
                }
                core.handle(now, input);
            }
            Input::Connected(op, reply) => {
                let reply = reply.map(|(reply, conn)| {
                    self.prepared.insert(op, conn);
                    reply
                });
                core.handle(now, CoreInput::NodeReply { op, reply });
            }
            // Drained after every input.
            Input::AppErrors => {}
            Input::Snapshot(tx) => {
                let _ = tx.try_send(Snapshot {
                    sentinels: core.sentinels().cloned().collect(),
                    master: core.master().cloned(),
                    fenced: core.is_fenced(),
                });
            }
        }
    }

    /// A shutdown the application asked for: no new jobs, jobs in flight get `stop_grace`.
    async fn shutdown(&mut self) -> Result<(), FatalError> {
        info!("shutting down");
        self.stop_workers(self.shared.cfg.stop_grace()).await;
        Ok(())
    }

    /// Has the worker task close the gate for good and stop the pool, and waits for it (at
    /// most `grace`, and a little more for a pool call already running).
    pub(crate) async fn stop_workers(&self, grace: std::time::Duration) {
        let shared = &self.shared;
        shared.workers_calls.want(Want::Stop(grace));
        let limit = grace + std::time::Duration::from_secs(1);
        if timeout(&*shared.rt, limit, shared.workers_calls.wait_stopped())
            .await
            .is_none()
        {
            info!(
                grace_ms = grace.as_millis() as u64,
                "a worker pool call is still running after the grace period"
            );
        }
    }
}
