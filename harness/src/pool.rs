//! A worker pool on a reliable Redis queue, and the ledger that checks it.
//!
//! Jobs are list items of `queue`. A worker takes a gate permit, moves a job to `processing`
//! (`LMOVE`, in a script that also records the job in `fetched`, so that the replication
//! stream names it), records its start, works, records its effect idempotently (`SADD done`)
//! and acknowledges it (`LREM processing`), retrying effect and acknowledgement until they
//! succeed. In durable mode each step is followed by `WAIT 1` so that a killed master loses
//! nothing acknowledged, and a fetch not confirmed by a replica is abandoned without running
//! it.
//!
//! Writes the old master acknowledged after a promotion (the supervisor's fence reached this
//! process a moment later, or its leader was not heard) are handed back before the switch
//! resumes ([`Workers::writes_lost`]); the pool re-applies each idempotently: a fetch moves
//! its job from `queue` to `processing` if it is still queued, an effect is added again, an
//! acknowledgement removes the job from `processing`, a push queues a job never queued.

use crate::runtime::{TestRuntime, sleep, spawn};
use crate::sync::lock;
use crate::{Deployment, redis};
use crate::{WAIT, wait_for};
use dramatiq_sentinel_supervisor::{
    BoxFuture, Event, LostWrites, MasterConnection, Supervisor, WorkerGate, Workers,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The list of jobs waiting to run.
pub const QUEUE: &str = "queue";
/// The list of jobs a worker fetched and has not acknowledged yet.
pub const PROCESSING: &str = "processing";
/// The set of jobs whose effect was recorded.
pub const DONE: &str = "done";
/// The set of jobs fetched: the fetch script adds each, so a fetch lost in a switch names its
/// job in the replication stream handed back.
pub const FETCHED: &str = "fetched";
/// The set of jobs ever queued (pushes through [`PUSH`]).
pub const PRODUCED: &str = "produced";

/// Moves the next job from `queue` to `processing` and records it in `fetched`.
const FETCH: &str = "local j = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') \
                     if j then redis.call('SADD', KEYS[3], j) end return j";
/// A lost fetch, again: the job moves from `queue` to `processing` if it is still queued.
const REFETCH: &str = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then \
                       redis.call('LPUSH', KEYS[2], ARGV[1]) end \
                       return redis.call('SADD', KEYS[3], ARGV[1])";
/// Queues a job unless it was queued before: pushes are idempotent, so a lost one can be
/// pushed again.
pub const PUSH: &str = "if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then \
                        return redis.call('LPUSH', KEYS[2], ARGV[1]) end return 0";

/// The [`PUSH`] of `job` (into [`QUEUE`], recorded in [`PRODUCED`]): how the producers queue a
/// job, and how a lost push is sent again.
pub fn push(job: &str) -> redis::Cmd {
    redis::cmd("EVAL")
        .arg(PUSH)
        .arg(2)
        .arg(PRODUCED)
        .arg(QUEUE)
        .arg(job)
        .clone()
}
/// How long a job must sit unstarted in `processing` before the reaper requeues it (longer
/// than any worker takes from its fetch to recording the start).
const ORPHAN_AGE: Duration = Duration::from_secs(5);

/// How the pool works.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Number of workers.
    pub workers: usize,
    /// How long each job works.
    pub job_time: Duration,
    /// `WAIT 1` after each write, on a dedicated connection per worker.
    pub durable: bool,
    /// How long a worker sleeps when the queue is empty.
    pub idle: Duration,
    /// Long jobs (`long-0`, `long-1`, ...), queued before the others.
    pub long_jobs: usize,
    /// How long each long job works.
    pub long_time: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            job_time: Duration::from_millis(2),
            durable: false,
            idle: Duration::from_millis(5),
            long_jobs: 0,
            long_time: Duration::ZERO,
        }
    }
}

