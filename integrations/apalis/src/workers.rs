//! [`ApalisWorkers`]: the supervisor's [`Workers`] trait for apalis workers.

use apalis_core::timer::Delay;
use apalis_core::worker::context::WorkerContext;
use dramatiq_sentinel_supervisor::{BoxFuture, Workers};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often a pause or a stop looks at the workers' task counts (apalis has no notification
/// for "no task in flight").
const POLL: Duration = Duration::from_millis(5);

/// How long a pause waits after pausing before it counts the tasks in flight: a worker that
/// was deciding to start a task when it was paused registers that task within this time (the
/// task counts as in flight, and the pause waits for it).
const SETTLE: Duration = Duration::from_millis(10);

/// The apalis workers of a process, as the supervisor sees them: register each worker's
/// [`WorkerContext`] and give the pool to [`Builder::workers`].
///
/// - [`Workers::pause`] (only with a drain, see below) pauses every running worker (apalis
///   stops polling its backend; tasks fetched but not started stay buffered) and completes
///   once no task is in flight in any of them.
/// - [`Workers::resume`] resumes the workers this pool paused.
/// - [`Workers::stop`] stops every worker (apalis lets the tasks in flight finish, puts the
///   buffered ones back in the queue and flushes acknowledgements) and waits, at most the
///   grace period, until every worker has exited.
///
/// By default the pool does not ask for a drain ([`Workers::needs_drain`] is `false`): at a
/// switch the supervisor fences, verifies the new master and resumes at once, without calling
/// `pause`. apalis fetches, acknowledges and heartbeats through the storage's connection,
/// which is held while fenced and sent to the new master, so a task in flight finishes and is
/// acknowledged there, and no fetch reaches the old master. [`ApalisWorkers::with_drain`]
/// (or the supervisor's `drain` setting) waits for the tasks in flight at each switch instead,
/// for tasks that must not run across one (e.g. tasks that keep their own connection to the
/// old master).
///
/// Cheap to clone; clones share the registry.
///
/// [`Builder::workers`]: dramatiq_sentinel_supervisor::Builder::workers
#[derive(Clone, Debug, Default)]
pub struct ApalisWorkers {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    drain: bool,
    workers: Mutex<Vec<Registered>>,
}

#[derive(Debug)]
struct Registered {
    ctx: WorkerContext,
    /// Paused by this pool (and so to be resumed by it).
    paused: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ApalisWorkers {
    /// An empty pool that does not ask for a drain.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pool that asks the supervisor to drain it at each switch (`true`): no task starts
    /// from the fence until the new master is in use and every task in flight is done.
    /// Call before registering workers.
    pub fn with_drain(self, drain: bool) -> Self {
        let workers = std::mem::take(&mut *lock(&self.inner.workers));
        Self {
            inner: Arc::new(Inner {
                drain,
                workers: Mutex::new(workers),
            }),
        }
    }

    /// A new worker context named `name`, registered in this pool: build the worker with it
    /// (`WorkerBuilder::new(&ctx)` or `WorkerBuilder::new(ctx.clone())`). The name must be
    /// unique among the live workers of the queue (apalis-redis refuses to register a name
    /// whose last heartbeat is recent).
    pub fn context(&self, name: &str) -> WorkerContext {
        let ctx = WorkerContext::new(name);
        self.register(&ctx);
        ctx
    }

    /// Registers a worker context created elsewhere (a clone shares the worker's state).
    pub fn register(&self, ctx: &WorkerContext) {
        lock(&self.inner.workers).push(Registered {
            ctx: ctx.clone(),
            paused: false,
        });
    }

    /// The registered worker contexts.
    pub fn contexts(&self) -> Vec<WorkerContext> {
        lock(&self.inner.workers)
            .iter()
            .map(|r| r.ctx.clone())
            .collect()
    }

    /// Tasks in flight in every registered worker.
    pub fn tasks_in_flight(&self) -> usize {
        lock(&self.inner.workers)
            .iter()
            .map(|r| r.ctx.task_count())
            .sum()
    }

    /// Whether every worker that started has exited (or never started).
    fn all_exited(&self) -> bool {
        lock(&self.inner.workers)
            .iter()
            .all(|r| r.ctx.is_terminated() || r.ctx.is_pending())
    }

    async fn pause_all(&self) {
        let started = Instant::now();
        let mut paused = 0;
        for r in lock(&self.inner.workers).iter_mut() {
            if r.ctx.is_running() && r.ctx.pause().is_ok() {
                r.paused = true;
                paused += 1;
            }
        }
        Delay::new(SETTLE).await;
        while self.tasks_in_flight() > 0 {
            Delay::new(POLL).await;
        }
        debug!(
            paused,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "apalis workers paused; no task in flight"
        );
    }

    fn resume_all(&self) {
        let mut resumed = 0;
        for r in lock(&self.inner.workers).iter_mut() {
            if std::mem::take(&mut r.paused) && r.ctx.is_paused() {
                match r.ctx.resume() {
                    Ok(()) => resumed += 1,
                    Err(e) => warn!(worker = r.ctx.name(), error = %e, "apalis worker not resumed"),
                }
            }
        }
        debug!(resumed, "apalis workers resumed");
    }

    async fn stop_all(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for r in lock(&self.inner.workers).iter_mut() {
            r.paused = false;
            if !r.ctx.is_pending() && !r.ctx.is_stopped() {
                // A paused worker stops too: `stop` moves any state but "not started" to
                // stopped.
                if let Err(e) = r.ctx.stop() {
                    warn!(worker = r.ctx.name(), error = %e, "apalis worker not stopped");
                }
            }
        }
        while !self.all_exited() {
            if Instant::now() >= deadline {
                info!(
                    grace_ms = grace.as_millis() as u64,
                    tasks = self.tasks_in_flight(),
                    "apalis workers still running after the grace period"
                );
                return;
            }
            Delay::new(POLL).await;
        }
        debug!("apalis workers stopped");
    }
}

impl Workers for ApalisWorkers {
    fn needs_drain(&self) -> bool {
        self.inner.drain
    }

    fn pause(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pause_all())
    }

    fn resume(&self) -> BoxFuture<'_, ()> {
        self.resume_all();
        Box::pin(async {})
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_all(grace))
    }
}
