//! The supervisor's task: it owns the [`Core`] and runs its drive loop: drain events (log,
//! hooks, subscribers), execute actions in order, then wait for the first of an input or the
//! core's deadline, and feed it with the current time.

use crate::error::SupervisorError;
use crate::events::log_event;
use crate::listener::ListenerHandle;
use crate::runtime::timeout;
use crate::shared::{Input, Shared, Snapshot};
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{Core, Event, FatalError, OpId};
use futures_lite::FutureExt;
use futures_lite::future::{or, zip};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
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
    /// Connections opened by `Connect`, until `Activate` or `Discard`.
    pub(crate) prepared: HashMap<OpId, MultiplexedConnection>,
    /// The generation of the master connection in use (one per `Activate`).
    pub(crate) generation: u64,
    startup: Option<Sender<Startup>>,
}

enum Wake {
    Input(Option<Input>),
    Deadline,
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
            prepared: HashMap::new(),
            generation: 0,
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
            let deadline = self.core.poll_timeout();
            let wake = match deadline {
                Some(d) if d.at <= Instant::now() => Wake::Deadline,
                Some(d) => {
                    let sleep = self.shared.rt.sleep_until(d.at);
                    or(async { Wake::Input(self.inbox.recv().await.ok()) }, async {
                        sleep.await;
                        Wake::Deadline
                    })
                    .await
                }
                None => Wake::Input(self.inbox.recv().await.ok()),
            };
            let now = Instant::now();
            match wake {
                Wake::Deadline => {
                    if let Some(d) = deadline {
                        debug!(reason = ?d.reason, "deadline");
                    }
                    self.core.handle_timeout(now);
                }
                Wake::Input(None | Some(Input::Shutdown)) => return self.shutdown().await,
                Wake::Input(Some(input)) => self.dispatch(input, now),
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            log_event(&event);
            self.shared.hooks.run(&event);
            self.shared.events.send(&event);
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
            Input::ListenerSubscribed(op) => core.handle_listener_subscribed(now, op),
            Input::ListenerMessage(op, channel, payload) => {
                core.handle_listener_message(now, op, &channel, &payload)
            }
            Input::ListenerPong(op) => core.handle_listener_pong(now, op),
            Input::ListenerFailed(op, reason) => {
                self.listeners.remove(&op);
                core.handle_listener_failed(now, op, &reason);
            }
            Input::SentinelReply(op, reply) => core.handle_sentinel_reply(now, op, reply),
            Input::NodeReply(op, reply) => core.handle_node_reply(now, op, reply),
            Input::Connected(op, Ok((reply, conn))) => {
                self.prepared.insert(op, conn);
                core.handle_node_reply(now, op, Ok(reply));
            }
            Input::Connected(op, Err(e)) => core.handle_node_reply(now, op, Err(e)),
            Input::WorkersPaused(op) => core.handle_workers_paused(now, op),
            Input::AppError(node, kind) => {
                debug!(node = %node, ?kind, "application error reported");
                core.handle_app_error(now, &node, kind);
            }
            Input::Snapshot(tx) => {
                let _ = tx.try_send(Snapshot {
                    sentinels: core.sentinels().cloned().collect(),
                    master: core.master().cloned(),
                    fenced: core.is_fenced(),
                });
            }
            Input::Shutdown => {}
        }
    }

    /// A shutdown the application asked for: no new jobs, jobs in flight get `stop_grace`.
    async fn shutdown(&mut self) -> Result<(), FatalError> {
        info!("shutting down");
        self.stop_workers(self.shared.cfg.stop_grace()).await;
        Ok(())
    }

    /// Closes the gate for good and waits, at most `grace`, for jobs in flight and the pool.
    pub(crate) async fn stop_workers(&self, grace: std::time::Duration) {
        let shared = &self.shared;
        shared.gate.stop();
        let pool = async {
            if let Some(w) = &shared.workers {
                w.stop(grace).await;
            }
        };
        let stopped = timeout(&*shared.rt, grace, zip(shared.gate.drained(), pool)).await;
        if stopped.is_none() {
            info!(
                grace_ms = grace.as_millis() as u64,
                "workers still busy after the grace period"
            );
        }
    }
}