/// A pause of the workers: from the pool's `pause` (called once the gate drained) to the
/// supervisor's resume decision (recorded by a hook, before the gate reopens).
#[derive(Debug, Clone, Copy)]
struct Pause {
    from: Instant,
    to: Option<Instant>,
}

/// What the pool did.
#[derive(Debug, Default)]
pub struct Ledger {
    starts: Mutex<BTreeMap<String, Vec<Instant>>>,
    /// Per job: when it was fetched and from which master (as the handle saw it), when it
    /// ended (acknowledged).
    fetches: Mutex<BTreeMap<String, (Instant, Option<dramatiq_sentinel_supervisor::Addr>)>>,
    ends: Mutex<BTreeMap<String, Instant>>,
    pauses: Mutex<Vec<Pause>>,
    failed_fetches: AtomicUsize,
    /// Lost writes the supervisor handed back, and how many the pool re-applied.
    handed_back: AtomicUsize,
    reapplied: AtomicUsize,
    errors: Mutex<Vec<String>>,
    error_count: AtomicUsize,
    completed: AtomicUsize,
    stop: AtomicBool,
}

impl Ledger {
    fn error(&self, e: String) {
        self.error_count.fetch_add(1, Ordering::SeqCst);
        let mut errors = lock(&self.errors);
        if errors.len() < 200 {
            errors.push(e);
        }
    }

    /// Jobs completed (acknowledged) so far.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Lost writes handed back to the pool, and how many it re-applied.
    pub fn handed_back(&self) -> (usize, usize) {
        (
            self.handed_back.load(Ordering::SeqCst),
            self.reapplied.load(Ordering::SeqCst),
        )
    }

    /// How many pauses the pool saw.
    pub fn pauses(&self) -> usize {
        lock(&self.pauses).len()
    }

    /// How many jobs workers started so far.
    pub fn started_count(&self) -> usize {
        lock(&self.starts).len()
    }

    /// Whether a worker started `job`.
    pub fn started(&self, job: &str) -> bool {
        lock(&self.starts).contains_key(job)
    }

    /// When `job` first started and when it ended.
    pub fn job(&self, job: &str) -> (Option<Instant>, Option<Instant>) {
        let start = lock(&self.starts).get(job).and_then(|s| s.first().copied());
        let end = lock(&self.ends).get(job).copied();
        (start, end)
    }

    /// Every fetch: job, when, and from which master.
    pub fn fetches(&self) -> Vec<(String, Instant, Option<dramatiq_sentinel_supervisor::Addr>)> {
        lock(&self.fetches)
            .iter()
            .map(|(j, (t, n))| (j.clone(), *t, n.clone()))
            .collect()
    }

    /// The jobs fetched from `node` in `(from, to)`.
    pub fn fetched_between(
        &self,
        node: &dramatiq_sentinel_supervisor::Addr,
        from: Instant,
        to: Instant,
    ) -> Vec<String> {
        lock(&self.fetches)
            .iter()
            .filter(|(_, (t, n))| *t > from && *t < to && n.as_ref() == Some(node))
            .map(|(j, _)| j.clone())
            .collect()
    }

    /// The jobs workers started more than once, with how many times each.
    pub fn started_more_than_once(&self) -> Vec<(String, usize)> {
        lock(&self.starts)
            .iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(j, s)| (j.clone(), s.len()))
            .collect()
    }

    /// Errors the workers saw (and retried), all of them; [`Pool::errors`] keeps the first 200.
    pub fn error_count(&self) -> usize {
        self.error_count.load(Ordering::SeqCst)
    }

    /// Closes the open pause: a hook calls this on `SwitchCompleted` / `FenceLifted`.
    fn resumed(&self, at: Instant) {
        if let Some(p) = lock(&self.pauses).last_mut()
            && p.to.is_none()
        {
            p.to = Some(at);
        }
    }
}

/// The pool as the supervisor sees it: it records when pausing completed.
struct PoolWorkers(Arc<Ledger>);

