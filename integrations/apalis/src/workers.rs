//! [`ApalisWorkers`]: the supervisor's [`Workers`] trait for apalis workers.

use apalis_core::timer::Delay;
use apalis_core::worker::context::WorkerContext;
use dramatiq_sentinel_supervisor::{BoxFuture, LostWrites, Workers};
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

    /// Writes lost in a switch (the new master was promoted behind, or this process was
    /// fenced after the promotion): the registrations and heartbeats of this pool's workers
    /// among them (`ZADD <queue>:workers <time> <worker>`, the metadata hash) are written
    /// again, so no worker finds itself "not registered" on the new master and stops for good.
    /// Registrations only move forward (`ZADD GT`). Other writes of apalis-redis (task states)
    /// are left to apalis (its re-enqueueing of orphaned tasks).
    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        let names: Vec<String> = self
            .contexts()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        Box::pin(async move {
            let mut conn = lost.connection;
            let mut restored = 0;
            for c in &lost.commands {
                let Some(again) = registration(&c.args, &names) else {
                    continue;
                };
                match again.query_async::<redis::Value>(&mut conn).await {
                    Ok(_) => restored += 1,
                    Err(e) => warn!(error = %e, "apalis worker registration not restored"),
                }
            }
            info!(
                restored,
                lost = lost.commands.len(),
                "apalis worker registrations restored after a switch that lost writes"
            );
        })
    }
}

/// The idempotent form of a lost registration or heartbeat of one of `workers`: `ZADD GT` on
/// a queue's workers set, or the worker's metadata hash again; `None` for anything else.
fn registration(args: &[Vec<u8>], workers: &[String]) -> Option<redis::Cmd> {
    let text = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
    let name = text(0)?.to_ascii_lowercase();
    let key = text(1)?;
    match name.as_str() {
        "zadd" if key.ends_with(":workers") => {
            let (score, member) = (text(2)?, text(3)?);
            workers.contains(&member).then(|| {
                redis::cmd("ZADD")
                    .arg(&key)
                    .arg("GT")
                    .arg(score)
                    .arg(member)
                    .clone()
            })
        }
        "hmset" | "hset"
            if workers
                .iter()
                .any(|w| key.ends_with(&format!(":workers:metadata:{w}"))) =>
        {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key);
            for a in args.iter().skip(2) {
                cmd.arg(a.as_slice());
            }
            Some(cmd)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_this_pools_registrations_are_written_again() {
        let workers = ["w1".to_owned()];
        let zadd = registration(&args(&["zadd", "emails:workers", "17", "w1"]), &workers)
            .expect("a registration");
        assert_eq!(
            zadd.get_packed_command(),
            redis::cmd("ZADD")
                .arg("emails:workers")
                .arg("GT")
                .arg("17")
                .arg("w1")
                .get_packed_command()
        );
        let meta = [
            "hmset",
            "emails:workers:metadata:w1",
            "backend_name",
            "redis",
        ];
        assert!(registration(&args(&meta), &workers).is_some());
        for other in [
            &["zadd", "emails:workers", "17", "w2"][..],
            &["zadd", "emails:scheduled", "17", "w1"],
            &["hmset", "emails:workers:metadata:w2", "service", "x"],
            &["rpush", "emails:active", "t1"],
            &["zadd"],
        ] {
            assert!(registration(&args(other), &workers).is_none(), "{other:?}");
        }
    }
}