impl Workers for PoolWorkers {
    fn pause(&self) -> BoxFuture<'_, ()> {
        lock(&self.0.pauses).push(Pause {
            from: Instant::now(),
            to: None,
        });
        Box::pin(async {})
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
        self.0.stop.store(true, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = lost.connection;
            self.0
                .handed_back
                .fetch_add(lost.commands.len(), Ordering::SeqCst);
            for command in &lost.commands {
                let Some(again) = reapplied(&command.args) else {
                    continue;
                };
                match again.query_async::<redis::Value>(&mut conn).await {
                    Ok(_) => {
                        self.0.reapplied.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => self.0.error(format!("re-applying {command:?}: {e}")),
                }
            }
        })
    }
}

/// The idempotent form of a write of the pool's, for re-applying it after a switch lost it;
/// `None` for what needs nothing (the fetch's `LMOVE`, named by its `SADD fetched`, and
/// transaction brackets) or is not the pool's.
fn reapplied(args: &[Vec<u8>]) -> Option<redis::Cmd> {
    let text = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
    let name = text(0)?.to_ascii_uppercase();
    let (key, member) = (text(1)?, text(2));
    match (name.as_str(), key.as_str(), member) {
        ("SADD", FETCHED, Some(job)) => Some(
            redis::cmd("EVAL")
                .arg(REFETCH)
                .arg(3)
                .arg(QUEUE)
                .arg(PROCESSING)
                .arg(FETCHED)
                .arg(job)
                .clone(),
        ),
        ("SADD", DONE, Some(job)) => Some(redis::cmd("SADD").arg(DONE).arg(job).clone()),
        ("LREM", PROCESSING, _) => {
            let job = text(3)?;
            Some(redis::cmd("LREM").arg(PROCESSING).arg(0).arg(job).clone())
        }
        ("SADD", PRODUCED, Some(job)) => Some(push(&job)),
        _ => None,
    }
}

/// Adds the pool's hooks to a supervisor builder.
pub fn attach<R: dramatiq_sentinel_supervisor::Runtime>(
    ledger: &Arc<Ledger>,
    builder: dramatiq_sentinel_supervisor::Builder<R>,
) -> dramatiq_sentinel_supervisor::Builder<R> {
    let l = Arc::clone(ledger);
    builder
        .workers(PoolWorkers(Arc::clone(ledger)))
        .on_event(move |e| {
            if matches!(e, Event::SwitchCompleted { .. } | Event::FenceLifted { .. }) {
                l.resumed(Instant::now());
            }
        })
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut MasterConnection,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    cmd.query_async(conn).await
}

/// Whether `WAIT 1` confirms the writes so far on one replica.
async fn replicated(conn: &mut MasterConnection) -> Result<(), String> {
    match query::<i64>(conn, redis::cmd("WAIT").arg(1).arg(2000)).await {
        Ok(n) if n >= 1 => Ok(()),
        Ok(n) => Err(format!("WAIT 1: {n} replicas")),
        Err(e) => Err(format!("WAIT: {e}")),
    }
}

async fn worker<R: TestRuntime>(
    ledger: Arc<Ledger>,
    gate: WorkerGate,
    mut conn: MasterConnection,
    options: PoolOptions,
) {
    let idle = options.idle;
    while !ledger.stop.load(Ordering::SeqCst) {
        let Ok(permit) = gate.enter().await else {
            return;
        };
        let fetch = redis::cmd("EVAL")
            .arg(FETCH)
            .arg(3)
            .arg(QUEUE)
            .arg(PROCESSING)
            .arg(FETCHED)
            .clone();
        let job = match query::<Option<String>>(&mut conn, &fetch).await {
            Ok(Some(job)) => {
                lock(&ledger.fetches).insert(job.clone(), (Instant::now(), conn.node()));
                job
            }
            Ok(None) => {
                drop(permit);
                sleep::<R>(idle).await;
                continue;
            }
            Err(e) => {
                ledger.failed_fetches.fetch_add(1, Ordering::SeqCst);
                ledger.error(format!("fetch: {e}"));
                drop(permit);
                sleep::<R>(idle).await;
                continue;
            }
        };
        if options.durable
            && let Err(e) = replicated(&mut conn).await
        {
            // Not known to survive a failover: leave it to the reaper, do not run it.
            ledger.failed_fetches.fetch_add(1, Ordering::SeqCst);
            ledger.error(format!("fetch of {job} not confirmed: {e}"));
            drop(permit);
            continue;
        }
        lock(&ledger.starts)
            .entry(job.clone())
            .or_default()
            .push(Instant::now());
        let time = if job.starts_with("long-") {
            options.long_time
        } else {
            options.job_time
        };
        sleep::<R>(time).await;
        loop {
            let acked: Result<(), String> = async {
                query::<()>(&mut conn, redis::cmd("SADD").arg(DONE).arg(&job))
                    .await
                    .map_err(|e| format!("effect: {e}"))?;
                query::<()>(
                    &mut conn,
                    redis::cmd("LREM").arg(PROCESSING).arg(1).arg(&job),
                )
                .await
                .map_err(|e| format!("ack: {e}"))?;
                if options.durable {
                    replicated(&mut conn).await?;
                }
                Ok(())
            }
            .await;
            match acked {
                Ok(()) => break,
                Err(e) if ledger.stop.load(Ordering::SeqCst) => {
                    ledger.error(format!("{job}: {e} (stopping)"));
                    break;
                }
                Err(e) => {
                    ledger.error(format!("{job}: {e}"));
                    sleep::<R>(idle).await;
                }
            }
        }
        lock(&ledger.ends).insert(job, Instant::now());
        ledger.completed.fetch_add(1, Ordering::SeqCst);
        drop(permit);
    }
}

/// A running pool and the jobs it was given.
pub struct Pool {
    /// What the workers did.
    pub ledger: Arc<Ledger>,
    produced: BTreeSet<String>,
}

impl Pool {
    /// A ledger to attach to the supervisor builder (see [`attach`]) before starting the pool.
    pub fn ledger() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    /// Starts the workers on the runtime.
    pub fn start<R: TestRuntime>(
        rt: &R,
        ledger: Arc<Ledger>,
        supervisor: &Supervisor<R::Rt>,
        options: PoolOptions,
    ) -> Pool {
        rt.block_on(async {
            for _ in 0..options.workers {
                let conn = if options.durable {
                    supervisor.master().dedicated()
                } else {
                    supervisor.master()
                };
                spawn::<R>(worker::<R>(
                    Arc::clone(&ledger),
                    supervisor.gate(),
                    conn,
                    options,
                ));
            }
        });
        Pool {
            ledger,
            produced: BTreeSet::new(),
        }
    }

    /// Pushes jobs `prefix-0..n` straight to the deployment's current master, and waits until
    /// every replica has them (right after a start or a failover a replica may be linked but
    /// not streaming yet, and a failover to it would lose them).
    pub fn produce(&mut self, d: &Deployment, prefix: &str, n: usize) {
        let jobs: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let master = d.master().expect("an agreed master");
        let replicas = d
            .nodes()
            .into_iter()
            .filter(|&n| n != master && d.is_running(n) && !d.is_frozen(n))
            .count();
        // `WAIT` counts the acknowledgements of this connection's writes: same connection.
        let mut conn = d.connect(master).expect("connect to the master");
        for chunk in jobs.chunks(500) {
            redis::cmd("LPUSH")
                .arg(QUEUE)
                .arg(chunk)
                .query::<()>(&mut conn)
                .expect("LPUSH");
        }
        wait_for("the jobs to reach every replica", WAIT, || {
            let acked: usize = redis::cmd("WAIT")
                .arg(replicas)
                .arg(1000)
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            if acked >= replicas {
                Ok(())
            } else {
                Err(format!("{acked} of {replicas} replicas"))
            }
        });
        self.produced.extend(jobs);
    }

    /// Waits until `n` jobs are completed.
    pub fn wait_completed(&self, n: usize) {
        wait_for("jobs completed", WAIT, || {
            let c = self.ledger.completed();
            if c >= n {
                Ok(())
            } else {
                Err(format!("{c} of {n}"))
            }
        });
    }

    /// Waits until every job is done (after requeueing jobs whose fetch failed and that no
    /// worker started: the reliable-queue reaper), then checks: no job lost, none run twice,
    /// none started while the workers were paused. Returns the number of requeued jobs.
    pub fn finish_and_check(&self, d: &Deployment) -> usize {
        let mut requeued = 0;
        let mut orphans: BTreeMap<String, Instant> = BTreeMap::new();
        wait_for("every job done", WAIT, || {
            let master = d.master().map_err(|e| e.to_string())?;
            let queued: usize = d
                .query(master, redis::cmd("LLEN").arg(QUEUE))
                .map_err(|e| e.to_string())?;
            let processing: Vec<String> = d
                .query(master, redis::cmd("LRANGE").arg(PROCESSING).arg(0).arg(-1))
                .map_err(|e| e.to_string())?;
            let done: usize = d
                .query(master, redis::cmd("SCARD").arg(DONE))
                .map_err(|e| e.to_string())?;
            if queued == 0 && processing.is_empty() && done >= self.produced.len() {
                return Ok(());
            }
            if queued == 0 {
                // Jobs sitting in `processing` that no worker started for a while: a fetch
                // failed after the server moved the job. Requeue them, as a reaper would.
                let starts = lock(&self.ledger.starts);
                let now = Instant::now();
                orphans.retain(|j, _| processing.contains(j) && !starts.contains_key(j));
                for job in processing.iter().filter(|j| !starts.contains_key(*j)) {
                    let seen = *orphans.entry(job.clone()).or_insert(now);
                    if now.duration_since(seen) < ORPHAN_AGE {
                        continue;
                    }
                    let moved: i64 = d
                        .query(master, redis::cmd("LREM").arg(PROCESSING).arg(1).arg(job))
                        .map_err(|e| e.to_string())?;
                    if moved == 1 {
                        d.query::<()>(master, redis::cmd("LPUSH").arg(QUEUE).arg(job))
                            .map_err(|e| e.to_string())?;
                        requeued += 1;
                    }
                }
            }
            Err(format!(
                "queue {queued}, processing {processing:?}, done {done} of {}",
                self.produced.len()
            ))
        });
        let master = d.master().expect("an agreed master");
        let done: BTreeSet<String> = d
            .query(master, redis::cmd("SMEMBERS").arg(DONE))
            .expect("SMEMBERS");
        let lost: Vec<_> = self.produced.difference(&done).collect();
        assert!(lost.is_empty(), "jobs lost: {lost:?}");
        let starts = lock(&self.ledger.starts);
        let twice: Vec<_> = starts.iter().filter(|(_, s)| s.len() > 1).collect();
        assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
        let not_started: Vec<_> = self
            .produced
            .iter()
            .filter(|j| !starts.contains_key(*j))
            .collect();
        assert!(
            not_started.is_empty(),
            "jobs done but never started: {not_started:?}"
        );
        let pauses = lock(&self.ledger.pauses);
        for p in pauses.iter() {
            let during: Vec<_> = starts
                .iter()
                .filter(|(_, s)| {
                    s.iter()
                        .any(|t| *t > p.from && p.to.is_none_or(|to| *t < to))
                })
                .map(|(j, _)| j)
                .collect();
            assert!(
                during.is_empty(),
                "jobs started while paused {p:?}: {during:?}"
            );
        }
        let failed = self.ledger.failed_fetches.load(Ordering::SeqCst);
        assert!(
            requeued <= failed,
            "{requeued} jobs requeued but only {failed} fetches failed"
        );
        requeued
    }

    /// The errors the workers saw (for diagnostics).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.ledger.errors).clone()
    }
}
